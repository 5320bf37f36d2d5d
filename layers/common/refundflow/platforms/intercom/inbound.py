"""Intercom webhook notifications, verified by intake with the app's client secret only.

What Intercom documents ("Signed Notifications",
https://developers.intercom.com/intercom-api-reference/v1.0/reference/signed-notifications; "Webhook models" 2.16,
https://developers.intercom.com/docs/references/2.16/webhooks/webhook-models; "Delivering webhook notifications",
https://developers.intercom.com/docs/webhooks/webhook-notifications):

- a notification is signed as ``X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>`` (RFC 2104, 40 hex
  digits). Intercom's own page names the key the subscription's ``hub_secret`` (API v1); for Developer Hub apps
  the key is the app's client secret (Developer Hub > the app > Basic information), which we found stated by
  third parties only (hookdeck/webhook-skills "intercom-webhooks", trigger.dev's Intercom registry), not on a
  current Intercom page: unverified. Secrets are a list, so a rotated client secret can be added before the
  old one is dropped;
- the body is ``{"type": "notification_event", "id": "notif_...", "topic": ..., "app_id", "created_at",
  "data": {"type": "notification_event_data", "item": {...}}}``; for the conversation topics
  (``conversation_part.tag.created``, ``conversation.admin.noted``, ``conversation.admin.closed``...) the item is
  the Conversation; ``id`` names the notification (the delivery id here: we take a retry of it
  to keep its ``id``, which Intercom implies but does not state); ``ping`` is sent when the subscription is saved.

What Intercom leaves open: the signature covers no timestamp header. The body's ``created_at`` (epoch seconds) is
signed with it, so it bounds replays: a notification created an hour or more ago, or more than 5 minutes ahead, is
refused. An hour covers the 15 minutes Intercom pauses a subscription whose endpoint keeps failing ("Delivering
webhook notifications"); it does not cover the up to 2 hours Intercom throttles an endpoint that answered 429
(API Gateway's own throttling), whose late notifications are refused: the agent tags the conversation again. A
replay inside the hour is only news: the conversation is read through the API and the notification id is
deduplicated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "intercom"
SIGNATURE = "x-hub-signature"
SIGNATURE_FORMAT = re.compile(r"sha1=[0-9a-f]{40}")
MAX_AGE = timedelta(hours=1)
MAX_AHEAD = timedelta(minutes=5)
CONVERSATION_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: the id goes into API paths
# A deleted conversation has nothing to read (and its payload only identifies it: "Webhook models" 2.16).
IGNORED_TOPICS = frozenset({"conversation.deleted"})
NOTIFICATION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Intercom sends for ``body``."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


class IntercomInbound(InboundPlatform):
    name = PLATFORM

    def __init__(self, now: Any = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """A signed conversation notification -> one TicketNews (the conversation's id); ``ping`` and topics
        about other objects -> no news (answered 200, so Intercom does not retry them).

        Raises:
            AuthenticationFailed: no or malformed ``X-Hub-Signature``, none of the client secrets matches, or the
                signed ``created_at`` is missing or out of bounds.
            InvalidRequest: a signed body that is not a notification, or names no plain conversation id.
        """
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        signature = lowered.get(SIGNATURE, "").strip().lower()
        if not signature:
            raise AuthenticationFailed("the X-Hub-Signature header is missing", code="signature_missing")
        if not SIGNATURE_FORMAT.fullmatch(signature):
            raise AuthenticationFailed("X-Hub-Signature is not sha1=<40 hex digits>", code="signature_invalid")
        secrets = secret.get("client_secrets")
        if not isinstance(secrets, list) or not secrets:
            raise AuthenticationFailed("no Intercom client secret is configured", code="signature_invalid")
        if not any(hmac.compare_digest(sign(str(key), raw_body), signature) for key in secrets):
            raise AuthenticationFailed("the Intercom signature does not match", code="signature_invalid")
        try:
            body = json.loads(raw_body)
        except ValueError as error:  # also a body that is not UTF-8
            raise InvalidRequest("the Intercom notification is not JSON", code="invalid_json") from error
        if not isinstance(body, dict) or body.get("type") != "notification_event":
            raise InvalidRequest("not an Intercom notification_event", code="invalid_notification")
        created = self._created_at(body)
        notification_id = str(body.get("id", ""))
        if not NOTIFICATION_ID.fullmatch(notification_id):
            raise InvalidRequest("the notification has no id", code="invalid_notification")
        data = body.get("data")
        item = data.get("item") if isinstance(data, dict) else None
        if not isinstance(item, dict) or item.get("type") != "conversation" or body.get("topic") in IGNORED_TOPICS:
            return InboundDelivery(tickets=[], answer=InboundAnswer(body='{"received": true}'))
        conversation_id = str(item.get("id", ""))
        if not CONVERSATION_ID.fullmatch(conversation_id):
            raise InvalidRequest("the notification must name a conversation by its id (digits)")
        news = TicketNews(
            platform=PLATFORM,
            event_id=notification_id,
            ticket_id=conversation_id,
            occurred_at=created,
            payload=dict(body),
        )
        return InboundDelivery(tickets=[news], answer=InboundAnswer(body='{"received": true}'))

    def _created_at(self, body: Mapping[str, Any]) -> datetime:
        created = body.get("created_at")
        if not isinstance(created, int) or isinstance(created, bool):
            raise AuthenticationFailed("the notification carries no created_at", code="signature_stale")
        try:
            sent = datetime.fromtimestamp(created, UTC)
        except (OverflowError, OSError, ValueError) as error:
            raise AuthenticationFailed("the notification's created_at is not a time", code="signature_stale") from error
        now = self._now()
        if now - sent >= MAX_AGE or sent - now > MAX_AHEAD:
            raise AuthenticationFailed("the notification's created_at is out of bounds", code="signature_stale")
        return sent


def inbound() -> IntercomInbound:
    return IntercomInbound()
