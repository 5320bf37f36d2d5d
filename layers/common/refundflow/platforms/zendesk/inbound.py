"""Zendesk webhooks, verified by intake with the webhook's signing secret only.

What Zendesk documents (developer.zendesk.com, "Verifying webhook authenticity", "Anatomy of a webhook request"):
``X-Zendesk-Webhook-Signature`` is ``base64(HMAC-SHA256(signing_secret, timestamp + raw_body))``, the timestamp
being ``X-Zendesk-Webhook-Signature-Timestamp`` exactly as sent (ISO 8601, e.g. ``2021-03-25T05:09:27Z``) directly
followed by the body; ``X-Zendesk-Webhook-Invocation-Id`` names the delivery (a retry of the same invocation keeps
it). Zendesk states no tolerance for the timestamp: we take 5 minutes both ways.

The body is the merchant's own JSON template in the trigger's action (README, Help desks): it must carry the
ticket's id as ``ticket_id`` (``"{{ticket.id}}"``); everything else the mapping reads from the ticket as the API
returns it, so a body nobody but Zendesk could sign is still only news.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "zendesk"
SIGNATURE = "x-zendesk-webhook-signature"
TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
INVOCATION = "x-zendesk-webhook-invocation-id"
TOLERANCE = timedelta(minutes=5)
TICKET_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only (str.isdigit also takes other scripts' digits)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature Zendesk sends (the simulator signs with it too)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class ZendeskInbound(InboundPlatform):
    name = PLATFORM

    def __init__(self, now: Any = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        signature, timestamp = lowered.get(SIGNATURE, ""), lowered.get(TIMESTAMP, "")
        if not signature or not timestamp:
            raise AuthenticationFailed("the Zendesk signature headers are missing", code="signature_missing")
        try:
            sent = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError as error:
            raise AuthenticationFailed(
                "the signature timestamp is not a date-time", code="signature_invalid"
            ) from error
        if sent.tzinfo is None or abs(self._now() - sent) > TOLERANCE:
            raise AuthenticationFailed("the signature timestamp is outside 5 minutes", code="signature_stale")
        secrets = secret.get("signing_secrets")
        if not isinstance(secrets, list) or not secrets:
            raise AuthenticationFailed("no Zendesk signing secret is configured", code="signature_invalid")
        if not any(hmac.compare_digest(sign(str(key), timestamp, raw_body), signature) for key in secrets):
            raise AuthenticationFailed("the Zendesk signature does not match", code="signature_invalid")
        try:
            body = json.loads(raw_body)
        except ValueError as error:
            raise InvalidRequest("the Zendesk delivery is not JSON", code="invalid_json") from error
        ticket_id = str(body.get("ticket_id", "")) if isinstance(body, dict) else ""
        if not TICKET_ID.fullmatch(ticket_id):
            raise InvalidRequest("the delivery must name the ticket: ticket_id (the trigger's {{ticket.id}})")
        invocation = lowered.get(INVOCATION) or f"{ticket_id}:{timestamp}"
        news = TicketNews(
            platform=PLATFORM, event_id=invocation, ticket_id=ticket_id, occurred_at=sent, payload=dict(body)
        )
        return InboundDelivery(tickets=[news], answer=InboundAnswer(body='{"received": true}'))


def inbound() -> ZendeskInbound:
    return ZendeskInbound()
