"""A stateful Dynamics 365 Customer Service sandbox: Entra ID's token endpoint and the Dataverse Web API v9.2
resources refundflow calls (cases, notes), on their own paths.

Mounted by the local stack at ``/_sandbox/dynamics_cs``; the connector's API base is
``{sandbox}/dynamics_cs/api/data/v9.2`` (Dataverse's own ``https://<org>.crm.dynamics.com/api/data/v9.2``) and its
login base ``{sandbox}/dynamics_cs/login`` (``https://login.microsoftonline.com``). What it holds to, as Microsoft
documents it (learn.microsoft.com: Microsoft identity platform "OAuth 2.0 client credentials flow"; Dataverse Web
API "Compose HTTP requests and handle errors", "Retrieve a table row", "Update and delete table rows", "Query data",
"Service protection API limits", "Web service error codes"; the Case (Incident) and Note (Annotation) tables):

- ``POST /login/{tenant}/oauth2/v2.0/token``: the client-credentials grant (form body; the scope must be the
  environment's origin + ``/.default``); refusals in Entra ID's ``{"error", "error_description": "AADSTS..."}``;
  access tokens last an hour (``expires_in``); an unknown or expired bearer token is a 401 with no body and a
  ``WWW-Authenticate: Bearer authorization_uri=...`` challenge (the body Dataverse sends is not documented: this
  sandbox's choice);
- ``GET /api/data/v9.2/incidents(<guid>)?$select&$expand``: a column not on the table is a 400 ``0x0`` "Could not
  find a property named '...' on type 'Microsoft.Dynamics.CRM.incident'."; ``$expand`` takes
  ``customerid_contact`` (with its own ``$select``) only; lookups come back as ``_<name>_value``;
- ``PATCH /api/data/v9.2/incidents(<guid>)``: 204; without ``If-Match: *`` an unknown id would be created (upsert),
  so this sandbox refuses that with a 400 (its choice: refundflow must never create a case); a resolved or cancelled
  case is read-only: 400 ``0x800404cf`` "This case has already been resolved. Close and reopen the case record to
  see the updates." (the HTTP status of that refusal is not documented: this sandbox's choice);
- ``POST /api/data/v9.2/annotations`` ``{subject, notetext, "objectid_incident@odata.bind": "/incidents(<guid>)"}``:
  204 with ``OData-EntityId``; unknown properties are a 400, an unknown case a 404;
- ``GET /api/data/v9.2/annotations?$filter=_objectid_value eq <guid>&$select=...`` (only that filter is modelled),
  ``Prefer: odata.maxpagesize=N`` pages with ``@odata.nextLink``;
- errors ``{"error": {"code", "message"}}``; an unknown row is a 404 ``0x80040217`` "incident With Id = ... Does Not
  Exist"; the service protection limit (``requests_per_window`` over ``window_seconds``, Microsoft's 6,000 in 300 s
  per user) a 429 ``0x80072322`` with ``Retry-After`` (seconds).
- deliveries: the admin's Power Automate flow (README "Dynamics 365 Customer Service setup"): on a change of the
  case's ``statecode`` or ``new_refundaction`` by a person, an HTTP POST to the configured URL with the header
  ``X-Refundflow-Secret`` and the body ``{"incidentid", "ticketnumber", "statecode", "new_refundaction",
  "modifiedon"}``; Power Automate signs nothing.

What the agent does (``agent_action``): ``request`` sets the Refund action to Requested (the case stays open);
``approve`` sets it to Approved and resolves the case (statecode 1, status Problem Solved); ``withdraw`` reactivates
a resolved case (an agent must, to edit it) and sets the action to Cancelled. Each change fires the flow.
``ticket_view``'s ``labels``: the refund state a person sees on the case: the refund status column, or, once the
case is resolved (read-only), the state named by the latest refund note's subject (``Refund status: <label>``).

Not modelled: case creation through the API, case resolutions (incidentresolution rows), queues, other OData
query options, batches, the execution-time and concurrency limits, the flow's own retries and run history.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import EntraSimulator, FaultRule

DEFAULT_TENANT = "72f988bf-0000-4000-8000-00000000c5c5"
DEFAULT_CLIENT_ID = "0b6a8e8e-0000-4000-8000-0000000000c5"
DEFAULT_CLIENT_SECRET = "rf-sim-dynamics-cs-client-secret-0001"
DEFAULT_WEBHOOK_SECRET = "dynamics-cs-simulator-flow-secret-000000001"
SECRET_HEADER = "X-Refundflow-Secret"
API = "/api/data/v9.2"
REQUESTS_PER_WINDOW = 6000
WINDOW_SECONDS = 300
FAULT_RETRY_AFTER_SECONDS = 2
REQUESTED, APPROVED, CANCELLED = 100000000, 100000001, 100000002
ACTIONS = {"request": REQUESTED, "approve": APPROVED, "withdraw": CANCELLED}
ACTIVE, RESOLVED, CANCELLED_STATE = 0, 1, 2
STATUS_SUBJECT = "Refund status: "
STATUS_COLUMN = "new_refundstatus"
GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# The environment's teams and users: the default mapping's roles name the first two teams.
TEAM_LEAD_TEAM = "6d1f0c3e-1a2b-4c5d-8e9f-000000000001"
AGENT_TEAM = "6d1f0c3e-1a2b-4c5d-8e9f-000000000002"
BILLING_TEAM = "6d1f0c3e-1a2b-4c5d-8e9f-000000000003"
TEAMS = {TEAM_LEAD_TEAM: "Refund approvers", AGENT_TEAM: "Support", BILLING_TEAM: "Billing"}
USERS = {
    "team_lead": ("3c2b1a00-0000-4000-8000-000000000101", TEAM_LEAD_TEAM),
    "agent": ("3c2b1a00-0000-4000-8000-000000000102", AGENT_TEAM),
    None: ("3c2b1a00-0000-4000-8000-000000000103", BILLING_TEAM),
}
APPLICATION_USER = "3c2b1a00-0000-4000-8000-0000000000ff"
# The Case table's columns this environment has (standard ones refundflow reads, and the admin's custom ones).
CASE_COLUMNS = frozenset(
    {
        "incidentid",
        "ticketnumber",
        "title",
        "description",
        "statecode",
        "statuscode",
        "prioritycode",
        "createdon",
        "modifiedon",
        "_ownerid_value",
        "_owningteam_value",
        "_owninguser_value",
        "_modifiedby_value",
        "_customerid_value",
        "versionnumber",
        "new_refundaction",
        "new_refundstatus",
        "new_paymentprovider",
        "new_paymentid",
        "new_refundreason",
        "new_orderid",
        "new_invoicesystem",
        "new_invoiceid",
        "new_refundamount",
        "new_refundcurrency",
    }
)
WRITABLE_CASE_COLUMNS = frozenset(
    {"title", "description", "prioritycode"} | {column for column in CASE_COLUMNS if column.startswith("new_")}
)
TEXT_COLUMNS = frozenset(
    {column for column in WRITABLE_CASE_COLUMNS if column != "new_refundaction"} - {"prioritycode"}
)
NOTE_COLUMNS = frozenset({"annotationid", "subject", "notetext", "_objectid_value", "objecttypecode", "createdon"})
SEEDED_COLUMNS = {
    "payment_provider": "new_paymentprovider",
    "payment_id": "new_paymentid",
    "reason": "new_refundreason",
    "order_id": "new_orderid",
    "invoice_system": "new_invoicesystem",
    "invoice_id": "new_invoiceid",
    "amount": "new_refundamount",
    "currency": "new_refundcurrency",
}
_FAULT_ERRORS = {
    429: ("0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds."),
    500: ("0x80040216", "An unexpected error occurred."),
    503: ("0x80040216", "The service is temporarily unavailable."),
}


class DataverseError(Exception):
    """An answer in the Web API's error shape."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})

    def response(self) -> Response:
        return _odata({"error": {"code": self.code, "message": self.message}}, self.status, self.headers)


