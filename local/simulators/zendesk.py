"""A stateful Zendesk Support sandbox for the calls refundflow makes, served on Zendesk's own paths (``/api/v2/...``).

Mounted by the local stack at ``/_sandbox/zendesk``. What it holds to, as Zendesk documents it
(developer.zendesk.com: "Security and authentication", "Tickets", "Ticket Comments", "Rate limits", "Errors",
"Verifying webhook authenticity"):

- auth: HTTP Basic ``{email}/token:{api_token}`` (an API token); anything else is a 401
  ``{"error": "Couldn't authenticate you"}``;
- ``GET /api/v2/tickets/{id}`` (``?include=users``: the requester, submitter and assignee side-loaded as
  ``users``); an unknown ticket is a 404 ``{"error": "RecordNotFound", "description": "Not found"}``;
- ``PUT /api/v2/tickets/{id}`` ``{"ticket": {"comment": {"body", "public"}, "additional_tags", "remove_tags",
  "tags", "custom_fields": [{"id", "value"}], "status", ...}}``: a comment is public unless ``public: false``
  (an internal note); tags added and removed without touching the others; a custom field id the account does
  not have, or a closed ticket, is a 422 ``RecordInvalid`` with ``details``;
- ``GET /api/v2/tickets/{id}/comments`` (``sort_order`` asc|desc, ``per_page`` up to 100, ``page``): offset
  pagination, ``next_page`` / ``previous_page`` as absolute URLs (null on the last page), ``count``;
- a rate limit is a 429 with ``Retry-After`` (seconds) and a text body, as in Zendesk's own example;
- a trigger ("Ticket is Updated", "Tags contain at least one of refund_approved refund_requested
  refund_cancelled", "Current user is not <the API user>") notifying a webhook with the merchant's JSON body
  ``{"ticket_id": "{{ticket.id}}"}``, signed: ``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(signing
  secret, timestamp + body)), ``X-Zendesk-Webhook-Signature-Timestamp`` (ISO 8601, UTC), and
  ``X-Zendesk-Webhook-Invocation-Id`` (kept by the retries of one invocation). Our own API updates never fire
  it (the "Current user is not" condition), as README "Zendesk setup" tells the admin to configure.

Control routes, besides the base ones (see :mod:`local.simulators.base`):

- ``POST /_control/tickets`` (a TicketSandbox ``seed_ticket`` request) -> ``{"id": "<ticket id>"}``;
- ``POST /_control/tickets/{id}/agent-action`` ``{"intent": "approve"|"request"|"withdraw"}``;
- ``GET /_control/tickets/{id}/view``: ``ticket_view``.

Not modelled: ticket creation through the API, attachments, audits beyond the update's answer, side-conversations,
cursor pagination (``page[size]``), sandboxes' other objects (organizations, brands).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from local.simulators.base import TICKET_INTENTS, FaultRule, Simulator, json_response

DEFAULT_EMAIL = "refundflow@example.com"
DEFAULT_API_TOKEN = "zendesk-simulator-api-token-0123456789abcdef"
DEFAULT_SIGNING_SECRET = "zendesk-simulator-signing-secret-0123456789"
RATE_LIMIT_TEXT = "Rate limit for ticket updates exceeded, please wait before updating this ticket again"
MAX_PER_PAGE = 100

# The account's custom ticket fields, with the ids the package's default mapping.yaml reads (the simulator's own
# copy: it never imports connector code).
FIELD_IDS: dict[str, int] = {
    "payment_provider": 9000000001,
    "payment_id": 9000000002,
    "reason": 9000000003,
    "order_id": 9000000004,
    "amount": 9000000005,
    "invoice_system": 9000000006,
    "invoice_id": 9000000007,
    "currency": 9000000008,
    "refund_status": 9000000009,
}
# Groups (the default mapping's roles map the first two) and the agent each seeded ticket is assigned to.
GROUPS: dict[str | None, tuple[int, str, int, str]] = {
    "team_lead": (9100000001, "Refund team leads", 380001, "Tess Lead"),
    "agent": (9100000002, "Support agents", 380002, "Alex Agent"),
    None: (9100000003, "Billing", 380003, "Billie Billing"),
}
API_USER_ID = 380000
TRIGGER_TAGS = {"approve": "refund_approved", "request": "refund_requested", "withdraw": "refund_cancelled"}
TICKET_PATH = re.compile(r"^(?P<id>[0-9]{1,20})(?:\.json)?$")


class ZendeskError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status, self.body, self.headers = status, body, headers or {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What Zendesk puts in ``X-Zendesk-Webhook-Signature`` (developer.zendesk.com, "Verifying webhook
    authenticity": base64(HMACSHA256(TIMESTAMP + BODY)))."""
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


