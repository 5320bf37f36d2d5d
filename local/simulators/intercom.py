"""A stateful Intercom workspace for the calls refundflow makes, on Intercom's own paths (REST API 2.16).

Mounted by the local stack at ``/_sandbox/intercom``; the connector's base address is ``{sandbox}/intercom``
(Intercom's ``https://api.intercom.io``, ``api.eu.intercom.io``, ``api.au.intercom.io``). What it holds to, as
Intercom documents it (the official OpenAPI description 2.16, ../shared/contracts/intercom-api-v2.16.yaml, whose
shapes every answer here follows; developers.intercom.com "Error codes", "Rate limiting", "Signed notifications",
"Webhook models"):

- ``Authorization: Bearer <access token>``; a missing or unknown token is a 401 ``unauthorized`` "Access Token
  Invalid" (the spec's own example); ``Intercom-Version``, when sent, must be one of the spec's versions (else a
  400 ``parameter_invalid``: the code is from Intercom's list, its use here is this simulator's choice);
- ``GET /conversations/{id}``: the Conversation with its tags, conversation data attributes, admin and team
  assignee, contact references and conversation parts; an unknown id is a 404 ``not_found`` "Resource Not Found";
- ``PUT /conversations/{id}``: ``read``, ``title``, ``custom_attributes``, ``company_id`` only; an attribute the
  workspace has not defined (Settings > Data > Conversations) or a value of the wrong type is a 400
  ``parameter_invalid`` (a simulator strictness, Intercom's wording unknown);
- ``POST /conversations/{id}/reply``: an admin reply ``{"message_type": "comment" | "note", "type": "admin",
  "admin_id", "body"}`` (the spec's ``admin_reply_conversation_request``; a property it does not define is refused,
  a simulator strictness); ``admin_id`` must be an admin of the workspace (404 ``not_found`` otherwise);
- ``GET /contacts/{id}``, ``GET /me`` (the token's admin);
- errors ``{"type": "error.list", "request_id", "errors": [{"code", "message"}]}``;
- a rate limit per 10-second window (Intercom spreads an app's per-minute limit over 10-second windows: "Rate
  limiting", 2.17): every authenticated answer carries ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (epoch
  seconds of the window's end); over the limit, a 429 ``rate_limit_exceeded`` "Exceeded rate limit of N in
  10_seconds". Intercom documents no ``Retry-After`` and none is sent: the reset time is the wait;
- a tag an agent puts on a conversation sends the app's ``conversation_part.tag.created`` notification
  (``notification_event`` with the Conversation as ``data.item``), signed ``X-Hub-Signature: sha1=<hex
  HMAC-SHA1 of the body>`` with the app's client secret.

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/conversations``: a conversation as :meth:`IntercomSimulator.seed_ticket` takes it;
- ``POST /_control/conversations/{id}/tag`` ``{"intent": "approve" | "request" | "withdraw"}``: an agent's tag and
  its notification; ``GET /_control/conversations/{id}``: what a person sees (notes and replies as text).

Not modelled: conversation search, tickets (``/tickets``), custom objects, snoozing, assignment by API, the
contact side of replies, pagination of conversation parts (Intercom returns the 500 newest).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import html
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, json_response

DEFAULT_ACCESS_TOKEN = "dG9rOmludGVyY29tLXNpbXVsYXRvci1hY2Nlc3MtdG9rZW4tMDAwMQ=="
DEFAULT_CLIENT_SECRET = "intercom-simulator-client-secret-0001"
APP_ID = "rfsim001"
API_VERSIONS = frozenset(
    ["1.0", "1.1", "1.2", "1.3", "1.4", *(f"2.{minor}" for minor in range(17))]
)  # the spec's intercom_version enum
WINDOW_SECONDS = 10
DEFAULT_RATE_LIMIT = 167  # Intercom's example: 1,000 a minute is 167 per 10-second window
# The workspace's admins: the app's own admin (the token's, it writes refundflow's notes), a team lead, an agent.
ADMINS = {
    "991267001": {"name": "Refundflow", "email": "refundflow@example.com"},
    "991267002": {"name": "Lee Team-Lead", "email": "lee@example.com"},
    "991267003": {"name": "Sam Agent", "email": "sam@example.com"},
}
TOKEN_ADMIN = "991267001"
# Teams, and which admin a conversation assigned to them is assigned to: approvers, agents, and the general inbox
# (which the default mapping maps to no role).
TEAMS = {"team_lead": (5017691, 991267002), "agent": (5017692, 991267003), None: (5017690, 991267003)}
# The conversation data attributes defined in the workspace (Settings > Data > Conversations): name -> type.
CONVERSATION_ATTRIBUTES = {
    "payment_provider": str,
    "payment_id": str,
    "refund_reason": str,
    "order_id": str,
    "refund_amount": str,
    "refund_currency": str,
    "invoice_system": str,
    "invoice_id": str,
    "refund_status": str,
    "shopify_order_id": str,
}
UPDATE_FIELDS = frozenset({"read", "title", "custom_attributes", "company_id"})
ADMIN_REPLY_FIELDS = frozenset(
    {
        "message_type",
        "type",
        "body",
        "admin_id",
        "created_at",
        "reply_options",
        "attachment_urls",
        "attachment_files",
        "skip_notifications",
    }
)
INTENT_TAGS = {"approve": "refund_approved", "request": "refund_requested", "withdraw": "refund_cancelled"}
STATUS_ATTRIBUTE = "refund_status"
TAG_TOPIC = "conversation_part.tag.created"
_TAGS = re.compile(r"<[^>]*>")
_FAULT_CODES = {
    400: ("bad_request", "The request could not be processed"),
    429: ("rate_limit_exceeded", "Exceeded rate limit"),
    500: ("server_error", "Internal server error"),
    502: ("service_unavailable", "The service is temporarily unavailable; retry later"),
    503: ("service_unavailable", "The service is temporarily unavailable; retry later"),
    504: ("request_timeout", "The server timed out while processing the request"),
}


def intercom_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    body = {"type": "error.list", "request_id": str(uuid.uuid4()), "errors": [{"code": code, "message": message}]}
    return json_response(body, status, headers=dict(headers or {}))


class IntercomSimulator(Simulator):
    """An Intercom workspace: conversations, contacts, tags, conversation attributes, notes, signed notifications."""

    name = "intercom"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", r"^/conversations/[0-9]+$"),
        # The note: the write that carries the marker (the attribute PUT before it is idempotent, and a lost answer
        # to it leaves no marker to find, so the whole update is simply written again).
        "write_back": ("POST", r"^/conversations/[0-9]+/reply$"),
        "public_reply": ("POST", r"^/conversations/[0-9]+/reply$"),
        "has_update": ("GET", r"^/conversations/[0-9]+$"),
    }

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        rate_limit: int = DEFAULT_RATE_LIMIT,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.access_token = access_token
        self.client_secret = client_secret
        self.rate_limit = rate_limit
        self._now = now
        self._ids = itertools.count(1)
        self._window: tuple[int, int] = (0, 0)  # (window end, requests in it)
        self.conversations: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.route("/conversations/<conversation_id>", self._get_conversation, methods=["GET"])
        self.route("/conversations/<conversation_id>", self._update_conversation, methods=["PUT"])
        self.route("/conversations/<conversation_id>/reply", self._reply, methods=["POST"])
        self.route("/contacts/<contact_id>", self._get_contact, methods=["GET"])
        self.route("/me", self._me, methods=["GET"])
        self.route("/_control/conversations", self._control_seed, methods=["POST"])
        self.route("/_control/conversations/<conversation_id>", self._control_view, methods=["GET"])
        self.route("/_control/conversations/<conversation_id>/tag", self._control_tag, methods=["POST"])

    # ---------------------------------------------------------------- TicketSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        return {
            "api": {"access_token": self.access_token},
            "verification": {"client_secrets": [self.client_secret]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where the app's notifications go (the stack's ``{api}/webhooks/intercom``), signed with its client
        secret."""
        self.webhooks.configure(url, self.client_secret)

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        signature = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        return {"X-Hub-Signature": f"sha1={signature}", "User-Agent": "intercom-parrot-service-client/1.0"}

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """A customer's conversation asking for a refund, with the conversation attributes the default mapping
        reads, assigned to the team of ``approver_role`` (None: the general inbox). Nothing is sent."""
        if not request.get("payment_provider") or not request.get("payment_id"):
            raise ValueError("payment_provider and payment_id are required")
        with self.lock:
            now = int(self._now())
            contact_id = uuid.uuid4().hex[:24]
            email = str(request.get("customer_email") or f"customer{next(self._ids)}@example.com")
            name = request.get("customer_name") or "Ada Lovelace"
            self.contacts[contact_id] = {
                "type": "contact",
                "id": contact_id,
                "external_id": None,
                "workspace_id": APP_ID,
                "role": "user",
                "email": email,
                "name": name,
                "created_at": now,
                "updated_at": now,
                "custom_attributes": {},
            }
            attributes = {
                "payment_provider": request["payment_provider"],
                "payment_id": request["payment_id"],
                "refund_reason": request.get("reason"),
                "order_id": request.get("order_id"),
                "invoice_system": request.get("invoice_system"),
                "invoice_id": request.get("invoice_id"),
                "shopify_order_id": request.get("shopify_order_id"),
            }
            if request.get("amount") is not None:
                attributes["refund_amount"] = str(request["amount"])
                attributes["refund_currency"] = str(request.get("currency") or "EUR")
            team_id, admin_id = TEAMS[request.get("approver_role")]
            conversation_id = str(100000 + next(self._ids))
            description = str(request.get("description") or "I would like a refund, please.")
            self.conversations[conversation_id] = {
                "type": "conversation",
                "id": conversation_id,
                "title": request.get("subject") or "Refund request",
                "created_at": now,
                "updated_at": now,
                "waiting_since": now,
                "snoozed_until": None,
                "open": True,
                "state": "open",
                "read": False,
                "priority": "none",
                "admin_assignee_id": admin_id,
                "team_assignee_id": team_id,
                "tags": {"type": "tag.list", "tags": []},
                "source": {
                    "type": "conversation",
                    "id": str(400000000 + next(self._ids)),
                    "delivered_as": "customer_initiated",
                    "subject": "",
                    "body": f"<p>{_escape(description)}</p>",
                    "author": {"type": "user", "id": contact_id, "name": name, "email": email},
                    "attachments": [],
                    "url": None,
                    "redacted": False,
                },
                "contacts": {
                    "type": "contact.list",
                    "contacts": [{"type": "contact", "id": contact_id, "external_id": None}],
                },
                "custom_attributes": {key: value for key, value in attributes.items() if value is not None},
                "conversation_parts": {"type": "conversation_part.list", "conversation_parts": [], "total_count": 0},
            }
            return conversation_id

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """The assigned admin tags the conversation (``refund_approved`` / ``refund_requested`` /
        ``refund_cancelled``) and the app's ``conversation_part.tag.created`` notification is sent.

        Raises:
            KeyError: an unknown conversation. ValueError: an unknown intent.
        """
        if intent not in INTENT_TAGS:
            raise ValueError(f"unknown intent {intent!r}")
        with self.lock:
            conversation = self.conversations[ticket_id]
            now = int(self._now())
            tags = conversation["tags"]["tags"]
            if intent == "withdraw":  # withdrawing takes the approval's tag off as it adds the cancel tag
                tags[:] = [tag for tag in tags if tag["name"] != INTENT_TAGS["approve"]]
            name = INTENT_TAGS[intent]
            if all(tag["name"] != name for tag in tags):
                tags.append(
                    {
                        "type": "tag",
                        "id": str(7000 + list(INTENT_TAGS.values()).index(name)),
                        "name": name,
                        "applied_at": now,
                        "applied_by": {"type": "admin", "id": str(conversation["admin_assignee_id"])},
                    }
                )
            conversation["updated_at"] = now
            notification_id = f"notif_{uuid.uuid4()}"
            notification: dict[str, Any] = {
                "type": "notification_event",
                "app_id": APP_ID,
                "data": {"type": "notification_event_data", "item": copy.deepcopy(conversation)},
                "links": {},
                "id": notification_id,
                "topic": TAG_TOPIC,
                "delivery_status": "pending",
                "delivery_attempts": 1,
                "delivered_at": 0,
                "first_sent_at": now,
                "created_at": now,
                "self": None,
            }
            self.notifications.append(notification)
        body = json.dumps(notification).encode()
        self.webhooks.send(notification_id, TAG_TOPIC, body)

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        with self.lock:
            conversation = copy.deepcopy(self.conversations[ticket_id])
        parts = conversation["conversation_parts"]["conversation_parts"]
        status = conversation["custom_attributes"].get(STATUS_ATTRIBUTE)
        return {
            "notes": [_text(part["body"]) for part in parts if part["part_type"] == "note"],
            "public": [_text(part["body"]) for part in parts if part["part_type"] == "comment"],
            "labels": [status] if status else [],
            "ticket": conversation,
        }

    def fault_response(self, fault: FaultRule) -> Response:
        """A faulted answer in Intercom's shape; a 429 with the rate-limit headers (no ``Retry-After``: Intercom
        sends none) unless the rule sets its own headers."""
        if fault.body is not None:
            return json_response(fault.body, fault.status or 500, headers=fault.headers)
        status = fault.status or 500
        code, message = _FAULT_CODES.get(status, ("client_error" if status < 500 else "server_error", "Fault"))
        headers = dict(fault.headers)
        if status == 429 and not headers:
            reset = int(self._now()) + WINDOW_SECONDS
            headers = {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": "0"}
            headers["X-RateLimit-Reset"] = str(reset)
            message = f"Exceeded rate limit of {self.rate_limit} in 10_seconds"
        return intercom_error(status, code, message, headers)

    def reset_state(self) -> None:
        with self.lock:
            self.conversations.clear()
            self.contacts.clear()
            self.notifications.clear()
            self._window = (0, 0)

    # ---------------------------------------------------------------- API

    def _guard(self, request: Request) -> Response | dict[str, str]:
        """The rate-limit headers for an authenticated request, or the refusal (401, 400, 429)."""
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.access_token.encode()):
            return intercom_error(401, "unauthorized", "Access Token Invalid")
        version = request.headers.get("Intercom-Version")
        if version is not None and version not in API_VERSIONS:
            return intercom_error(400, "parameter_invalid", f"Requested API version {version!r} is not valid")
        with self.lock:
            now = self._now()
            end, used = self._window
            if now >= end:
                end, used = int(now) - int(now) % WINDOW_SECONDS + WINDOW_SECONDS, 0
            used += 1
            self._window = (end, used)
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.rate_limit - used, 0)),
            "X-RateLimit-Reset": str(end),
        }
        if used > self.rate_limit:
            message = f"Exceeded rate limit of {self.rate_limit} in 10_seconds"
            return intercom_error(429, "rate_limit_exceeded", message, headers)
        return headers

    def _conversation_or_404(self, conversation_id: str, headers: dict[str, str]) -> dict[str, Any] | Response:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return intercom_error(404, "not_found", "Resource Not Found", headers)
        return conversation

    def _get_conversation(self, request: Request, conversation_id: str) -> Response:
        headers = self._guard(request)
        if isinstance(headers, Response):
            return headers
        with self.lock:
            conversation = self._conversation_or_404(conversation_id, headers)
            if isinstance(conversation, Response):
                return conversation
            return json_response(copy.deepcopy(conversation), headers=headers)

    def _update_conversation(self, request: Request, conversation_id: str) -> Response:
        headers = self._guard(request)
        if isinstance(headers, Response):
            return headers
        payload = request.get_json(force=True, silent=True)
        if not isinstance(payload, dict):
            return intercom_error(400, "bad_request", "The request body must be a JSON object", headers)
        unknown = sorted(set(payload) - UPDATE_FIELDS)
        if unknown:
            return intercom_error(400, "parameter_invalid", f"Unknown parameters: {', '.join(unknown)}", headers)
        attributes = payload.get("custom_attributes", {})
        if not isinstance(attributes, dict):
            return intercom_error(400, "parameter_invalid", "custom_attributes must be an object", headers)
        for key, value in attributes.items():
            kind = CONVERSATION_ATTRIBUTES.get(key)
            if kind is None:
                return intercom_error(400, "parameter_invalid", f"Conversation attribute {key!r} not found", headers)
            if value is not None and not isinstance(value, kind):
                return intercom_error(400, "parameter_invalid", f"{key} must be a {kind.__name__}", headers)
        with self.lock:
            conversation = self._conversation_or_404(conversation_id, headers)
            if isinstance(conversation, Response):
                return conversation
            conversation["custom_attributes"].update(attributes)
            for field in ("read", "title"):
                if field in payload:
                    conversation[field] = payload[field]
            conversation["updated_at"] = int(self._now())
            return json_response(copy.deepcopy(conversation), headers=headers)

    def _reply(self, request: Request, conversation_id: str) -> Response:
        headers = self._guard(request)
        if isinstance(headers, Response):
            return headers
        payload = request.get_json(force=True, silent=True)
        if not isinstance(payload, dict):
            return intercom_error(400, "bad_request", "The request body must be a JSON object", headers)
        if payload.get("type") != "admin":
            return intercom_error(400, "parameter_invalid", "type must be admin (no contact replies here)", headers)
        unknown = sorted(set(payload) - ADMIN_REPLY_FIELDS)
        if unknown:
            return intercom_error(400, "parameter_invalid", f"Unknown parameters: {', '.join(unknown)}", headers)
        message_type = payload.get("message_type")
        if message_type not in ("comment", "note"):
            return intercom_error(400, "parameter_invalid", "message_type must be comment or note", headers)
        admin_id = payload.get("admin_id")
        if not isinstance(admin_id, str) or not admin_id:
            return intercom_error(400, "parameter_not_found", "admin_id is required", headers)
        body = payload.get("body")
        if not isinstance(body, str) or not body.strip():
            return intercom_error(400, "parameter_not_found", "Body is required", headers)
        if admin_id not in ADMINS:
            return intercom_error(404, "not_found", "Admin Not Found", headers)
        with self.lock:
            conversation = self._conversation_or_404(conversation_id, headers)
            if isinstance(conversation, Response):
                return conversation
            now = int(self._now())
            parts = conversation["conversation_parts"]
            parts["conversation_parts"].append(
                {
                    "type": "conversation_part",
                    "id": str(next(self._ids)),
                    "part_type": message_type,
                    "body": body,
                    "created_at": now,
                    "updated_at": now,
                    "notified_at": now,
                    "author": {"type": "admin", "id": admin_id, **ADMINS[admin_id]},
                    "attachments": [],
                    "external_id": None,
                    "redacted": False,
                }
            )
            parts["conversation_parts"][:] = parts["conversation_parts"][-500:]
            parts["total_count"] = len(parts["conversation_parts"])
            conversation["updated_at"] = now
            return json_response(copy.deepcopy(conversation), headers=headers)

    def _get_contact(self, request: Request, contact_id: str) -> Response:
        headers = self._guard(request)
        if isinstance(headers, Response):
            return headers
        with self.lock:
            contact = self.contacts.get(contact_id)
            if contact is None:
                return intercom_error(404, "not_found", "User Not Found", headers)
            return json_response(copy.deepcopy(contact), headers=headers)

    def _me(self, request: Request) -> Response:
        headers = self._guard(request)
        if isinstance(headers, Response):
            return headers
        admin = ADMINS[TOKEN_ADMIN]
        body = {"type": "admin", "id": TOKEN_ADMIN, "email_verified": True, **admin}
        return json_response(body, headers=headers)

    # ---------------------------------------------------------------- control

    def _control_seed(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        try:
            return json_response({"id": self.seed_ticket(payload)}, 201)
        except (KeyError, ValueError) as error:
            return json_response({"error": str(error)}, 400)

    def _control_view(self, request: Request, conversation_id: str) -> Response:
        try:
            return json_response(self.ticket_view(conversation_id))
        except KeyError:
            return json_response({"error": f"no conversation {conversation_id}"}, 404)

    def _control_tag(self, request: Request, conversation_id: str) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        try:
            self.agent_action(conversation_id, str(payload.get("intent")))
        except KeyError:
            return json_response({"error": f"no conversation {conversation_id}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response({"tagged": True})

    def not_found(self, request: Request) -> Response:
        return intercom_error(404, "not_found", "Resource Not Found")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(body: str | None) -> str:
    """A part's HTML body as a person reads it in the Inbox (tags dropped, entities resolved)."""
    return html.unescape(_TAGS.sub("", body or "")).strip()


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks: importing the
    simulator stays light (the scenarios need the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("intercom")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
