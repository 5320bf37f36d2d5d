"""A stateful Zoho CRM sandbox for the calls refundflow makes: Zoho's accounts server (refresh-token grant) and the
CRM REST API v8 on Deals, Contacts and Notes, on Zoho's own paths.

Mounted by the local stack at ``/_sandbox/zoho_crm`` with ``/accounts`` (``https://accounts.zoho.<dc>``) and
``/crm/v8`` (``https://www.zohoapis.<dc>/crm/v8``) below it. What it holds to, as Zoho documents it
(www.zoho.com/crm/developer/docs/api/v8/: "Refresh Access Token", "Get Records", "Update Records", "Create Notes",
"Get Notes", "Status Codes", "API Limits"; the OpenAPI files of github.com/zoho/crm-oas ``v8.0``):

- ``POST /accounts/oauth/v2/token``: the refresh-token grant (parameters in the form or the query); access tokens
  live an hour; a refused grant is ``{"error": "invalid_code"}`` (or ``invalid_client``) with HTTP 200;
- every API call needs ``Authorization: Zoho-oauthtoken <token>`` (401 ``INVALID_TOKEN`` otherwise, also for an
  expired token);
- ``GET /crm/v8/{Deals|Contacts}/{id}``: ``{"data": [<record>]}``; an unknown id is a 204 with no body; an unknown
  module a 400 ``INVALID_MODULE``; any other path a 404 ``INVALID_URL_PATTERN``;
- ``PUT /crm/v8/Deals/{id}`` ``{"data": [{...}], "trigger": [...]}``: the fields sent change; a field the module
  does not have, a read-only one, or a value outside a picklist's choices is a 400 ``{"data": [{"code":
  "INVALID_DATA", "details": {"api_name", "json_path"}, "message": "invalid data", "status": "error"}]}`` (Zoho's
  unrestricted picklists may take new values: this sandbox is stricter); an unknown id is a 400 INVALID_DATA with
  ``details: {"id": ...}`` ("the id given seems to be invalid"); ``trigger`` absent runs the workflow rules, as
  Zoho does, an empty list none;
- ``POST /crm/v8/Notes`` ``{"data": [{"Note_Title", "Note_Content", "Parent_Id": {"module": {"api_name"}, "id"}}]}``:
  201; a missing ``Note_Content`` is ``MANDATORY_NOT_FOUND``, an unknown parent ``INVALID_DATA`` naming
  ``Parent_Id``, any other field ``INVALID_DATA``;
- ``GET /crm/v8/Deals/{id}/Notes?fields=...&per_page&page``: ``fields`` is required (400 ``REQUIRED_PARAM_MISSING``),
  ``per_page`` 1 to 200; oldest first, ``info.more_records``; 204 when the record has none;
- a per-minute budget (``rate_limit_per_minute``): past it a 429 ``TOO_MANY_REQUESTS`` with ``Retry-After`` and
  ``details.retry_after`` (the crm-oas 429 sample; whether Zoho sends the header is **unverified**);
- deliveries: the workflow rule "Refund action is changed" with a Webhook action, as the README's setup makes it: a
  JSON ``POST`` with the custom header ``X-Refundflow-Token`` and the body ``{"module": "Deals", "record_id":
  "${Deals.Deal Id}", "refund_action": "${Deals.Refund Action}", "modified_time": "${Deals.Modified Time}"}``.

Record ids: Zoho's are 19 digits (``4876876000005996165`` in crm-oas); this sandbox's are 18 digits starting with
``1``, a prefix no card network uses, so intake's card scanner never takes one for a card number (a real 19-digit
id starting with 4, 3, 5, 6 or 8 can be: README, "Zoho CRM setup").

What the agent does (``agent_action``): sets the deal's ``Refund_Action`` picklist (Requested, Approved, Cancelled),
which the workflow rule turns into a delivery. Modified_Time moves on by at least a second at every change.

Control routes, besides the base ones: ``POST /_control/tickets`` (a ``seed_ticket`` request), ``POST
/_control/tickets/{id}/agent-action`` ``{"intent"}``, ``GET /_control/tickets/{id}/view``, ``POST
/_control/expire-tokens``.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, json_response
from local.simulators.zoho_accounts import ZohoAccountsSimulator

DEFAULT_CLIENT_ID = "1000.REFUNDFLOWLOCALZOHOCRM00001"
DEFAULT_CLIENT_SECRET = "refundflow-local-zoho-crm-client-secret"
DEFAULT_REFRESH_TOKEN = "1000.refundflow-local-zoho-crm-refresh-token"
DEFAULT_WEBHOOK_TOKEN = "zoho-crm-simulator-webhook-token-0000000001"
TOKEN_HEADER = "X-Refundflow-Token"
API = "/crm/v8"
MODULE = "Deals"
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 200
PER_MINUTE = 500
FAULT_RETRY_AFTER_SECONDS = 2
BODY_KEYS = frozenset({"data", "trigger", "process", "duplicate_check_fields", "wf_trigger", "lar_id"})
NOTE_FIELDS = frozenset({"Note_Title", "Note_Content", "Parent_Id"})

# Users (record owners): the default mapping's roles name the first two.
TEAM_LEAD_USER, AGENT_USER, SALES_USER = "110000000000000101", "110000000000000102", "110000000000000103"
USERS = {
    TEAM_LEAD_USER: {"name": "Tess Lead", "email": "tess.lead@example.com"},
    AGENT_USER: {"name": "Alex Agent", "email": "alex.agent@example.com"},
    SALES_USER: {"name": "Sam Sales", "email": "sam.sales@example.com"},
}
USER_FOR_ROLE = {"team_lead": TEAM_LEAD_USER, "agent": AGENT_USER, None: SALES_USER}
ACTION_FIELD = "Refund_Action"
STATUS_FIELD = "Refund_Status"
ACTIONS = {"request": "Requested", "approve": "Approved", "withdraw": "Cancelled"}
# The Deals layout: picklists with their choices, other fields None (text, lookups); read-only fields apart.
PICKLISTS: dict[str, tuple[str, ...]] = {
    "Stage": ("Qualification", "Needs Analysis", "Closed Won", "Closed Lost", "Refund Issued", "Refund Failed"),
    ACTION_FIELD: ("-None-", "Requested", "Approved", "Cancelled"),
    STATUS_FIELD: (
        "-None-",
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
}
TEXT_FIELDS = frozenset(
    {
        "Deal_Name",
        "Description",
        "Amount",
        "Closing_Date",
        "Owner",
        "Contact_Name",
        "Payment_Provider",
        "Payment_Id",
        "Refund_Reason",
        "Order_Id",
        "Invoice_System",
        "Invoice_Id",
        "Refund_Amount",
        "Refund_Currency",
    }
)
READ_ONLY = frozenset({"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By"})
SEEDED_FIELDS = {
    "payment_provider": "Payment_Provider",
    "payment_id": "Payment_Id",
    "reason": "Refund_Reason",
    "order_id": "Order_Id",
    "invoice_system": "Invoice_System",
    "invoice_id": "Invoice_Id",
    "amount": "Refund_Amount",
    "currency": "Refund_Currency",
}
_FAULT_BODIES = {
    429: {
        "code": "TOO_MANY_REQUESTS",
        "details": {"retry_after": FAULT_RETRY_AFTER_SECONDS},
        "message": "Rate limit exceeded. Please retry after the specified time.",
        "status": "error",
    },
    500: {"code": "INTERNAL_ERROR", "details": {}, "message": "Internal Server Error", "status": "error"},
}


class ZohoError(Exception):
    """An answer in Zoho's error shape: per record (``{"data": [error]}``) or for the request."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        per_record: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.status, self.headers = status, dict(headers or {})
        error = {"code": code, "details": dict(details or {}), "message": message, "status": "error"}
        self.body: Any = {"data": [error]} if per_record else error

    def response(self) -> Response:
        return json_response(self.body, self.status, headers=self.headers)


