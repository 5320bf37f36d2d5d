"""Gorgias as a TicketPlatform: the REST API, through the shared HTTP client.

No SDK: Gorgias publishes no Python SDK (its developer site documents the REST API only); we use seven endpoints.
What Gorgias documents and this module relies on (developers.gorgias.com: "Introduction" / authentication, "Rate
Limits", "Errors", "The Ticket object", "The Customer object", "Create a message", "Create a new message in ticket
via API", "List ticket messages", ticket tags, ticket custom field values):

- base URL ``https://{domain}.gorgias.com``; a private app authenticates with HTTP Basic, the account user's
  e-mail and an API key (``Settings > REST API``);
- ``GET /api/tickets/{id}`` (the ticket, its ``tags`` as ``[{id, name}]``, ``assignee_user_id``,
  ``assignee_team_id``, ``customer``), ``GET /api/tickets/{id}/custom-fields`` (``[{id, field: {id, label},
  value}]``) and ``GET /api/customers/{id}`` (``integrations``: Shopify orders, Stripe data): read_ticket returns
  the ticket with ``fields`` (``{"<field id>": value}``), the full ``customer``, ``orders`` and the ``order`` the
  ticket is about (orders.py), so the mapping reads one document;
- ``POST /api/tickets/{id}/messages`` with ``channel: "internal-note"`` (required; "internal notes are not sent to
  your customers"), ``from_agent: true`` (required), ``via: "api"``, ``sender: {"email": <the API user>}``,
  ``body_text`` / ``body_html`` and ``external_id`` ("not used by Gorgias, feel free to set it", at most 255
  characters: our marker); a message takes no idempotency key; the customer's message is an outgoing one:
  ``channel: "email"``, ``from_agent: true``, ``receiver`` the ticket's customer and ``source`` routing it
  (``{"type": "email", "from": {"address"}, "to": [{"address"}]}``, "The TicketMessage object": outgoing messages
  are "sent by your company to your customers");
- ``POST /api/tickets/{id}/tags`` and ``DELETE /api/tickets/{id}/tags`` with ``{"names": [...]}``: tags added and
  removed without replacing the ticket's others (``PUT`` would overwrite them all). Whether a DELETE naming a tag
  the ticket does not carry is refused is not documented; we send only the refund state tags;
- ``GET /api/tickets/{id}/messages?limit=100&cursor=`` (``{"data": [...], "meta": {"next_cursor"}}``): where a note
  whose answer was lost is looked for by its marker;
- errors: conventional statuses, the reason in the body's ``error`` attribute (its inner shape is not documented:
  ``{"error": {"msg", "data"}}`` and a plain string are both read); rate limit: a leaky bucket (API key
  integrations: 40 requests per 20 s), 429 with ``Retry-after`` seconds and ``X-Gorgias-Account-Api-Call-Limit``.

The write-back adds the state tag and removes the other state tags first, and writes the note (with its marker)
last, so a note found by ``has_update`` means its tags were written too. The tag calls are skipped when this process
wrote that same state tag to that ticket last (an agent who removes our state tag by hand sees it again at the next
state change, not at the next note).
"""

from __future__ import annotations

import html
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, missing, status_failure
from refundflow.errors import ConfigurationError, RejectedError, TransientError
from refundflow.platforms.gorgias.orders import customer_orders, ticket_order
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "gorgias"
DEFAULT_API_BASE = "https://example.gorgias.com"
# The tags a refund's state leaves on its ticket: one at a time (the others are removed with each update).
STATE_TAGS = ("refund_pending_approval", "refund_processing", "refund_issued", "refund_completed", "refund_failed")
TAG_FOR_LABEL = {
    "pending_approval": "refund_pending_approval",
    "approved": "refund_processing",
    "processing": "refund_processing",
    "issued": "refund_issued",
    "completed": "refund_completed",
    "settled": "refund_completed",
    "failed": "refund_failed",
    "rejected": "refund_failed",
    "needs_attention": "refund_processing",
}
MAX_MESSAGE_PAGES = 10
TAG_MEMORY = 1000  # tickets whose last state tag this process remembers
PAGE_SIZE = 100
TICKET_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: the id goes into the request's path


