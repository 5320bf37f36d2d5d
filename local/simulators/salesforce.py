"""A stateful Salesforce Service Cloud org for the case calls refundflow makes, on Salesforce's own REST API paths.

Mounted by the local stack at ``/_sandbox/salesforce``; that address stands for the org's My Domain
(``https://<domain>.my.salesforce.com``), which serves both the token endpoint and the REST API. What it holds to, as
Salesforce documents it (developer.salesforce.com REST API Developer Guide: "Status Codes and Error Responses",
"Update a Record", "Execute a SOQL Query", "Composite"; Salesforce Help: "OAuth 2.0 Client Credentials Flow for
Server-to-Server Integration", "HTTP Callout Authentication Guidelines"). Salesforce publishes no OpenAPI file of
the REST API (only a Postman collection, forcedotcom/postman-salesforce-apis), so requests are held to the
documented resources and the Case / CaseComment / Contact fields the org has:

- ``POST /services/oauth2/token`` (form) ``grant_type=client_credentials``, ``client_id``, ``client_secret``: 200
  ``{access_token, signature, instance_url, id, token_type: "Bearer", issued_at, scope}``, no ``expires_in``; a
  token lives ``session_seconds`` (the org's session timeout). An unknown client is a 400 ``{"error":
  "invalid_client", "error_description": "invalid client credentials"}``, another grant a 400
  ``unsupported_grant_type``;
- every API call needs ``Authorization: Bearer <token>``: missing, unknown, expired or revoked is a 401
  ``[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]``; a version outside 31.0 to
  MAX_API_VERSION, or a resource the org lacks, is a 404 ``NOT_FOUND``;
- ``GET .../sobjects/Case/{id}`` (optional ``fields``): every field of the case with ``attributes``; ``PATCH`` the
  same: 204; an unknown field is a 400 ``INVALID_FIELD`` ("No such column..."), a read-only one
  ``INVALID_FIELD_FOR_INSERT_UPDATE``, a value not in a restricted picklist ``INVALID_OR_NULL_FOR_RESTRICTED_
  PICKLIST``; ``GET .../sobjects/Contact/{id}``;
- ``POST .../sobjects/CaseComment`` ``{ParentId, CommentBody, IsPublished}``: 201 ``{id, success, errors}``; a
  ParentId that is not a case is a 400 ``INVALID_CROSS_REFERENCE_KEY``, a comment over 4,000 characters
  ``STRING_TOO_LONG``;
- ``GET .../query?q=`` for ``SELECT <CaseComment fields> FROM CaseComment WHERE ParentId = '<id>' [ORDER BY
  CreatedDate [ASC]]`` (the one query refundflow makes; any other is a 400 ``MALFORMED_QUERY``): ``{totalSize, done,
  records, nextRecordsUrl}``, ``query_batch_size`` records a page, ``GET .../query/{locator}`` for the next;
- ``POST .../composite`` ``{allOrNone, compositeRequest: [{method, url, referenceId, body}]}`` (at most 25): 200
  ``{compositeResponse: [{body, httpHeaders, httpStatusCode, referenceId}]}``; with allOrNone a failed subrequest
  rolls the others back and they answer 400 ``PROCESSING_HALTED``; the whole call counts once against the limit;
- a malformed id in a path is a 404 ``NOT_FOUND`` (a 15-character id is accepted, as Salesforce does); a write whose
  body is not JSON is a 400 ``JSON_PARSER_ERROR``;
- the org's API allowance (``api_requests_per_day``, counted from the last reset): every answer carries
  ``Sforce-Limit-Info: api-usage=<used>/<allowance>``; past it a 403 ``REQUEST_LIMIT_EXCEEDED`` ("TotalRequests
  Limit exceeded."), with no Retry-After (Salesforce documents none); ``transient`` faults answer that 403;
- deliveries: the record-triggered Flow's HTTP Callout, as the README's setup makes it: a JSON ``POST`` through
  the Named Credential, whose External Credential adds ``X-Refundflow-Secret``, with the body ``{"caseId",
  "organizationId", "refundAction", "lastModifiedDate"}``; Salesforce signs nothing. Or, with ``trigger``
  ``outbound_message``, an Outbound Message on Case (SOAP API Developer Guide, "Understanding Notifications",
  "Understanding the Outbound Messaging WSDL"): a SOAP 1.1 ``notifications`` message (``text/xml; charset=utf-8``,
  no custom header) to the endpoint URL with the org's ``?token=``, one ``Notification`` (a new 18-character ``04l``
  id) whose ``sf:Case`` carries Id, LastModifiedDate and the Refund action; an answer other than the SOAP
  ``<Ack>true</Ack>`` is not delivered and is sent again.

What the agent does (``agent_action``): sets the case's ``Refund_Action__c`` picklist (``Requested``, ``Approved``,
``Cancelled``), as that agent (``LastModifiedById``); the Flow ("Refund action is changed") calls out. An API update
that changes that field calls out too; refundflow's write-backs change only ``Refund_Status__c`` and add comments.

Control routes, besides the base ones (see :mod:`local.simulators.base`): ``POST /_control/tickets`` (a
``seed_ticket`` request): ``{"id"}``; ``POST /_control/tickets/{id}/agent-action`` ``{"intent"}``;
``GET /_control/tickets/{id}/view``; ``POST /_control/revoke-tokens``; ``GET /_control/objects``;
``POST /_control/trigger`` ``{"trigger": "callout" | "outbound_message"}`` (how the org calls us from now on).

Not modelled: other objects and queries, sharing rules and field-level security, record locking
(``UNABLE_TO_LOCK_ROW``), the concurrent long-request limit, several notifications in one Outbound Message (one
case change is one message here), Outbound Message retries over 24 hours, and Platform Events.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import string
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import requests
from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, json_response

DEFAULT_CLIENT_ID = "3MVG9RfSimSalesforceConsumerKey0001"
DEFAULT_CLIENT_SECRET = "RfSimSalesforceConsumerSecret000000000001"
DEFAULT_WEBHOOK_SECRET = "salesforce-simulator-callout-secret-000000001"
DEFAULT_OUTBOUND_TOKEN = "salesforce-simulator-outbound-token-00000001"
TRIGGERS = ("callout", "outbound_message")
OUTBOUND_NAMESPACE = "http://soap.sforce.com/2005/09/outbound"
SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_ACTION_ID = "04k5e000000RfOmAAK"  # the Outbound Message's (workflow action's) id
SECRET_HEADER = "X-Refundflow-Secret"
ORGANIZATION_ID = "00D5e000000RfSiEAK"
INTEGRATION_USER = "0055e000003RfInAAK"
MIN_API_VERSION, MAX_API_VERSION = 31.0, 68.0
DEFAULT_SESSION_SECONDS = 7200
DEFAULT_BATCH_SIZE = 2000
MAX_SUBREQUESTS = 25
MAX_COMMENT_LENGTH = 4000
DEVELOPER_EDITION_DAILY = 15_000
DATA = re.compile(r"^/services/data/v(?P<version>[0-9]{2}\.[0-9])(?P<rest>/.*)?$")
ID = r"(?P<id>[^/]+)"
CASE_FIELDS_READ_ONLY = frozenset(
    {
        "Id",
        "CaseNumber",
        "IsClosed",
        "IsDeleted",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
        "ContactEmail",
    }
)
# The org's queues (the default mapping's roles name the first two) and users: an agent acts as the user for its
# role, and each case is owned by that role's queue.
TEAM_LEAD_QUEUE, AGENT_QUEUE, BILLING_QUEUE = "00G5e000001RfLdEAK", "00G5e000001RfAgEAK", "00G5e000001RfBiEAK"
USER_FOR_ROLE = {"team_lead": "0055e000003RfLdAAK", "agent": "0055e000003RfAgAAK", None: "0055e000003RfBiAAK"}
QUEUE_FOR_ROLE = {"team_lead": TEAM_LEAD_QUEUE, "agent": AGENT_QUEUE, None: BILLING_QUEUE}
ACTION_FIELD = "Refund_Action__c"
STATUS_FIELD = "Refund_Status__c"
ACTIONS = {"request": "Requested", "approve": "Approved", "withdraw": "Cancelled"}
# Restricted picklists: their values; None: a text field.
CASE_CUSTOM_FIELDS: dict[str, tuple[str, ...] | None] = {
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
    "Payment_Provider__c": None,
    "Payment_Id__c": None,
    "Refund_Reason__c": None,
    "Order_Id__c": None,
    "Invoice_System__c": None,
    "Invoice_Id__c": None,
    "Refund_Amount__c": None,
    "Refund_Currency__c": None,
}
CASE_STATUSES = ("New", "Working", "Escalated", "Closed")
CASE_UPDATABLE = frozenset(
    {"Subject", "Description", "Status", "Priority", "Origin", "OwnerId", "ContactId", "SuppliedEmail", "SuppliedName"}
) | frozenset(CASE_CUSTOM_FIELDS)
COMMENT_FIELDS = frozenset({"Id", "ParentId", "CommentBody", "IsPublished", "CreatedDate", "CreatedById", "IsDeleted"})
COMMENT_WRITABLE = frozenset({"ParentId", "CommentBody", "IsPublished"})
SEEDED_FIELDS = {
    "payment_provider": "Payment_Provider__c",
    "payment_id": "Payment_Id__c",
    "reason": "Refund_Reason__c",
    "order_id": "Order_Id__c",
    "invoice_system": "Invoice_System__c",
    "invoice_id": "Invoice_Id__c",
    "amount": "Refund_Amount__c",
    "currency": "Refund_Currency__c",
}
COMMENT_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>[A-Za-z, ]+?)\s+FROM\s+CaseComment\s+WHERE\s+ParentId\s*=\s*"
    r"'(?P<literal>(?:[^'\\]|\\.)*)'(?:\s+ORDER\s+BY\s+CreatedDate(?:\s+ASC)?)?\s*$",
    re.IGNORECASE,
)
NOT_FOUND_MESSAGE = "The requested resource does not exist"
HALTED = {
    "errorCode": "PROCESSING_HALTED",
    "message": "The transaction was rolled back since another operation in the same transaction failed.",
}
_FAULT_BODIES = {
    403: [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    500: [
        {
            "message": "An unexpected error occurred. Please include this ErrorId if you contact support: "
            "1736428590-12345 (-1122334455)",
            "errorCode": "UNKNOWN_EXCEPTION",
        }
    ],
    503: [{"message": "Server Unavailable", "errorCode": "SERVER_UNAVAILABLE"}],
}


class SalesforceError(Exception):
    """An answer in Salesforce's error shape: ``[{"message", "errorCode", "fields"?}]``."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: list[dict[str, Any]] = [
            {"message": message, "errorCode": code, **({"fields": fields} if fields is not None else {})}
        ]


