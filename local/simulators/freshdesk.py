"""A stateful Freshdesk sandbox for the ticket calls refundflow makes, on Freshdesk's own API v2 paths.

Mounted by the local stack at ``/_sandbox/freshdesk``; the connector's base address is ``{sandbox}/freshdesk``
(Freshdesk's own ``https://{domain}.freshdesk.com``). What it holds to, as Freshdesk documents it
(developers.freshdesk.com/api: "Authentication", "Rate Limit", "Pagination", "Error Handling", "Tickets",
"Conversations"; support.freshdesk.com: "Using Webhooks in automation rules", "What are the rate limits for the API
calls to Freshdesk?"). No official OpenAPI file of the Freshdesk API exists, so requests are held to the documented
fields:

- HTTP Basic auth with an agent's API key as user name (the password is ignored; clients send ``X``); a missing or
  unknown key is a 401 ``{"code": "invalid_credentials", "message": ...}``;
- ``GET /api/v2/tickets/{id}`` (``include``: ``requester``, ``stats``, ``company``, ``conversations``; others are a 400
  ``invalid_value``): the ticket with ``status`` (2 Open, 3 Pending, 4 Resolved, 5 Closed), ``group_id``,
  ``responder_id``, ``requester_id``, ``custom_fields`` (every custom field of the account by its ``cf_`` name, null
  when unset), ``tags``, ``created_at`` / ``updated_at``; ``requester`` ``{id, name, email, mobile, phone}`` when
  included;
- ``PUT /api/v2/tickets/{id}``: the ticket fields an update takes; an unknown field, or an unknown custom field, is a
  400 ``invalid_field`` ("Unexpected/invalid field in request"); a dropdown custom field takes only its choices and a
  status only 2 to 5 (400 ``invalid_value``, "It should be one of these values: ..."); a value of the wrong type is a
  400 ``datatype_mismatch``; an unknown group or agent a 400 ``invalid_value``; answers the updated ticket;
- ``POST /api/v2/tickets/{id}/notes`` ``{body (HTML, required), private (default true), incoming, notify_emails,
  user_id}``: 201 and the note (``body_text`` is the body without its tags); a missing body is a 400
  ``missing_field``;
- ``POST /api/v2/tickets/{id}/reply`` ``{body (HTML, required), from_email, user_id, cc_emails, bcc_emails}``:
  201 and the reply (``private: false``, ``to_emails`` the requester's), which Freshdesk e-mails to the requester;
- ``GET /api/v2/tickets/{id}/conversations?page&per_page`` (``per_page`` 1 to 100, default 30): replies and notes,
  oldest first, with ``Link: <next page URL>; rel="next"`` while more follow;
- an unknown ticket is a 404 with an empty body (the reference shows no body for it: this simulator's choice);
  a write whose ``Content-Type`` is not JSON is a 415 ``invalid_content_type``, a body that is not a JSON object a
  400 ``invalid_json``; errors ``{"description": "Validation failed", "errors": [{"field", "message", "code"}]}``;
- a per-minute limit per account (``rate_limit_per_minute``; Growth plan: 200; every call counts, each ``include``
  one credit more): every answer carries ``X-RateLimit-Total``, ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Used-CurrentRequest``; over the limit a 429 with ``Retry-After`` (seconds to the next minute; the
  429's body is this simulator's wording);
- deliveries: the automation rule's "Trigger webhook" action, as the README's setup makes it: a JSON ``POST`` to the
  configured URL with the admin's custom header ``X-Refundflow-Secret`` and the body
  ``{"ticket_id": {{ticket.id}}, "refund_action": "<the field's value>"}``; Freshdesk signs nothing.

What the agent does (``agent_action``): sets the ticket's ``cf_refund_action`` dropdown (``Requested``, ``Approved``,
``Cancelled``), which the automation rule ("Refund action is changed", performed by an agent) turns into a delivery.
An API update that changes that field fires the rule too (an API key acts as its agent); refundflow's own
write-backs change only ``cf_refund_status`` and notes, so they fire nothing.

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/tickets`` (a ``seed_ticket`` request): ``{"id"}``;
- ``POST /_control/tickets/{id}/agent-action`` ``{"intent": "approve" | "request" | "withdraw"}``;
- ``GET /_control/tickets/{id}/view``: the ticket as a person sees it (``ticket_view``);
- ``GET /_control/objects``: tickets, contacts, agents, groups and conversations.

Not modelled: ticket creation through the API, attachments, custom statuses, required-for-closure fields,
search, time entries, the webhook's own rate limit (1,000 calls an hour) and retries.
"""

