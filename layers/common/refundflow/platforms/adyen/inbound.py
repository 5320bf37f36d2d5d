"""Adyen's notifications at ``POST /webhooks/adyen``: verify every item of the batch, answer ``[accepted]``.

Verification secret (``<SecretsPrefix>webhooks/adyen``, read by intake only): ``{"hmac_keys": ["<hex>", ...]}``,
several keys while one replaces another. Adyen signs no timestamp, and its retry queue resends a batch for
up to 30 days, so there is no freshness window: a replayed item is recognised by its event id
(``pspReference:eventCode:success``) and applied once. Since the outcome is only ever told this way (no API
reads it back), the verified item is the truth the refund function applies.

Payment items tell what is captured (no Adyen API reads a payment back): ``AUTHORISATION`` success "true" with
``additionalData.captureDelayHours`` "0" (an immediate capture) and ``CAPTURE`` success "true" become
``ProviderEvent.payments`` (captured = the item's amount); the platform function records them on the payment's
refundable balance. An authorisation captured later says nothing until its CAPTURE.

Refund items become refund states:
- ``REFUND`` success "true": SUCCEEDED; "false": FAILED with Adyen's ``reason``;
- ``REFUND_FAILED`` and ``REFUNDED_REVERSED`` (after a success): FAILED, the event code leading the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar

from refundflow import catalog
from refundflow.errors import ConfigurationError
from refundflow.ids import is_refund_id
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.money import Money
from refundflow.platforms.adyen.notifications import ACCEPTED, NotificationItem, verified_items
from refundflow.platforms.adyen.signature import decode_keys
from refundflow.ports import (
    InboundAnswer,
    InboundDelivery,
    InboundPlatform,
    PaymentCapabilities,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundStatus,
)

PLATFORM = "adyen"


class AdyenInbound(InboundPlatform):
    name: ClassVar[str] = PLATFORM

    def __init__(self, capabilities: PaymentCapabilities | None = None) -> None:
        self._capabilities = capabilities

    @property
    def capabilities(self) -> PaymentCapabilities:
        if self._capabilities is None:
            self._capabilities = catalog.payment_capabilities(PLATFORM)
        return self._capabilities

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """The batch's refund events, once every item verified.

        Raises:
            AuthenticationFailed: an item unsigned or signed with no key we hold (the batch is refused whole).
            InvalidRequest: not a NotificationRequest, or a signed item without its fields.
            ConfigurationError: the verification secret holds no usable HMAC key.
        """
        hex_keys = secret.get("hmac_keys")
        if not isinstance(hex_keys, list) or not all(isinstance(key, str) for key in hex_keys):
            raise ConfigurationError("the Adyen verification secret needs hmac_keys: [hex, ...]", platform=PLATFORM)
        items = verified_items(raw_body, decode_keys(hex_keys))
        events: list[ProviderEvent] = []
        for item in items:
            captured = item.captured_payment
            if item.is_refund_event:
                events.append(self.event(item))
            elif captured is not None:
                events.append(self.payment_event(item, captured))
        return InboundDelivery(
            events=events, answer=InboundAnswer(status=200, content_type="text/plain", body=ACCEPTED.decode())
        )

    def event(self, item: NotificationItem) -> ProviderEvent:
        """One verified refund item as the domain's event (exact money through Adyen's currency profile)."""
        payment = (
            PaymentReference(provider=PaymentProvider.ADYEN, payment_id=item.original_reference)
            if item.original_reference
            else None
        )
        succeeded = item.event_code == "REFUND" and item.success == "true"
        if succeeded:
            reason = None
        elif item.event_code == "REFUND":
            reason = item.reason or "refused by Adyen"
        else:
            reason = f"{item.event_code}: {item.reason}" if item.reason else item.event_code
        money = self.capabilities.currencies.named("Adyen")
        refunds = []
        if payment is not None:
            refunds.append(
                ProviderRefund(
                    provider=PaymentProvider.ADYEN,
                    provider_refund_id=item.psp_reference,
                    payment_id=payment.payment_id,
                    amount=money.from_platform(item.amount.value, item.amount.currency),
                    status=ProviderRefundStatus.SUCCEEDED if succeeded else ProviderRefundStatus.FAILED,
                    refund_id=item.merchant_reference if is_refund_id(item.merchant_reference) else None,
                    failure_reason=reason,
                    acquirer_reference=item.acquirer_reference,
                )
            )
        return ProviderEvent(
            provider=PaymentProvider.ADYEN,
            event_id=item.event_id,
            event_type=item.event_code,
            occurred_at=item.event_date,
            refunds=refunds,
            payment=payment,
        )

    def payment_event(self, item: NotificationItem, payment_id: str) -> ProviderEvent:
        """A verified AUTHORISATION (immediate capture) or CAPTURE: the payment's captured amount."""
        money = self.capabilities.currencies.named("Adyen")
        captured = money.from_platform(item.amount.value, item.amount.currency)
        return ProviderEvent(
            provider=PaymentProvider.ADYEN,
            event_id=item.event_id,
            event_type=item.event_code,
            occurred_at=item.event_date,
            payment=PaymentReference(provider=PaymentProvider.ADYEN, payment_id=payment_id),
            payments=[
                ProviderPayment(
                    provider=PaymentProvider.ADYEN,
                    payment_id=payment_id,
                    captured=captured,
                    refunded=Money.zero(captured.currency),
                    status="captured",
                )
            ],
        )


@cache
def inbound() -> AdyenInbound:
    return AdyenInbound()