def invalid_data(api_name: str, *, index: int = 0) -> ZohoError:
    details = {"api_name": api_name, "json_path": f"$.data[{index}].{api_name}"}
    return ZohoError(400, "INVALID_DATA", "invalid data", details, per_record=True)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).replace(microsecond=0).isoformat()


def _is_card_safe(record_id: str) -> bool:
    return record_id.startswith("1") and len(record_id) == 18


class ZohoCrmSimulator(ZohoAccountsSimulator):
    """Zoho CRM's Deals for a help desk: deals with owners and contacts, notes, picklists, a workflow webhook."""

    name = "zoho_crm"
    TICKET_NOUN = "deal"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", r"^/crm/v8/Deals/[0-9]+$"),
        # The write that carries the marker: the note. The connector updates the fields (idempotent) before it.
        "write_back": ("POST", r"^/crm/v8/Notes$"),
        "has_update": ("GET", r"^/crm/v8/Deals/[0-9]+/Notes$"),
    }

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        refresh_token: str = DEFAULT_REFRESH_TOKEN,
        webhook_token: str = DEFAULT_WEBHOOK_TOKEN,
        rate_limit_per_minute: int = PER_MINUTE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.webhook_token = webhook_token
        self.rate_limit_per_minute = rate_limit_per_minute
        self.clock = clock
        super().__init__()
        # Ids go on from where a former run's could have stopped (a stack's store may outlive its sandbox).
        self._ids = itertools.count(110_000_000_000_000_000 + int(clock()) % 1_000_000 * 100_000)
        self.reset_state()
        self.route(f"{API}/<module>/<record_id>", self._api(self._get_record), methods=["GET"])
        self.route(f"{API}/<module>/<record_id>", self._api(self._update_record, write=True), methods=["PUT"])
        self.route(f"{API}/Notes", self._api(self._create_notes, write=True), methods=["POST"])
        self.route(f"{API}/<module>/<record_id>/Notes", self._api(self._record_notes), methods=["GET"])
        self.route_ticket_controls()
        self.route("/_control/expire-tokens", self._control_expire, methods=["POST"])
        _ = self.url_map  # bind the routes now: two first requests at once race on the lazy Map

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.access_tokens: dict[str, float] = {}
            self.token_grants = 0
            self.deals: dict[str, dict[str, Any]] = {}
            self.contacts: dict[str, dict[str, Any]] = {}
            self.notes: dict[str, list[dict[str, Any]]] = {}
            self._modified: dict[str, float] = {}
            self._window: tuple[int, int] = (0, 0)

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """Zoho signs nothing: the admin's custom header carries the token."""
        return {TOKEN_HEADER: secret}

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure in Zoho's shape; a 429 always carries ``Retry-After``."""
        status = fault.status or 500
        headers = dict(fault.headers)
        if status == 429:
            headers.setdefault("Retry-After", str(FAULT_RETRY_AFTER_SECONDS))
        body = fault.body if fault.body is not None else _FAULT_BODIES.get(status, _FAULT_BODIES[500])
        return json_response(body, status, headers=headers)

    def not_found(self, request: Request) -> Response:
        if request.path.startswith("/_control"):
            return super().not_found(request)
        return ZohoError(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        ).response()

    # ---------------------------------------------------------------- TicketSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's OAuth client and refresh token; intake's webhook token."""
        return {
            "api": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "refresh_token": self.refresh_token,
            },
            "verification": {"tokens": [self.webhook_token]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where the workflow rule's webhook goes (the stack's ``{api}/webhooks/zoho_crm``)."""
        self.webhooks.configure(url, self.webhook_token)

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """A deal owned by the user of ``approver_role`` (team lead, agent, or an unmapped sales user for None),
        with a contact and the refund's fields set as the default mapping reads them; its Refund_Action is not set
        (``agent_action`` sets it). Nothing is sent. Returns the deal's id.

        Raises:
            ValueError: no payment_provider or payment_id, or an approver role the sandbox does not know.
        """
        if not request.get("payment_provider") or not request.get("payment_id"):
            raise ValueError("payment_provider and payment_id are required")
        role = request.get("approver_role")
        if role not in USER_FOR_ROLE:
            raise ValueError(f"unknown approver_role {role!r}")
        owner = USER_FOR_ROLE[role]
        with self.lock:
            contact_id = self._next_id()
            name = str(request.get("customer_name") or "Ada Lovelace")
            first, _, last = name.partition(" ")
            self.contacts[contact_id] = {
                "id": contact_id,
                "First_Name": first if last else None,
                "Last_Name": last or first,
                "Full_Name": name,
                "Email": str(request.get("customer_email") or f"customer{contact_id}@example.com"),
                "Owner": {"id": owner, **USERS[owner]},
            }
            deal_id = self._next_id()
            now = self._touch(deal_id)
            deal: dict[str, Any] = {
                "id": deal_id,
                "Deal_Name": str(request.get("subject") or "Refund request"),
                "Description": str(request.get("description") or "I would like a refund, please."),
                "Stage": "Closed Won",
                "Amount": None,
                "Closing_Date": now[:10],
                "Owner": {"id": owner, **USERS[owner]},
                "Contact_Name": {"name": name, "id": contact_id},
                ACTION_FIELD: None,
                STATUS_FIELD: None,
                "Created_Time": now,
                "Modified_Time": now,
            }
            for key, field in SEEDED_FIELDS.items():
                deal[field] = str(request[key]) if request.get(key) not in (None, "") else None
            self.deals[deal_id] = deal
            self.notes[deal_id] = []
        return deal_id

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """The agent sets the deal's Refund Action (``approve`` Approved, ``request`` Requested, ``withdraw``
        Cancelled); the workflow rule "Refund Action is changed" then calls the webhook.

        Raises:
            KeyError: no such deal. ValueError: an unknown intent.
        """
        if intent not in ACTIONS:
            raise ValueError(f"unknown intent {intent!r}")
        with self.lock:
            deal = self._deal(ticket_id)
            deal[ACTION_FIELD] = ACTIONS[intent]
            deal["Modified_Time"] = self._touch(deal["id"])
            shown = copy.deepcopy(deal)
        self._fire_rule(shown)

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        """``{"notes": [note contents], "public": [] (a CRM note is never sent to the customer), "labels": [the
        Refund_Status value, if set], "ticket": <the deal as the API shows it>}``.

        Raises:
            KeyError: no such deal.
        """
        with self.lock:
            deal = self._deal(ticket_id)
            status = deal.get(STATUS_FIELD)
            return {
                "notes": [str(note["Note_Content"]) for note in self.notes[deal["id"]]],
                "public": [],
                "labels": [status] if status and status != "-None-" else [],
                "ticket": copy.deepcopy(deal),
            }

    def expire_access_tokens(self) -> None:
        """Make every issued access token answer 401 (as an hour later)."""
        self.revoke_access_tokens()

    # ---------------------------------------------------------------- internals

    def _next_id(self) -> str:
        while True:
            candidate = str(next(self._ids))
            if _is_card_safe(candidate):
                return candidate

    def _touch(self, record_id: str) -> str:
        """Modified_Time, to the second, moved on by at least a second from the record's last one."""
        moment = max(math.floor(self.clock()), self._modified.get(record_id, 0) + 1)
        self._modified[record_id] = moment
        return _iso(moment)

    def _deal(self, record_id: str) -> dict[str, Any]:
        """Raises: KeyError: no such deal."""
        if record_id not in self.deals:
            raise KeyError(f"no deal {record_id}")
        return self.deals[record_id]

    def _fire_rule(self, deal: Mapping[str, Any]) -> None:
        body = {
            "module": MODULE,
            "record_id": deal["id"],
            "refund_action": deal.get(ACTION_FIELD) or "",
            "modified_time": deal["Modified_Time"],
        }
        data = json.dumps(body).encode()
        self.webhooks.send(f"{deal['id']}:{deal['Modified_Time']}", "workflow_webhook", data)

    # ---------------------------------------------------------------- API plumbing

    def _authenticate(self, request: Request) -> None:
        if not self.access_token_valid(request):
            raise ZohoError(401, "INVALID_TOKEN", "invalid oauth token")

    def _spend(self) -> None:
        now = self.clock()
        minute = int(now // 60)
        with self.lock:
            window, used = self._window
            used = used if window == minute else 0
            if used >= self.rate_limit_per_minute:
                retry_after = max(1, math.ceil((minute + 1) * 60 - now))
                raise ZohoError(
                    429,
                    "TOO_MANY_REQUESTS",
                    "Rate limit exceeded. Please retry after the specified time.",
                    {"retry_after": retry_after, "limit": self.rate_limit_per_minute, "window": 60},
                    headers={"Retry-After": str(retry_after)},
                )
            self._window = (minute, used + 1)

    def _api(self, handler: Callable[..., tuple[int, Any]], write: bool = False) -> Callable[..., Response]:
        def endpoint(request: Request, **arguments: Any) -> Response:
            try:
                self._authenticate(request)
                self._spend()
                if write:
                    if request.mimetype != "application/json":
                        raise ZohoError(400, "INVALID_DATA", "body is not a valid JSON", {})
                    try:
                        payload = json.loads(request.get_data().decode("utf-8"))
                    except (UnicodeDecodeError, ValueError):
                        payload = None
                    if not isinstance(payload, dict):
                        raise ZohoError(400, "INVALID_DATA", "body is not a valid JSON", {})
                    unknown = sorted(set(payload) - BODY_KEYS)
                    if unknown:
                        raise ZohoError(400, "INVALID_DATA", "invalid data", {"api_name": unknown[0]})
                    data = payload.get("data")
                    if not isinstance(data, list) or not data or not all(isinstance(item, dict) for item in data):
                        raise ZohoError(400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "data"})
                    status, body = handler(request, payload, **arguments)
                else:
                    status, body = handler(request, **arguments)
            except ZohoError as error:
                return error.response()
            if status == 204:
                return Response(b"", status=204)
            return json_response(body, status)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _module(self, module: str) -> dict[str, dict[str, Any]]:
        if module == MODULE:
            return self.deals
        if module == "Contacts":
            return self.contacts
        raise ZohoError(400, "INVALID_MODULE", "the module name given seems to be invalid", {"resource_path_index": 0})

    # ---------------------------------------------------------------- the API

    def _get_record(self, request: Request, module: str, record_id: str) -> tuple[int, Any]:
        with self.lock:
            record = self._module(module).get(record_id)
            if record is None:
                return 204, None
            return 200, {"data": [copy.deepcopy(record)]}

    def _update_record(self, request: Request, payload: dict[str, Any], module: str, record_id: str) -> tuple[int, Any]:
        with self.lock:
            records = self._module(module)
            if module != MODULE:
                raise ZohoError(403, "NO_PERMISSION", "permission denied to update records", {}, per_record=True)
            (fields,) = payload["data"][:1]
            if len(payload["data"]) != 1:
                raise invalid_data("data")
            record = records.get(record_id)
            if record is None:
                raise ZohoError(
                    400, "INVALID_DATA", "the id given seems to be invalid", {"id": record_id}, per_record=True
                )
            for field, value in fields.items():
                if field in READ_ONLY or (field not in PICKLISTS and field not in TEXT_FIELDS):
                    raise invalid_data(field)
                if field in PICKLISTS and value is not None and value not in PICKLISTS[field]:
                    raise invalid_data(field)
                if value is not None and not isinstance(value, str | dict):
                    raise invalid_data(field)
            trigger = payload.get("trigger")
            if trigger is not None and not (
                isinstance(trigger, list) and all(isinstance(item, str) for item in trigger)
            ):
                raise invalid_data("trigger")
            action = record.get(ACTION_FIELD)
            record.update(copy.deepcopy(fields))
            record["Modified_Time"] = self._touch(record_id)
            shown = copy.deepcopy(record)
        if (trigger is None or "workflow" in trigger) and shown.get(ACTION_FIELD) != action:
            self._fire_rule(shown)  # a change through the API runs the workflow rules unless trigger says none
        return 200, {"data": [self._success("record updated", shown)]}

    def _create_notes(self, request: Request, payload: dict[str, Any]) -> tuple[int, Any]:
        answers = []
        with self.lock:
            for index, note in enumerate(payload["data"]):
                for field in sorted(set(note) - NOTE_FIELDS):
                    raise invalid_data(field, index=index)
                content = note.get("Note_Content")
                if not isinstance(content, str) or not content:
                    raise ZohoError(
                        400,
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        {"api_name": "Note_Content", "json_path": f"$.data[{index}].Note_Content"},
                        per_record=True,
                    )
                parent = note.get("Parent_Id")
                module = parent.get("module") if isinstance(parent, dict) else None
                api_name = module.get("api_name") if isinstance(module, dict) else None
                parent_id = str(parent.get("id")) if isinstance(parent, dict) else ""
                if api_name != MODULE or parent_id not in self.deals:
                    raise invalid_data("Parent_Id", index=index)
                now = _iso(self.clock())
                stored = {
                    "id": self._next_id(),
                    "Note_Title": note.get("Note_Title"),
                    "Note_Content": content,
                    "Parent_Id": {"module": {"api_name": MODULE}, "id": parent_id},
                    "Owner": {"id": TEAM_LEAD_USER, **USERS[TEAM_LEAD_USER]},
                    "Created_Time": now,
                    "Modified_Time": now,
                }
                self.notes[parent_id].append(stored)
                answers.append(self._success("record added", stored))
        return 201, {"data": answers}

    def _record_notes(self, request: Request, module: str, record_id: str) -> tuple[int, Any]:
        if not request.args.get("fields"):
            raise ZohoError(
                400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param_name": "fields"}
            )
        try:
            page = int(request.args.get("page", "1"))
            per_page = int(request.args.get("per_page", str(DEFAULT_PER_PAGE)))
        except ValueError:
            page = per_page = 0
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise ZohoError(400, "INVALID_DATA", "invalid data", {"api_name": "per_page" if page >= 1 else "page"})
        wanted = {name.strip() for name in request.args["fields"].split(",")}
        with self.lock:
            self._module(module)
            if record_id not in self.deals:
                raise ZohoError(400, "INVALID_DATA", "the related id given seems to be invalid", {"id": record_id})
            notes = self.notes[record_id]
            chosen = notes[(page - 1) * per_page : page * per_page]
            if not chosen:
                return 204, None
            shown = [
                {"id": note["id"], **{key: copy.deepcopy(note[key]) for key in wanted if key in note}}
                for note in chosen
            ]
            more = len(notes) > page * per_page
        info = {"page": page, "per_page": per_page, "count": len(shown), "more_records": more}
        return 200, {"data": shown, "info": info}

    @staticmethod
    def _success(message: str, record: Mapping[str, Any]) -> dict[str, Any]:
        owner = {"name": USERS[TEAM_LEAD_USER]["name"], "id": TEAM_LEAD_USER}
        return {
            "code": "SUCCESS",
            "details": {
                "Modified_Time": record["Modified_Time"],
                "Modified_By": owner,
                "Created_Time": record.get("Created_Time"),
                "id": record["id"],
                "Created_By": owner,
            },
            "message": message,
            "status": "success",
        }

    # ---------------------------------------------------------------- control routes

    def _control_expire(self, request: Request) -> Response:
        self.expire_access_tokens()
        return json_response({"expired": True})


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("zoho_crm")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
