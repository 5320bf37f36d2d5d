"""Square's webhooks at ``POST /webhooks/square``: ``refund.created`` and ``refund.updated``, signed per delivery.

Verification secret (``<SecretsPrefix>webhooks/square``, read by intake only): ``{"signature_keys": [...],
"notification_urls": [...]}``: the subscription's signature key (two while Square's key is being replaced) and
the notification URL exactly as registered at Square, which the signature covers (``signature.py``). Intake calls
no Square API (it holds no access token).

One delivery carries one event ``{merchant_id, type, event_id, created_at, data: {type: "refund", id, object:
{refund: PaymentRefund}}}``. A refund event becomes a ProviderEvent naming the payment and the refund, with our
refund id when the refund's ``reason`` carries it; the refund's function reads the refund again from Square before
anything changes (Square's outcome is pollable), so a verified but replayed or reordered delivery changes nothing.
Other event types are acknowledged and forwarded as nothing. Square wants a 2xx within 10 seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar

from refundflow.errors import ConfigurationError, InvalidRequest
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.observability import logger
from refundflow.platforms.square import signature
from refundflow.platforms.square.amounts import PLATFORM
from refundflow.platforms.square.refunds import PayloadError, provider_refund
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, ProviderEvent

ACK = InboundAnswer(status=200, content_type="application/json", body='{"received": true}')
REFUND_EVENTS = frozenset({"refund.created", "refund.updated"})


def _strings(secret: Mapping[str, Any], key: str) -> list[str]:
    values = secret.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(value, str) and value for value in values):
        raise ConfigurationError(f"the Square verification secret needs {key}: [text, ...]", platform=PLATFORM)
    return list(values)


class SquareInbound(InboundPlatform):
    """Verifies Square deliveries (HMAC-SHA256 over notification URL + body) and reduces refund events."""

    name: ClassVar[str] = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """Verify the signature over the registered URL and the raw body, then reduce the event.

        Raises:
            ConfigurationError: a verification secret of another shape.
            AuthenticationFailed: no signature, or one that no key and URL of the secret makes.
            InvalidRequest: a verified body that is not a well-formed Square event.
        """
        signature.verify(
            headers,
            raw_body,
            keys=_strings(secret, "signature_keys"),
            notification_urls=_strings(secret, "notification_urls"),
        )
        event = _event(raw_body)
        kind = event["type"]
        logger.info("square webhook verified", extra={"event_id": event["event_id"], "event_type": kind})
        if kind not in REFUND_EVENTS:
            return InboundDelivery(events=[], answer=ACK)
        data = event.get("data")
        refund = ((data.get("object") or {}) if isinstance(data, dict) else {}).get("refund")
        if not isinstance(data, dict) or data.get("type") != "refund" or not isinstance(refund, dict):
            raise InvalidRequest(f"{kind} {event['event_id']} carries no refund object", platform=PLATFORM)
        try:
            news = provider_refund(refund)
        except PayloadError as error:
            raise InvalidRequest(f"{kind} {event['event_id']}: {error}", platform=PLATFORM) from error
        if data.get("id") not in (None, news.provider_refund_id):
            raise InvalidRequest(f"{kind} {event['event_id']} names two refunds", platform=PLATFORM)
        return InboundDelivery(
            events=[
                ProviderEvent(
                    provider=PaymentProvider.SQUARE,
                    event_id=event["event_id"],
                    event_type=kind,
                    occurred_at=_occurred_at(event.get("created_at")),
                    refunds=[news],
                    payment=PaymentReference(provider=PaymentProvider.SQUARE, payment_id=news.payment_id),
                )
            ],
            answer=ACK,
        )


def _event(raw_body: bytes) -> dict[str, Any]:
    """Raises: InvalidRequest: not a JSON event with ``type`` and ``event_id``."""
    try:
        event = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequest("a Square event is a JSON object", platform=PLATFORM) from error
    if not isinstance(event, dict):
        raise InvalidRequest("a Square event is a JSON object", platform=PLATFORM)
    for field in ("type", "event_id"):
        value = event.get(field)
        if not isinstance(value, str) or not value or len(value) > 255:
            raise InvalidRequest(f"a Square event needs {field}", platform=PLATFORM)
    return event


def _occurred_at(created_at: object) -> datetime:
    if isinstance(created_at, str):
        try:
            parsed = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            logger.warning("square event with an unreadable created_at", extra={"created_at": created_at[:64]})
    return datetime.now(UTC)


@cache
def inbound() -> SquareInbound:
    return SquareInbound()
