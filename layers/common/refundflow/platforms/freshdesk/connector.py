"""Freshdesk as a TicketPlatform: the Freshdesk API v2, through the shared HTTP client.

No SDK: the one Python client, ``python-freshdesk``, is a community project (last release 2022) that raises its own
exceptions without the ``Retry-After`` value and only takes ``*.freshdesk.com`` hosts (no sandbox, no simulator); we
use four endpoints. What Freshdesk documents and this module relies on (developers.freshdesk.com/api: "Authentication",
"Rate Limit", "Pagination", "Error Handling", "Tickets: View a Ticket / Update a Ticket", "Conversations: Create a
Note / List All Conversations of a Ticket"; rate limits also in support.freshdesk.com article 225439):

- base URL ``https://{domain}.freshdesk.com``; HTTP Basic with the agent's API key as user name and ``X`` as password;
- ``GET /api/v2/tickets/{id}?include=requester``: the ticket with ``status`` (2 Open, 3 Pending, 4 Resolved,
  5 Closed), ``group_id``, ``responder_id`` (the agent), ``custom_fields`` keyed by the fields' API names
  (``cf_...``) and, included, ``requester`` ``{id, name, email, mobile, phone}`` (the include costs one more credit);
- ``PUT /api/v2/tickets/{id}`` with ``{"custom_fields": {"cf_refund_status": <label>}}``: only the fields sent
  change; a dropdown field takes only its own choices (else 400 ``invalid_value``);
- ``POST /api/v2/tickets/{id}/notes`` with ``{"body": <HTML>, "private": true}``: a private note, agents only;
  nothing in the API makes a note idempotent;
- ``POST /api/v2/tickets/{id}/reply`` with ``{"body": <HTML>}``: a reply to the requester ("Conversations: Reply to
  a ticket", developers.freshdesk.com/api/#reply_ticket), the customer's message; found again by its marker among
  the conversations like a note;
- ``GET /api/v2/tickets/{id}/conversations?per_page=100&page=N``: replies and notes, oldest first, at most 100 a
  page, the next page's URL in the ``Link`` header (``rel="next"``), no header on the last page;
- errors ``{"description": "Validation failed", "errors": [{"field", "message", "code"}]}`` on 400, or
  ``{"code", "message"}`` (``invalid_credentials``, ``access_denied``...) on 401/403; 404 for an unknown ticket;
  429 with ``Retry-After`` (seconds) when the account's per-minute limit (per plan, shared by every API user of
  the account) is spent; every answer carries ``X-RateLimit-Total`` / ``-Remaining`` / ``-Used-CurrentRequest``.

A write-back is two calls: the status field first (a PUT: writing the same value again changes nothing), then the
note that carries the marker. A lost answer on either is retried safely: until the note is there, ``has_update``
says no and both are written again; once it is there, both are.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, missing, status_failure
from refundflow.errors import ConfigurationError, RejectedError
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "freshdesk"
DEFAULT_API_BASE = "https://example.freshdesk.com"
DEFAULT_STATUS_FIELD = "cf_refund_status"
CONVERSATIONS_PER_PAGE = 100  # Freshdesk's maximum per_page
MAX_CONVERSATION_PAGES = 10
TICKET_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: the id goes into the request's path
FIELD_NAME = re.compile(r"cf_[a-z0-9_]{1,60}")


class FreshdeskTickets(TicketPlatform):
    name = PLATFORM

    def __init__(self, http: HttpClient, *, status_field: str | None = DEFAULT_STATUS_FIELD) -> None:
        self.http = http
        self.status_field = status_field

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        response = self.http.request("GET", f"/api/v2/tickets/{_id(ticket_id)}", params={"include": "requester"})
        if not response.ok:
            self._fail(response, f"read ticket {ticket_id}", write=False)
        ticket = response.json()
        if not isinstance(ticket, dict):
            raise RejectedError(f"Freshdesk answered ticket {ticket_id} with no ticket", platform=PLATFORM)
        return ticket

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """The ticket's conversations, oldest first, following ``Link: <...>; rel="next"`` only on our own base URL
        (our API key never goes to a host an answer names), at most MAX_CONVERSATION_PAGES pages."""
        path = f"/api/v2/tickets/{_id(ticket_id)}/conversations"
        url: str | None = None
        for _ in range(MAX_CONVERSATION_PAGES):
            if url is None:
                response = self.http.request("GET", path, params={"per_page": CONVERSATIONS_PER_PAGE, "page": 1})
            else:
                response = self.http.request("GET", path, absolute_url=url)
            if not response.ok:
                self._fail(response, f"read the conversations of ticket {ticket_id}", write=False)
            page = response.json()
            items = [item for item in page if isinstance(item, dict)] if isinstance(page, list) else []
            if any(marker in f"{item.get('body', '')} {item.get('body_text', '')}" for item in items):
                return True
            url = _next_link(response)
            if url is None or not url.startswith(f"{self.http.base_url}/"):
                return False
        return False

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        safe_id = _id(ticket_id)
        if update.kind == "public_reply":  # a reply: Freshdesk e-mails it to the requester
            reply = {"body": f"<p>{html.escape(update.text)}</p>"}
            response = self.http.request("POST", f"/api/v2/tickets/{safe_id}/reply", json=reply)
            if not response.ok:
                self._fail(response, f"reply to ticket {ticket_id}", write=True)
            return
        if self.status_field and update.label:
            fields = {"custom_fields": {self.status_field: update.label}}
            response = self.http.request("PUT", f"/api/v2/tickets/{safe_id}", json=fields)
            if not response.ok:
                self._fail(response, f"set the refund status of ticket {ticket_id}", write=True)
        note = {"body": f"<p>{html.escape(update.text)}</p>", "private": True}
        response = self.http.request("POST", f"/api/v2/tickets/{safe_id}/notes", json=note)
        if not response.ok:
            self._fail(response, f"add a note to ticket {ticket_id}", write=True)

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        words = _error_words(response)
        message = f"Freshdesk could not {what}: {response.status} {words}".strip()
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        if response.status == 404:
            raise missing(message, platform=PLATFORM, write=False)  # the ticket is gone, on a read or a write
        code = _first_code(response) or str(response.status)
        raise RejectedError(message, code=f"freshdesk_{code}"[:60], platform=PLATFORM)


def _error_body(response: HttpResponse) -> dict[str, Any]:
    try:
        body = response.json() if response.body.lstrip().startswith(b"{") else None
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


def _error_words(response: HttpResponse) -> str:
    """Freshdesk's own words: ``description`` and each error's field, code and message, or ``code: message``."""
    body = _error_body(response)
    parts = [str(body.get("description") or body.get("message") or "")]
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            parts.append(f"{error.get('field', '')} {error.get('code', '')}: {error.get('message', '')}".strip())
    return "; ".join(part for part in parts if part)[:300]


def _first_code(response: HttpResponse) -> str | None:
    body = _error_body(response)
    errors = [error for error in body.get("errors") or [] if isinstance(error, dict) and error.get("code")]
    code = errors[0]["code"] if errors else body.get("code")
    if not code:
        return None
    return re.sub(r"[^a-z0-9_]", "", str(code).lower()) or None


def _next_link(response: HttpResponse) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header (RFC 8288), or None on the last page."""
    import requests.utils

    header = response.headers.get("Link") or response.headers.get("link")
    if not header:
        return None
    for link in requests.utils.parse_header_links(header):
        if link.get("rel") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _id(ticket_id: str) -> str:
    if not TICKET_ID.fullmatch(ticket_id):
        raise RejectedError(f"not a Freshdesk ticket id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM)
    return ticket_id


class FreshdeskSettings(settings.EnvModel):
    """Freshdesk's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="FRESHDESK_API_BASE")
    status_field: str = Field(default=DEFAULT_STATUS_FIELD, alias="FRESHDESK_REFUND_STATUS_FIELD")


def _build(config: FreshdeskSettings, name: str, secret: Any) -> FreshdeskTickets:
    """From FRESHDESK_API_BASE, FRESHDESK_REFUND_STATUS_FIELD and the API secret ``{"api_key": ...}``.

    Raises:
        ConfigurationError: a secret of another shape, or a status field that is not a custom field's API name.
    """
    api_key = secret.get("api_key")
    if not isinstance(api_key, str) or not api_key or ":" in api_key:
        raise ConfigurationError(f"secret {name}: api_key must be set (the agent's Freshdesk API key)")
    if config.status_field and not FIELD_NAME.fullmatch(config.status_field):
        raise ConfigurationError("FRESHDESK_REFUND_STATUS_FIELD must be a custom field's API name (cf_...), or empty")
    credentials = base64.b64encode(f"{api_key}:X".encode()).decode()
    http = HttpClient(
        platform=PLATFORM,
        base_url=config.api_base,
        default_headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
    )
    return FreshdeskTickets(http, status_field=config.status_field or None)


connector: SecretBoundConnector[FreshdeskSettings, FreshdeskTickets] = SecretBoundConnector(
    PLATFORM, FreshdeskSettings, _build
)
"""The process's FreshdeskTickets, built from FreshdeskSettings and its API secret (``<SecretsPrefix>freshdesk``)."""
