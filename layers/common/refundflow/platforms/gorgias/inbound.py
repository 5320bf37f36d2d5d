"""Gorgias HTTP integration calls, verified by intake with the integration's token only.

What Gorgias documents (docs.gorgias.com "Connect external apps to Gorgias and create sidebar widgets" / "HTTP
integrations"; developers.gorgias.com "The Integration object", "The TicketHttpIntegration object"):

- an HTTP integration calls a URL with a method, a JSON body template (``{{ticket.id}}``,
  ``{{ticket.updated_datetime}}``, ``{{ticket.tags}}``...) and headers of the admin's choosing, on the triggers
  ticket created / ticket updated / ticket message created (``http.triggers``); a ticket update is anything done
  to it (tag added or removed, assigned, closed, a message: "Rules glossary", WHEN ticket updated);
- authentication is header-based (key-value pairs the admin sets, e.g. ``Authorization: Bearer <key>``) or an
  OAuth2 token the integration buys itself; Gorgias signs no body (no HMAC header is documented; that absence
  is all the docs say) and sends no delivery id or timestamp header of its own.

So the verification secret (``<SecretsPrefix>webhooks/gorgias``) is ``{"tokens": ["...", ...]}``: the integration
sends ``Authorization: Bearer <token>``; every listed token is compared in constant time (several while one
replaces another). Nothing signs time, so there is no tolerance window: a replay of an authentic call is only news
(the ticket is read again through the API), and duplicates are recognised by the event id below.

The body is the admin's JSON template (README, Gorgias setup): ``ticket_id`` (``{{ticket.id}}``) and
``updated_datetime`` (``{{ticket.updated_datetime}}``) are required, ``tags`` (``{{ticket.tags}}``, rendered however
Gorgias renders it: not documented), ``status``, ``assignee_user_id`` and ``assignee_team_id`` are recommended.
An integration fires on every update of every ticket, refundflow's own writes included (each state tag and note
is a ticket update), and each call forwarded costs three API reads of the account's 40 per 20 s. So:

- a call whose ``tags`` name nothing about refunds is acknowledged and forwarded to nobody;
- with ``tags``, the event id is the ticket id and a digest of what the agent controls in the call (every field
  but ``updated_datetime``, with refundflow's own state tags left out of ``tags``): a retried call, and the calls
  our own writes cause, carry the id of a state already applied, which intake recognises without reading the
  ticket; a change an agent makes (a tag, the status, the assignee) is a new id. A ticket refused before
  (not a refund request yet) is not marked seen by intake, so the next call about it is read again;
- without ``tags``, the event id is ``<ticket id>@<updated_datetime>``: every update is forwarded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "gorgias"
# refundflow's own state tags (connector.STATE_TAGS): our writes, never an agent's news.
OWN_TAGS = frozenset(
    {"refund_pending_approval", "refund_processing", "refund_issued", "refund_completed", "refund_failed"}
)
TAG_NAME = re.compile(r"""['"]name['"]\s*:\s*['"]([^'"]+)['"]""")
TICKET_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only (str.isdigit also takes other scripts' digits)
UPDATED = re.compile(r"[0-9T:.+\-Z ]{10,40}")
MIN_TOKEN_LENGTH = 32
REFUND_WORD = "refund"
ACK = InboundAnswer(status=200, content_type="application/json", body='{"received": true}')


def tokens(secret: Mapping[str, Any]) -> list[bytes]:
    """The integration tokens of the verification secret.

    Raises:
        ConfigurationError: no list of tokens of at least MIN_TOKEN_LENGTH characters.
    """
    listed = secret.get("tokens")
    if not isinstance(listed, list) or not listed:
        raise ConfigurationError("the Gorgias verification secret needs tokens: ['...', ...]")
    if any(not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH for token in listed):
        raise ConfigurationError(f"a Gorgias integration token must be at least {MIN_TOKEN_LENGTH} characters")
    return [token.encode("utf-8") for token in listed]


def authenticated(headers: Mapping[str, str], secret: Mapping[str, Any]) -> None:
    """Raises: AuthenticationFailed: no ``Authorization: Bearer`` header, or a token none of the secret's."""
    expected = tokens(secret)
    value = next((item for key, item in (headers or {}).items() if key.lower() == "authorization"), "")
    if not value[:7].lower() == "bearer " or not value[7:].strip():
        raise AuthenticationFailed("a Gorgias call without its integration token", code="signature_missing")
    received = value[7:].strip().encode("utf-8", "replace")
    matched = False
    for token in expected:  # every token is tried, so the time does not tell which one matched
        matched |= hmac.compare_digest(token, received)
    if not matched:
        raise AuthenticationFailed("the Gorgias integration token does not match", code="signature_invalid")


def _occurred_at(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def tag_names(rendered: Any) -> list[str]:
    """The tag names in the call's ``tags``: a list (of names or of ``{name}`` objects), or a string (names
    separated by commas, or objects written with their ``name``)."""
    if isinstance(rendered, list):
        names = [str(item.get("name") if isinstance(item, dict) else item) for item in rendered]
    else:
        names = TAG_NAME.findall(str(rendered)) or str(rendered).strip("[]").split(",")
    return sorted({name.strip().strip("'\"") for name in names if name.strip().strip("'\"")})


def _agent_state(body: Mapping[str, Any]) -> str | None:
    """A digest of what the agent controls in the call (None without ``tags``): the call's fields but the update
    time, refundflow's own state tags left out."""
    if "tags" not in body:
        return None
    state = {key: value for key, value in body.items() if key not in ("ticket_id", "updated_datetime")}
    state["tags"] = [name for name in tag_names(body["tags"]) if name not in OWN_TAGS]
    canonical = json.dumps(state, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class GorgiasInbound(InboundPlatform):
    name: ClassVar[str] = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """The ticket the call names, as news, once the token is one of ours.

        Raises:
            AuthenticationFailed: missing or wrong token.
            InvalidRequest: not JSON, or no plain ticket id and update time.
            ConfigurationError: a verification secret of another shape.
        """
        authenticated(headers, secret)
        try:
            body = json.loads(raw_body)
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidRequest("the Gorgias call is not JSON", code="invalid_json") from error
        if not isinstance(body, dict):
            raise InvalidRequest("the Gorgias call must be a JSON object", code="invalid_webhook")
        ticket_id = str(body.get("ticket_id", "")).strip()
        if not TICKET_ID.fullmatch(ticket_id):
            raise InvalidRequest("the call must name the ticket: ticket_id (the template's {{ticket.id}})")
        updated = str(body.get("updated_datetime", "")).strip()
        if not UPDATED.fullmatch(updated):
            raise InvalidRequest("the call must carry updated_datetime (the template's {{ticket.updated_datetime}})")
        if "tags" in body and REFUND_WORD not in json.dumps(body["tags"]).lower():
            return InboundDelivery(tickets=[], answer=ACK)
        state = _agent_state(body)
        news = TicketNews(
            platform=PLATFORM,
            event_id=f"{ticket_id}:{state}" if state else f"{ticket_id}@{updated}",
            ticket_id=ticket_id,
            occurred_at=_occurred_at(updated),
            payload=dict(body),
        )
        return InboundDelivery(tickets=[news], answer=ACK)


def inbound() -> GorgiasInbound:
    return GorgiasInbound()