def _not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


def checksum(id15: str) -> str:
    """The three characters that make a 15-character id 18 (CASESAFEID): per block of five, a bit for each upper-case
    letter, read as an index into A-Z0-5. Written here apart from the connector's, so each checks the other."""
    alphabet = string.ascii_uppercase + "012345"
    blocks = (id15[start : start + 5] for start in (0, 5, 10))
    return "".join(
        alphabet[sum(2**i for i, char in enumerate(block) if char.isascii() and char.isupper())] for block in blocks
    )


def record_id18(value: str, prefix: str | None = None) -> str | None:
    """An id of 15 or 18 ASCII letters and digits (18: its checksum right), with ``prefix``, as 18; or None."""
    if not isinstance(value, str) or len(value) not in (15, 18) or not (value.isascii() and value.isalnum()):
        return None
    if prefix is not None and not value.startswith(prefix):
        return None
    full = value[:15] + checksum(value[:15])
    return full if len(value) == 15 or value == full else None


def _timestamp(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _soql_unescape(literal: str) -> str:
    escapes = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
    return re.sub(r"\\(.)", lambda match: escapes.get(match.group(1), match.group(0)), literal)


class SalesforceSimulator(Simulator):
    """One Salesforce org's Service Cloud surface: cases, contacts, queues, users, case comments, custom fields."""

    name = "salesforce"
    TICKET_NOUN = "case"
    TRANSIENT_STATUS: ClassVar[int] = 403  # REQUEST_LIMIT_EXCEEDED: Salesforce's API limit answer
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", r"^/services/data/v[0-9.]+/sobjects/Case/[A-Za-z0-9]+$"),
        # The write-back is one composite call (the status field and the comment carrying the marker, all or none).
        "write_back": ("POST", r"^/services/data/v[0-9.]+/composite$"),
        "public_reply": ("POST", r"^/services/data/v[0-9.]+/composite$"),
        "has_update": ("GET", r"^/services/data/v[0-9.]+/query(/.*)?$"),
    }

    def __init__(
        self,
        clients: Mapping[str, str] | None = None,
        *,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        outbound_token: str = DEFAULT_OUTBOUND_TOKEN,
        trigger: str = "callout",
        session_seconds: float = DEFAULT_SESSION_SECONDS,
        api_requests_per_day: int = DEVELOPER_EDITION_DAILY,
        query_batch_size: int = DEFAULT_BATCH_SIZE,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``clients``: consumer key -> consumer secret of the external client apps allowed the client credentials
        flow (the default app when None). ``trigger``: ``callout`` (the Flow's HTTP Callout) or ``outbound_message``
        (an Outbound Message to the endpoint URL carrying ``outbound_token``)."""
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}")
        self.clients = dict(clients or {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET})
        self.webhook_secret = webhook_secret
        self.outbound_token = outbound_token
        self.initial_trigger = self.trigger = trigger
        self.webhook_url: str | None = None
        self.session_seconds = session_seconds
        self.api_requests_per_day = api_requests_per_day
        self.query_batch_size = query_batch_size
        self._now = now
        self.tokens: dict[str, float] = {}  # access token -> when it expires
        self.token_requests = 0
        self.api_calls = 0
        self.cases: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}  # case id -> its comments, oldest first
        self.cursors: dict[str, tuple[str, int, list[str]]] = {}  # query locator -> (case id, offset, fields)
        # Record numbers go on from where a former run's could have stopped (a stack's store may outlive its sandbox).
        self._numbers = itertools.count(int(now()) % 1_000_000 * 1_000 + 1)
        super().__init__()
        self.route("/services/oauth2/token", self._token, methods=["POST"])
        self.route("/services/data/<path:rest>", self._data, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
        self.route_ticket_controls()
        self.route("/_control/revoke-tokens", self._control_revoke, methods=["POST"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])
        self.route("/_control/trigger", self._control_trigger, methods=["POST"])
        _ = self.url_map  # bind the routes now: two first requests at once race on the lazy Map

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.tokens.clear()
            self.cases.clear()
            self.contacts.clear()
            self.comments.clear()
            self.cursors.clear()
            self.api_calls = 0
            self.token_requests = 0
        self.use_trigger(self.initial_trigger)

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """Salesforce signs nothing: the External Credential's custom header carries the org's shared secret. An
        Outbound Message (a SOAP body) carries no header of ours: its token is in the endpoint URL."""
        if body.startswith(b"<?xml"):
            return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        return {SECRET_HEADER: secret}

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure in Salesforce's shape (a 403 is the org's API limit, without Retry-After)."""
        status = fault.status or 500
        body = fault.body if fault.body is not None else _FAULT_BODIES.get(status, _FAULT_BODIES[500])
        return json_response(body, status, headers=dict(fault.headers))

    def not_found(self, request: Request) -> Response:
        if request.path.startswith("/_control"):
            return super().not_found(request)
        return json_response(_not_found().body, 404)

    # ---------------------------------------------------------------- TicketSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's external client app credentials; intake's shared secret and the org's id."""
        client_id = next(iter(sorted(self.clients)))
        return {
            "api": {"client_id": client_id, "client_secret": self.clients[client_id]},
            "verification": {
                "shared_secrets": [self.webhook_secret],
                "organization_id": ORGANIZATION_ID,
                "outbound_message_tokens": [self.outbound_token],
            },
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where the Flow's HTTP Callout goes (the stack's ``{api}/webhooks/salesforce``); an Outbound Message goes
        to the same URL with the org's ``?token=``, as the admin enters it."""
        self.webhook_url = url
        self.use_trigger(self.trigger)

    def use_trigger(self, trigger: str) -> None:
        """How the org calls us from now on: ``callout`` or ``outbound_message``.

        Raises:
            ValueError: another trigger.
        """
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}")
        self.trigger = trigger
        url = self.webhook_url
        if url and trigger == "outbound_message":
            url = f"{url}{'&' if '?' in url else '?'}{urlencode({'token': self.outbound_token})}"
        self.webhooks.configure(url, self.webhook_secret)

    def _new_id(self, prefix: str) -> str:
        id15 = f"{prefix}5e{next(self._numbers):010d}"
        return id15 + checksum(id15)

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """A new case from a contact, owned by the queue of ``approver_role`` (team lead, agent, or the unmapped
        Billing queue for None), with the refund's fields set as the default mapping reads them; its Refund action
        is not set yet (``agent_action`` sets it). Nothing is sent. Returns the 18-character case id.

        Raises:
            ValueError: no payment_provider or payment_id, or an approver role the org does not know.
        """
        if not request.get("payment_provider") or not request.get("payment_id"):
            raise ValueError("payment_provider and payment_id are required")
        role = request.get("approver_role")
        if role not in QUEUE_FOR_ROLE:
            raise ValueError(f"unknown approver_role {role!r}")
        now = _timestamp(self._now())
        with self.lock:
            contact_id = self._new_id("003")
            email = str(request.get("customer_email") or f"customer{contact_id[-6:]}@example.com")
            self.contacts[contact_id] = {
                "attributes": {"type": "Contact"},
                "Id": contact_id,
                "Name": str(request.get("customer_name") or "Ada Lovelace"),
                "Email": email,
            }
            case_id = self._new_id("500")
            fields: dict[str, Any] = dict.fromkeys(CASE_CUSTOM_FIELDS)
            for key, field in SEEDED_FIELDS.items():
                if request.get(key) not in (None, ""):
                    fields[field] = str(request[key])
            self.cases[case_id] = {
                "Id": case_id,
                "IsDeleted": False,
                "CaseNumber": f"{len(self.cases) + 1:08d}",
                "ContactId": contact_id,
                "AccountId": None,
                "SuppliedName": None,
                "SuppliedEmail": None,
                "ContactEmail": email,
                "Type": "Refund",
                "Status": "New",
                "Origin": "Email",
                "Subject": str(request.get("subject") or "Refund request"),
                "Priority": "Medium",
                "Description": str(request.get("description") or "I would like a refund, please."),
                "IsClosed": False,
                "OwnerId": QUEUE_FOR_ROLE[role],
                "CreatedDate": now,
                "CreatedById": INTEGRATION_USER,
                "LastModifiedDate": now,
                "LastModifiedById": USER_FOR_ROLE[role],
                "SystemModstamp": now,
                **fields,
            }
            self.comments[case_id] = []
        return case_id

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """The case's owner-queue's agent sets its Refund action (``approve`` Approved, ``request`` Requested,
        ``withdraw`` Cancelled); the record-triggered Flow on that change makes its HTTP Callout.

        Raises:
            KeyError: no such case. ValueError: an unknown intent.
        """
        if intent not in ACTIONS:
            raise ValueError(f"unknown intent {intent!r}")
        with self.lock:
            case = self._case(ticket_id)
            role = next((key for key, queue in QUEUE_FOR_ROLE.items() if queue == case["OwnerId"]), None)
            case[ACTION_FIELD] = ACTIONS[intent]
            self._touch(case, USER_FOR_ROLE[role])
            shown = copy.deepcopy(case)
        self._call_out(shown)

    def _call_out(self, case: Mapping[str, Any]) -> None:
        """The Flow's HTTP Callout, as the README's setup makes it (or the Outbound Message, by ``trigger``)."""
        if self.trigger == "outbound_message":
            notification_id = self._new_id("04l")
            body = outbound_message(notification_id, case)
            self.webhooks.send(notification_id, "outbound_message", body, accept=acknowledged)
            return
        body = json.dumps(
            {
                "caseId": case["Id"],
                "organizationId": ORGANIZATION_ID,
                "refundAction": case.get(ACTION_FIELD),
                "lastModifiedDate": case["LastModifiedDate"],
            }
        ).encode()
        self.webhooks.send(f"{case['Id']}:{case['LastModifiedDate']}", "case_updated", body)

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        """``{"notes": [private comments], "public": [published comments], "labels": [Refund_Status__c, if set],
        "ticket": <the case as the API shows it>}``.

        Raises:
            KeyError: no such case.
        """
        with self.lock:
            case = self._case(ticket_id)
            comments = self.comments[case["Id"]]
            status = case.get(STATUS_FIELD)
            return {
                "notes": [item["CommentBody"] for item in comments if not item["IsPublished"]],
                "public": [item["CommentBody"] for item in comments if item["IsPublished"]],
                "labels": [status] if status else [],
                "ticket": self._shown_case(case),
            }

    def revoke_tokens(self) -> None:
        """Every access token ends (an admin revoked them, or the session timed out early)."""
        with self.lock:
            self.tokens.clear()

    def _case(self, ticket_id: str) -> dict[str, Any]:
        """Raises: KeyError: no such case."""
        case_id = record_id18(ticket_id, "500") if isinstance(ticket_id, str) else None
        if case_id is None or case_id not in self.cases:
            raise KeyError(f"no case {ticket_id}")
        return self.cases[case_id]

    def _touch(self, case: dict[str, Any], user_id: str) -> None:
        now = _timestamp(self._now())
        case["LastModifiedDate"] = case["SystemModstamp"] = now
        case["LastModifiedById"] = user_id

    def _shown_case(
        self, case: Mapping[str, Any], fields: list[str] | None = None, version: str = f"{MAX_API_VERSION}"
    ) -> dict[str, Any]:
        shown = {"attributes": {"type": "Case", "url": f"/services/data/v{version}/sobjects/Case/{case['Id']}"}}
        for key, value in case.items():
            if fields is None or key in fields:
                shown[key] = copy.deepcopy(value)
        return shown

    # ---------------------------------------------------------------- OAuth

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, 400
            )
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        known = self.clients.get(client_id)
        if known is None or not secrets.compare_digest(known, client_secret):
            return json_response({"error": "invalid_client", "error_description": "invalid client credentials"}, 400)
        token = f"{ORGANIZATION_ID[:15]}!AQ{secrets.token_urlsafe(48)}"
        now = self._now()
        base = (request.host_url.rstrip("/") + request.script_root).rstrip("/")
        with self.lock:
            self.token_requests += 1
            self.tokens[token] = now + self.session_seconds
        return json_response(
            {
                "access_token": token,
                "signature": secrets.token_urlsafe(32),
                "scope": "api",
                "instance_url": base,
                "id": f"{base}/id/{ORGANIZATION_ID}/{INTEGRATION_USER}",
                "token_type": "Bearer",
                "issued_at": str(int(now * 1000)),
            }
        )

    # ---------------------------------------------------------------- the REST API

    def _data(self, request: Request, rest: str) -> Response:
        try:
            self._authenticate(request)
            limits = self._spend()
            payload: Any = None
            if request.method in ("POST", "PATCH", "PUT"):
                try:
                    payload = json.loads(request.get_data().decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as error:
                    raise SalesforceError(400, "JSON_PARSER_ERROR", f"Unexpected character: {error}") from error
            query = {key: values[-1] for key, values in request.args.lists()}
            status, body = self._perform(request.method, request.path, query, payload, top_level=True)
        except SalesforceError as error:
            return json_response(error.body, error.status, headers=self._limit_header())
        if status == 204:
            return Response(b"", status=204, headers=limits)
        return json_response(body, status, headers=limits)

    def _authenticate(self, request: Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self.lock:
            expires = self.tokens.get(token.strip()) if scheme.lower() in ("bearer", "oauth") else None
            if expires is None or expires <= self._now():
                self.tokens.pop(token.strip(), None)
                raise SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def _limit_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_calls}/{self.api_requests_per_day}"}

    def _spend(self) -> dict[str, str]:
        with self.lock:
            if self.api_calls >= self.api_requests_per_day:
                raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.api_calls += 1
            return self._limit_header()

    def _perform(
        self, method: str, url: str, query: Mapping[str, str], payload: Any, *, top_level: bool = False
    ) -> tuple[int, Any]:
        """One REST call (a request's, or a composite subrequest's). Raises: SalesforceError."""
        matched = DATA.match(url)
        if matched is None or not MIN_API_VERSION <= float(matched.group("version")) <= MAX_API_VERSION:
            raise _not_found()
        rest = matched.group("rest") or ""
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("GET", rf"/sobjects/Case/{ID}", self._get_case),
            ("PATCH", rf"/sobjects/Case/{ID}", self._update_case),
            ("GET", rf"/sobjects/Contact/{ID}", self._get_contact),
            ("POST", r"/sobjects/CaseComment", self._create_comment),
            ("GET", r"/query", self._query),
            ("GET", r"/query/(?P<locator>[A-Za-z0-9-]+)", self._query_more),
        ]
        if top_level:
            routes.append(("POST", r"/composite", self._composite))
        allowed = [route_method for route_method, pattern, _ in routes if re.fullmatch(pattern, rest)]
        for route_method, pattern, handler in routes:
            found = re.fullmatch(pattern, rest)
            if found is None or route_method != method:
                continue
            arguments = {**found.groupdict(), "version": matched.group("version")}
            if method in ("POST", "PATCH"):
                if not isinstance(payload, dict):
                    raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
                return handler(payload, query=query, **arguments)
            return handler(query=query, **arguments)
        if allowed:
            raise SalesforceError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
            )
        raise _not_found()

    def _known_case(self, raw_id: str) -> dict[str, Any]:
        case_id = record_id18(raw_id, "500")
        if case_id is None or case_id not in self.cases:
            raise _not_found()
        return self.cases[case_id]

    def _get_case(self, *, version: str, query: Mapping[str, str], id: str) -> tuple[int, Any]:
        fields = [part.strip() for part in query.get("fields", "").split(",") if part.strip()] or None
        with self.lock:
            case = self._known_case(id)
            unknown = [field for field in fields or [] if field not in case]
            if unknown:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity 'Case'.", fields=unknown
                )
            return 200, self._shown_case(case, fields, version)

    def _update_case(
        self, payload: dict[str, Any], *, version: str, query: Mapping[str, str], id: str
    ) -> tuple[int, Any]:
        for field, value in payload.items():
            if field in CASE_FIELDS_READ_ONLY:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {field}. Please check the security settings of this field and "
                    "verify that it is read/write for your profile or permission set.",
                    fields=[field],
                )
            if field not in CASE_UPDATABLE:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{field}' on sobject of type Case", fields=[]
                )
            choices = CASE_CUSTOM_FIELDS.get(field) or (CASE_STATUSES if field == "Status" else None)
            if value is not None and not isinstance(value, str):
                raise SalesforceError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of string from {type(value).__name__}"
                )
            if choices is not None and value not in choices:
                raise SalesforceError(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{field}: bad value for restricted picklist field: {value}",
                    fields=[field],
                )
        with self.lock:
            case = self._known_case(id)
            action = case.get(ACTION_FIELD)
            case.update(payload)
            case["IsClosed"] = case.get("Status") == "Closed"
            self._touch(case, INTEGRATION_USER)
            shown = copy.deepcopy(case)
        if shown.get(ACTION_FIELD) != action:
            self._call_out(shown)  # the Flow runs on the change, whoever made it
        return 204, None

    def _get_contact(self, *, version: str, query: Mapping[str, str], id: str) -> tuple[int, Any]:
        fields = [part.strip() for part in query.get("fields", "").split(",") if part.strip()]
        with self.lock:
            contact_id = record_id18(id, "003")
            contact = self.contacts.get(contact_id or "")
            if contact is None:
                raise _not_found()
            unknown = [field for field in fields if field not in contact]
            if unknown:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity 'Contact'.", fields=unknown
                )
            return 200, {
                key: copy.deepcopy(value)
                for key, value in contact.items()
                if not fields or key in fields or key == "attributes"
            }

    def _create_comment(self, payload: dict[str, Any], *, version: str, query: Mapping[str, str]) -> tuple[int, Any]:
        unknown = sorted(set(payload) - COMMENT_WRITABLE)
        if unknown:
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type CaseComment", fields=[]
            )
        body = payload.get("CommentBody")
        if not isinstance(body, str) or not body:
            raise SalesforceError(
                400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [CommentBody]", fields=["CommentBody"]
            )
        if len(body.encode()) > MAX_COMMENT_LENGTH:  # 4,000 bytes (Object Reference, CaseComment)
            raise SalesforceError(
                400,
                "STRING_TOO_LONG",
                f"Body: data value too large: {body[:20]}... (max length={MAX_COMMENT_LENGTH})",
                fields=["CommentBody"],
            )
        published = payload.get("IsPublished", False)
        if not isinstance(published, bool):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of boolean")
        parent = payload.get("ParentId")
        with self.lock:
            case_id = record_id18(parent, "500") if isinstance(parent, str) else None
            if case_id is None or case_id not in self.cases:
                raise SalesforceError(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"Parent ID: id value of incorrect type: {parent}",
                    fields=["ParentId"],
                )
            comment_id = self._new_id("00a")
            self.comments[case_id].append(
                {
                    "Id": comment_id,
                    "ParentId": case_id,
                    "CommentBody": body,
                    "IsPublished": published,
                    "IsDeleted": False,
                    "CreatedDate": _timestamp(self._now()),
                    "CreatedById": INTEGRATION_USER,
                }
            )
        return 201, {"id": comment_id, "success": True, "errors": []}

    def _query(self, *, version: str, query: Mapping[str, str]) -> tuple[int, Any]:
        soql = query.get("q", "")
        matched = COMMENT_QUERY.match(soql)
        if matched is None:
            raise SalesforceError(
                400, "MALFORMED_QUERY", "this sandbox answers only SELECT ... FROM CaseComment WHERE ParentId = '...'"
            )
        fields = [part.strip() for part in matched.group("fields").split(",")]
        unknown = [field for field in fields if field not in COMMENT_FIELDS]
        if unknown:
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity 'CaseComment'.", fields=unknown
            )
        parent = _soql_unescape(matched.group("literal"))
        case_id = record_id18(parent)
        if case_id is None:
            raise SalesforceError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {parent}")
        return self._page(case_id, 0, fields, version)

    def _query_more(self, *, version: str, query: Mapping[str, str], locator: str) -> tuple[int, Any]:
        with self.lock:
            cursor = self.cursors.get(locator)
        if cursor is None:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        case_id, offset, fields = cursor
        return self._page(case_id, offset, fields, version)

    def _page(self, case_id: str, offset: int, fields: list[str], version: str) -> tuple[int, Any]:
        with self.lock:
            comments = self.comments.get(case_id, [])
            chosen = comments[offset : offset + self.query_batch_size]
            records = [
                {
                    "attributes": {
                        "type": "CaseComment",
                        "url": f"/services/data/v{version}/sobjects/CaseComment/{item['Id']}",
                    },
                    **{field: copy.deepcopy(item[field]) for field in fields},
                }
                for item in chosen
            ]
            page: dict[str, Any] = {"totalSize": len(comments), "done": True, "records": records}
            following = offset + self.query_batch_size
            if following < len(comments):
                locator = f"01g5e{secrets.token_hex(5)}-{following}"
                self.cursors[locator] = (case_id, following, fields)
                page["done"] = False
                page["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}"
        return 200, page

    def _composite(self, payload: dict[str, Any], *, version: str, query: Mapping[str, str]) -> tuple[int, Any]:
        subrequests = payload.get("compositeRequest")
        unknown = sorted(set(payload) - {"allOrNone", "collateSubrequests", "compositeRequest"})
        if unknown or not isinstance(subrequests, list) or not subrequests:
            raise SalesforceError(400, "JSON_PARSER_ERROR", "compositeRequest: a list of subrequests is required")
        if len(subrequests) > MAX_SUBREQUESTS:
            raise SalesforceError(
                400, "LIMIT_EXCEEDED", f"Composite requests can contain no more than {MAX_SUBREQUESTS} subrequests"
            )
        for sub in subrequests:
            allowed = {"method", "url", "referenceId", "body", "httpHeaders"}
            if not isinstance(sub, dict) or set(sub) - allowed or not sub.get("referenceId") or not sub.get("url"):
                raise SalesforceError(400, "JSON_PARSER_ERROR", "each subrequest needs method, url and referenceId")
        all_or_none = payload.get("allOrNone") is True
        with self.lock:
            saved = copy.deepcopy((self.cases, self.comments))
            results: list[dict[str, Any]] = []
            failed = False
            for sub in subrequests:
                if failed and all_or_none:
                    results.append(self._sub_result(sub, 400, [dict(HALTED)]))
                    continue
                parts = urlsplit(str(sub["url"]))
                sub_query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                try:
                    status, body = self._perform(str(sub.get("method")), parts.path, sub_query, sub.get("body"))
                except SalesforceError as error:
                    status, body = error.status, error.body
                    failed = True
                results.append(self._sub_result(sub, status, body))
            if failed and all_or_none:
                self.cases, self.comments = saved
                results = [
                    result
                    if result["httpStatusCode"] >= 300
                    else {**result, "httpStatusCode": 400, "body": [dict(HALTED)]}
                    for result in results
                ]
        return 200, {"compositeResponse": results}

    @staticmethod
    def _sub_result(sub: Mapping[str, Any], status: int, body: Any) -> dict[str, Any]:
        return {"body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": sub["referenceId"]}

    # ---------------------------------------------------------------- control routes

    def _control_revoke(self, request: Request) -> Response:
        self.revoke_tokens()
        return json_response({"revoked": True})

    def _control_trigger(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        try:
            self.use_trigger(str(payload.get("trigger")))
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response({"trigger": self.trigger})

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {
                    "cases": [self._shown_case(case) for case in self.cases.values()],
                    "contacts": copy.deepcopy(list(self.contacts.values())),
                    "comments": copy.deepcopy(self.comments),
                    "queues": {TEAM_LEAD_QUEUE: "Refund approvers", AGENT_QUEUE: "Support", BILLING_QUEUE: "Billing"},
                }
            )


def acknowledged(answer: requests.Response) -> bool:
    """Whether an answer to an Outbound Message is the SOAP ``notificationsResponse`` with ``Ack`` true (anything
    else: Salesforce sends the message again)."""
    try:
        root = ElementTree.fromstring(answer.content)
    except ElementTree.ParseError:
        return False
    ack = root.find(
        f"./{{{SOAP_ENVELOPE}}}Body/{{{OUTBOUND_NAMESPACE}}}notificationsResponse/{{{OUTBOUND_NAMESPACE}}}Ack"
    )
    return ack is not None and (ack.text or "").strip() == "true"


def outbound_message(notification_id: str, case: Mapping[str, Any]) -> bytes:
    """One case change as Salesforce's Outbound Message sends it: SOAP 1.1 ``notifications`` (the WSDL's shape), the
    sObject's fields in the enterprise sObject namespace, SessionId nil (the message sends no session)."""
    modified = str(case["LastModifiedDate"]).replace("+0000", "Z")  # xsd:dateTime, as SOAP writes it
    fields = {"Id": case["Id"], "LastModifiedDate": modified, ACTION_FIELD: case.get(ACTION_FIELD)}
    shown = "".join(
        f'<sf:{name} xsi:nil="true"/>' if value is None else f"<sf:{name}>{escape(str(value))}</sf:{name}>"
        for name, value in fields.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENVELOPE}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<soapenv:Body><notifications xmlns="{OUTBOUND_NAMESPACE}">'
        f"<OrganizationId>{ORGANIZATION_ID}</OrganizationId><ActionId>{OUTBOUND_ACTION_ID}</ActionId>"
        '<SessionId xsi:nil="true"/>'
        f"<EnterpriseUrl>https://refundflow-sim.my.salesforce.com/services/Soap/c/{MAX_API_VERSION}/"
        f"{ORGANIZATION_ID[:15]}</EnterpriseUrl>"
        f"<PartnerUrl>https://refundflow-sim.my.salesforce.com/services/Soap/u/{MAX_API_VERSION}/"
        f"{ORGANIZATION_ID[:15]}</PartnerUrl>"
        f"<Notification><Id>{notification_id}</Id>"
        f'<sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{shown}</sObject>'
        "</Notification></notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks: importing the
    simulator stays light (the scenarios need the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("salesforce")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
