"""A stateful ServiceNow instance for the record calls refundflow makes, on ServiceNow's own Table API paths.

Mounted by the local stack at ``/_sandbox/servicenow``; the connector's instance URL is ``{sandbox}/servicenow``
(ServiceNow's own ``https://<instance>.service-now.com``). What it holds to, as ServiceNow documents it
(ServiceNowDocs ``markdown/api-reference/rest-apis/c_TableAPI.md``; "Inbound REST API rate limiting"; "Client
Credentials" and "OAuth inbound" under platform security). ServiceNow publishes no OpenAPI file of the Table API, so
requests are held to the documented parameters:

- auth: HTTP Basic as a user of the instance, or ``Authorization: Bearer <token>`` from ``POST /oauth_token.do``
  (form ``grant_type=client_credentials`` with ``client_id`` / ``client_secret`` when the instance enables it, or
  ``grant_type=password`` with a user's name and password too; ``{"access_token", "refresh_token" (password grant),
  "scope", "token_type": "Bearer", "expires_in"}``; a refused grant is a 401 ``{"error_description":
  "access_denied", "error": "server_error"}``). A missing, wrong or expired credential on the API is a 401
  ``{"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status":
  "failure"}``;
- ``GET /api/now/table/{table}/{sys_id}`` (``sysparm_fields``, ``sysparm_exclude_reference_link``,
  ``sysparm_display_value``): ``{"result":
  <record>}``, every value a string, a reference ``{"link", "value"}`` unless links are excluded; an unknown record
  (or an id of another shape) a 404 ``{"error": {"message": "No Record found", "detail": "Record doesn't exist or ACL
  restricts the record retrieval"}, "status": "failure"}``; an unknown table a 400 ``Invalid table <name>``;
- ``PATCH`` (or ``PUT``) ``/api/now/table/{table}/{sys_id}``: a JSON object of field values; fields the table does not
  have are ignored, as ServiceNow does (kept in ``ignored_fields`` for tests); ``work_notes`` and ``comments`` are
  journal fields: the text becomes a ``sys_journal_field`` row (work notes internal, comments visible to the caller)
  and reads back as ``""``; answers the updated record; a body that is not JSON is a 400, another media type a 415;
- ``GET /api/now/table/sys_journal_field`` with an encoded ``sysparm_query`` (``field=value`` conditions joined by
  ``^``, ``ORDERBY`` / ``ORDERBYDESC``; an unknown part is ignored, as the instance does by default),
  ``sysparm_limit`` / ``sysparm_offset`` / ``sysparm_fields``;
- ``GET /api/now/table/sys_user/{sys_id}``: callers, contacts and agents;
- a rate limit rule per user and hour when ``requests_per_hour`` is set: ``X-RateLimit-Limit``, ``-Reset`` (Unix
  time) and ``-Rule`` on every answer, past it a 429 with ``Retry-After`` (seconds to the reset; the body's wording
  is this simulator's);
- deliveries: the flow's REST step as the README's setup makes it: a JSON ``POST`` of ``{"table", "sys_id",
  "number", "sys_mod_count", "sys_updated_on", "u_refund_action"}`` with the header ``X-Refundflow-Secret`` (or HTTP
  Basic ``servicenow:<secret>`` when ``delivery_auth="basic"``); ServiceNow signs nothing.

What the agent does (``agent_action``): sets the record's ``u_refund_action`` choice (``requested``, ``approved``,
``cancelled``); the flow ("record updated" where Refund action changes) then sends the REST message. An API update
that changes that field sends it too; refundflow's own write-backs change only ``u_refund_status``, ``state`` and
the work notes, so they send nothing.

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/tickets`` (a ``seed_ticket`` request): ``{"id"}``;
- ``POST /_control/tickets/{id}/agent-action`` ``{"intent": "approve" | "request" | "withdraw"}``;
- ``GET /_control/tickets/{id}/view``: the record as a person sees it (``ticket_view``);
- ``POST /_control/tokens/expire``: every access token issued so far expires now;
- ``GET /_control/objects``: records, users, groups and journal rows.

``sysparm_display_value`` (``true`` / ``all``) shows a reference's name and a journal field's entries (newest first,
``<time> - <user> (Work notes)`` and the text; the layout is this simulator's). Not modelled: versioned paths
(``/api/now/v2/...``), record creation and deletion, ACLs (but for ``journal_rows_visible``), business rules and data
policies, refresh tokens, the other encoded-query operators.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import math
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, json_response

DEFAULT_USERNAME = "refundflow.integration"
DEFAULT_PASSWORD = "RfSimServiceNowPassw0rd!"
DEFAULT_CLIENT_ID = "5f1c0e9a7b3d4e2f8a6b1c0d9e8f7a65"
DEFAULT_CLIENT_SECRET = "RfSimServiceNowClientSecret01"
DEFAULT_WEBHOOK_SECRET = "servicenow-simulator-rest-message-secret-01"
DELIVERY_USER = "servicenow"
SECRET_HEADER = "X-Refundflow-Secret"
TOKEN_LIFESPAN_SECONDS = 1800
FAULT_RETRY_AFTER_SECONDS = 2
RATE_LIMIT_RULE = "0c5e4f3a2b1d4c6e8f7a9b0c1d2e3f4a"
RECORD_TABLES = ("incident", "sn_customerservice_case")
TABLES = (*RECORD_TABLES, "sys_user", "sys_user_group", "sys_journal_field")
JOURNAL_FIELDS = ("work_notes", "comments")
ACTION_FIELD = "u_refund_action"
STATUS_FIELD = "u_refund_status"
ACTIONS = {"request": "requested", "approve": "approved", "withdraw": "cancelled"}
# The instance's groups and agents: the default mapping's roles name the first two groups.
TEAM_LEAD_GROUP = "a1e5f0d7c3b64d1c9e2f7a8b6c5d4e31"
AGENT_GROUP = "b2f6a1e8d4c75e2daf3a8b9c7d6e5f42"
SERVICE_DESK_GROUP = "c3a7b2f9e5d86f3eb04a9c0d8e7f6a53"
GROUPS = {TEAM_LEAD_GROUP: "Refund approvers", AGENT_GROUP: "Service Desk", SERVICE_DESK_GROUP: "Billing"}
AGENTS = {
    "d4b8c3a0f6e97a4fc15b0d1e9f8a7b64": {
        "name": "Tess Lead",
        "email": "tess.lead@example.com",
        "group": TEAM_LEAD_GROUP,
    },
    "e5c9d4b1a7f08b5ad26c1e2f0a9b8c75": {"name": "Alex Agent", "email": "alex.agent@example.com", "group": AGENT_GROUP},
    "f6dae5c2b8a19c6be37d2f3a1b0c9d86": {
        "name": "Bo Billing",
        "email": "bo.billing@example.com",
        "group": SERVICE_DESK_GROUP,
    },
}
AGENT_FOR_ROLE = {
    "team_lead": "d4b8c3a0f6e97a4fc15b0d1e9f8a7b64",
    "agent": "e5c9d4b1a7f08b5ad26c1e2f0a9b8c75",
    None: "f6dae5c2b8a19c6be37d2f3a1b0c9d86",
}
# The merchant's own columns on both record tables (README "ServiceNow setup"), all strings.
CUSTOM_FIELDS = (
    ACTION_FIELD,
    STATUS_FIELD,
    "u_payment_provider",
    "u_payment_id",
    "u_refund_reason",
    "u_order_id",
    "u_invoice_system",
    "u_invoice_id",
    "u_refund_amount",
    "u_refund_currency",
)
SEEDED_FIELDS = {
    "payment_provider": "u_payment_provider",
    "payment_id": "u_payment_id",
    "reason": "u_refund_reason",
    "order_id": "u_order_id",
    "invoice_system": "u_invoice_system",
    "invoice_id": "u_invoice_id",
    "amount": "u_refund_amount",
    "currency": "u_refund_currency",
}
COMMON_COLUMNS = (
    "sys_id",
    "number",
    "short_description",
    "description",
    "state",
    "active",
    "priority",
    "category",
    "assigned_to",
    "assignment_group",
    "opened_at",
    "close_code",
    "close_notes",
    "work_notes",
    "comments",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
    *CUSTOM_FIELDS,
)
COLUMNS = {
    "incident": frozenset({*COMMON_COLUMNS, "caller_id", "impact", "urgency"}),
    "sn_customerservice_case": frozenset({*COMMON_COLUMNS, "contact", "account"}),
}
READ_ONLY = frozenset({"sys_id", "number", "sys_created_on", "sys_created_by", "sys_updated_on", "sys_mod_count"})
REFERENCES = {
    "caller_id": "sys_user",
    "contact": "sys_user",
    "assigned_to": "sys_user",
    "assignment_group": "sys_user_group",
}
NUMBER_PREFIX = {"incident": "INC", "sn_customerservice_case": "CS"}


def failure(status: int, message: str, detail: str | None, headers: Mapping[str, str] | None = None) -> Response:
    """ServiceNow's error shape: ``{"error": {"message", "detail"}, "status": "failure"}``."""
    body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return json_response(body, status, headers=dict(headers or {}))