class GorgiasTickets(TicketPlatform):
    name = PLATFORM

    def __init__(self, http: HttpClient, *, sender_email: str, order_field_id: str | None = None) -> None:
        self.http = http
        self.sender_email = sender_email
        self.order_field_id = order_field_id
        # The state tag this process last wrote per ticket: consecutive events of one refund mostly share a label,
        # and each tag write costs two of the account's 40 calls per 20 s.
        self._tagged: OrderedDict[str, str] = OrderedDict()

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        path = f"/api/tickets/{_id(ticket_id)}"
        ticket = dict(self._get(path, f"read ticket {ticket_id}") or {})
        values = self._get(f"{path}/custom-fields", f"read the custom fields of ticket {ticket_id}") or []
        ticket["fields"] = {
            str((item.get("field") or {}).get("id", item.get("id"))): item.get("value")
            for item in (values if isinstance(values, list) else values.get("data", []))
            if isinstance(item, Mapping)
        }
        customer_id = ticket.get("customer_id") or (ticket.get("customer") or {}).get("id")
        if customer_id is not None and TICKET_ID.fullmatch(str(customer_id)):
            customer = self._get(f"/api/customers/{customer_id}", f"read the customer of ticket {ticket_id}")
            ticket["customer"] = dict(customer or {})
        orders = customer_orders(ticket.get("customer") or {})
        named = ticket["fields"].get(self.order_field_id) if self.order_field_id else None
        ticket["orders"] = orders
        ticket["order"] = ticket_order(orders, named)
        return ticket

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """The ticket's messages, page by page (``meta.next_cursor``), at most MAX_MESSAGE_PAGES pages: a note
        carries the marker as its ``external_id`` and at the end of its text."""
        cursor: str | None = None
        for _ in range(MAX_MESSAGE_PAGES):
            params: dict[str, Any] = {"limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})}
            response = self.http.request("GET", f"/api/tickets/{_id(ticket_id)}/messages", params=params)
            if not response.ok:
                self._fail(response, f"read the messages of ticket {ticket_id}", write=False)
            page = response.json() or {}
            for message in page.get("data", []):
                if message.get("external_id") == marker or marker in str(message.get("body_text") or ""):
                    return True
            cursor = (page.get("meta") or {}).get("next_cursor")
            if not cursor:
                return False
        return False

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        path = f"/api/tickets/{_id(ticket_id)}"
        if update.kind == "public_reply":
            self._reply(ticket_id, path, update)
            return
        tag = TAG_FOR_LABEL.get(update.label) if update.label else None
        if tag is not None and self._tagged.get(ticket_id) != tag:
            self._write("POST", f"{path}/tags", {"names": [tag]}, f"tag ticket {ticket_id}")
            others = [other for other in STATE_TAGS if other != tag]
            self._write("DELETE", f"{path}/tags", {"names": others}, f"untag ticket {ticket_id}")
            self._tagged[ticket_id] = tag
            self._tagged.move_to_end(ticket_id)
            while len(self._tagged) > TAG_MEMORY:
                self._tagged.popitem(last=False)
        note = {
            "channel": "internal-note",
            "via": "api",
            "from_agent": True,
            "sender": {"email": self.sender_email},
            "body_text": update.text,
            "body_html": f"<p>{html.escape(update.text)}</p>",
            "external_id": update.marker[:255],
        }
        self._write("POST", f"{path}/messages", note, f"add a note to ticket {ticket_id}")

    def _reply(self, ticket_id: str, path: str, update: TicketUpdate) -> None:
        """An outgoing e-mail message to the ticket's customer (Gorgias sends it), routed by ``source``."""
        customer = (self._get(path, f"read ticket {ticket_id}") or {}).get("customer") or {}
        address = customer.get("email")
        if not isinstance(address, str) or "@" not in address:
            raise RejectedError(
                f"Gorgias ticket {ticket_id} has no customer e-mail to reply to",
                code="gorgias_no_customer_email",
                platform=PLATFORM,
            )
        message = {
            "channel": "email",
            "via": "api",
            "from_agent": True,
            "sender": {"email": self.sender_email},
            "receiver": {"email": address},
            "source": {"type": "email", "from": {"address": self.sender_email}, "to": [{"address": address}]},
            "body_text": update.text,
            "body_html": f"<p>{html.escape(update.text)}</p>",
            "external_id": update.marker[:255],
        }
        self._write("POST", f"{path}/messages", message, f"reply on ticket {ticket_id}")

    def _get(self, path: str, what: str) -> Any:
        response = self.http.request("GET", path)
        if not response.ok:
            self._fail(response, what, write=False)
        return response.json()

    def _write(self, method: str, path: str, body: Any, what: str) -> None:
        response = self.http.request(method, path, json=body)
        if not response.ok:
            self._fail(response, what, write=True)

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        words = _error_words(response)
        message = f"Gorgias could not {what}: {response.status} {words}".strip()
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        if response.status == 404:
            raise missing(message, platform=PLATFORM, write=False)  # the ticket is gone: NotFound either way
        if response.status == 409:
            raise TransientError(message, code="ticket_changed", platform=PLATFORM)
        raise RejectedError(message, code=f"gorgias_{response.status}", platform=PLATFORM)


def _error_words(response: HttpResponse) -> str:
    """The body's ``error`` attribute in one line: ``{"error": {"msg", "data"}}``, ``{"error": "..."}`` or empty."""
    try:
        body = response.json() if response.body[:1] in (b"{", b"[") else None
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        words = str(error.get("msg") or error.get("message") or "")
        if isinstance(error.get("data"), Mapping) and error["data"]:
            words += " " + "; ".join(f"{key}: {value}" for key, value in list(error["data"].items())[:5])
        return words.strip()[:300]
    return str(error or "")[:300]


def _id(ticket_id: str) -> str:
    if not TICKET_ID.fullmatch(ticket_id):
        raise RejectedError(f"not a Gorgias ticket id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM)
    return ticket_id


class GorgiasSettings(settings.EnvModel):
    """Gorgias's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="GORGIAS_API_BASE")
    order_field_id: str = Field(default="", alias="GORGIAS_ORDER_FIELD_ID")


def _build(config: GorgiasSettings, name: str, secret: Mapping[str, Any]) -> GorgiasTickets:
    """From GORGIAS_API_BASE, GORGIAS_ORDER_FIELD_ID and the API secret ``{"email": ..., "api_key": ...}``.

    Raises:
        ConfigurationError: a secret of another shape, or an order field id that is not a number.
    """
    email, api_key = secret.get("email"), secret.get("api_key")
    if not isinstance(email, str) or "@" not in email or not isinstance(api_key, str) or not api_key:
        raise ConfigurationError(f"secret {name}: email and api_key must be set")
    if config.order_field_id and not TICKET_ID.fullmatch(config.order_field_id):
        raise ConfigurationError("GORGIAS_ORDER_FIELD_ID must be a ticket field id (digits)")
    import base64

    credentials = base64.b64encode(f"{email}:{api_key}".encode()).decode()
    http = HttpClient(
        platform=PLATFORM,
        base_url=config.api_base,
        default_headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
    )
    return GorgiasTickets(http, sender_email=email, order_field_id=config.order_field_id or None)


connector: SecretBoundConnector[GorgiasSettings, GorgiasTickets] = SecretBoundConnector(
    PLATFORM, GorgiasSettings, _build
)
"""The process's GorgiasTickets, built from GorgiasSettings and its API secret (``<SecretsPrefix>gorgias``)."""
