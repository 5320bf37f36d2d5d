"""Braintree's webhooks at ``POST /webhooks/braintree``: verify ``bt_signature`` over ``bt_payload``, then name
the refund the notification is about. News, not truth: the refund function reads the refund from the API.

Verification secret (``<SecretsPrefix>webhooks/braintree``, read by intake only):
``{"signing_keys": ["<public key>|<hex SHA1(private key)>", ...]}`` (see ``webhooks``).

Kinds that carry refund news, each about a transaction of type ``credit`` (a refund):
- ``transaction_settled``: the refund settled (SUCCEEDED);
- ``transaction_settlement_declined``: settlement declined it (FAILED; bank-account refunds);
- ``refund_failed``: the processor declined the refund after Braintree accepted it (FAILED).
Every other kind (``check`` when the URL is tested, disputes, disbursements, a sale settling) is answered 200 and
carries no event: the payment itself is read from the API at the look-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar

from refundflow import catalog
from refundflow.errors import AmountNotRepresentable, InvalidRequest
from refundflow.ids import is_refund_id
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.platforms.braintree import webhooks
from refundflow.ports import (
    InboundAnswer,
    InboundDelivery,
    InboundPlatform,
    PaymentCapabilities,
    ProviderEvent,
    ProviderRefund,
    ProviderRefundStatus,
)

PLATFORM = "braintree"
REFUND_KINDS: Mapping[str, ProviderRefundStatus] = {
    "transaction_settled": ProviderRefundStatus.SUCCEEDED,
    "transaction_settlement_declined": ProviderRefundStatus.FAILED,
    "refund_failed": ProviderRefundStatus.FAILED,
}
ANSWER = InboundAnswer(status=200, content_type="text/plain", body="OK")


class BraintreeInbound(InboundPlatform):
    name: ClassVar[str] = PLATFORM

    def __init__(self, capabilities: PaymentCapabilities | None = None) -> None:
        self._capabilities = capabilities

    @property
    def capabilities(self) -> PaymentCapabilities:
        if self._capabilities is None:
            self._capabilities = catalog.payment_capabilities(PLATFORM)
        return self._capabilities

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """The delivery's refund event, if it carries one.

        Raises:
            AuthenticationFailed: no bt_signature/bt_payload, an illegal payload, or no matching signature.
            InvalidRequest: a verified payload that is not a notification, or a refund without its fields.
            ConfigurationError: the verification secret holds no usable signing key.
        """
        payload = webhooks.verify(raw_body, webhooks.signing_keys(secret))
        told = webhooks.notification(payload)
        status = REFUND_KINDS.get(told.kind)
        subject = told.transaction
        # A refund is a transaction of type credit; refund_failed is only ever about one.
        is_refund = subject is not None and (subject.type == "credit" or told.kind == "refund_failed")
        if status is None or subject is None or not is_refund:
            return InboundDelivery(events=[], answer=ANSWER)
        if subject.amount is None or subject.currency is None or subject.refunded_transaction_id is None:
            raise InvalidRequest(
                f"{told.kind} refund {subject.id} without amount, currency or refunded transaction",
                code="invalid_payload",
                platform=PLATFORM,
            )
        try:
            amount = self.capabilities.currencies.named("Braintree").from_platform(subject.amount, subject.currency)
        except AmountNotRepresentable as error:
            raise InvalidRequest(error.message, code="invalid_payload", platform=PLATFORM) from error
        failed = status is ProviderRefundStatus.FAILED
        refund = ProviderRefund(
            provider=PaymentProvider.BRAINTREE,
            provider_refund_id=subject.id,
            payment_id=subject.refunded_transaction_id,
            amount=amount,
            status=status,
            refund_id=subject.order_id if subject.order_id and is_refund_id(subject.order_id) else None,
            failure_reason=f"{told.kind}: {subject.status or 'declined'}" if failed else None,
        )
        event = ProviderEvent(
            provider=PaymentProvider.BRAINTREE,
            event_id=told.event_id,
            event_type=told.kind,
            occurred_at=told.timestamp,
            refunds=[refund],
            payment=PaymentReference(
                provider=PaymentProvider.BRAINTREE,
                payment_id=subject.refunded_transaction_id,
                locator={"id_type": "legacy"},
            ),
        )
        return InboundDelivery(events=[event], answer=ANSWER)


@cache
def inbound() -> BraintreeInbound:
    return BraintreeInbound()