class ZendeskSimulator(Simulator):
    """Zendesk Support's tickets, users, groups and comments, with a refund trigger that calls our webhook."""

    name = "zendesk"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", r"^/api/v2/tickets/[0-9]+(\.json)?$"),
        "write_back": ("PUT", r"^/api/v2/tickets/[0-9]+(\.json)?$"),
        "public_reply": ("PUT", r"^/api/v2/tickets/[0-9]+(\.json)?$"),
        "has_update": ("GET", r"^/api/v2/tickets/[0-9]+/comments(\.json)?$"),
    }

    def __init__(
        self,
        *,
        email: str = DEFAULT_EMAIL,
        api_token: str = DEFAULT_API_TOKEN,
        signing_secret: str = DEFAULT_SIGNING_SECRET,
        webhook_url: str | None = None,
        retry_after_seconds: int = 1,
    ) -> None:
        self.email = email
        self.api_token = api_token
        self.signing_secret = signing_secret
        self.retry_after_seconds = retry_after_seconds
        self.tickets: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.groups: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        # What refundflow (the API user) set on each ticket: the labels ticket_view shows.
        self._api_tags: dict[int, set[str]] = {}
        self._api_fields: dict[int, set[int]] = {}
        self._ticket_ids = itertools.count(4711)
        self._comment_ids = itertools.count(1)
        super().__init__()
        self._seed_account()
        self.webhooks.configure(webhook_url, signing_secret)
        self.route("/api/v2/tickets/<ticket>", self._api(self._show_ticket), methods=["GET"])
        self.route("/api/v2/tickets/<ticket>", self._api(self._update_ticket), methods=["PUT"])
        self.route("/api/v2/tickets/<ticket>/comments", self._api(self._list_comments), methods=["GET"])
        self.route("/api/v2/tickets/<ticket>/comments.json", self._api(self._list_comments), methods=["GET"])
        self.route("/_control/tickets", self._control_seed, methods=["POST"])
        self.route("/_control/tickets/<ticket>/agent-action", self._control_agent_action, methods=["POST"])
        self.route("/_control/tickets/<ticket>/view", self._control_view, methods=["GET"])

    def _seed_account(self) -> None:
        self.users[API_USER_ID] = self._user(API_USER_ID, "refundflow", self.email, "admin")
        for group_id, group_name, agent_id, agent_name in GROUPS.values():
            self.groups[group_id] = {"id": group_id, "name": group_name, "default": False, "deleted": False}
            email = agent_name.lower().replace(" ", ".") + "@example.com"
            self.users[agent_id] = self._user(agent_id, agent_name, email, "agent")

    @staticmethod
    def _user(user_id: int, name: str, email: str, role: str) -> dict[str, Any]:
        return {"id": user_id, "name": name, "email": email, "role": role, "locale": "en-US", "active": True}

    # ---------------------------------------------------------------- base hooks

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        timestamp = _now()
        return {
            "X-Zendesk-Webhook-Signature": signature(secret, timestamp, body),
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        }

    def reset_state(self) -> None:
        with self.lock:
            self.tickets.clear()
            self.users.clear()
            self.groups.clear()
            self.comments.clear()
            self._api_tags.clear()
            self._api_fields.clear()
            self._seed_account()

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure in Zendesk's shape: 429 with Retry-After and Zendesk's text, 5xx as JSON."""
        if fault.body is not None:
            return json_response(fault.body, fault.status or 500, headers=fault.headers)
        status = fault.status or 500
        if status == 429:
            headers = {"Retry-After": str(self.retry_after_seconds), **fault.headers}
            return Response(RATE_LIMIT_TEXT, status=429, mimetype="text/html", headers=headers)
        if status >= 500:
            body = {"error": "InternalServerError", "description": "Something went wrong (simulated fault)"}
            return json_response(body, status, headers=fault.headers)
        return json_response({"error": "InvalidEndpoint", "description": "Simulated fault"}, status)

    def not_found(self, request: Request) -> Response:
        if not request.path.startswith("/api/"):
            return super().not_found(request)
        return json_response({"error": "InvalidEndpoint", "description": "Not found"}, 404)

    # ---------------------------------------------------------------- TicketSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        return {
            "api": {"email": self.email, "api_token": self.api_token},
            "verification": {"signing_secrets": [self.signing_secret]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where the trigger's webhook posts (the stack's ``{api}/webhooks/zendesk``), signed with its secret."""
        self.webhooks.configure(url, self.signing_secret)

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        if not request.get("payment_provider") or not request.get("payment_id"):
            raise ValueError("seed_ticket needs payment_provider and payment_id")
        role = request.get("approver_role")
        if role not in GROUPS:
            raise ValueError(f"approver_role must be team_lead, agent or None, not {role!r}")
        group_id, _, assignee_id, _ = GROUPS[role]
        values: dict[str, Any] = {key: request.get(key) for key in FIELD_IDS if key != "refund_status"}
        if values["amount"] is not None:
            values["amount"] = str(values["amount"])
            values["currency"] = values["currency"] or "EUR"
        with self.lock:
            ticket_id = next(self._ticket_ids)
            requester_id = 390000 + ticket_id
            email = str(request.get("customer_email") or f"customer{ticket_id}@example.com")
            name = str(request.get("customer_name") or "Ada Lovelace")
            self.users[requester_id] = self._user(requester_id, name, email, "end-user")
            stamp = _now()
            subject = str(request.get("subject") or f"Refund for order {values['order_id'] or ticket_id}")
            description = str(request.get("description") or "I would like a refund, please.")
            self.tickets[ticket_id] = {
                "id": ticket_id,
                "url": f"https://example.zendesk.com/api/v2/tickets/{ticket_id}.json",
                "subject": subject,
                "raw_subject": subject,
                "description": description,
                "status": "open",
                "priority": "normal",
                "type": "question",
                "requester_id": requester_id,
                "submitter_id": requester_id,
                "assignee_id": assignee_id,
                "group_id": group_id,
                "organization_id": None,
                "tags": [],
                "custom_fields": [
                    {"id": field_id, "value": values.get(key)} for key, field_id in sorted(FIELD_IDS.items())
                ],
                "created_at": stamp,
                "updated_at": stamp,
            }
            self.comments[ticket_id] = [self._comment(requester_id, description, public=True)]
            self._api_tags[ticket_id] = set()
            self._api_fields[ticket_id] = set()
        return str(ticket_id)

    def agent_action(self, ticket_id: str, intent: str) -> None:
        if intent not in TICKET_INTENTS:
            raise ValueError(f"intent must be one of {TICKET_INTENTS}, not {intent!r}")
        with self.lock:
            ticket = self.tickets[_key(ticket_id)]
            tags = [tag for tag in ticket["tags"] if not (intent == "withdraw" and tag == "refund_approved")]
            if TRIGGER_TAGS[intent] not in tags:
                tags.append(TRIGGER_TAGS[intent])
            ticket["tags"] = tags
            ticket["updated_at"] = _now()
        self._fire_trigger(str(ticket["id"]))

    def _fire_trigger(self, ticket_id: str) -> None:
        """The trigger's "Notify active webhook" action: the merchant's JSON body with ``{{ticket.id}}``
        rendered, one invocation id for every retry of this notification."""
        body = json.dumps({"ticket_id": ticket_id}).encode()
        # Numeric like Zendesk's (its docs show 10 digits): never long enough to pass for a card number.
        invocation = str(1_000_000_000 + uuid.uuid4().int % 9_000_000_000)
        self.webhooks.send(invocation, "trigger", body, headers={"X-Zendesk-Webhook-Invocation-Id": invocation})

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        with self.lock:
            key = _key(ticket_id)
            ticket = copy.deepcopy(self.tickets[key])
            comments = self.comments[key]
            labels = [tag for tag in ticket["tags"] if tag in self._api_tags[key]]
            labels += [
                str(field["value"])
                for field in ticket["custom_fields"]
                if field["id"] in self._api_fields[key] and field["value"] not in (None, "")
            ]
            return {
                "notes": [comment["body"] for comment in comments if not comment["public"]],
                "public": [
                    comment["body"]
                    for comment in comments
                    if comment["public"] and comment["author_id"] != ticket["requester_id"]
                ],
                "labels": labels,
                "ticket": ticket,
            }

    # ---------------------------------------------------------------- the API

    def _api(self, handler: Any) -> Any:
        def endpoint(request: Request, ticket: str) -> Response:
            try:
                self._authenticate(request)
                match = TICKET_PATH.fullmatch(ticket)
                if match is None:
                    raise ZendeskError(404, {"error": "InvalidEndpoint", "description": "Not found"})
                with self.lock:
                    status, body = handler(request, int(match["id"]))
            except ZendeskError as error:
                return json_response(error.body, error.status, headers=error.headers)
            return json_response(body, status)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.email}/token:{self.api_token}".encode()).decode()
        if not header.startswith("Basic ") or not hmac.compare_digest(header[6:].strip(), expected):
            raise ZendeskError(401, {"error": "Couldn't authenticate you"})

    def _ticket(self, ticket_id: int) -> dict[str, Any]:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})
        return ticket

    def _show_ticket(self, request: Request, ticket_id: int) -> tuple[int, dict[str, Any]]:
        ticket = self._ticket(ticket_id)
        answer: dict[str, Any] = {"ticket": copy.deepcopy(ticket)}
        included = {part.strip() for part in request.args.get("include", "").split(",") if part.strip()}
        if "users" in included:
            ids = {ticket["requester_id"], ticket["submitter_id"], ticket["assignee_id"]} - {None}
            answer["users"] = [copy.deepcopy(self.users[user_id]) for user_id in sorted(ids) if user_id in self.users]
        return 200, answer

    def _update_ticket(self, request: Request, ticket_id: int) -> tuple[int, dict[str, Any]]:
        ticket = self._ticket(ticket_id)
        try:
            payload = json.loads(request.get_data() or b"{}")
        except ValueError as error:
            raise ZendeskError(400, {"error": "Unprocessable JSON", "description": str(error)[:200]}) from error
        changes = payload.get("ticket") if isinstance(payload, dict) else None
        if not isinstance(changes, dict):
            raise ZendeskError(400, {"error": "InvalidValue", "description": "ticket must be an object"})
        if ticket["status"] == "closed":
            raise _invalid("status", "Status: closed prevents ticket update", "ClosedPreventsUpdate")
        fields = {field["id"]: field for field in ticket["custom_fields"]}
        updates: list[dict[str, Any]] = []
        for item in changes.get("custom_fields") or []:
            if not isinstance(item, dict) or item.get("id") not in fields:
                raise _invalid("base", f"Field {item.get('id') if isinstance(item, dict) else item} does not exist")
            updates.append(item)
        comment = changes.get("comment")
        if comment is not None and (not isinstance(comment, dict) or not str(comment.get("body", "")).strip()):
            raise _invalid("comment", "Comment: body can't be blank", "BlankValue")
        status = changes.get("status")
        if status is not None and status not in {"new", "open", "pending", "hold", "solved", "closed"}:
            raise _invalid("status", f"Status: {status} is not a valid status", "InvalidValue")
        tags = list(ticket["tags"])
        if "tags" in changes:
            tags = list(dict.fromkeys(str(tag) for tag in changes["tags"] or []))
        for tag in changes.get("additional_tags") or []:
            if tag not in tags:
                tags.append(str(tag))
                self._api_tags[ticket_id].add(str(tag))
        removed = set(changes.get("remove_tags") or [])
        ticket["tags"] = [tag for tag in tags if tag not in removed]
        for item in updates:
            fields[item["id"]]["value"] = item.get("value")
            self._api_fields[ticket_id].add(item["id"])
        if status is not None:
            ticket["status"] = status
        if comment is not None:
            self.comments[ticket_id].append(
                self._comment(API_USER_ID, str(comment["body"]), public=comment.get("public", True) is not False)
            )
        ticket["updated_at"] = _now()
        audit = {"id": next(self._comment_ids), "ticket_id": ticket_id, "author_id": API_USER_ID}
        return 200, {"ticket": copy.deepcopy(ticket), "audit": audit}

    def _comment(self, author_id: int, body: str, *, public: bool) -> dict[str, Any]:
        return {
            "id": next(self._comment_ids),
            "type": "Comment",
            "author_id": author_id,
            "body": body,
            "html_body": f'<div class="zd-comment"><p>{body}</p></div>',
            "plain_body": body,
            "public": public,
            "attachments": [],
            "created_at": _now(),
        }

    def _list_comments(self, request: Request, ticket_id: int) -> tuple[int, dict[str, Any]]:
        self._ticket(ticket_id)
        order = request.args.get("sort_order", "asc")
        if order not in {"asc", "desc"}:
            raise ZendeskError(400, {"error": "InvalidPaginationParameter", "description": "sort_order: asc or desc"})
        try:
            per_page = min(max(int(request.args.get("per_page", MAX_PER_PAGE)), 1), MAX_PER_PAGE)
            page = max(int(request.args.get("page", 1)), 1)
        except ValueError as error:
            raise ZendeskError(400, {"error": "InvalidPaginationParameter", "description": str(error)}) from error
        comments = list(self.comments[ticket_id])
        if order == "desc":
            comments.reverse()
        start = (page - 1) * per_page
        chunk = comments[start : start + per_page]
        base = request.base_url

        def link(number: int) -> str:
            return f"{base}?{urlencode({'page': number, 'per_page': per_page, 'sort_order': order})}"

        return 200, {
            "comments": copy.deepcopy(chunk),
            "next_page": link(page + 1) if start + per_page < len(comments) else None,
            "previous_page": link(page - 1) if page > 1 else None,
            "count": len(comments),
        }

    # ---------------------------------------------------------------- control routes

    def _control_seed(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True)
        if not isinstance(payload, dict):
            return json_response({"error": "a JSON object (seed_ticket's request) is required"}, 400)
        try:
            return json_response({"id": self.seed_ticket(payload)}, 201)
        except ValueError as error:
            return json_response({"error": str(error)}, 400)

    def _control_agent_action(self, request: Request, ticket: str) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        try:
            self.agent_action(ticket, str(payload.get("intent")))
        except (KeyError, ValueError) as error:
            status = 404 if isinstance(error, KeyError) else 400
            return json_response({"error": f"ticket {ticket}: {error}"}, status)
        return json_response({"id": ticket, "intent": payload.get("intent")})

    def _control_view(self, request: Request, ticket: str) -> Response:
        try:
            return json_response(self.ticket_view(ticket))
        except (KeyError, ValueError):
            return json_response({"error": f"no ticket {ticket}"}, 404)


def _key(ticket_id: str) -> int:
    """A ticket id as the sandbox's control takes it (KeyError for anything that names no ticket)."""
    match = TICKET_PATH.fullmatch(str(ticket_id))
    if match is None:
        raise KeyError(ticket_id)
    return int(match["id"])


def _invalid(field: str, description: str, error: str = "InvalidValue") -> ZendeskError:
    """Zendesk's 422 for a record that does not validate."""
    return ZendeskError(
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {field: [{"description": description, "error": error}]},
        },
    )


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks: importing the
    simulator stays light (the scenarios need the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("zendesk")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
