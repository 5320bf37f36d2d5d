"""PayPal's webhooks as an InboundPlatform: verified by PayPal's certificate (``webhooks.py``), reduced to events.

Intake holds ``<SecretsPrefix>webhooks/paypal`` = ``{"webhook_ids": [...], "cert_url_prefixes"?: [...]}`` and no API
credentials: PayPal's ``verify-webhook-signature`` API would need the REST app's client secret, so the
certificate scheme is used instead. One delivery carries one event. Refund events (``PAYMENT.CAPTURE.REFUNDED``,
``PAYMENT.SALE.REFUNDED``) become a ProviderEvent naming the capture or sale and the refund; other events are
acknowledged (200) and forwarded as nothing. PayPal wants any 2xx back; it retries other answers up to 25 times
over 3 days.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar

from refundflow.errors import AmountNotRepresentable, InvalidRequest
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.observability import logger
from refundflow.platforms.paypal.events import RefundNews, parse_event, refund_news
from refundflow.platforms.paypal.payloads import PLATFORM
from refundflow.platforms.paypal.webhooks import (
    TOLERANCE_SECONDS,
    CertificateCache,
    VerificationSecret,
    parse_time,
    require_json_object,
    verify,
)
from refundflow.ports import (
    InboundAnswer,
    InboundDelivery,
    InboundPlatform,
    ProviderEvent,
    ProviderRefund,
    ProviderRefundStatus,
)

ACK = InboundAnswer(status=200, content_type="application/json", body='{"received": true}')
_STATUSES = {
    "COMPLETED": ProviderRefundStatus.SUCCEEDED,
    "PENDING": ProviderRefundStatus.PENDING,
    "FAILED": ProviderRefundStatus.FAILED,
    "CANCELLED": ProviderRefundStatus.CANCELED,
}


class PayPalInbound(InboundPlatform):
    """Verifies PayPal deliveries by certificate and reduces refund events to ProviderEvents."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self,
        *,
        certificates: CertificateCache | None = None,
        now: Callable[[], float] = time.time,
        tolerance_seconds: float = TOLERANCE_SECONDS,
    ) -> None:
        self._certificates = certificates or CertificateCache()
        self._now = now
        self._tolerance = tolerance_seconds

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """Verify the transmission signature over the raw body, then reduce the event.

        Raises:
            ConfigurationError: a verification secret of another shape.
            AuthenticationFailed: missing or malformed headers, a stale transmission, a certificate URL outside
                the allowed prefixes, or a signature that does not verify.
            TransientError: PayPal's certificate could not be fetched (answer 5xx: PayPal delivers again).
            InvalidRequest: a verified body that is not a well-formed PayPal event.
        """
        webhook_id = verify(
            headers,
            raw_body,
            VerificationSecret.from_secret(secret),
            certificates=self._certificates,
            now=self._now(),
            tolerance=self._tolerance,
        )
        event = parse_event(dict(require_json_object(raw_body)))
        try:
            news = refund_news(event)
        except AmountNotRepresentable as error:
            raise InvalidRequest(f"{event.event_type} {event.id}: {error.message}", platform=PLATFORM) from error
        logger.info(
            "paypal webhook verified",
            extra={"event_id": event.id, "event_type": event.event_type, "webhook_id": webhook_id},
        )
        if news is None:
            return InboundDelivery(events=[], answer=ACK)
        return InboundDelivery(events=[provider_event(news, event.create_time)], answer=ACK)


def provider_event(news: RefundNews, create_time: str | None) -> ProviderEvent:
    """A refund news item as the domain's ProviderEvent (the refund, when its amount and payment are known)."""
    occurred = _occurred_at(create_time)
    payment = (
        PaymentReference(provider=PaymentProvider.PAYPAL, payment_id=news.payment_id, locator=news.locator)
        if news.payment_id
        else None
    )
    refunds = []
    if news.amount is not None and news.payment_id is not None:
        refunds.append(
            ProviderRefund(
                provider=PaymentProvider.PAYPAL,
                provider_refund_id=news.provider_refund_id,
                payment_id=news.payment_id,
                amount=news.amount,
                status=_STATUSES[news.status],
                refund_id=news.refund_id,
            )
        )
    return ProviderEvent(
        provider=PaymentProvider.PAYPAL,
        event_id=news.event_id,
        event_type=news.event_type,
        occurred_at=occurred,
        refunds=refunds,
        payment=payment,
    )


def _occurred_at(create_time: str | None) -> datetime:
    if create_time:
        try:
            return datetime.fromtimestamp(parse_time(create_time), UTC)
        except Exception:  # an unparsable create_time is not a reason to drop verified news
            logger.warning("paypal event with an unreadable create_time", extra={"create_time": create_time})
    return datetime.now(UTC)


@cache
def inbound() -> PayPalInbound:
    """The process's PayPal webhook verifier (its certificate cache lives as long as the process)."""
    return PayPalInbound()
