"""A stateful Gorgias help desk for the calls refundflow makes, on Gorgias's own paths (REST API).

Mounted by the local stack at ``/_sandbox/gorgias``; the connector's base address is ``{sandbox}/gorgias`` (live:
``https://{domain}.gorgias.com``). What it holds to, as developers.gorgias.com documents it (no official OpenAPI
file is in ``../shared/contracts``, so requests are checked here field by field):

- HTTP Basic auth with the account user's e-mail and the API key; anything else is a 401;
- ``GET /api/tickets/{id}`` (tags as ``[{id, name}]``, ``assignee_user_id`` / ``assignee_user``,
  ``assignee_team_id`` / ``assignee_team``, ``customer`` in short, ``updated_datetime``),
  ``GET /api/tickets/{id}/custom-fields`` (``[{id, field: {id, label, ...}, value}]``),
  ``GET /api/customers/{id}`` (``integrations`` keyed by integration id: a Shopify integration's ``orders``, a
  Stripe integration's ``charges``);
- ``POST /api/tickets/{id}/messages``: ``channel`` and ``from_agent`` required, ``internal-note`` needs
  ``from_agent: true`` and a ``sender`` who is a user (``id`` or ``email``), ``external_id`` at most 255 characters;
  fields the endpoint does not document are refused (a simulator strictness); answers 201 with the message;
- ``GET /api/tickets/{id}/messages?limit=&cursor=``: ``{"data", "meta": {"next_cursor", "prev_cursor"}}``, oldest
  first, ``limit`` 1 to 100;
- ``POST`` / ``DELETE`` / ``PUT /api/tickets/{id}/tags`` with ``{"ids": [...], "names": [...]}``: add (201), remove
  (204; absent names are ignored, which Gorgias does not document), replace (202);
- rate limit: a leaky bucket of 40 calls draining 2 per second (API key integrations: 40 requests per 20 s);
  every answer carries ``X-Gorgias-Account-Api-Call-Limit: <used>/40``, a refused call is 429 with ``Retry-after``
  (whole seconds until a call fits);
- errors ``{"error": {"msg": ..., "data": {...}}}``: Gorgias documents only "the error attribute"; the inner
  shape is this simulator's choice.

Deliveries: the HTTP integration's call (``POST`` JSON ``{"ticket_id", "updated_datetime", "status", "tags",
"assignee_user_id", "assignee_team_id"}``, the README's template) with ``Authorization: Bearer
<token>`` (the header the admin sets: Gorgias signs nothing), on every ticket update: an agent's
(``agent_action``, ``close_ticket``) and, as Gorgias does, the updates our API makes (``notify_api_updates=False``
turns those off).

Control routes (besides the base ones): ``POST /_control/tickets`` (a TicketSandbox ``seed_ticket`` request) ->
``{"id": "<ticket id>"}``; ``POST /_control/tickets/{id}/agent-action`` ``{"intent": "approve" | "request" |
"withdraw" | "close"}``; ``GET /_control/tickets/{id}/view``: ``ticket_view``.

Not modelled: tickets' creation through the API, macros, rules, views, satisfaction surveys, OAuth2 apps.
"""

from __future__ import annotations

import base64
import copy
import html
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, WebhookSender, json_response

DEFAULT_EMAIL = "refundflow@example-shop.com"
DEFAULT_API_KEY = "gorgias-local-api-key-0123456789abcdef"
DEFAULT_TOKEN = "gorgias-local-integration-token-0123456789"
BUCKET_SIZE = 40
LEAK_PER_SECOND = 2.0
SHOPIFY_INTEGRATION_ID = "61"
STRIPE_INTEGRATION_ID = "62"
# Ticket fields of the default mapping (refundflow/platforms/gorgias/mapping.yaml), as an admin would create them.
FIELDS = {
    5000: "Order number",
    5001: "Refund amount",
    5002: "Refund currency",
    5003: "Refund reason",
    5004: "Payment provider",
    5005: "Payment id",
    5006: "Invoice system",
    5007: "Invoice id",
}
TEAMS = {7001: "Refund leads", 7002: "Support agents", 7003: "Returns desk"}  # 7003: no role in the mapping
ROLE_TEAMS = {"team_lead": 7001, "agent": 7002}
INTENT_TAGS = {"approve": "refund_approved", "request": "refund", "withdraw": "refund_cancelled"}
CHANNELS = frozenset({"api", "email", "chat", "phone", "sms", "internal-note", "facebook", "instagram-direct"})
MESSAGE_FIELDS = frozenset(
    {
        "actions",
        "attachments",
        "body_html",
        "body_text",
        "channel",
        "created_datetime",
        "external_id",
        "from_agent",
        "integration_id",
        "macros",
        "mention_ids",
        "message_id",
        "receiver",
        "sender",
        "sent_datetime",
        "source",
        "subject",
        "via",
    }
)