class ServiceNowError(Exception):
    def __init__(self, status: int, message: str, detail: str | None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, dict(headers or {})

    def response(self) -> Response:
        return failure(self.status, self.message, self.detail, self.headers)


def _now_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _not_found() -> ServiceNowError:
    return ServiceNowError(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")


class ServiceNowSimulator(Simulator):
    """A ServiceNow instance's record surface for a help desk: incidents and cases, users, groups, journal."""

    name = "servicenow"
    TICKET_NOUN = "record"
    TRANSIENT_STATUS: ClassVar[int] = 429
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", r"^/api/now/table/(incident|sn_customerservice_case)/[^/]+$"),
        "write_back": ("PATCH", r"^/api/now/table/(incident|sn_customerservice_case)/[^/]+$"),
        "public_reply": ("PATCH", r"^/api/now/table/(incident|sn_customerservice_case)/[^/]+$"),
        "has_update": ("GET", r"^/api/now/table/sys_journal_field$"),
    }

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        clients: Mapping[str, str] | None = None,
        client_credentials_user: str = DEFAULT_USERNAME,
        client_credentials_enabled: bool = True,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        delivery_auth: str = "header",
        token_lifespan_seconds: int = TOKEN_LIFESPAN_SECONDS,
        requests_per_hour: int | None = None,
        journal_rows_visible: bool = True,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``users``: user name -> password (Basic and the password grant); ``clients``: OAuth client id -> secret,
        whose client-credentials tokens act as ``client_credentials_user`` (the OAuth Application User);
        ``delivery_auth``: ``header`` (X-Refundflow-Secret) or ``basic``; ``requests_per_hour``: a rate limit rule
        for every user (None: no rule); ``journal_rows_visible`` false: the acting user's read ACLs filter every
        ``sys_journal_field`` row out of lists (an empty result, as ServiceNow answers, not an error)."""
        if delivery_auth not in {"header", "basic"}:
            raise ValueError("delivery_auth is header or basic")
        self.users = dict(users if users is not None else {DEFAULT_USERNAME: DEFAULT_PASSWORD})
        self.clients = dict(clients if clients is not None else {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET})
        self.client_credentials_user = client_credentials_user
        self.client_credentials_enabled = client_credentials_enabled
        self.webhook_secret = webhook_secret
        self.delivery_auth = delivery_auth
        self.token_lifespan_seconds = token_lifespan_seconds
        self.requests_per_hour = requests_per_hour
        self.journal_rows_visible = journal_rows_visible
        self._now = now
        self.records: dict[str, dict[str, dict[str, Any]]] = {table: {} for table in RECORD_TABLES}
        self.people: dict[str, dict[str, Any]] = {}
        self.journal: list[dict[str, Any]] = []
        self.tokens: dict[str, tuple[str, float]] = {}
        self.tokens_issued = 0
        self.ignored_fields: list[str] = []
        self._counts: dict[str, tuple[int, int]] = {}
        self._numbers = itertools.count(10001)
        self._sequence = itertools.count(1)
        super().__init__()
        self.reset_state()
        self.route("/oauth_token.do", self._token, methods=["POST"])
        self.route("/api/now/table/<table>", self._api(self._list), methods=["GET"])
        self.route("/api/now/table/<table>/<sys_id>", self._api(self._get), methods=["GET"])
        self.route("/api/now/table/<table>/<sys_id>", self._api(self._update), methods=["PATCH", "PUT"])
        self.route_ticket_controls()
        self.route("/_control/tokens/expire", self._control_expire, methods=["POST"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])

    def reset_state(self) -> None:
        with self.lock:
            for table in RECORD_TABLES:
                self.records[table] = {}
            self.people = {
                sys_id: {
                    "sys_id": sys_id,
                    "name": agent["name"],
                    "email": agent["email"],
                    "user_name": agent["email"].split("@")[0],
                }
                for sys_id, agent in AGENTS.items()
            }
            self.journal = []
            self.tokens = {}
            self.tokens_issued = 0
            self.ignored_fields = []
            self._counts = {}

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """ServiceNow signs nothing: the REST message sends the shared secret in a header, or as HTTP Basic."""
        if self.delivery_auth == "basic":
            credentials = base64.b64encode(f"{DELIVERY_USER}:{secret}".encode()).decode()
            return {"Authorization": f"Basic {credentials}"}
        return {SECRET_HEADER: secret}

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure in ServiceNow's shape; a 429 always carries ``Retry-After``."""
        status = fault.status or 500
        headers = dict(fault.headers)
        if status == 429:
            headers.setdefault("Retry-After", str(FAULT_RETRY_AFTER_SECONDS))
            return failure(status, "Rate limit exceeded", "Too many requests for this user", headers)
        if fault.body is not None:
            return json_response(fault.body, status, headers=headers)
        return failure(status, "Internal server error", None, headers)

    def not_found(self, request: Request) -> Response:
        if request.path.startswith("/_control"):
            return super().not_found(request)
        return failure(400, "Requested URI does not represent any resource", None)

    # ---------------------------------------------------------------- TicketSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's OAuth client (client credentials); intake's shared secret (the REST message's header)."""
        client_id = next(iter(sorted(self.clients)))
        return {
            "api": {"client_id": client_id, "client_secret": self.clients[client_id]},
            "verification": {"shared_secrets": [self.webhook_secret]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where the flow's REST message goes (the stack's ``{api}/webhooks/servicenow``)."""
        self.webhooks.configure(url, self.webhook_secret)

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """A new record (``table``: ``incident``, the default, or ``sn_customerservice_case``) of category refund from
        a caller (a case's contact), assigned to the agent and group of ``approver_role`` (team lead, agent, or the
        unmapped Billing group for None), with the refund's fields set as the default mapping reads them; its refund
        action is not set yet (``agent_action`` sets it). Nothing is sent. Returns the sys_id.

        Raises:
            ValueError: no payment_provider or payment_id, an unknown approver role or table.
        """
        if not request.get("payment_provider") or not request.get("payment_id"):
            raise ValueError("payment_provider and payment_id are required")
        role = request.get("approver_role")
        if role not in AGENT_FOR_ROLE:
            raise ValueError(f"unknown approver_role {role!r}")
        table = str(request.get("table") or "incident")
        if table not in RECORD_TABLES:
            raise ValueError(f"unknown table {table!r}")
        agent_id = AGENT_FOR_ROLE[role]
        now = _now_text(self._now())
        with self.lock:
            caller_id = uuid.uuid4().hex
            self.people[caller_id] = {
                "sys_id": caller_id,
                "name": str(request.get("customer_name") or "Ada Lovelace"),
                "email": str(request.get("customer_email") or f"caller-{caller_id[:8]}@example.com"),
                "user_name": f"caller.{caller_id[:8]}",
            }
            sys_id = uuid.uuid4().hex
            record: dict[str, Any] = dict.fromkeys(COLUMNS[table], "")
            record.update(
                {
                    "sys_id": sys_id,
                    "number": f"{NUMBER_PREFIX[table]}{next(self._numbers):07d}",
                    "short_description": str(request.get("subject") or "Refund request"),
                    "description": str(request.get("description") or "I would like a refund, please."),
                    "state": "1",
                    "active": "true",
                    "priority": "4",
                    "category": "refund",
                    "assigned_to": agent_id,
                    "assignment_group": AGENTS[agent_id]["group"],
                    "opened_at": now,
                    "sys_created_on": now,
                    "sys_created_by": "admin",
                    "sys_updated_on": now,
                    "sys_updated_by": "admin",
                    "sys_mod_count": "0",
                    ("caller_id" if table == "incident" else "contact"): caller_id,
                }
            )
            for key, field in SEEDED_FIELDS.items():
                if request.get(key) not in (None, ""):
                    record[field] = str(request[key])
            self.records[table][sys_id] = record
        return sys_id

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """The agent sets the record's Refund action (``approve`` approved, ``request`` requested, ``withdraw``
        cancelled); the flow on "Refund action changes" then sends the REST message.

        Raises:
            KeyError: no such record. ValueError: an unknown intent.
        """
        if intent not in ACTIONS:
            raise ValueError(f"unknown intent {intent!r}")
        with self.lock:
            table, record = self._record(ticket_id)
            record[ACTION_FIELD] = ACTIONS[intent]
            self._touch(record, "tess.lead")
            shown = copy.deepcopy(record)
        self._send_rest_message(table, shown)

    def _send_rest_message(self, table: str, record: Mapping[str, Any]) -> None:
        """The flow's REST step: what the README's setup sends when the Refund action changes."""
        body = {
            "table": table,
            "sys_id": record["sys_id"],
            "number": record["number"],
            "sys_mod_count": record["sys_mod_count"],
            "sys_updated_on": record["sys_updated_on"],
            ACTION_FIELD: record[ACTION_FIELD],
        }
        event_id = f"{record['sys_id']}:{record['sys_mod_count']}"
        self.webhooks.send(event_id, "record_updated", json.dumps(body).encode())

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        """``{"notes": [work notes], "public": [additional comments], "labels": [u_refund_status, if set],
        "ticket": <the record as stored>}``.

        Raises:
            KeyError: no such record.
        """
        with self.lock:
            _, record = self._record(ticket_id)
            rows = [row for row in self.journal if row["element_id"] == record["sys_id"]]
            status = record.get(STATUS_FIELD)
            return {
                "notes": [row["value"] for row in rows if row["element"] == "work_notes"],
                "public": [row["value"] for row in rows if row["element"] == "comments"],
                "labels": [status] if status else [],
                "ticket": copy.deepcopy(record),
            }

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (as its lifespan running out would)."""
        with self.lock:
            self.tokens = {token: (user, 0.0) for token, (user, _) in self.tokens.items()}

    def _record(self, sys_id: str) -> tuple[str, dict[str, Any]]:
        """Raises: KeyError: no such record in any record table."""
        for table in RECORD_TABLES:
            if sys_id in self.records[table]:
                return table, self.records[table][sys_id]
        raise KeyError(f"no record {sys_id}")

    def _touch(self, record: dict[str, Any], user: str) -> None:
        record["sys_updated_on"] = _now_text(self._now())
        record["sys_updated_by"] = user
        record["sys_mod_count"] = str(int(record["sys_mod_count"]) + 1)

    # ---------------------------------------------------------------- request plumbing

    def _authenticate(self, request: Request) -> str:
        """The user the request acts as. Raises: ServiceNowError 401."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        user: str | None = None
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(credential.strip(), validate=True).decode().partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                name, password = "", ""
            if name in self.users and secrets.compare_digest(self.users[name], password):
                user = name
        elif scheme.lower() == "bearer":
            with self.lock:
                issued = self.tokens.get(credential.strip())
            if issued is not None and self._now() < issued[1]:
                user = issued[0]
        if user is None:
            raise ServiceNowError(401, "User Not Authenticated", "Required to provide Auth information")
        return user

    def _count(self, user: str) -> dict[str, str]:
        """The user's hour under the rate limit rule; its headers, or a 429 past the limit."""
        if self.requests_per_hour is None:
            return {}
        now = self._now()
        hour = int(now // 3600)
        reset = (hour + 1) * 3600
        headers = {
            "X-RateLimit-Limit": str(self.requests_per_hour),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Rule": RATE_LIMIT_RULE,
        }
        with self.lock:
            window, used = self._counts.get(user, (hour, 0))
            if window != hour:
                used = 0
            if used >= self.requests_per_hour:
                self._counts[user] = (hour, used)
                retry_after = max(1, math.ceil(reset - now))
                raise ServiceNowError(
                    429,
                    "Rate limit exceeded",
                    f"The rate limit rule allows {self.requests_per_hour} requests per hour for this user",
                    {**headers, "Retry-After": str(retry_after)},
                )
            self._counts[user] = (hour, used + 1)
        return headers

    def _api(self, handler: Callable[..., tuple[int, Any]]) -> Callable[..., Response]:
        def endpoint(request: Request, **arguments: Any) -> Response:
            try:
                user = self._authenticate(request)
                limits = self._count(user)
                if arguments.get("table") not in TABLES:
                    raise ServiceNowError(400, f"Invalid table {arguments.get('table')}", None)
                status, body = handler(request, user=user, **arguments)
            except ServiceNowError as error:
                return error.response()
            return json_response(body, status, headers=limits)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _shown(self, request: Request, table: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """A record as the Table API answers it: the asked-for fields, references as links unless excluded, and with
        ``sysparm_display_value`` ``true`` (display values) or ``all`` (``{"display_value", "value"}``): a reference
        shows its record's name, a journal field every entry of the record, newest first."""
        fields = [name for name in request.args.get("sysparm_fields", "").split(",") if name]
        exclude_links = request.args.get("sysparm_exclude_reference_link", "false").lower() == "true"
        display = request.args.get("sysparm_display_value", "false").lower()
        base = request.host_url.rstrip("/") + request.script_root
        shown: dict[str, Any] = {}
        for name, value in record.items():
            if fields and name not in fields:
                continue
            target = REFERENCES.get(name)
            link = f"{base}/api/now/table/{target}/{value}" if target and value and not exclude_links else None
            if display in {"true", "all"}:
                text = self._display_value(table, record, name, value)
                if display == "true":
                    shown[name] = text
                else:
                    shown[name] = {"display_value": text, "value": value, **({"link": link} if link else {})}
            elif link is not None:
                shown[name] = {"link": link, "value": value}
            else:
                shown[name] = copy.deepcopy(value)
        return shown

    def _display_value(self, table: str, record: Mapping[str, Any], name: str, value: Any) -> Any:
        if table in RECORD_TABLES and name in JOURNAL_FIELDS:
            label = "Work notes" if name == "work_notes" else "Additional comments"
            rows = [row for row in self.journal if row["element_id"] == record["sys_id"] and row["element"] == name]
            rows.sort(key=lambda row: (row["sys_created_on"], row["_sequence"]), reverse=True)
            return "".join(
                f"{row['sys_created_on']} - {row['sys_created_by']} ({label})\n{row['value']}\n\n" for row in rows
            )
        target = REFERENCES.get(name)
        if target == "sys_user" and value:
            return str(self.people.get(value, {}).get("name", ""))
        if target == "sys_user_group" and value:
            return GROUPS.get(value, "")
        return copy.deepcopy(value)

    # ---------------------------------------------------------------- the API

    def _token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        denied = json_response({"error_description": "access_denied", "error": "server_error"}, 401)
        known_client = client_id in self.clients and secrets.compare_digest(self.clients[client_id], client_secret)
        if not known_client:
            return denied
        if grant == "client_credentials" and self.client_credentials_enabled:
            user = self.client_credentials_user
        elif grant == "password":
            name, password = form.get("username", ""), form.get("password", "")
            if name not in self.users or not secrets.compare_digest(self.users[name], password):
                return denied
            user = name
        else:
            return denied
        token = secrets.token_urlsafe(48)
        with self.lock:
            self.tokens[token] = (user, self._now() + self.token_lifespan_seconds)
            self.tokens_issued += 1
        body: dict[str, Any] = {
            "access_token": token,
            "scope": "useraccount",
            "token_type": "Bearer",
            "expires_in": self.token_lifespan_seconds,
        }
        if grant == "password":
            body["refresh_token"] = secrets.token_urlsafe(48)
        return json_response(body)

    def _get(self, request: Request, *, user: str, table: str, sys_id: str) -> tuple[int, Any]:
        with self.lock:
            if table == "sys_user":
                person = self.people.get(sys_id)
                if person is None:
                    raise _not_found()
                return 200, {"result": self._shown(request, table, person)}
            if table == "sys_user_group":
                if sys_id not in GROUPS:
                    raise _not_found()
                return 200, {"result": self._shown(request, table, {"sys_id": sys_id, "name": GROUPS[sys_id]})}
            if table == "sys_journal_field":
                row = next((row for row in self.journal if row["sys_id"] == sys_id), None)
                if row is None:
                    raise _not_found()
                return 200, {"result": self._shown(request, table, row)}
            record = self.records[table].get(sys_id)
            if record is None:
                raise _not_found()
            return 200, {"result": self._shown(request, table, record)}

    def _update(self, request: Request, *, user: str, table: str, sys_id: str) -> tuple[int, Any]:
        if table not in RECORD_TABLES:
            raise ServiceNowError(403, "Operation Failed", "ACL restricts the update of this table")
        if request.mimetype != "application/json":
            raise ServiceNowError(415, "Unsupported Media Type", f"{request.mimetype or 'no media type'} is not JSON")
        try:
            payload = json.loads(request.get_data().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            raise ServiceNowError(400, "Exception while reading request", "The payload is not valid JSON.")
        with self.lock:
            record = self.records[table].get(sys_id)
            if record is None:
                raise _not_found()
            action = record.get(ACTION_FIELD)
            for name, value in payload.items():
                if name not in COLUMNS[table] or name in READ_ONLY:
                    self.ignored_fields.append(name)
                    continue
                text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
                if name in JOURNAL_FIELDS:
                    if text:
                        self._journal(table, sys_id, name, text, user)
                    continue
                record[name] = text
            self._touch(record, user)
            shown = copy.deepcopy(record)
            answer = self._shown(request, table, record)
        if shown.get(ACTION_FIELD) != action:
            self._send_rest_message(table, shown)  # the flow runs for an API update as for one in the form
        return 200, {"result": answer}

    def _journal(self, table: str, sys_id: str, element: str, value: str, user: str) -> None:
        self.journal.append(
            {
                "sys_id": uuid.uuid4().hex,
                "element_id": sys_id,
                "element": element,
                "name": table,
                "value": value,
                "sys_created_on": _now_text(self._now()),
                "sys_created_by": user,
                "_sequence": next(self._sequence),
            }
        )

    def _list(self, request: Request, *, user: str, table: str) -> tuple[int, Any]:
        if table != "sys_journal_field":
            raise ServiceNowError(403, "Operation Failed", "This simulator lists only sys_journal_field")
        try:
            limit = int(request.args.get("sysparm_limit", "10000"))
            offset = int(request.args.get("sysparm_offset", "0"))
        except ValueError as error:
            raise ServiceNowError(400, "Invalid parameter", "sysparm_limit and sysparm_offset are numbers") from error
        if limit < 1 or offset < 0:
            raise ServiceNowError(
                400, "Invalid parameter", "sysparm_limit must be positive, sysparm_offset not negative"
            )
        conditions: list[tuple[str, str]] = []
        order: tuple[str, bool] | None = None
        for part in request.args.get("sysparm_query", "").split("^"):
            if part.startswith("ORDERBYDESC"):
                order = (part[len("ORDERBYDESC") :], True)
            elif part.startswith("ORDERBY"):
                order = (part[len("ORDERBY") :], False)
            elif "=" in part and not part.startswith(("!", "=")):
                name, _, value = part.partition("=")
                if name.isidentifier():
                    conditions.append((name, value))  # an unknown column matches nothing, as in ServiceNow
        with self.lock:
            visible = self.journal if self.journal_rows_visible else []
            rows = [row for row in visible if all(str(row.get(name)) == value for name, value in conditions)]
            if order is not None:
                column, descending = order
                rows.sort(key=lambda row: (str(row.get(column, "")), row["_sequence"]), reverse=descending)
            page = rows[offset : offset + limit]
            result = [
                self._shown(request, table, {k: v for k, v in row.items() if not k.startswith("_")}) for row in page
            ]
        return 200, {"result": result}

    # ---------------------------------------------------------------- control routes

    def _control_expire(self, request: Request) -> Response:
        self.expire_tokens()
        return json_response({"expired": True})

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {
                    "records": copy.deepcopy(self.records),
                    "users": list(copy.deepcopy(self.people).values()),
                    "groups": [{"sys_id": key, "name": value} for key, value in GROUPS.items()],
                    "journal": [{k: v for k, v in row.items() if not k.startswith("_")} for row in self.journal],
                }
            )


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks: importing the
    simulator stays light (the scenarios need the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("servicenow")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
