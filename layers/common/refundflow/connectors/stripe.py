"""Transitional: the name the Stripe function and the intake used before the platform kit
(``refundflow.platforms.stripe``). Removed once every caller uses ``catalog.connector("stripe")`` and
``catalog.inbound("stripe")``; holds no logic of its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from refundflow.models import PaymentReference
from refundflow.platforms.stripe.connector import StripeRefundProvider, connector
from refundflow.platforms.stripe.inbound import inbound
from refundflow.ports import (
    PaymentCapabilities,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    RefundProvider,
)

__all__ = ["StripeRefundProvider", "stripe_provider"]


class _WithWebhooks(RefundProvider):
    """Stripe's connector plus the webhook parsing the intake used to call on it."""

    name: ClassVar[str] = "stripe"

    def __init__(self, inner: StripeRefundProvider) -> None:
        self._inner = inner

    @property
    def capabilities(self) -> PaymentCapabilities:
        return self._inner.capabilities

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        return self._inner.get_payment(payment)

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        return self._inner.create_refund(request)

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        return self._inner.get_refund(provider_refund_id, payment)

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        return self._inner.find_refund(refund_id, payment)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> ProviderEvent:
        from refundflow.adapters.secrets import get_json_secret, platform_secret_name

        secret = get_json_secret(platform_secret_name("stripe", verification=True))
        return inbound().verify(headers, raw_body, secret).events[0]


class _Factory:
    def __call__(self) -> _WithWebhooks:
        return _WithWebhooks(connector())

    def cache_clear(self) -> None:
        connector.cache_clear()
        inbound.cache_clear()


stripe_provider = _Factory()
