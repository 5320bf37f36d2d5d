"""Zendesk as a TicketPlatform: the Tickets API, through the shared HTTP client.

No SDK: the maintained Python clients (zenpy) are community projects that wrap every Zendesk object and do not let
us map errors ourselves; we use three endpoints. What Zendesk documents and this module relies on
(developer.zendesk.com, "Tickets", "Ticket Comments", "Security and authentication", "Rate limits", "Errors"):

- base URL ``https://{subdomain}.zendesk.com``; API token auth: HTTP Basic with ``{email}/token`` and the token;
- ``GET /api/v2/tickets/{id}?include=users``: ``{"ticket": {...}, "users": [...]}`` (the requester is side-loaded);
- ``PUT /api/v2/tickets/{id}`` with ``{"ticket": {"comment": {"body", "public": false}, "additional_tags": [...],
  "remove_tags": [...], "custom_fields": [{"id", "value"}]}}``: an internal note (never e-mailed to the
  requester), tags added and removed without replacing the ticket's others, a custom field set; the customer's
  message is the same call with ``"public": true`` and nothing else (a public comment, which Zendesk's default
  triggers e-mail to the requester: "Ticket Comments", ``public``);
- ``GET /api/v2/tickets/{id}/comments?sort_order=desc``: the comments, newest first (``next_page`` to go on), where
  a note whose answer was lost is looked for by its marker; updating a ticket takes no idempotency key;
- errors ``{"error": "RecordNotFound" | "RecordInvalid" | ..., "description", "details"}``; 429 with
  ``Retry-After`` (seconds) when the account's per-minute limit is reached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, missing, status_failure
from refundflow.errors import ConfigurationError, RejectedError, TransientError
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "zendesk"
DEFAULT_API_BASE = "https://example.zendesk.com"
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
MAX_COMMENT_PAGES = 10
TICKET_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: the id goes into the request's path


class ZendeskTickets(TicketPlatform):
    name = PLATFORM

    def __init__(self, http: HttpClient, *, status_field_id: int | None = None) -> None:
        self.http = http
        self.status_field_id = status_field_id

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        response = self.http.request("GET", f"/api/v2/tickets/{_id(ticket_id)}", params={"include": "users"})
        if not response.ok:
            self._fail(response, f"read ticket {ticket_id}", write=False)
        document = response.json() or {}
        ticket = dict(document.get("ticket") or {})
        requester = next(
            (user for user in document.get("users", []) if user.get("id") == ticket.get("requester_id")), None
        )
        if requester is not None:
            ticket["requester"] = {key: requester.get(key) for key in ("id", "name", "email", "locale")}
        return ticket

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """Newest comments first, following ``next_page`` only on our own base URL (our credentials never go
        to a host an answer names), at most MAX_COMMENT_PAGES pages."""
        url: str | None = None
        for _ in range(MAX_COMMENT_PAGES):
            if url is None:
                path = f"/api/v2/tickets/{_id(ticket_id)}/comments"
                response = self.http.request("GET", path, params={"sort_order": "desc"})
            else:
                response = self.http.request("GET", "comments", absolute_url=url)
            if not response.ok:
                self._fail(response, f"read the comments of ticket {ticket_id}", write=False)
            page = response.json() or {}
            if any(marker in str(comment.get("body", "")) for comment in page.get("comments", [])):
                return True
            url = page.get("next_page")
            if not url or not str(url).startswith(f"{self.http.base_url}/"):
                return False
        return False

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        if update.kind == "public_reply":  # a public comment: Zendesk e-mails it to the requester; nothing else
            reply = {"ticket": {"comment": {"body": update.text, "public": True}}}
            response = self.http.request("PUT", f"/api/v2/tickets/{_id(ticket_id)}", json=reply)
            if not response.ok:
                self._fail(response, f"reply on ticket {ticket_id}", write=True)
            return
        tag = TAG_FOR_LABEL.get(update.label) if update.label else None
        ticket: dict[str, Any] = {"comment": {"body": update.text, "public": False}}
        if tag is not None:
            ticket["additional_tags"] = [tag]
            ticket["remove_tags"] = [other for other in STATE_TAGS if other != tag]
        if self.status_field_id is not None and update.label:
            ticket["custom_fields"] = [{"id": self.status_field_id, "value": update.label}]
        response = self.http.request("PUT", f"/api/v2/tickets/{_id(ticket_id)}", json={"ticket": ticket})
        if not response.ok:
            self._fail(response, f"update ticket {ticket_id}", write=True)

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        body = response.json() if response.body.startswith(b"{") else {}
        error = str((body or {}).get("error", ""))
        description = str((body or {}).get("description", ""))[:200]
        message = f"Zendesk could not {what}: {response.status} {error} {description}".strip()
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        if response.status == 404:
            raise missing(message, platform=PLATFORM, write=False)
        if response.status == 409:
            raise TransientError(message, code="ticket_changed", platform=PLATFORM)
        raise RejectedError(message, code=f"zendesk_{error or response.status}"[:60], platform=PLATFORM)


def _id(ticket_id: str) -> str:
    if not TICKET_ID.fullmatch(ticket_id):
        raise RejectedError(f"not a Zendesk ticket id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM)
    return ticket_id


class ZendeskSettings(settings.EnvModel):
    """Zendesk's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="ZENDESK_API_BASE")
    status_field_id: str = Field(default="", alias="ZENDESK_REFUND_STATUS_FIELD_ID")


def _build(config: ZendeskSettings, name: str, secret: Mapping[str, Any]) -> ZendeskTickets:
    """From ZENDESK_API_BASE and the API secret ``{"email": ..., "api_token": ...}``.

    Raises:
        ConfigurationError: a secret of another shape, or a status field id that is not a number.
    """
    email, token = secret.get("email"), secret.get("api_token")
    if not isinstance(email, str) or "@" not in email or not isinstance(token, str) or not token:
        raise ConfigurationError(f"secret {name}: email and api_token must be set")
    if config.status_field_id and not config.status_field_id.isdigit():
        raise ConfigurationError("ZENDESK_REFUND_STATUS_FIELD_ID must be a ticket field id (digits)")
    import base64

    credentials = base64.b64encode(f"{email}/token:{token}".encode()).decode()
    http = HttpClient(
        platform=PLATFORM,
        base_url=config.api_base,
        default_headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
    )
    return ZendeskTickets(http, status_field_id=int(config.status_field_id) if config.status_field_id else None)


connector: SecretBoundConnector[ZendeskSettings, ZendeskTickets] = SecretBoundConnector(
    PLATFORM, ZendeskSettings, _build
)
"""The process's ZendeskTickets, built from ZendeskSettings and its API secret (``<SecretsPrefix>zendesk``)."""