class GorgiasError(Exception):
    def __init__(self, status: int, msg: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.status, self.msg, self.data = status, msg, dict(data or {})

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        body: dict[str, Any] = {"error": {"msg": self.msg, **({"data": self.data} if self.data else {})}}
        return json_response(body, self.status, headers=dict(headers or {}))


class GorgiasSimulator(Simulator):
    """Gorgias tickets, customers, messages and tags; HTTP integration calls authenticated by a bearer token."""

    name = "gorgias"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "read_ticket": ("GET", r"^/api/tickets/[0-9]+/?$"),
        # the note: it carries the marker (the state tags written before it are idempotent)
        "write_back": ("POST", r"^/api/tickets/[0-9]+/messages/?$"),
        "public_reply": ("POST", r"^/api/tickets/[0-9]+/messages/?$"),
        "has_update": ("GET", r"^/api/tickets/[0-9]+/messages/?$"),
    }
    TRANSIENT_STATUS: ClassVar[int] = 429

    def __init__(
        self,
        email: str = DEFAULT_EMAIL,
        api_key: str = DEFAULT_API_KEY,
        *,
        webhook_url: str | None = None,
        token: str = DEFAULT_TOKEN,
        notify_api_updates: bool = True,
        bucket_size: int = BUCKET_SIZE,
        leak_per_second: float = LEAK_PER_SECOND,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``now``: the rate limit's clock (tests move it)."""
        self.email, self.api_key = email, api_key
        self.notify_api_updates = notify_api_updates
        self.bucket_size, self.leak_per_second = bucket_size, leak_per_second
        self._now = now
        self.tickets: dict[int, dict[str, Any]] = {}
        self.customers: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, list[dict[str, Any]]] = {}
        self.field_values: dict[int, dict[int, Any]] = {}
        self.api_tags: dict[int, set[str]] = {}
        self.users = {101: {"id": 101, "email": email, "name": "Refundflow API"}}
        self.users.update({301: {"id": 301, "email": "lead@example-shop.com", "name": "Grace Lead"}})
        self.users.update({302: {"id": 302, "email": "agent@example-shop.com", "name": "Alan Agent"}})
        self._ids = itertools.count(1001)
        self._tag_ids: dict[str, int] = {}
        self._bucket = (0.0, now())
        self._bucket_lock = threading.Lock()
        super().__init__()
        # Gorgias "generally keeps retrying individual requests" (docs.gorgias.com, "Broken or disconnected HTTP
        # integration"; no schedule published): here 3 retries, 1 s apart and doubling.
        self.webhooks = WebhookSender(self.sign_webhook, retries=3, backoff=1.0)
        self.webhooks.configure(webhook_url, token)
        api = "/api"
        self.route(f"{api}/tickets/<int:ticket_id>", self._get_ticket, methods=["GET"])
        self.route(f"{api}/tickets/<int:ticket_id>/custom-fields", self._get_fields, methods=["GET"])
        self.route(f"{api}/tickets/<int:ticket_id>/messages", self._list_messages, methods=["GET"])
        self.route(f"{api}/tickets/<int:ticket_id>/messages", self._create_message, methods=["POST"])
        self.route(f"{api}/tickets/<int:ticket_id>/tags", self._tags, methods=["POST", "DELETE", "PUT"])
        self.route(f"{api}/customers/<int:customer_id>", self._get_customer, methods=["GET"])
        self.route("/_control/tickets", self._control_seed, methods=["POST"])
        self.route("/_control/tickets/<ticket_id>/agent-action", self._control_action, methods=["POST"])
        self.route("/_control/tickets/<ticket_id>/view", self._control_view, methods=["GET"])

    # ---------------------------------------------------------------- base hooks

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """Gorgias signs nothing: the header the admin set on the integration goes with every call."""
        return {"Authorization": f"Bearer {secret}"}

    def reset_state(self) -> None:
        with self.lock:
            for store in (self.tickets, self.customers, self.messages, self.field_values, self.api_tags):
                store.clear()
        with self._bucket_lock:
            self._bucket = (0.0, self._now())

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure in Gorgias's shape; a 429 carries ``Retry-after`` like a real one."""
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        headers = dict(fault.headers)
        if status == 429:
            headers.setdefault("Retry-after", "2")
            return GorgiasError(429, "Too many requests").response(headers)
        return GorgiasError(status, "Internal server error (simulated fault)").response(headers)

    def not_found(self, request: Request) -> Response:
        if not request.path.startswith("/api/"):
            return super().not_found(request)
        return GorgiasError(404, "Resource not found.").response()

    def dispatch(self, request: Request) -> Response:
        if not request.path.startswith("/api/"):
            return super().dispatch(request)
        try:
            self._authenticate(request)
            used = self._take_call()
        except GorgiasError as error:
            with self.lock:
                self.requests_seen.append(
                    {
                        "method": request.method,
                        "path": request.path,
                        "query": request.query_string.decode(),
                        "headers": dict(request.headers),
                        "body": request.get_data().decode("utf-8", "replace"),
                        "refused": error.status,
                    }
                )
            retry = {"Retry-after": str(self._retry_after())} if error.status == 429 else {}
            full = f"{self.bucket_size}/{self.bucket_size}"
            return error.response({**retry, "X-Gorgias-Account-Api-Call-Limit": full})
        response = super().dispatch(request)
        response.headers.setdefault("X-Gorgias-Account-Api-Call-Limit", f"{used}/{self.bucket_size}")
        return response

    # ---------------------------------------------------------------- TicketSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        return {
            "api": {"email": self.email, "api_key": self.api_key},
            "verification": {"tokens": [self.webhooks.secret or DEFAULT_TOKEN]},
        }

    def send_webhooks_to(self, url: str) -> None:
        self.webhooks.configure(url, self.webhooks.secret or DEFAULT_TOKEN)

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """A ticket of a customer whose order carries the refund's payment, the way the default mapping reads it:
        a Stripe payment as a Shopify order paid through the ``stripe`` gateway (``stripe_only``: a charge of the
        Stripe integration, no Shopify order), any other provider in the Payment provider / Payment id fields.
        Extra keys: ``shopify_order_id``, ``order_currency``, ``stripe_only``, ``orders`` (how many more orders)."""
        with self.lock:
            provider, payment_id = str(request["payment_provider"]), str(request["payment_id"])
            currency = str(request.get("currency") or request.get("order_currency") or "EUR").upper()
            customer_id, ticket_id = next(self._ids), next(self._ids)
            order_name = str(request.get("order_id") or f"#{ticket_id}")
            integrations: dict[str, Any] = {}
            fields: dict[int, Any] = {}
            if provider == "stripe" and request.get("stripe_only"):
                charge: dict[str, Any] = {"id": f"ch_{payment_id[3:]}" if payment_id.startswith("pi_") else payment_id}
                charge.update({"object": "charge", "currency": currency.lower(), "status": "succeeded", "paid": True})
                charge.update({"payment_intent": payment_id if payment_id.startswith("pi_") else None})
                charge.update({"created": int(self._now()), "amount": 0})
                integrations[STRIPE_INTEGRATION_ID] = {"__integration_type__": "stripe", "charges": [charge]}
            else:
                gateway = "stripe" if provider == "stripe" else "manual"
                order = _shopify_order(
                    int(request.get("shopify_order_id") or 450789469 + ticket_id),
                    order_name,
                    currency,
                    gateway,
                    payment_id if provider == "stripe" else None,
                )
                extra = [
                    _shopify_order(450700000 + n, f"#90{n}", currency, "shopify_payments", None)
                    for n in range(int(request.get("orders") or 0))
                ]
                integrations[SHOPIFY_INTEGRATION_ID] = {"__integration_type__": "shopify", "orders": [order, *extra]}
                fields[5000] = order_name
            if provider != "stripe":
                fields[5004], fields[5005] = provider, payment_id
            if request.get("amount") not in (None, ""):
                fields[5001] = str(request["amount"])
                fields[5002] = currency
            for key, field_id in (("reason", 5003), ("invoice_system", 5006), ("invoice_id", 5007)):
                if request.get(key):
                    fields[field_id] = str(request[key])
            email = str(request.get("customer_email") or f"customer{customer_id}@example.com")
            name = str(request.get("customer_name") or "Ada Lovelace")
            self.customers[customer_id] = {
                "id": customer_id,
                "email": email,
                "name": name,
                "firstname": name.split(" ")[0],
                "lastname": " ".join(name.split(" ")[1:]),
                "external_id": None,
                "channels": [{"type": "email", "address": email, "preferred": True}],
                "integrations": integrations,
                "created_datetime": _stamp(self._now()),
                "updated_datetime": _stamp(self._now()),
            }
            role = request.get("approver_role")
            team_id = ROLE_TEAMS.get(str(role), 7003)
            assignee = 301 if role == "team_lead" else 302 if role == "agent" else None
            self.tickets[ticket_id] = {
                "id": ticket_id,
                "uri": f"/api/tickets/{ticket_id}/",
                "external_id": None,
                "status": "open",
                "channel": "email",
                "via": "email",
                "priority": "normal",
                "spam": False,
                "subject": str(request.get("subject") or "Refund for my order"),
                "customer_id": customer_id,
                "assignee_user_id": assignee,
                "assignee_team_id": team_id,
                "tags": [],
                "language": "en",
                "created_datetime": _stamp(self._now()),
                "updated_datetime": _stamp(self._now()),
                "closed_datetime": None,
                "meta": None,
            }
            self.field_values[ticket_id] = fields
            self.messages[ticket_id] = []
            self.api_tags[ticket_id] = set()
            self._add_message(
                ticket_id,
                {
                    "channel": "email",
                    "via": "email",
                    "from_agent": False,
                    "sender": {"id": customer_id, "email": email, "name": name},
                    "body_text": str(request.get("description") or "Hello, I would like a refund please."),
                },
            )
            return str(ticket_id)

    def agent_action(self, ticket_id: str, intent: str) -> None:
        """An agent tags the ticket (``refund_approved``, ``refund``, ``refund_cancelled``): a ticket update, so the
        HTTP integration calls our endpoint.

        Raises:
            KeyError: an unknown ticket. ValueError: an unknown intent.
        """
        if intent not in INTENT_TAGS:
            raise ValueError(f"unknown intent {intent!r}")
        with self.lock:
            ticket = self.tickets[int(ticket_id)]
            self._add_tags(ticket, [INTENT_TAGS[intent]])
            if intent == "approve" and ticket["assignee_user_id"] is None:
                ticket["assignee_user_id"] = 302
            self._updated(ticket, by_api=False)

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        with self.lock:
            ticket = self.tickets[int(ticket_id)]
            messages = self.messages[int(ticket_id)]
            return {
                "notes": [m["body_text"] for m in messages if m["channel"] == "internal-note"],
                "public": [m["body_text"] for m in messages if m["channel"] != "internal-note" and m["from_agent"]],
                "labels": [tag["name"] for tag in ticket["tags"] if tag["name"] in self.api_tags[int(ticket_id)]],
                "ticket": self._ticket_shown(ticket),
            }

    def close_ticket(self, ticket_id: str) -> None:
        """An agent closes the ticket (a ticket update: the integration calls us)."""
        with self.lock:
            ticket = self.tickets[int(ticket_id)]
            ticket["status"], ticket["closed_datetime"] = "closed", _stamp(self._now())
            self._updated(ticket, by_api=False)

    # ---------------------------------------------------------------- auth and rate limit

    def _authenticate(self, request: Request) -> None:
        value = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.email}:{self.api_key}".encode()).decode()
        if value != f"Basic {expected}":
            raise GorgiasError(401, "Unauthorized: the e-mail or the API key is wrong.")

    def _take_call(self) -> int:
        """One call into the bucket (leaking LEAK_PER_SECOND since the last one); a full bucket is a 429."""
        with self._bucket_lock:
            level, since = self._bucket
            now = self._now()
            level = max(0.0, level - (now - since) * self.leak_per_second)
            if level + 1 > self.bucket_size:
                self._bucket = (level, now)
                raise GorgiasError(429, "Too many requests. Please retry later.")
            self._bucket = (level + 1, now)
            return math.ceil(level + 1)

    def _retry_after(self) -> int:
        with self._bucket_lock:
            level, _ = self._bucket
            return max(1, math.ceil((level + 1 - self.bucket_size) / self.leak_per_second))

    # ---------------------------------------------------------------- API

    def _ticket(self, ticket_id: int) -> dict[str, Any]:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise GorgiasError(404, "Resource not found.")
        return ticket

    def _get_ticket(self, request: Request, ticket_id: int) -> Response:
        with self.lock:
            try:
                return json_response(self._ticket_shown(self._ticket(ticket_id)))
            except GorgiasError as error:
                return error.response()

    def _get_fields(self, request: Request, ticket_id: int) -> Response:
        with self.lock:
            try:
                self._ticket(ticket_id)
            except GorgiasError as error:
                return error.response()
            values = [
                {"id": ticket_id * 100 + field_id, "field": _field(field_id), "value": value}
                for field_id, value in sorted(self.field_values[ticket_id].items())
            ]
            return json_response(values)

    def _get_customer(self, request: Request, customer_id: int) -> Response:
        with self.lock:
            customer = self.customers.get(customer_id)
            if customer is None:
                return GorgiasError(404, "Resource not found.").response()
            return json_response(copy.deepcopy(customer))

    def _list_messages(self, request: Request, ticket_id: int) -> Response:
        with self.lock:
            try:
                self._ticket(ticket_id)
                limit = int(request.args.get("limit", "30"))
                start = int(request.args.get("cursor") or "0")
            except GorgiasError as error:
                return error.response()
            except ValueError:
                return GorgiasError(400, "Validation error", {"limit": ["Not a valid integer."]}).response()
            if not 1 <= limit <= 100:
                return GorgiasError(400, "Validation error", {"limit": ["Must be between 1 and 100."]}).response()
            messages = self.messages[ticket_id]
            page = messages[start : start + limit]
            following = str(start + limit) if start + limit < len(messages) else None
            meta = {"next_cursor": following, "prev_cursor": str(max(0, start - limit)) if start else None}
            return json_response({"object": "list", "data": copy.deepcopy(page), "meta": meta})

    def _create_message(self, request: Request, ticket_id: int) -> Response:
        with self.lock:
            try:
                ticket = self._ticket(ticket_id)
                payload = _json_object(request)
                message = self._valid_message(payload)
            except GorgiasError as error:
                return error.response()
            created = self._add_message(ticket_id, message)
            self._updated(ticket, by_api=True)
            return json_response(copy.deepcopy(created), 201)

    def _valid_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        problems: dict[str, list[str]] = {}
        for unknown in sorted(set(payload) - MESSAGE_FIELDS):
            problems[unknown] = ["Unknown field."]
        if payload.get("channel") not in CHANNELS:
            problems["channel"] = ["Missing data for required field." if "channel" not in payload else "Not valid."]
        if not isinstance(payload.get("from_agent"), bool):
            problems["from_agent"] = ["Missing data for required field."]
        if not (payload.get("body_text") or payload.get("body_html")):
            problems["body_text"] = ["A message needs body_text or body_html."]
        external_id = payload.get("external_id")
        if external_id is not None and (not isinstance(external_id, str) or len(external_id) > 255):
            problems["external_id"] = ["Longer than maximum length 255."]
        if payload.get("channel") == "internal-note":
            if payload.get("from_agent") is not True:
                problems["from_agent"] = ["An internal note is always sent by a user."]
            if self._user(payload.get("sender")) is None:
                problems["sender"] = ["An internal note's sender must be a user of the account."]
        elif payload.get("channel") == "email" and payload.get("from_agent") is True:
            problems.update(self._outgoing_email_problems(payload))
        if problems:
            raise GorgiasError(400, "Failed to create the message.", problems)
        return payload

    def _outgoing_email_problems(self, payload: Mapping[str, Any]) -> dict[str, list[str]]:
        """An outgoing e-mail needs a user as sender, a receiver and a source routing it to a known customer."""
        problems: dict[str, list[str]] = {}
        if self._user(payload.get("sender")) is None:
            problems["sender"] = ["An outgoing message's sender must be a user of the account."]
        receiver = payload.get("receiver")
        known = {customer["email"] for customer in self.customers.values()}
        if not isinstance(receiver, Mapping) or receiver.get("email") not in known:
            problems["receiver"] = ["An outgoing message needs a receiver who is a customer."]
        source = payload.get("source")
        to = source.get("to") if isinstance(source, Mapping) else None
        if (
            not isinstance(source, Mapping)
            or source.get("type") != "email"
            or not isinstance(source.get("from"), Mapping)
            or not isinstance(to, list)
            or not to
            or not all(isinstance(item, Mapping) and item.get("address") in known for item in to)
        ):
            problems["source"] = ["An outgoing e-mail needs source.type email, source.from and source.to addresses."]
        return problems

    def _user(self, sender: Any) -> dict[str, Any] | None:
        if not isinstance(sender, Mapping):
            return None
        return next(
            (
                user
                for user in self.users.values()
                if sender.get("id") == user["id"] or sender.get("email") == user["email"]
            ),
            None,
        )

    def _tags(self, request: Request, ticket_id: int) -> Response:
        with self.lock:
            try:
                ticket = self._ticket(ticket_id)
                payload = _json_object(request)
                unknown = sorted(set(payload) - {"ids", "names"})
                names = payload.get("names") or []
                ids = payload.get("ids") or []
                if unknown or not isinstance(names, list) or not isinstance(ids, list) or not (names or ids):
                    raise GorgiasError(
                        400,
                        "Validation error",
                        {key: ["Unknown field."] for key in unknown} or {"names": ["Give ids or names."]},
                    )
                if any(not isinstance(name, str) or not name or len(name) > 256 for name in names):
                    raise GorgiasError(400, "Validation error", {"names": ["A tag name is 1 to 256 characters."]})
                by_id = {tag_id: name for name, tag_id in self._tag_ids.items()}
                if any(tag_id not in by_id for tag_id in ids):
                    raise GorgiasError(404, "Tag not found.")
                names = [*names, *(by_id[tag_id] for tag_id in ids)]
            except GorgiasError as error:
                return error.response()
            if request.method == "POST":
                self._add_tags(ticket, names)
                self.api_tags[ticket_id].update(names)
                status = 201
            elif request.method == "DELETE":
                ticket["tags"] = [tag for tag in ticket["tags"] if tag["name"] not in names]
                self.api_tags[ticket_id].difference_update(names)
                status = 204
            else:
                ticket["tags"] = []
                self._add_tags(ticket, names)
                self.api_tags[ticket_id] = set(names)
                status = 202
            self._updated(ticket, by_api=True)
            return Response(status=status)

    # ---------------------------------------------------------------- state

    def _add_tags(self, ticket: dict[str, Any], names: list[str]) -> None:
        present = {tag["name"] for tag in ticket["tags"]}
        for name in names:
            if name not in present:
                tag_id = self._tag_ids.setdefault(name, 9000 + len(self._tag_ids))
                ticket["tags"].append({"id": tag_id, "name": name, "uri": f"/api/tags/{tag_id}/", "decoration": None})
                present.add(name)

    def _add_message(self, ticket_id: int, message: dict[str, Any]) -> dict[str, Any]:
        sender = self._user(message.get("sender")) or dict(message.get("sender") or {})
        stored = {
            "id": next(self._ids),
            "uri": None,
            "ticket_id": ticket_id,
            "channel": message["channel"],
            "via": message.get("via", "api"),
            "from_agent": message["from_agent"],
            "public": message["channel"] != "internal-note",
            "sender": copy.deepcopy(sender),
            "body_text": message.get("body_text") or html.unescape(str(message.get("body_html") or "")),
            "body_html": message.get("body_html"),
            "external_id": message.get("external_id"),
            "created_datetime": _stamp(self._now()),
            "sent_datetime": message.get("sent_datetime") or _stamp(self._now()),
        }
        stored["uri"] = f"/api/tickets/{ticket_id}/messages/{stored['id']}/"
        self.messages[ticket_id].append(stored)
        return stored

    def _updated(self, ticket: dict[str, Any], *, by_api: bool) -> None:
        """A ticket update: a new ``updated_datetime`` (always later than the last), and the integration's call."""
        last = datetime.fromisoformat(ticket["updated_datetime"]).timestamp()
        ticket["updated_datetime"] = _stamp(max(self._now(), last + 0.001))
        if by_api and not self.notify_api_updates:
            return
        body = {  # the README's body template, rendered
            "ticket_id": str(ticket["id"]),
            "updated_datetime": ticket["updated_datetime"],
            "status": ticket["status"],
            "tags": ", ".join(tag["name"] for tag in ticket["tags"]),
            "assignee_user_id": str(ticket["assignee_user_id"] or ""),
            "assignee_team_id": str(ticket["assignee_team_id"] or ""),
        }
        event_id = f"{ticket['id']}@{ticket['updated_datetime']}"
        self.webhooks.send(event_id, "ticket-updated", json.dumps(body).encode())

    def _ticket_shown(self, ticket: dict[str, Any]) -> dict[str, Any]:
        shown = copy.deepcopy(ticket)
        customer = self.customers[ticket["customer_id"]]
        shown["customer"] = {key: customer[key] for key in ("id", "email", "name", "firstname", "lastname")}
        user = self.users.get(ticket["assignee_user_id"] or 0)
        shown["assignee_user"] = {key: user[key] for key in ("id", "email", "name")} if user else None
        team = ticket["assignee_team_id"]
        shown["assignee_team"] = {"id": team, "name": TEAMS[team]} if team else None
        shown["messages_count"] = len(self.messages[ticket["id"]])
        return shown

    # ---------------------------------------------------------------- control routes

    def _control_seed(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        if not payload.get("payment_provider") or not payload.get("payment_id"):
            return json_response({"error": "payment_provider and payment_id are required"}, 400)
        return json_response({"id": self.seed_ticket(payload)}, 201)

    def _control_action(self, request: Request, ticket_id: str) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        try:
            if payload.get("intent") == "close":
                self.close_ticket(ticket_id)
            else:
                self.agent_action(ticket_id, str(payload.get("intent")))
        except (KeyError, ValueError) as error:
            return json_response({"error": str(error)}, 404 if isinstance(error, KeyError) else 400)
        return json_response(self.ticket_view(ticket_id))

    def _control_view(self, request: Request, ticket_id: str) -> Response:
        try:
            return json_response(self.ticket_view(ticket_id))
        except (KeyError, ValueError):
            return json_response({"error": f"no ticket {ticket_id}"}, 404)


def _shopify_order(order_id: int, name: str, currency: str, gateway: str, charge_id: str | None) -> dict[str, Any]:
    """A Shopify order as Shopify's REST Admin API writes it (the fields refundflow reads), with one successful
    sale transaction on ``gateway`` (``authorization``: the Stripe charge or payment intent)."""
    transaction = {
        "id": order_id * 10 + 1,
        "kind": "sale",
        "status": "success",
        "gateway": gateway,
        "authorization": charge_id,
        "currency": currency,
        "amount": "0.00",
    }
    return {
        "id": order_id,
        "name": name,
        "currency": currency,
        "total_price": str(Decimal("0.00")),
        "financial_status": "paid",
        "payment_gateway_names": [gateway],
        "created_at": "2026-11-30T10:00:00+01:00",
        "transactions": [transaction],
    }


def _field(field_id: int) -> dict[str, Any]:
    return {
        "id": field_id,
        "object_type": "Ticket",
        "label": FIELDS[field_id],
        "definition": {"data_type": "text", "input_settings": {"input_type": "input"}},
        "required": False,
        "deactivated_datetime": None,
    }


def _json_object(request: Request) -> dict[str, Any]:
    try:
        payload = json.loads(request.get_data() or b"null")
    except ValueError as error:
        raise GorgiasError(400, "The request body is not valid JSON.") from error
    if not isinstance(payload, dict):
        raise GorgiasError(400, "The request body must be a JSON object.")
    return payload


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS`` (local/scenarios.py ``ticket_scenarios``), built when the demo asks: importing the
    simulator stays light (the scenarios need the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import ticket_scenarios

        return ticket_scenarios("gorgias")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
