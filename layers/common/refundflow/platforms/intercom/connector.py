"""Intercom as a TicketPlatform: the REST API, version 2.16, through the shared HTTP client.

No SDK: the official ``python-intercom`` 5.0.1 (generated, on httpx and pydantic) adds about 160-280 ms of imports
and 16 MB (measured; the catalog entry says more), and its retry sleeps in-process on ``Retry-After``, which Intercom
does not send; we use four endpoints. What Intercom documents and this module relies on (the
official OpenAPI description ``descriptions/2.16/api.intercom.io.yaml`` of intercom/Intercom-OpenAPI, copied to
../shared/contracts/intercom-api-v2.16.yaml; developers.intercom.com "Conversations", "Contacts", "Errors",
"Rate limiting" https://developers.intercom.com/docs/references/rest-api/errors/rate-limiting):

- base URL ``https://api.intercom.io`` (``api.eu.intercom.io``, ``api.au.intercom.io`` for EU/AU workspaces);
  ``Authorization: Bearer <access token>``; ``Intercom-Version: 2.16`` pins the version whatever the app's default;
- ``GET /conversations/{id}``: the Conversation with ``tags``, ``custom_attributes``, ``admin_assignee_id``,
  ``team_assignee_id``, ``contacts`` (references only) and its ``conversation_parts`` (the 500 newest);
- ``GET /contacts/{id}``: the customer (``email``, ``name``, ``external_id``), added to the conversation we return as
  ``customer``;
- ``PUT /conversations/{id}`` with ``{"custom_attributes": {...}}``: a conversation data attribute set;
- ``POST /conversations/{id}/reply`` with ``{"message_type": "note", "type": "admin", "admin_id", "body"}``: an
  internal note (never sent to the customer), authored by an admin of the workspace; the admin is
  ``INTERCOM_ADMIN_ID`` or, when that is empty, the token's own admin (``GET /me``); the customer's message is the
  same call with ``"message_type": "comment"`` (an admin's reply the customer sees: "Reply to a conversation",
  developers.intercom.com), found again by its marker like a note;
- errors ``{"type": "error.list", "request_id", "errors": [{"code", "message", "field"}]}``; 429 with
  ``X-RateLimit-Reset`` (epoch seconds when the window resets; the docs name no ``Retry-After``, so the wait is
  the reset time minus now, or a ``Retry-After`` if one comes); code ``rate_limit_exceeded``.

Write order: the attribute first, then the note that carries the marker, so a note found by ``has_update`` means
the whole update was written (setting the attribute again is harmless). Updates take no idempotency key.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, missing, retry_after_seconds, status_failure
from refundflow.errors import ConfigurationError, RejectedError, TransientError
from refundflow.ports import TicketPlatform, TicketUpdate

PLATFORM = "intercom"
API_VERSION = "2.16"
DEFAULT_API_BASE = "https://api.intercom.io"
DEFAULT_STATUS_ATTRIBUTE = "refund_status"
CONVERSATION_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: the id goes into the request's path
ADMIN_ID = re.compile(r"[0-9]{1,20}")
CONTACT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_ -]{1,190}")
MAX_RESET_WAIT_SECONDS = 3600.0


class IntercomConversations(TicketPlatform):
    name = PLATFORM

    def __init__(
        self,
        http: HttpClient,
        *,
        admin_id: str | None = None,
        status_attribute: str | None = DEFAULT_STATUS_ATTRIBUTE,
        clock: Any = time.time,
    ) -> None:
        self.http = http
        self._admin_id = admin_id
        self.status_attribute = status_attribute
        self._clock = clock

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """The conversation, with its first contact read as ``customer`` (``{}`` when it has none)."""
        conversation = self._conversation(ticket_id, "read conversation")
        contacts = (conversation.get("contacts") or {}).get("contacts") or []
        contact_id = str(contacts[0].get("id", "")) if contacts and isinstance(contacts[0], dict) else ""
        conversation["customer"] = {}
        if CONTACT_ID.fullmatch(contact_id):
            response = self.http.request("GET", f"/contacts/{contact_id}")
            if response.ok:
                contact = response.json() or {}
                conversation["customer"] = {
                    key: contact.get(key) for key in ("id", "external_id", "email", "name", "language_override")
                }
            elif response.status != 404:  # a contact deleted since: the mapping sees no customer
                self._fail(response, f"read contact {contact_id}", write=False)
        return conversation

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """Whether a note or an admin's reply (the customer's message) of the conversation's parts (the 500 newest,
        as Intercom returns them) carries ``marker``."""
        conversation = self._conversation(ticket_id, "read the notes of conversation")
        parts = (conversation.get("conversation_parts") or {}).get("conversation_parts") or []
        wanted = {marker, html.escape(marker)}
        return any(
            part.get("part_type") in ("note", "comment") and any(text in str(part.get("body") or "") for text in wanted)
            for part in parts
            if isinstance(part, dict)
        )

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        conversation_id = _id(ticket_id)
        if update.kind == "public_reply":  # an admin's reply: message_type comment, seen by the customer
            reply = {
                "message_type": "comment",
                "type": "admin",
                "admin_id": self.admin_id(),
                "body": f"<p>{html.escape(update.text)}</p>",
            }
            response = self.http.request("POST", f"/conversations/{conversation_id}/reply", json=reply)
            if not response.ok:
                self._fail(response, f"reply to conversation {ticket_id}", write=True)
            return
        if self.status_attribute and update.label:
            response = self.http.request(
                "PUT",
                f"/conversations/{conversation_id}",
                json={"custom_attributes": {self.status_attribute: update.label}},
            )
            if not response.ok:
                self._fail(response, f"set the refund status of conversation {ticket_id}", write=True)
        note = {
            "message_type": "note",
            "type": "admin",
            "admin_id": self.admin_id(),
            "body": f"<p>{html.escape(update.text)}</p>",
        }
        response = self.http.request("POST", f"/conversations/{conversation_id}/reply", json=note)
        if not response.ok:
            self._fail(response, f"add a note to conversation {ticket_id}", write=True)

    def admin_id(self) -> str:
        """The admin who authors the notes: configured, or the access token's own admin (``GET /me``)."""
        if self._admin_id is None:
            response = self.http.request("GET", "/me")
            if not response.ok:
                self._fail(response, "read the token's admin (/me)", write=False)
            admin_id = str((response.json() or {}).get("id", ""))
            if not ADMIN_ID.fullmatch(admin_id):
                raise RejectedError("Intercom /me named no admin id", code="intercom_no_admin", platform=PLATFORM)
            self._admin_id = admin_id
        return self._admin_id

    def _conversation(self, ticket_id: str, what: str) -> dict[str, Any]:
        response = self.http.request("GET", f"/conversations/{_id(ticket_id)}")
        if not response.ok:
            self._fail(response, f"{what} {ticket_id}", write=False)
        document = response.json()
        if not isinstance(document, dict):
            raise TransientError(f"Intercom answered conversation {ticket_id} with no object", platform=PLATFORM)
        return document

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        body = response.json() if response.body.startswith(b"{") else {}
        errors = (body or {}).get("errors") or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        code, words = str(first.get("code") or ""), str(first.get("message") or "")[:200]
        message = f"Intercom could not {what}: {response.status} {code} {words}".strip()
        if response.status == 429 and retry_after_seconds(response) is None:
            raise TransientError(
                message, code="rate_limited", platform=PLATFORM, retry_after_seconds=self._until_reset(response)
            )
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        if response.status == 404:
            raise missing(message, platform=PLATFORM, write=False)
        raise RejectedError(message, code=f"intercom_{code or response.status}"[:60], platform=PLATFORM)

    def _until_reset(self, response: HttpResponse) -> float | None:
        """``X-RateLimit-Reset`` (epoch seconds) as seconds from now: at least 1, at most an hour."""
        headers = {key.lower(): value for key, value in response.headers.items()}
        try:
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return None
        wait: float = min(max(reset - float(self._clock()), 1.0), MAX_RESET_WAIT_SECONDS)
        return wait