from __future__ import annotations

import base64
import copy
import html
import itertools
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, json_response

DEFAULT_API_KEY = "RfSimFreshdeskAgentKey01"
DEFAULT_WEBHOOK_SECRET = "freshdesk-simulator-webhook-secret-000000001"
SECRET_HEADER = "X-Refundflow-Secret"
TICKETS = "/api/v2/tickets"
STATUSES = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed"}
INCLUDES = ("requester", "stats", "company", "conversations")
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
GROWTH_PLAN_PER_MINUTE = 200
FAULT_RETRY_AFTER_SECONDS = 2
# The account's groups and agents: the default mapping's roles name the first two groups.
TEAM_LEAD_GROUP, AGENT_GROUP, BILLING_GROUP = 48000000001, 48000000002, 48000000003
GROUPS = {TEAM_LEAD_GROUP: "Refund approvers", AGENT_GROUP: "Support", BILLING_GROUP: "Billing"}
AGENTS = {
    48000000101: {"name": "Tess Lead", "email": "tess.lead@example.com", "group_id": TEAM_LEAD_GROUP},
    48000000102: {"name": "Alex Agent", "email": "alex.agent@example.com", "group_id": AGENT_GROUP},
    48000000103: {"name": "Bo Billing", "email": "bo.billing@example.com", "group_id": BILLING_GROUP},
}
AGENT_FOR_ROLE = {"team_lead": 48000000101, "agent": 48000000102, None: 48000000103}
ACTION_FIELD = "cf_refund_action"
STATUS_FIELD = "cf_refund_status"
ACTIONS = {"request": "Requested", "approve": "Approved", "withdraw": "Cancelled"}
# The account's custom ticket fields: a dropdown's choices, or None for a single-line text field.
CUSTOM_FIELDS: dict[str, tuple[str, ...] | None] = {
    ACTION_FIELD: ("Requested", "Approved", "Cancelled"),
    STATUS_FIELD: (
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
    ),
    "cf_payment_provider": None,
    "cf_payment_id": None,
    "cf_refund_reason": None,
    "cf_order_id": None,
    "cf_invoice_system": None,
    "cf_invoice_id": None,
    "cf_refund_amount": None,
    "cf_refund_currency": None,
}
# What a seed request's keys become (the default mapping.yaml reads these fields).
SEEDED_FIELDS = {
    "payment_provider": "cf_payment_provider",
    "payment_id": "cf_payment_id",
    "reason": "cf_refund_reason",
    "order_id": "cf_order_id",
    "invoice_system": "cf_invoice_system",
    "invoice_id": "cf_invoice_id",
    "amount": "cf_refund_amount",
    "currency": "cf_refund_currency",
}
UPDATABLE = frozenset(
    {
        "name",
        "requester_id",
        "email",
        "phone",
        "subject",
        "type",
        "status",
        "priority",
        "description",
        "responder_id",
        "custom_fields",
        "due_by",
        "fr_due_by",
        "group_id",
        "product_id",
        "source",
        "tags",
        "company_id",
    }
)
NOTE_FIELDS = frozenset({"body", "private", "incoming", "notify_emails", "user_id"})
REPLY_FIELDS = frozenset({"body", "from_email", "user_id", "cc_emails", "bcc_emails"})
_FAULT_BODIES = {
    429: {"code": "rate_limit_exceeded", "message": "API rate limit exceeded for this account."},
    500: {"code": "internal_error", "message": "We're sorry, but something went wrong."},
    503: {"code": "service_unavailable", "message": "The service is temporarily unavailable."},
}


