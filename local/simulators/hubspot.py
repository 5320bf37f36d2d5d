"""A stateful HubSpot (Service Hub) sandbox for the calls refundflow makes, on HubSpot's own paths (CRM v3 objects,
v4 associations), and the workflow webhook a support pipeline sends.

Mounted by the local stack at ``/_sandbox/hubspot``; the connector's base address is ``{sandbox}/hubspot`` (live
``https://api.hubapi.com``). What it holds to, as HubSpot documents it (developers.hubspot.com guides for Tickets,
Notes, Contacts and Associations v4, "API usage guidelines and limits", "Validating requests"; the OpenAPI documents
of HubSpot/HubSpot-public-api-spec-collection):

- ``Authorization: Bearer <private app token>``; a missing or unknown token is a 401 ``INVALID_AUTHENTICATION``;
- ``GET /crm/v3/objects/tickets/{id}`` (``properties``, ``associations`` query lists; properties not asked for are
  not returned, unknown names are ignored) and ``PATCH`` of the same (``{"properties": {...}}``: a property the
  account does not define is a 400 ``VALIDATION_ERROR`` ``PROPERTY_DOESNT_EXIST``, a read-only one
  ``READ_ONLY_VALUE``, a stage that is not one of the ticket's pipeline or an option an enumeration does not have
  ``INVALID_OPTION``; property values are strings);
- ``GET /crm/v3/objects/contacts/{id}``;
- ``POST /crm/v3/objects/notes``: ``hs_timestamp`` required (milliseconds or ISO 8601), ``hs_note_body`` at most
  65,536 characters, ``associations`` to existing tickets with ``HUBSPOT_DEFINED`` type 228 (note to ticket);
  anything else is a 400 (another association type or object is not modelled, a simulator strictness, and so is
  any top-level field the spec does not define);
- ``GET /crm/v4/objects/tickets/{id}/associations/notes`` (``limit`` up to 500, ``after`` cursor) and ``POST
  /crm/v3/objects/notes/batch/read`` (at most 100 ``inputs``; ``properties`` and ``propertiesWithHistory`` are
  required, as in the spec);
- errors ``{status: "error", message, correlationId, category, errors?}``; the rate limit is the ten-second rolling
  window (``max_per_window`` calls per token): a 429 ``{status, message, errorType: "RATE_LIMIT", correlationId,
  policyName: "TEN_SECONDLY_ROLLING", requestId}`` with ``X-HubSpot-RateLimit-Interval-Milliseconds``,
  ``-Max`` and ``-Remaining`` headers. HubSpot does not document a ``Retry-After`` on API answers; the simulator
  sends one (the seconds left in the window) unless ``retry_after`` is False, so both of the connector's paths
  are exercised;
- the workflow's "Send a webhook" action (request signature in the header): a POST of the ticket's chosen
  properties (``hs_object_id``, ``hs_pipeline_stage``, ``hs_lastmodifieddate``) signed ``X-HubSpot-Signature-v3``
  = base64 HMAC-SHA256 (the app's client secret) of ``POST`` + the webhook URL + the body + the
  ``X-HubSpot-Request-Timestamp`` (milliseconds), with the legacy v2 headers beside it. The base
  ``/_control/webhook-endpoint`` takes ``{"url", "secret"}`` with ``secret`` the client secret.

The account: one support pipeline ``0`` with HubSpot's default stages (``1`` New, ``2`` Waiting on contact, ``3``
Waiting on us, ``4`` Closed) and the stages a refund setup adds (README, Help desks), the custom ticket properties
of the default mapping, and the teams ``9100001`` (team leads) and ``9100002`` (agents).

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/tickets`` (a ``seed_ticket`` request) -> ``{"id"}``;
- ``POST /_control/tickets/{id}/agent-action`` ``{"intent": "approve" | "request" | "withdraw"}``: ``agent_action``;
- ``GET /_control/tickets/{id}/view``: ``ticket_view``.

Faults (``inject_fault``): ``read_ticket`` is the ticket's GET, ``has_update`` the notes' association listing, and
``write_back`` the note's create (the write that carries the marker; the stage and status PATCH before it is
harmless to repeat).

``DEMO_SCENARIOS`` (``make demo``): ``local.scenarios.ticket_scenarios("hubspot")``, built when asked.

Not modelled: other objects and association types, pipelines and properties APIs, search, archiving, OAuth, the
daily allowance, and the workflow's "include all properties" body.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, json_response

DEFAULT_ACCESS_TOKEN = "pat-eu1-00000000-refundflow-simulator-0000"
DEFAULT_CLIENT_SECRET = "rf-simulator-hubspot-client-secret-0000"
DEFAULT_WEBHOOK_URL = "https://refundflow.example/webhooks/hubspot"
PIPELINE = "0"
STAGES = {
    "1": "New",
    "2": "Waiting on contact",
    "3": "Waiting on us",
    "4": "Closed",
    "90000001": "Refund requested",
    "90000002": "Refund approved",
    "90000003": "Refund cancelled",
    "90000004": "Refund issued",
    "90000005": "Refund failed",
}
INTENT_STAGES = {"request": "90000001", "approve": "90000002", "withdraw": "90000003"}
# What the local stack's HUBSPOT_STAGE_IDS names (the catalog entry's local value).
LOCAL_STAGE_IDS = "issued=90000004,completed=4,settled=4,failed=90000005,rejected=90000005"
TEAMS = {"team_lead": "9100001", "agent": "9100002"}
OWNER_ID = "301"
REFUND_STATUS_OPTIONS = (
    "requested",
    "pending_approval",
    "approved",
    "processing",
    "issued",
    "completed",
    "settled",
    "failed",
    "rejected",
    "needs_attention",
)
CUSTOM_PROPERTIES = (
    "refund_payment_provider",
    "refund_payment_id",
    "refund_reason",
    "refund_order_id",
    "refund_invoice_system",
    "refund_invoice_id",
    "refund_amount",
    "refund_currency",
    "refund_status",
    "shopify_order_id",
)
WRITABLE = frozenset(
    {
        "subject",
        "content",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hubspot_owner_id",
        "hubspot_team_id",
        "hs_ticket_priority",
    }
    | set(CUSTOM_PROPERTIES)
)
READ_ONLY = frozenset({"hs_object_id", "hs_lastmodifieddate", "createdate"})
DEFAULT_TICKET_PROPERTIES = ("subject", "content", "hs_pipeline", "hs_pipeline_stage", "createdate", "hs_object_id")
NOTE_TO_TICKET = 228
TICKET_TO_NOTE = 227
TICKET_TO_CONTACT = 16
MAX_NOTE_BODY = 65_536
WINDOW_SECONDS = 10.0
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
_ID = re.compile(r"^[0-9]{1,20}$")


def iso(epoch: float) -> str:
    millis = round(epoch * 1000)
    return datetime.fromtimestamp(millis // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def signature_v3(client_secret: str, url: str, body: bytes, timestamp: str) -> str:
    """HubSpot's ``X-HubSpot-Signature-v3`` for a POST of ``body`` to ``url`` (its own code here: the simulator
    never imports connector code). The URL is the one the workflow action names, with nothing percent-encoded."""
    source = b"POST" + url.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(client_secret.encode(), source, hashlib.sha256).digest()).decode()


class ApiError(Exception):
    def __init__(self, status: int, category: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.errors = status, category, message, errors


def error_body(category: str, message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    if errors:
        body["errors"] = errors
    return body


class HubSpotSimulator(Simulator):
    """HubSpot's tickets, contacts and notes for one account, and its workflow webhook."""

    name = "hubspot"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", r"^/crm/v3/objects/tickets/[^/]+$"),
        # The note's create: the write that carries the marker. The connector's PATCH of the stage and status
        # comes first and is harmless to repeat, so the note is where an answer lost after the work matters.
        "write_back": ("POST", r"^/crm/v3/objects/notes$"),
        "has_update": ("GET", r"^/crm/v4/objects/tickets/[^/]+/associations/notes$"),
    }

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        max_per_window: int = 150,
        retry_after: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.access_token = access_token
        self.client_secret = client_secret
        self.max_per_window = max_per_window
        self.retry_after = retry_after
        self.clock = clock
        self._ids = itertools.count(int(clock()) % 1_000_000 * 1000 + 1)
        self._state_lock = threading.RLock()
        self.tickets: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.ticket_notes: dict[str, list[str]] = {}
        self.ticket_contacts: dict[str, list[str]] = {}
        self._calls: dict[str, list[float]] = {}
        self.webhooks.configure(None, client_secret)
        api = self._api
        self.route("/crm/v3/objects/tickets/<ticket_id>", api(self._get_ticket), methods=["GET"])
        self.route("/crm/v3/objects/tickets/<ticket_id>", api(self._patch_ticket), methods=["PATCH"])
        self.route("/crm/v3/objects/contacts/<contact_id>", api(self._get_contact), methods=["GET"])
        self.route("/crm/v3/objects/notes", api(self._create_note), methods=["POST"])
        self.route("/crm/v3/objects/notes/batch/read", api(self._batch_read_notes), methods=["POST"])
        self.route(
            "/crm/v4/objects/tickets/<ticket_id>/associations/notes", api(self._ticket_note_ids), methods=["GET"]
        )
        self.route_ticket_controls()

    # ---------------------------------------------------------------- TicketSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's API secret (a private app token) and intake's verification secret (the app's client
        secret and the webhook URL the workflow calls, which the signature covers)."""
        return {
            "api": {"access_token": self.access_token},
            "verification": {
                "client_secrets": [self.client_secret],
                "webhook_urls": [self.webhooks.url or DEFAULT_WEBHOOK_URL],
            },
        }

    def send_webhooks_to(self, url: str) -> None:
        """The workflow action's webhook URL (the local stack's ``{api}/webhooks/hubspot``), signed for it."""
        self.webhooks.configure(url, self.client_secret)

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """A ticket in the New stage of the support pipeline, its contact, owner and team, carrying the refund
        request in the default mapping's properties. Nothing is sent."""
        if not request.get("payment_provider") or not request.get("payment_id"):
            raise ValueError("payment_provider and payment_id are required")
        now = self.clock()
        with self._state_lock:
            contact_id = self._new_id()
            name = str(request.get("customer_name") or "Ada Lovelace")
            first, _, last = name.partition(" ")
            self.contacts[contact_id] = self._record(
                contact_id,
                now,
                {
                    "email": str(request.get("customer_email") or "ada@example.com"),
                    "firstname": first,
                    "lastname": last,
                    "hs_language": "en",
                },
            )
            ticket_id = self._new_id()
            role = request.get("approver_role")
            properties = {
                "subject": str(request.get("subject") or "Refund request"),
                "content": str(request.get("description") or ""),
                "hs_pipeline": PIPELINE,
                "hs_pipeline_stage": "1",
                "hubspot_owner_id": OWNER_ID,
                "hubspot_team_id": TEAMS.get(str(role), "") if role else "",
                "refund_payment_provider": str(request["payment_provider"]),
                "refund_payment_id": str(request["payment_id"]),
                "refund_reason": str(request.get("reason") or ""),
                "refund_order_id": str(request.get("order_id") or request.get("shopify_order_id") or ""),
                "refund_invoice_system": str(request.get("invoice_system") or ""),
                "refund_invoice_id": str(request.get("invoice_id") or ""),
                "refund_amount": str(request.get("amount") or ""),
                "refund_currency": str(request.get("currency") or ("EUR" if request.get("amount") else "")),
                "refund_status": "",
            }
            self.tickets[ticket_id] = self._record(ticket_id, now, properties)
            self.ticket_contacts[ticket_id] = [contact_id]
            self.ticket_notes[ticket_id] = []
        return ticket_id

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """Move the ticket to the refund stage ``intent`` stands for, as an agent does in the pipeline board, and
        send the workflow's webhook (enrolment on that stage).

        Raises:
            KeyError: an unknown ticket. ValueError: an unknown intent.
        """
        stage = INTENT_STAGES.get(intent)
        if stage is None:
            raise ValueError(f"unknown intent {intent!r}")
        with self._state_lock:
            ticket = self.tickets[ticket_id]
            self._set(ticket, {"hs_pipeline_stage": stage})
            properties = ticket["properties"]
            body = {
                "hs_object_id": ticket_id,
                "hs_pipeline_stage": properties["hs_pipeline_stage"],
                "hs_lastmodifieddate": properties["hs_lastmodifieddate"],
            }
        raw = json.dumps(body, separators=(",", ":")).encode()
        self.webhooks.send(f"{ticket_id}:{properties['hs_lastmodifieddate']}", f"ticket.stage.{intent}", raw)

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        """Raises: KeyError: an unknown ticket."""
        with self._state_lock:
            ticket = copy.deepcopy(self.tickets[ticket_id])
            notes = [self.notes[note_id]["properties"]["hs_note_body"] for note_id in self.ticket_notes[ticket_id]]
        status = ticket["properties"].get("refund_status")
        return {"notes": notes, "public": [], "labels": [status] if status else [], "ticket": ticket}

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        url = self.webhooks.url or DEFAULT_WEBHOOK_URL
        timestamp = str(int(self.clock() * 1000))
        legacy = hashlib.sha256(secret.encode() + b"POST" + url.encode() + body).hexdigest()
        return {
            "X-HubSpot-Signature-v3": signature_v3(secret, url, body, timestamp),
            "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature": legacy,
            "X-HubSpot-Signature-Version": "v2",
        }

    def reset_state(self) -> None:
        with self._state_lock:
            for table in (self.tickets, self.contacts, self.notes, self.ticket_notes, self.ticket_contacts):
                table.clear()
            self._calls.clear()

    def fault_response(self, fault: FaultRule) -> Response:
        if fault.body is not None:
            return json_response(fault.body, fault.status or 500, headers=fault.headers)
        if fault.status == 429:
            return self._rate_limited(WINDOW_SECONDS)
        return json_response(error_body("INTERNAL_ERROR", "internal error"), fault.status or 500)

    # ---------------------------------------------------------------- HubSpot's API

    def _api(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        """Auth, the ten-second window and HubSpot's error body around one route."""

        @functools.wraps(handler)
        def guarded(request: Request, **arguments: Any) -> Response:
            authorization = request.headers.get("Authorization", "")
            if authorization != f"Bearer {self.access_token}":
                return json_response(
                    error_body(
                        "INVALID_AUTHENTICATION",
                        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                        "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                    ),
                    401,
                )
            wait = self._take_call()
            if wait is not None:
                return self._rate_limited(wait)
            try:
                with self._state_lock:
                    return handler(request, **arguments)
            except ApiError as error:
                return json_response(error_body(error.category, error.message, error.errors), error.status)

        return guarded

    def _take_call(self) -> float | None:
        """None when the call fits in the token's ten-second window, else the seconds until it would."""
        now = self.clock()
        with self._state_lock:
            calls = [at for at in self._calls.get(self.access_token, []) if now - at < WINDOW_SECONDS]
            if len(calls) >= self.max_per_window:
                self._calls[self.access_token] = calls
                return max(WINDOW_SECONDS - (now - calls[0]), 0.001)
            calls.append(now)
            self._calls[self.access_token] = calls
        return None

    def _rate_limited(self, wait: float) -> Response:
        body = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": "TEN_SECONDLY_ROLLING",
            "requestId": str(uuid.uuid4()),
        }
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.max_per_window),
            "X-HubSpot-RateLimit-Remaining": "0",
        }
        if self.retry_after:
            headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return json_response(body, 429, headers=headers)

    def _get_ticket(self, request: Request, ticket_id: str) -> Response:
        ticket = self._ticket(ticket_id)
        asked = _listed(request.args.getlist("properties")) or list(DEFAULT_TICKET_PROPERTIES)
        shown = {key: value for key, value in ticket.items() if key != "properties"}
        shown["properties"] = {name: ticket["properties"][name] for name in asked if name in ticket["properties"]}
        associations = _listed(request.args.getlist("associations"))
        if associations:
            shown["associations"] = {}
            if "contacts" in associations and self.ticket_contacts.get(ticket_id):
                shown["associations"]["contacts"] = {
                    "results": [{"id": cid, "type": "ticket_to_contact"} for cid in self.ticket_contacts[ticket_id]]
                }
            if "notes" in associations and self.ticket_notes.get(ticket_id):
                shown["associations"]["notes"] = {
                    "results": [{"id": nid, "type": "ticket_to_note"} for nid in self.ticket_notes[ticket_id]]
                }
        return json_response(shown)

    def _patch_ticket(self, request: Request, ticket_id: str) -> Response:
        ticket = self._ticket(ticket_id)
        body = _json(request)
        if set(body) != {"properties"} or not isinstance(body["properties"], dict):
            raise ApiError(400, "VALIDATION_ERROR", 'Invalid input JSON: expected {"properties": {...}}')
        changes = body["properties"]
        problems = []
        for name, value in changes.items():
            if name in READ_ONLY:
                problems.append(_invalid(name, "READ_ONLY_VALUE", f'Property "{name}" is read-only'))
            elif name not in WRITABLE:
                problems.append(_invalid(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            elif not isinstance(value, str):
                problems.append(_invalid(name, "INVALID_STRING", f"{value!r} is not a string value"))
            elif name == "hs_pipeline_stage" and value not in STAGES:
                problems.append(_invalid(name, "INVALID_OPTION", f"{value} is not a valid pipeline stage"))
            elif name == "refund_status" and value not in (*REFUND_STATUS_OPTIONS, ""):
                problems.append(_invalid(name, "INVALID_OPTION", f"{value} was not one of the allowed options"))
        if problems:
            raise ApiError(400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(problems)}")
        self._set(ticket, changes)
        return json_response({key: copy.deepcopy(value) for key, value in ticket.items()})

    def _get_contact(self, request: Request, contact_id: str) -> Response:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", "resource not found")
        asked = _listed(request.args.getlist("properties")) or ["email", "firstname", "lastname"]
        shown = {key: value for key, value in contact.items() if key != "properties"}
        shown["properties"] = {name: contact["properties"][name] for name in asked if name in contact["properties"]}
        return json_response(shown)

    def _create_note(self, request: Request) -> Response:
        body = _json(request)
        unknown = set(body) - {"properties", "associations"}
        if unknown or not isinstance(body.get("properties"), dict) or not isinstance(body.get("associations"), list):
            raise ApiError(400, "VALIDATION_ERROR", f"Invalid input JSON: properties and associations ({unknown})")
        properties = body["properties"]
        stamp = properties.get("hs_timestamp")
        if not isinstance(stamp, str) or not (stamp.isdigit() or _ISO.match(stamp)):
            raise ApiError(400, "VALIDATION_ERROR", "hs_timestamp is required: milliseconds or ISO 8601 UTC")
        text = properties.get("hs_note_body", "")
        if not isinstance(text, str) or len(text) > MAX_NOTE_BODY:
            raise ApiError(400, "VALIDATION_ERROR", f"hs_note_body must be a string of at most {MAX_NOTE_BODY}")
        unknown_properties = set(properties) - {"hs_timestamp", "hs_note_body", "hubspot_owner_id"}
        if unknown_properties:
            name = sorted(unknown_properties)[0]
            problem = _invalid(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            raise ApiError(400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps([problem])}")
        targets = []
        for association in body["associations"]:
            to = (association or {}).get("to") or {}
            types = (association or {}).get("types") or []
            if types != [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_TICKET}]:
                raise ApiError(400, "VALIDATION_ERROR", f"association types {types} are not note_to_ticket (228)")
            target = str(to.get("id", ""))
            if target not in self.tickets:
                raise ApiError(400, "VALIDATION_ERROR", f"One or more associations are invalid: ticket {target}")
            targets.append(target)
        note_id = self._new_id()
        now = self.clock()
        self.notes[note_id] = self._record(note_id, now, {"hs_timestamp": stamp, "hs_note_body": text})
        for target in targets:
            self.ticket_notes[target].append(note_id)
        return json_response(copy.deepcopy(self.notes[note_id]), 201)

    def _ticket_note_ids(self, request: Request, ticket_id: str) -> Response:
        self._ticket(ticket_id)
        try:
            limit = int(request.args.get("limit", "500"))
            offset = int(request.args.get("after", "0"))
        except ValueError as error:
            raise ApiError(400, "VALIDATION_ERROR", f"limit and after must be integers: {error}") from error
        if not 1 <= limit <= 500 or offset < 0:
            raise ApiError(400, "VALIDATION_ERROR", "limit must be between 1 and 500")
        note_ids = self.ticket_notes[ticket_id]
        page = note_ids[offset : offset + limit]
        answer: dict[str, Any] = {
            "results": [
                {
                    "toObjectId": note_id,
                    # an unlabelled association carries no label (the spec's label is a string, not nullable)
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": TICKET_TO_NOTE}],
                }
                for note_id in page
            ]
        }
        if offset + limit < len(note_ids):
            answer["paging"] = {"next": {"after": str(offset + limit)}}
        return json_response(answer)

    def _batch_read_notes(self, request: Request) -> Response:
        body = _json(request)
        missing = {"inputs", "properties", "propertiesWithHistory"} - set(body)
        if missing:
            raise ApiError(400, "VALIDATION_ERROR", f"Invalid input JSON: missing {sorted(missing)}")
        inputs = body["inputs"]
        if not isinstance(inputs, list) or len(inputs) > 100:
            raise ApiError(400, "VALIDATION_ERROR", "inputs: at most 100 ids per batch")
        asked = [name for name in body["properties"] if isinstance(name, str)]
        results = []
        for item in inputs:
            note = self.notes.get(str((item or {}).get("id", "")))
            if note is not None:
                shown = {key: value for key, value in note.items() if key != "properties"}
                shown["properties"] = {name: note["properties"][name] for name in asked if name in note["properties"]}
                results.append(shown)
        now = iso(self.clock())
        return json_response({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now})

    # ---------------------------------------------------------------- control routes

    # ---------------------------------------------------------------- helpers

    def _new_id(self) -> str:
        return str(next(self._ids))

    def _record(self, record_id: str, now: float, properties: dict[str, str]) -> dict[str, Any]:
        stamp = iso(now)
        return {
            "id": record_id,
            "properties": {
                **properties,
                "hs_object_id": record_id,
                "createdate": stamp,
                "hs_lastmodifieddate": stamp,
            },
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }

    def _set(self, record: dict[str, Any], changes: Mapping[str, str]) -> None:
        # Strictly later than the last change (to the millisecond), so each enrolment's body differs.
        millis = max(int(self.clock() * 1000), round(_epoch(record["updatedAt"]) * 1000) + 1)
        stamp = iso(millis / 1000)
        record["properties"].update(changes)
        record["properties"]["hs_lastmodifieddate"] = stamp
        record["updatedAt"] = stamp

    def _ticket(self, ticket_id: str) -> dict[str, Any]:
        ticket = self.tickets.get(ticket_id) if _ID.match(ticket_id) else None
        if ticket is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", "resource not found")
        return ticket


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _listed(values: list[str]) -> list[str]:
    """A query list as HubSpot reads it: repeated or comma separated."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _invalid(name: str, error: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name}


def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"null")
    except ValueError as error:
        raise ApiError(400, "VALIDATION_ERROR", f"Invalid input JSON: {error}") from error
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: an object is expected")
    return body


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks: importing the
    simulator stays light (the scenarios need the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("hubspot")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