def _id(ticket_id: str) -> str:
    if not CONVERSATION_ID.fullmatch(ticket_id):
        raise RejectedError(
            f"not an Intercom conversation id: {ticket_id!r}", code="invalid_ticket_id", platform=PLATFORM
        )
    return ticket_id


class IntercomSettings(settings.EnvModel):
    """Intercom's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="INTERCOM_API_BASE")
    admin_id: str = Field(default="", alias="INTERCOM_ADMIN_ID")
    status_attribute: str = Field(default=DEFAULT_STATUS_ATTRIBUTE, alias="INTERCOM_REFUND_STATUS_ATTRIBUTE")


def _build(config: IntercomSettings, name: str, secret: Mapping[str, Any]) -> IntercomConversations:
    """From IntercomSettings and the API secret ``{"access_token": ...}``.

    Raises:
        ConfigurationError: a secret of another shape, an admin id that is not digits, or an attribute name
            Intercom would not take.
    """
    token = secret.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise ConfigurationError(f"secret {name}: access_token must be set")
    if config.admin_id and not ADMIN_ID.fullmatch(config.admin_id):
        raise ConfigurationError("INTERCOM_ADMIN_ID must be an admin id (digits)")
    if config.status_attribute and not ATTRIBUTE_NAME.fullmatch(config.status_attribute):
        raise ConfigurationError("INTERCOM_REFUND_STATUS_ATTRIBUTE must be a conversation attribute's name")
    http = HttpClient(
        platform=PLATFORM,
        base_url=config.api_base,
        default_headers={
            "Authorization": f"Bearer {token.strip()}",
            "Accept": "application/json",
            "Intercom-Version": API_VERSION,
        },
    )
    return IntercomConversations(
        http, admin_id=config.admin_id or None, status_attribute=config.status_attribute or None
    )


connector: SecretBoundConnector[IntercomSettings, IntercomConversations] = SecretBoundConnector(
    PLATFORM, IntercomSettings, _build
)
"""The process's IntercomConversations, built from IntercomSettings and its API secret (``<SecretsPrefix>intercom``)."""