class Unauthorized(DataverseError):
    """A 401 without a body, with the Bearer challenge naming the tenant's authority."""

    def __init__(self, tenant_id: str) -> None:
        challenge = f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant_id}/oauth2/authorize"
        super().__init__(401, "", "", {"WWW-Authenticate": challenge})

    def response(self) -> Response:
        return Response(b"", status=401, headers=self.headers)


def _odata(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status=status,
        mimetype="application/json",
        headers={"OData-Version": "4.0", **dict(headers or {})},
    )


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DynamicsCaseSimulator(EntraSimulator):
    """Dataverse's Case and Note tables for a help desk, behind Entra ID client credentials."""

    name = "dynamics_cs"
    TICKET_NOUN = "case"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", rf"^{API}/incidents\({GUID}\)$"),
        # The write of a write-back that carries its marker: the note. The connector sets the status column (an
        # idempotent PATCH) before it, so a note whose answer is lost is the one write the kit must find again.
        "write_back": ("POST", rf"^{API}/annotations$"),
        "has_update": ("GET", rf"^{API}/annotations$"),
    }

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        requests_per_window: int = REQUESTS_PER_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.webhook_secret = webhook_secret
        self.requests_per_window = requests_per_window
        self.clock = clock
        self.tokens: dict[str, float] = {}
        self.token_grants = 0
        self.cases: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self._calls: list[float] = []
        self._numbers = int(clock()) % 100_000
        self._versions = itertools.count(72_201_545)  # a row's version (its ETag), bumped by every change
        super().__init__()
        self.route(f"{API}/<path:rest>", self._api, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
        self.route_ticket_controls()
        _ = self.url_map  # bind the routes now: two first requests at once race on the lazy Map

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.cases.clear()
            self.contacts.clear()
            self.notes.clear()
            self.tokens.clear()
            self._calls.clear()

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """Power Automate signs nothing: the HTTP action's header carries the shared secret."""
        return {SECRET_HEADER: secret}

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure in the Web API's shape; a 429 always carries ``Retry-After``."""
        status = fault.status or 500
        headers = dict(fault.headers)
        if status == 429:
            headers.setdefault("Retry-After", str(FAULT_RETRY_AFTER_SECONDS))
        code, message = _FAULT_ERRORS.get(status, _FAULT_ERRORS[500])
        return _odata(fault.body or {"error": {"code": code, "message": message}}, status, headers)

    # ---------------------------------------------------------------- TicketSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The app registration's client credentials; intake's shared secret (the flow's HTTP action header)."""
        return {
            "api": {"tenant_id": self.tenant_id, "client_id": self.client_id, "client_secret": self.client_secret},
            "verification": {"shared_secrets": [self.webhook_secret]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where the flow's HTTP action posts (the stack's ``{api}/webhooks/dynamics_cs``)."""
        self.webhooks.configure(url, self.webhook_secret)

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """An active case of a contact, owned by the team of ``approver_role`` (team lead, agent, or the unmapped
        Billing team for None), with the refund columns set as the default mapping reads them; its refund action is
        not set yet (``agent_action`` sets it). Nothing is sent. Returns the case's GUID.

        Raises:
            ValueError: no payment_provider or payment_id, or an approver role the sandbox does not know.
        """
        if not request.get("payment_provider") or not request.get("payment_id"):
            raise ValueError("payment_provider and payment_id are required")
        role = request.get("approver_role")
        if role not in USERS:
            raise ValueError(f"unknown approver_role {role!r}")
        user_id, team_id = USERS[role]
        now = _timestamp(self.clock())
        with self.lock:
            contact_id = str(uuid.uuid4())
            self.contacts[contact_id] = {
                "contactid": contact_id,
                "fullname": str(request.get("customer_name") or "Ada Lovelace"),
                "emailaddress1": str(request.get("customer_email") or f"customer.{contact_id[:8]}@example.com"),
            }
            case_id = str(uuid.uuid4())
            self._numbers += 1
            case: dict[str, Any] = {
                "incidentid": case_id,
                "ticketnumber": f"CAS-{self._numbers:05d}-R3F7D9",
                "title": str(request.get("subject") or "Refund request"),
                "description": str(request.get("description") or "I would like a refund, please."),
                "statecode": ACTIVE,
                "statuscode": 1,
                "prioritycode": 2,
                "createdon": now,
                "modifiedon": now,
                "_ownerid_value": team_id,
                "_owningteam_value": team_id,
                "_owninguser_value": None,
                "_modifiedby_value": user_id,
                "_customerid_value": contact_id,
                "new_refundaction": None,
                "new_refundstatus": None,
                "versionnumber": next(self._versions),
            }
            for key, column in SEEDED_COLUMNS.items():
                case[column] = str(request[key]) if request.get(key) not in (None, "") else None
            self.cases[case_id] = case
            self.notes[case_id] = []
        return case_id

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """What the agent does in the case (module docstring), then the flow's delivery.

        Raises:
            KeyError: no such case. ValueError: an unknown intent.
        """
        if intent not in ACTIONS:
            raise ValueError(f"unknown intent {intent!r}")
        with self.lock:
            case = self._case(ticket_id)
            owner = next((user for user, team in USERS.values() if team == case["_owningteam_value"]), None)
            if intent == "withdraw" and case["statecode"] != ACTIVE:
                case["statecode"], case["statuscode"] = ACTIVE, 1  # Reactivate
            case["new_refundaction"] = ACTIONS[intent]
            if intent == "approve":
                case["statecode"], case["statuscode"] = RESOLVED, 5  # Resolve Case: Problem Solved
            case["_modifiedby_value"] = owner
            case["modifiedon"] = _timestamp(self.clock())
            case["versionnumber"] = next(self._versions)
            shown = copy.deepcopy(case)
        self._run_flow(shown)

    def _run_flow(self, case: Mapping[str, Any]) -> None:
        """The admin's flow: its HTTP action's body (README setup), for each change of state or refund action."""
        body = {
            "incidentid": case["incidentid"],
            "ticketnumber": case["ticketnumber"],
            "statecode": case["statecode"],
            "new_refundaction": case["new_refundaction"],
            "modifiedon": case["modifiedon"],
        }
        event_id = f"{case['incidentid']}:{case['new_refundaction']}:{case['statecode']}:{uuid.uuid4().hex[:8]}"
        self.webhooks.send(event_id, "case_modified", json.dumps(body).encode())

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        """``{"notes": [note texts, oldest first], "public": [] (notes are internal; emails are not modelled),
        "labels": [the refund state the case shows: module docstring], "ticket": <the case, a copy>}``.

        Raises:
            KeyError: no such case.
        """
        with self.lock:
            case = self._case(ticket_id)
            notes = self.notes[case["incidentid"]]
            label = case.get(STATUS_COLUMN)
            if case["statecode"] != ACTIVE:
                stated = [note["subject"][len(STATUS_SUBJECT) :] for note in notes if _states(note)]
                label = stated[-1] if stated else label
            return {
                "notes": [str(note.get("notetext") or "") for note in notes],
                "public": [],
                "labels": [label] if label else [],
                "ticket": copy.deepcopy(case),
            }

    def _case(self, ticket_id: str) -> dict[str, Any]:
        """Raises: KeyError: no such case."""
        key = str(ticket_id).lower()
        if key not in self.cases:
            raise KeyError(f"no case {ticket_id}")
        return self.cases[key]

    # ---------------------------------------------------------------- Entra ID

    def entra_scope(self, request: Request) -> str:
        return request.host_url.rstrip("/") + "/.default"

    # ---------------------------------------------------------------- the Web API

    def _api(self, request: Request, rest: str) -> Response:
        try:
            self._authenticate(request)
            self._spend()
            with self.lock:
                return self._resource(request, "/" + rest)
        except DataverseError as error:
            return error.response()

    def _authenticate(self, request: Request) -> None:
        if not self.bearer_valid(request):
            raise Unauthorized(self.tenant_id)

    def _spend(self) -> None:
        """One request against the user's sliding window; a 429 with Retry-After past the limit."""
        now = self.clock()
        with self.lock:
            self._calls = [moment for moment in self._calls if moment > now - WINDOW_SECONDS]
            if len(self._calls) >= self.requests_per_window:
                retry_after = max(1, int(self._calls[0] + WINDOW_SECONDS - now) + 1)
                raise DataverseError(
                    429,
                    "0x80072322",
                    f"Number of requests exceeded the limit of {self.requests_per_window} over time window of "
                    f"{WINDOW_SECONDS} seconds.",
                    {"Retry-After": str(retry_after)},
                )
            self._calls.append(now)

    def _resource(self, request: Request, path: str) -> Response:
        method = request.method
        found = re.fullmatch(r"/incidents\(([^)]*)\)", path)
        if found and method == "GET":
            return self._get_case(request, found.group(1))
        if found and method == "PATCH":
            return self._update_case(request, found.group(1))
        if path == "/annotations" and method == "POST":
            return self._create_note(request)
        if path == "/annotations" and method == "GET":
            return self._list_notes(request)
        segment = path.strip("/").split("(")[0].split("/")[0]
        if segment in {"incidents", "annotations"}:
            raise DataverseError(405, "0x80060888", f"The requested operation {method} is not supported.")
        raise DataverseError(404, "0x8006088a", f"Resource not found for the segment '{segment}'.")

    def _known(self, raw_id: str) -> dict[str, Any]:
        if not re.fullmatch(GUID, raw_id):
            raise DataverseError(400, "0x80060888", f"Bad Request - Error in query syntax: incidents({raw_id}).")
        case = self.cases.get(raw_id.lower())
        if case is None:
            raise DataverseError(404, "0x80040217", f"incident With Id = {raw_id.lower()} Does Not Exist")
        return case

    def _get_case(self, request: Request, raw_id: str) -> Response:
        select = [part for part in request.args.get("$select", "").split(",") if part]
        for column in select:
            if column not in CASE_COLUMNS:
                raise DataverseError(
                    400, "0x0", f"Could not find a property named '{column}' on type 'Microsoft.Dynamics.CRM.incident'."
                )
        expand = request.args.get("$expand", "")
        expanded = re.fullmatch(r"customerid_contact(?:\(\$select=([a-z0-9_,]+)\))?", expand) if expand else None
        if expand and expanded is None:
            raise DataverseError(
                400, "0x0", f"Could not find a property named '{expand}' on type 'Microsoft.Dynamics.CRM.incident'."
            )
        case = self._known(raw_id)
        shown: dict[str, Any] = {
            "@odata.context": f"{request.host_url.rstrip('/')}{request.script_root}{API}/$metadata#incidents/$entity"
        }
        shown["@odata.etag"] = f'W/"{case["versionnumber"]}"'
        shown.update({column: copy.deepcopy(case.get(column)) for column in (select or sorted(CASE_COLUMNS))})
        if expanded is not None:
            contact = self.contacts.get(case["_customerid_value"])
            fields = (expanded.group(1) or "contactid,fullname,emailaddress1").split(",")
            shown["customerid_contact"] = (
                {field: contact.get(field) for field in fields} if contact is not None else None
            )
        return _odata(shown)

    def _body(self, request: Request) -> dict[str, Any]:
        if request.mimetype != "application/json":
            raise DataverseError(
                415, "0x80048d19", "The request's Content-Type is not supported; use application/json."
            )
        try:
            payload = json.loads(request.get_data().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise DataverseError(400, "0x80048d19", "Error identified in Payload provided by the user.") from error
        if not isinstance(payload, dict):
            raise DataverseError(400, "0x80048d19", "Error identified in Payload provided by the user.")
        return payload

    def _update_case(self, request: Request, raw_id: str) -> Response:
        payload = self._body(request)
        if request.headers.get("If-Match") != "*":
            raise DataverseError(400, "0x80040203", "This sandbox refuses upserts: send If-Match: * to update a case.")
        for column, value in payload.items():
            if column not in WRITABLE_CASE_COLUMNS:
                raise DataverseError(
                    400, "0x0", f"Invalid property '{column}' was found in entity 'Microsoft.Dynamics.CRM.incident'."
                )
            if column in TEXT_COLUMNS and value is not None and not isinstance(value, str):
                raise DataverseError(
                    400, "0x0", f"Cannot convert the literal '{value}' to the expected type 'Edm.String'."
                )
            if column == "new_refundaction" and value not in (None, *ACTIONS.values()):
                raise DataverseError(
                    400,
                    "0x8004431a",
                    f"A validation error occurred. The value {value} of 'new_refundaction' is outside the valid range.",
                )
        case = self._known(raw_id)
        if case["statecode"] != ACTIVE:
            raise DataverseError(
                400,
                "0x800404cf",
                "This case has already been resolved. Close and reopen the case record to see the updates.",
            )
        case.update(copy.deepcopy(payload))
        case["modifiedon"] = _timestamp(self.clock())
        case["_modifiedby_value"] = APPLICATION_USER
        case["versionnumber"] = next(self._versions)
        return Response(b"", status=204, headers={"OData-Version": "4.0"})

    def _create_note(self, request: Request) -> Response:
        payload = self._body(request)
        allowed = {"subject", "notetext", "objectid_incident@odata.bind", "isdocument", "annotationid"}
        for key in payload:
            if key not in allowed:
                raise DataverseError(
                    400, "0x0", f"Invalid property '{key}' was found in entity 'Microsoft.Dynamics.CRM.annotation'."
                )
        for key in ("subject", "notetext"):
            if payload.get(key) is not None and not isinstance(payload[key], str):
                raise DataverseError(
                    400, "0x0", f"Cannot convert the literal to the expected type 'Edm.String' ({key})."
                )
        bind = payload.get("objectid_incident@odata.bind")
        target = re.fullmatch(rf"/?incidents\(({GUID})\)", bind) if isinstance(bind, str) else None
        if target is None:
            raise DataverseError(400, "0x80048d19", "The note must name its case: objectid_incident@odata.bind.")
        case = self._known(target.group(1))
        if len(str(payload.get("subject") or "")) > 500:
            raise DataverseError(
                400, "0x80044331", "A validation error occurred. The length of the 'subject' attribute exceeded 500."
            )
        note = {
            "annotationid": str(uuid.uuid4()),
            "subject": payload.get("subject"),
            "notetext": payload.get("notetext"),
            "_objectid_value": case["incidentid"],
            "objecttypecode": "incident",
            "createdon": _timestamp(self.clock()),
        }
        self.notes[case["incidentid"]].append(note)
        location = f"{request.host_url.rstrip('/')}{request.script_root}{API}/annotations({note['annotationid']})"
        return Response(b"", status=204, headers={"OData-Version": "4.0", "OData-EntityId": location})

    def _list_notes(self, request: Request) -> Response:
        matched = re.fullmatch(rf"_objectid_value eq ({GUID})", request.args.get("$filter", "").strip())
        if matched is None:
            raise DataverseError(400, "0x0", "This sandbox models one filter: _objectid_value eq <guid>.")
        select = [part for part in request.args.get("$select", "").split(",") if part] or sorted(NOTE_COLUMNS)
        for column in select:
            if column not in NOTE_COLUMNS:
                raise DataverseError(
                    400,
                    "0x0",
                    f"Could not find a property named '{column}' on type 'Microsoft.Dynamics.CRM.annotation'.",
                )
        prefer = re.search(r"odata\.maxpagesize=([0-9]+)", request.headers.get("Prefer", ""))
        size = min(max(int(prefer.group(1)), 1), 5000) if prefer else 5000
        skip = int(request.args.get("$skiptoken", "0")) if request.args.get("$skiptoken", "0").isdigit() else 0
        notes = self.notes.get(matched.group(1).lower(), [])
        page = [
            {column: note.get(column) for column in ["annotationid", *select]} for note in notes[skip : skip + size]
        ]
        body: dict[str, Any] = {"value": page}
        if len(notes) > skip + size:
            base = f"{request.host_url.rstrip('/')}{request.script_root}{API}/annotations"
            query = request.query_string.decode().split("&$skiptoken=")[0]
            body["@odata.nextLink"] = f"{base}?{query}&$skiptoken={skip + size}"
        return _odata(body, headers={"Preference-Applied": f"odata.maxpagesize={size}"} if prefer else None)

    # ---------------------------------------------------------------- control routes


def _states(note: Mapping[str, Any]) -> bool:
    return str(note.get("subject") or "").startswith(STATUS_SUBJECT)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks: importing the
    simulator stays light (the scenarios need the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("dynamics_cs")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
