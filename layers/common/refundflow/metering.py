"""Calls to the payment provider and the books, counted and timed per platform: ``ProviderCalls``,
``ProviderErrors``, ``ProviderLatency`` and the ``Books*`` three (dimension ``platform``). An error is a call
that did not get an answer (unreachable, unknown outcome, a crash); a refusal or a not-found is an answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from refundflow.errors import OutcomeUnknownError, RefundflowError, TransientError
from refundflow.models import CreditDocument
from refundflow.observability import publish_metrics
from refundflow.ports import (
    BooksConnector,
    CreditBooking,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    RefundProvider,
)

T = TypeVar("T")


def _is_error(error: BaseException) -> bool:
    return isinstance(error, TransientError | OutcomeUnknownError) or not isinstance(error, RefundflowError)


def metered(kind: str, platform: str, call: Callable[[], T]) -> T:
    """Run ``call`` and publish ``<kind>Calls``, ``<kind>Latency`` and, when it failed, ``<kind>Errors``."""
    started = time.perf_counter()
    failed = False
    try:
        return call()
    except BaseException as error:
        failed = _is_error(error)
        raise
    finally:
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        values = {f"{kind}Calls": 1.0, f"{kind}Latency": elapsed_ms, f"{kind}Errors": 1.0 if failed else 0.0}
        publish_metrics(values, "platform", platform)


class MeteredProvider(RefundProvider):
    """A payment provider whose calls are metered (webhook parsing is local work: not metered). Made by
    :func:`metered_provider`, which gives it the inner provider's ``provider``."""

    def __init__(self, inner: RefundProvider) -> None:
        self.inner = inner
        self.platform = inner.provider.value

    def get_payment(self, payment_id: str) -> ProviderPayment:
        return metered("Provider", self.platform, lambda: self.inner.get_payment(payment_id))

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        return metered("Provider", self.platform, lambda: self.inner.create_refund(request))

    def get_refund(self, provider_refund_id: str) -> ProviderRefund:
        return metered("Provider", self.platform, lambda: self.inner.get_refund(provider_refund_id))

    def find_refund(self, refund_id: str, payment_id: str) -> ProviderRefund | None:
        return metered("Provider", self.platform, lambda: self.inner.find_refund(refund_id, payment_id))

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> ProviderEvent:
        return self.inner.parse_webhook(headers, raw_body)


def metered_provider(inner: RefundProvider) -> RefundProvider:
    if isinstance(inner, MeteredProvider):
        return inner
    kind = type(f"Metered{type(inner).__name__}", (MeteredProvider,), {"provider": inner.provider})
    provider: RefundProvider = kind(inner)
    return provider


class MeteredBooks(BooksConnector):
    def __init__(self, inner: BooksConnector, platform: str) -> None:
        self.inner = inner
        self.platform = platform

    def record_refund(self, booking: CreditBooking) -> CreditDocument:
        return metered("Books", self.platform, lambda: self.inner.record_refund(booking))

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        return metered("Books", self.platform, lambda: self.inner.find_credit_document(booking))