class FreshdeskError(Exception):
    """An answer in Freshdesk's error shape."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, dict(headers or {})

    def response(self) -> Response:
        if self.body is None:
            return Response(b"", status=self.status, headers=self.headers)
        return json_response(self.body, self.status, headers=self.headers)


def validation_failed(*errors: tuple[str, str, str]) -> FreshdeskError:
    """A 400 ``{"description": "Validation failed", "errors": [{field, message, code}]}``."""
    listed = [{"field": field, "message": message, "code": code} for field, message, code in errors]
    return FreshdeskError(400, {"description": "Validation failed", "errors": listed})


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_of(body: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", body)).strip()


def _type_name(value: Any) -> str:
    return {bool: "Boolean", int: "Integer", float: "Number", dict: "key/value pair", list: "Array"}.get(
        type(value), "String"
    )


class FreshdeskSimulator(Simulator):
    """Freshdesk's ticket surface for a help desk: tickets, requesters, groups, agents, notes, custom fields."""

    name = "freshdesk"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", r"^/api/v2/tickets/[0-9]+$"),
        # The write of a write-back that carries its marker: the private note. The connector sets the status field
        # (an idempotent PUT) before it, so a note whose answer is lost is the one write the kit must find again.
        "write_back": ("POST", r"^/api/v2/tickets/[0-9]+/notes$"),
        "public_reply": ("POST", r"^/api/v2/tickets/[0-9]+/reply$"),
        "has_update": ("GET", r"^/api/v2/tickets/[0-9]+/conversations$"),
    }

    def __init__(
        self,
        api_keys: tuple[str, ...] = (DEFAULT_API_KEY,),
        *,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        rate_limit_per_minute: int = GROWTH_PLAN_PER_MINUTE,
        public_url: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``public_url``: where the simulator is reachable (for ``Link`` headers); learnt from the first request
        when not given."""
        self.api_keys = frozenset(api_keys)
        self.webhook_secret = webhook_secret
        self.rate_limit_per_minute = rate_limit_per_minute
        self.public_url = public_url.rstrip("/") if public_url else None
        self._now = now
        self.tickets: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.conversations: dict[int, list[dict[str, Any]]] = {}
        # Ticket ids go on from where a former run's could have stopped (a stack's store may outlive its sandbox).
        self._ids = itertools.count(int(now()) % 1_000_000 * 1_000 + 1)
        self._contact_ids = itertools.count(48000100001)
        self._conversation_ids = itertools.count(48000200001)
        self._window: tuple[int, int] = (0, 0)  # (minute, credits used in it)
        super().__init__()
        self.route(f"{TICKETS}/<int:ticket_id>", self._api(self._get_ticket), methods=["GET"])
        self.route(f"{TICKETS}/<int:ticket_id>", self._api(self._update_ticket, write=True), methods=["PUT"])
        self.route(f"{TICKETS}/<int:ticket_id>/notes", self._api(self._create_note, write=True), methods=["POST"])
        self.route(f"{TICKETS}/<int:ticket_id>/reply", self._api(self._create_reply, write=True), methods=["POST"])
        self.route(f"{TICKETS}/<int:ticket_id>/conversations", self._api(self._conversations), methods=["GET"])
        self.route_ticket_controls()
        self.route("/_control/objects", self._control_objects, methods=["GET"])
        _ = self.url_map  # bind the routes now: two first requests at once race on the lazy Map

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.tickets.clear()
            self.contacts.clear()
            self.conversations.clear()
            self._window = (0, 0)

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """Freshdesk signs nothing: the admin's custom header carries the shared secret."""
        return {SECRET_HEADER: secret}

    def dispatch(self, request: Request) -> Response:
        if self.public_url is None:
            self.public_url = (request.host_url.rstrip("/") + request.script_root).rstrip("/")
        return super().dispatch(request)

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure in Freshdesk's shape; a 429 always carries ``Retry-After``."""
        status = fault.status or 500
        headers = dict(fault.headers)
        if status == 429:
            headers.setdefault("Retry-After", str(FAULT_RETRY_AFTER_SECONDS))
        body = fault.body if fault.body is not None else _FAULT_BODIES.get(status, _FAULT_BODIES[500])
        return json_response(body, status, headers=headers)

    def not_found(self, request: Request) -> Response:
        if request.path.startswith("/_control"):
            return super().not_found(request)
        return Response(b"", status=404)

    # ---------------------------------------------------------------- TicketSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's API key; intake's shared secret (the webhook's custom header)."""
        return {
            "api": {"api_key": next(iter(sorted(self.api_keys)))},
            "verification": {"shared_secrets": [self.webhook_secret]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where the automation rule's webhook goes (the stack's ``{api}/webhooks/freshdesk``)."""
        self.webhooks.configure(url, self.webhook_secret)

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """An open ticket from a requester, in the group of ``approver_role`` (team lead, agent, or the unmapped
        Billing group for None), with the refund's fields set as the default mapping reads them; its refund action
        is not set yet (``agent_action`` sets it). Nothing is sent. Returns the ticket id.

        Raises:
            ValueError: no payment_provider or payment_id, or an approver role the sandbox does not know.
        """
        if not request.get("payment_provider") or not request.get("payment_id"):
            raise ValueError("payment_provider and payment_id are required")
        role = request.get("approver_role")
        if role not in AGENT_FOR_ROLE:
            raise ValueError(f"unknown approver_role {role!r}")
        agent_id = AGENT_FOR_ROLE[role]
        now = _timestamp(self._now())
        with self.lock:
            contact_id = next(self._contact_ids)
            self.contacts[contact_id] = {
                "id": contact_id,
                "name": str(request.get("customer_name") or "Ada Lovelace"),
                "email": str(request.get("customer_email") or f"customer{contact_id}@example.com"),
                "mobile": None,
                "phone": None,
            }
            ticket_id = next(self._ids)
            fields: dict[str, Any] = dict.fromkeys(CUSTOM_FIELDS)
            for key, field in SEEDED_FIELDS.items():
                if request.get(key) not in (None, ""):
                    fields[field] = str(request[key])
            description = str(request.get("description") or "I would like a refund, please.")
            self.tickets[ticket_id] = {
                "id": ticket_id,
                "subject": str(request.get("subject") or "Refund request"),
                "description": f"<div>{html.escape(description)}</div>",
                "description_text": description,
                "status": 2,
                "priority": 1,
                "source": 2,
                "type": "Refund",
                "requester_id": contact_id,
                "responder_id": agent_id,
                "group_id": AGENTS[agent_id]["group_id"],
                "company_id": None,
                "product_id": None,
                "tags": [],
                "cc_emails": [],
                "fwd_emails": [],
                "reply_cc_emails": [],
                "spam": False,
                "is_escalated": False,
                "fr_escalated": False,
                "custom_fields": fields,
                "created_at": now,
                "updated_at": now,
                "due_by": now,
                "fr_due_by": now,
            }
            self.conversations[ticket_id] = []
        return str(ticket_id)

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """The agent sets the ticket's Refund action (``approve`` Approved, ``request`` Requested, ``withdraw``
        Cancelled); the automation rule on "Refund action is changed" then triggers the webhook.

        Raises:
            KeyError: no such ticket. ValueError: an unknown intent.
        """
        if intent not in ACTIONS:
            raise ValueError(f"unknown intent {intent!r}")
        with self.lock:
            ticket = self._ticket(ticket_id)
            ticket["custom_fields"][ACTION_FIELD] = ACTIONS[intent]
            ticket["updated_at"] = _timestamp(self._now())
        self._fire_rule(ticket)

    def _fire_rule(self, ticket: Mapping[str, Any]) -> None:
        """The automation rule's Trigger webhook action: what the README's setup sends, for every change of the
        Refund action by an agent (in the ticket, or through the API with an agent's key)."""
        action = ticket["custom_fields"].get(ACTION_FIELD)
        body = json.dumps({"ticket_id": ticket["id"], "refund_action": action}).encode()
        self.webhooks.send(f"{ticket['id']}:{action}:{ticket['updated_at']}", "ticket_updated", body)

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        """``{"notes": [private note texts], "public": [public conversation texts], "labels": [the refund status
        field's value, if set], "ticket": <the ticket as the API shows it>}``.

        Raises:
            KeyError: no such ticket.
        """
        with self.lock:
            ticket = self._ticket(ticket_id)
            conversations = self.conversations[ticket["id"]]
            status = ticket["custom_fields"].get(STATUS_FIELD)
            return {
                "notes": [item["body_text"] for item in conversations if item["private"]],
                "public": [item["body_text"] for item in conversations if not item["private"]],
                "labels": [status] if status else [],
                "ticket": copy.deepcopy(ticket),
            }

    def _ticket(self, ticket_id: str | int) -> dict[str, Any]:
        """Raises: KeyError: no such ticket."""
        key = int(ticket_id) if str(ticket_id).isascii() and str(ticket_id).isdigit() else -1
        if key not in self.tickets:
            raise KeyError(f"no ticket {ticket_id}")
        return self.tickets[key]

    # ---------------------------------------------------------------- request plumbing

    def _authenticate(self, request: Request) -> None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        api_key = ""
        if scheme.lower() == "basic":
            try:
                api_key = base64.b64decode(credential.strip(), validate=True).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                api_key = ""
        if api_key not in self.api_keys:
            raise FreshdeskError(
                401, {"code": "invalid_credentials", "message": "You have to be logged in to perform this action."}
            )

    def _spend(self, credits: int) -> dict[str, str]:
        """Count a call against the account's minute; the rate limit headers, or a 429 past the limit."""
        now = self._now()
        minute = int(now // 60)
        with self.lock:
            window, used = self._window
            if window != minute:
                used = 0
            if used + credits > self.rate_limit_per_minute:
                self._window = (minute, used)
                retry_after = max(1, math.ceil((minute + 1) * 60 - now))
                raise FreshdeskError(
                    429,
                    {"code": "rate_limit_exceeded", "message": "API rate limit exceeded for this account."},
                    {
                        "Retry-After": str(retry_after),
                        "X-RateLimit-Total": str(self.rate_limit_per_minute),
                        "X-RateLimit-Remaining": str(self.rate_limit_per_minute - used),
                        "X-RateLimit-Used-CurrentRequest": "0",
                    },
                )
            used += credits
            self._window = (minute, used)
        return {
            "X-RateLimit-Total": str(self.rate_limit_per_minute),
            "X-RateLimit-Remaining": str(self.rate_limit_per_minute - used),
            "X-RateLimit-Used-CurrentRequest": str(credits),
        }

    def _api(
        self, handler: Callable[..., tuple[int, Any, dict[str, str]]], write: bool = False
    ) -> Callable[..., Response]:
        def endpoint(request: Request, **arguments: Any) -> Response:
            try:
                self._authenticate(request)
                includes = [part for part in request.args.get("include", "").split(",") if part]
                limits = self._spend(1 + len(includes))
                payload: Any = None
                if write:
                    if request.mimetype != "application/json":
                        raise FreshdeskError(
                            415,
                            {
                                "code": "invalid_content_type",
                                "message": "Content-Type header should have application/json",
                            },
                        )
                    try:
                        payload = json.loads(request.get_data().decode("utf-8"))
                    except (UnicodeDecodeError, ValueError):
                        payload = None
                    if not isinstance(payload, dict):
                        raise validation_failed(("", "Request body has invalid json format", "invalid_json"))
                    status, body, headers = handler(request, payload, **arguments)
                else:
                    status, body, headers = handler(request, **arguments)
            except FreshdeskError as error:
                return error.response()
            return json_response(body, status, headers={**limits, **headers})

        endpoint.__name__ = handler.__name__
        return endpoint

    # ---------------------------------------------------------------- the API

    def _get_ticket(self, request: Request, ticket_id: int) -> tuple[int, Any, dict[str, str]]:
        includes = [part for part in request.args.get("include", "").split(",") if part]
        unknown = [part for part in includes if part not in INCLUDES]
        if unknown:
            raise validation_failed(
                (
                    "include",
                    f"It should be one/a combination of the following values: {','.join(INCLUDES)}",
                    "invalid_value",
                )
            )
        with self.lock:
            ticket = self._known(ticket_id)
            shown = copy.deepcopy(ticket)
            if "requester" in includes:
                shown["requester"] = copy.deepcopy(self.contacts[ticket["requester_id"]])
            if "conversations" in includes:
                shown["conversations"] = copy.deepcopy(self.conversations[ticket_id][:10])
        return 200, shown, {}

    def _update_ticket(
        self, request: Request, payload: dict[str, Any], ticket_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        errors: list[tuple[str, str, str]] = []
        for field in sorted(set(payload) - UPDATABLE):
            errors.append((field, "Unexpected/invalid field in request", "invalid_field"))
        custom = payload.get("custom_fields", {})
        if not isinstance(custom, dict):
            errors.append(
                (
                    "custom_fields",
                    f"Value set is of type {_type_name(custom)}.It should be a/an key/value pair",
                    "datatype_mismatch",
                )
            )
            custom = {}
        for field, value in custom.items():
            choices = CUSTOM_FIELDS.get(field, ())
            if field not in CUSTOM_FIELDS:
                errors.append((field, "Unexpected/invalid field in request", "invalid_field"))
            elif value is not None and not isinstance(value, str):
                errors.append(
                    (field, f"Value set is of type {_type_name(value)}.It should be a/an String", "datatype_mismatch")
                )
            elif choices is not None and value is not None and value not in choices:
                errors.append((field, f"It should be one of these values: '{','.join(choices)}'", "invalid_value"))
        status = payload.get("status")
        if "status" in payload and (isinstance(status, bool) or status not in STATUSES):
            errors.append(
                ("status", f"It should be one of these values: '{','.join(map(str, STATUSES))}'", "invalid_value")
            )
        if "group_id" in payload and payload["group_id"] is not None and payload["group_id"] not in GROUPS:
            errors.append(("group_id", "There is no group matching the given group_id", "invalid_value"))
        if "responder_id" in payload and payload["responder_id"] is not None and payload["responder_id"] not in AGENTS:
            errors.append(("responder_id", "There is no agent matching the given responder_id", "invalid_value"))
        with self.lock:
            ticket = self._known(ticket_id)
            if errors:
                raise validation_failed(*errors)
            action = ticket["custom_fields"].get(ACTION_FIELD)
            for field, value in payload.items():
                if field == "custom_fields":
                    ticket["custom_fields"].update(custom)
                else:
                    ticket[field] = copy.deepcopy(value)
            ticket["updated_at"] = _timestamp(self._now())
            shown = copy.deepcopy(ticket)
        if shown["custom_fields"].get(ACTION_FIELD) != action:
            self._fire_rule(shown)  # an API key is an agent's: the rule fires as for a change in the ticket
        return 200, shown, {}

    def _create_note(
        self, request: Request, payload: dict[str, Any], ticket_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        errors: list[tuple[str, str, str]] = [
            (field, "Unexpected/invalid field in request", "invalid_field")
            for field in sorted(set(payload) - NOTE_FIELDS)
        ]
        body = payload.get("body")
        if body is None or body == "":
            errors.append(("body", "It should be a/an String", "missing_field"))
        elif not isinstance(body, str):
            errors.append(
                ("body", f"Value set is of type {_type_name(body)}.It should be a/an String", "datatype_mismatch")
            )
        for flag in ("private", "incoming"):
            if flag in payload and not isinstance(payload[flag], bool):
                errors.append(
                    (
                        flag,
                        f"Value set is of type {_type_name(payload[flag])}.It should be a/an Boolean",
                        "datatype_mismatch",
                    )
                )
        with self.lock:
            ticket = self._known(ticket_id)
            if errors:
                raise validation_failed(*errors)
            now = _timestamp(self._now())
            note = {
                "id": next(self._conversation_ids),
                "body": body,
                "body_text": _text_of(str(body)),
                "private": payload.get("private", True),
                "incoming": payload.get("incoming", False),
                "source": 2,
                "user_id": payload.get("user_id", 48000000101),
                "ticket_id": ticket_id,
                "notified_to": list(payload.get("notify_emails") or []),
                "attachments": [],
                "created_at": now,
                "updated_at": now,
            }
            self.conversations[ticket_id].append(note)
            ticket["updated_at"] = now
            return 201, copy.deepcopy(note), {}

    def _create_reply(
        self, request: Request, payload: dict[str, Any], ticket_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        """A reply to the requester (e-mailed by Freshdesk): ``body`` (HTML) required; 201 and the conversation."""
        errors: list[tuple[str, str, str]] = [
            (field, "Unexpected/invalid field in request", "invalid_field")
            for field in sorted(set(payload) - REPLY_FIELDS)
        ]
        body = payload.get("body")
        if body is None or body == "":
            errors.append(("body", "It should be a/an String", "missing_field"))
        elif not isinstance(body, str):
            errors.append(
                ("body", f"Value set is of type {_type_name(body)}.It should be a/an String", "datatype_mismatch")
            )
        with self.lock:
            ticket = self._known(ticket_id)
            if errors:
                raise validation_failed(*errors)
            requester = self.contacts.get(int(ticket["requester_id"])) or {}
            now = _timestamp(self._now())
            reply = {
                "id": next(self._conversation_ids),
                "body": body,
                "body_text": _text_of(str(body)),
                "private": False,
                "incoming": False,
                "source": 0,
                "user_id": payload.get("user_id", 48000000101),
                "ticket_id": ticket_id,
                "from_email": payload.get("from_email", "support@example.freshdesk.com"),
                "to_emails": [requester.get("email")] if requester.get("email") else [],
                "cc_emails": list(payload.get("cc_emails") or []),
                "bcc_emails": list(payload.get("bcc_emails") or []),
                "attachments": [],
                "created_at": now,
                "updated_at": now,
            }
            self.conversations[ticket_id].append(reply)
            ticket["updated_at"] = now
            return 201, copy.deepcopy(reply), {}

    def _conversations(self, request: Request, ticket_id: int) -> tuple[int, Any, dict[str, str]]:
        try:
            page = int(request.args.get("page", "1"))
            per_page = int(request.args.get("per_page", str(DEFAULT_PER_PAGE)))
        except ValueError:
            page = per_page = 0
        errors = []
        if page < 1:
            errors.append(("page", "It should be a/an Positive Integer", "datatype_mismatch"))
        if not 1 <= per_page <= MAX_PER_PAGE:
            errors.append(("per_page", "Has to be greater than 0 and less than 101", "invalid_value"))
        if errors:
            raise validation_failed(*errors)
        with self.lock:
            self._known(ticket_id)
            items = self.conversations[ticket_id]
            shown = copy.deepcopy(items[(page - 1) * per_page : page * per_page])
            more = len(items) > page * per_page
        headers: dict[str, str] = {}
        if more:
            query = urlencode({"per_page": per_page, "page": page + 1})
            headers["Link"] = f'<{self.public_url}{TICKETS}/{ticket_id}/conversations?{query}>; rel="next"'
        return 200, shown, headers

    def _known(self, ticket_id: int) -> dict[str, Any]:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise FreshdeskError(404, None)
        return ticket

    # ---------------------------------------------------------------- control routes

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {
                    "tickets": list(copy.deepcopy(self.tickets).values()),
                    "contacts": list(copy.deepcopy(self.contacts).values()),
                    "agents": [{"id": key, **value} for key, value in AGENTS.items()],
                    "groups": [{"id": key, "name": value} for key, value in GROUPS.items()],
                    "conversations": copy.deepcopy(self.conversations),
                }
            )


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks: importing the
    simulator stays light (the scenarios need the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("freshdesk")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
