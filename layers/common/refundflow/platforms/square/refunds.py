"""Square's ``PaymentRefund`` in our vocabulary, and our reference carried in its ``reason`` (pure).

A ``PaymentRefund`` has no metadata field and does not return the idempotency key, so our refund id travels in
the one free-text field Square keeps on the refund and echoes on every read and webhook: ``reason`` (at most
192 characters). It reads ``<the merchant's reference> (<our reason>) [rf_…]``: the merchant's order reference
first, as the seller sees it in the Square Dashboard, and our refund id last in brackets, never cut off.

Statuses (PaymentRefund.status): ``PENDING`` awaiting approval, ``COMPLETED``, ``REJECTED`` (refused by Square),
``FAILED`` (an error occurred): the last two moved no money.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from refundflow.errors import AmountNotRepresentable
from refundflow.models import PaymentProvider, RefundReason
from refundflow.platforms.square.amounts import PLATFORM, from_square
from refundflow.ports import ProviderRefund, ProviderRefundStatus

MAX_REASON_LENGTH = 192
_OURS = re.compile(r"\[(rf_[0-9a-f]{32})\]\s*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\[\]]+")

STATUSES: Mapping[str, ProviderRefundStatus] = {
    "PENDING": ProviderRefundStatus.PENDING,
    "COMPLETED": ProviderRefundStatus.SUCCEEDED,
    "REJECTED": ProviderRefundStatus.FAILED,
    "FAILED": ProviderRefundStatus.FAILED,
}
HOLDING = frozenset({"PENDING", "COMPLETED"})
"""Statuses whose amount is taken from the payment (pending or made)."""

_WORDS: Mapping[RefundReason, str] = {reason: reason.value.replace("_", " ") for reason in RefundReason}


class PayloadError(ValueError):
    """A Square object without the fields we read."""


def reason_text(refund_id: str, reason: RefundReason, reference: str | None) -> str:
    """The ``reason`` we send: the merchant's reference and our reason, then ``[<refund id>]`` (≤ 192)."""
    tail = f" [{refund_id}]"
    words = _WORDS[reason]
    cleaned = _CONTROL.sub(" ", reference or "").strip()
    head = f"{cleaned} ({words})" if cleaned else f"Refund ({words})"
    return head[: MAX_REASON_LENGTH - len(tail)].rstrip() + tail


def refund_id_in(reason: object) -> str | None:
    """Our refund id from a refund's ``reason``, or None for a refund refundflow did not make."""
    if not isinstance(reason, str):
        return None
    found = _OURS.search(reason)
    return found.group(1) if found else None


def status_of(refund: Mapping[str, Any]) -> str:
    """Raises: PayloadError: no status Square documents."""
    status = refund.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise PayloadError(f"refund status {status!r} is not one Square documents")
    return status


def provider_refund(refund: Mapping[str, Any], *, payment_id: str | None = None) -> ProviderRefund:
    """A ``PaymentRefund`` as the domain's ProviderRefund.

    Raises:
        PayloadError: no id, status, payment or amount we can read (an amount not exactly ours included).
    """
    refund_ref = refund.get("id")
    if not isinstance(refund_ref, str) or not refund_ref:
        raise PayloadError("refund without an id")
    status = status_of(refund)
    paid = refund.get("payment_id") or payment_id
    if not isinstance(paid, str) or not paid:
        raise PayloadError(f"refund {refund_ref} names no payment")
    money = refund.get("amount_money")
    if not isinstance(money, Mapping):
        raise PayloadError(f"refund {refund_ref} without amount_money")
    try:
        amount = from_square(money.get("amount"), money.get("currency"))
    except AmountNotRepresentable as error:
        raise PayloadError(f"refund {refund_ref}: {error.message}") from error
    return ProviderRefund(
        provider=PaymentProvider.SQUARE,
        provider_refund_id=refund_ref,
        payment_id=paid,
        amount=amount,
        status=STATUSES[status],
        refund_id=refund_id_in(refund.get("reason")),
        failure_reason=None if status in HOLDING else f"{status} by Square",
    )


def money_of(resource: Mapping[str, Any], field: str) -> tuple[object, object]:
    """``(amount, currency)`` of a Money field.

    Raises:
        PayloadError: the field is missing or not a Money object.
    """
    money = resource.get(field)
    if not isinstance(money, Mapping):
        raise PayloadError(f"no {field}")
    return money.get("amount"), money.get("currency")


__all__ = ["PLATFORM", "PayloadError", "provider_refund", "reason_text", "refund_id_in", "status_of"]
