"""Amazon Pay's IPNs as an InboundPlatform: verified as Amazon SNS messages (``sns.py``), reduced to news.

Intake holds ``<SecretsPrefix>webhooks/amazon_pay`` = ``{"merchant_ids": [...], "cert_url_prefixes"?: [...]}`` and no
API credentials. An IPN (developer.amazon.com/docs/amazon-pay-checkout/set-up-instant-payment-notifications.html)
is ``{MerchantID, ObjectType: CHARGE_PERMISSION | CHARGE | REFUND | CHARGEBACK, ObjectId, ChargePermissionId,
NotificationType: STATE_CHANGE | ATTRIBUTE_CHANGE, NotificationId, NotificationVersion: "V2"}``: it names the object
and says neither its state nor its amount ("You must make a GET API call"). So a REFUND IPN becomes news naming the
refund by Amazon's id (``ProviderEvent.named_refund_ids``) and a CHARGE IPN news about the charge (``payment``); Amazon
Pay's function then reads each from the API before anything changes. Other objects are acknowledged and forwarded
as nothing. SNS wants a 2xx back and retries anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.observability import logger
from refundflow.platforms.amazon_pay.sns import CertificateCache, VerificationSecret, ipn_of, verify
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, ProviderEvent

PLATFORM = "amazon_pay"
ACK = InboundAnswer(status=200, content_type="application/json", body='{"received": true}')
_ID_LIMIT = 128


class AmazonPayInbound(InboundPlatform):
    """Verifies Amazon Pay IPNs (SNS signature, our merchant id) and reduces them to id-only news."""

    name: ClassVar[str] = PLATFORM

    def __init__(self, *, certificates: CertificateCache | None = None) -> None:
        self._certificates = certificates or CertificateCache()

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """Verify the SNS signature over the raw body and the IPN's merchant, then reduce it.

        Raises:
            ConfigurationError: a verification secret of another shape.
            AuthenticationFailed: not a signed SNS message, a signature that does not verify, a certificate URL
                outside Amazon SNS's hosts, or an IPN for a merchant id not ours.
            TransientError: the SNS certificate could not be fetched (answer 5xx: SNS delivers again).
            InvalidRequest: a verified message that is not a well-formed IPN.
        """
        config = VerificationSecret.from_secret(secret)
        message = verify(raw_body, config, certificates=self._certificates)
        if message.get("Type") != "Notification":
            # Amazon Pay subscribes the endpoint itself: a subscription message here is acknowledged, not followed.
            logger.warning("amazon pay sns message that is not a notification", extra={"type": message.get("Type")})
            return InboundDelivery(events=[], answer=ACK)
        ipn = ipn_of(message)
        if ipn.get("MerchantID") not in config.merchant_ids:
            raise AuthenticationFailed(
                "IPN for a merchant id that is not ours", code="signature_invalid", platform=PLATFORM
            )
        event = provider_event(str(message.get("MessageId") or ""), ipn, str(message.get("Timestamp") or ""))
        logger.info(
            "amazon pay ipn verified",
            extra={"event_id": event.event_id if event else None, "object_type": ipn.get("ObjectType")},
        )
        return InboundDelivery(events=[event] if event is not None else [], answer=ACK)


def provider_event(message_id: str, ipn: Mapping[str, Any], timestamp: str) -> ProviderEvent | None:
    """A verified IPN as id-only news (None for objects refundflow does not follow).

    Raises:
        InvalidRequest: no message id, or a REFUND / CHARGE IPN without a usable ObjectId.
    """
    object_type, object_id = ipn.get("ObjectType"), ipn.get("ObjectId")
    if object_type not in ("REFUND", "CHARGE"):
        return None
    if not message_id or len(message_id) > _ID_LIMIT:
        raise InvalidRequest("SNS message without a MessageId", code="invalid_payload", platform=PLATFORM)
    if not isinstance(object_id, str) or not object_id or len(object_id) > _ID_LIMIT:
        raise InvalidRequest(f"{object_type} IPN without an ObjectId", code="invalid_payload", platform=PLATFORM)
    event_type = f"{object_type}.{ipn.get('NotificationType') or 'STATE_CHANGE'}"
    occurred = _occurred_at(timestamp)
    if object_type == "REFUND":
        return ProviderEvent(
            provider=PaymentProvider.AMAZON_PAY,
            event_id=message_id,
            event_type=event_type,
            occurred_at=occurred,
            named_refund_ids=[object_id],
        )
    return ProviderEvent(
        provider=PaymentProvider.AMAZON_PAY,
        event_id=message_id,
        event_type=event_type,
        occurred_at=occurred,
        payment=PaymentReference(provider=PaymentProvider.AMAZON_PAY, payment_id=object_id),
    )


def _occurred_at(timestamp: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo is not None else datetime.now(UTC)


@cache
def inbound() -> AmazonPayInbound:
    """The process's Amazon Pay IPN verifier (its certificate cache lives as long as the process)."""
    return AmazonPayInbound()
