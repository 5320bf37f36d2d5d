"""Mollie's refund objects as we read them, and their reduction to the ports' models. Pure (pydantic and the
currency profile, no HTTP): the connector and the webhook side share it.

A refund (``entity-refund`` in Mollie's spec): ``{resource: "refund", id: "re_...", mode, description, amount:
{currency, value}, metadata, paymentId: "tr_...", status, createdAt, _links}``; statuses ``queued``, ``pending``,
``processing`` (still open), ``refunded``, ``failed``, ``canceled``. refundflow puts its refund id in the refund's
``metadata`` (``{"refund_id": ...}``), which Mollie keeps and returns on every read.
"""

from __future__ import annotations

import re
from typing import Any

from refundflow.connectors.capabilities import payment_capabilities
from refundflow.models import PaymentProvider
from refundflow.platforms.mollie.amounts import PLATFORM, TITLE, from_mollie
from refundflow.ports import PaymentCapabilities, ProviderRefund, ProviderRefundStatus

STATUSES = {
    "queued": ProviderRefundStatus.PENDING,
    "pending": ProviderRefundStatus.PENDING,
    "processing": ProviderRefundStatus.PENDING,
    "refunded": ProviderRefundStatus.SUCCEEDED,
    "failed": ProviderRefundStatus.FAILED,
    "canceled": ProviderRefundStatus.CANCELED,
}
# Refunds that hold money back from the payment (a failed or canceled one gives it back).
HOLDING = frozenset({"queued", "pending", "processing", "refunded"})
METADATA_KEY = "refund_id"
PAYMENT_ID = re.compile(r"^tr_[A-Za-z0-9]{1,64}$")
REFUND_ID = re.compile(r"^re_[A-Za-z0-9]{1,64}$")


class PayloadError(ValueError):
    """A Mollie object that is not what the API documents."""


def capabilities() -> PaymentCapabilities:
    """Mollie's capabilities, from its catalog entry."""
    return payment_capabilities(PLATFORM, TITLE)


def status_of(refund: dict[str, Any]) -> str:
    """The refund's Mollie status.

    Raises:
        PayloadError: a status Mollie does not document.
    """
    status = refund.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise PayloadError(f"refund status {status!r} is not one Mollie documents")
    return status


def ours(refund: dict[str, Any]) -> str | None:
    """Our refund id from the refund's metadata, if refundflow made it."""
    metadata = refund.get("metadata")
    found = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    return found if isinstance(found, str) and found else None


def provider_refund(refund: dict[str, Any], *, payment_id: str | None = None) -> ProviderRefund:
    """A Mollie refund as our ProviderRefund (its payment is ``paymentId``, else ``payment_id``).

    Raises:
        PayloadError: not a refund, no id, an unknown status, or no payment.
        AmountNotRepresentable: an amount our money cannot hold exactly.
    """
    if refund.get("resource", "refund") != "refund":
        raise PayloadError(f"a {refund.get('resource')!r} object is not a refund")
    refund_id = refund.get("id")
    if not isinstance(refund_id, str) or not REFUND_ID.match(refund_id):
        raise PayloadError(f"refund id {refund_id!r} is not a Mollie refund id")
    status = status_of(refund)
    found = refund.get("paymentId")
    payment = found if isinstance(found, str) and found else payment_id
    if payment is None:
        raise PayloadError(f"refund {refund_id} names no payment")
    return ProviderRefund(
        provider=PaymentProvider.MOLLIE,
        provider_refund_id=refund_id,
        payment_id=payment,
        amount=from_mollie(refund.get("amount")),
        status=STATUSES[status],
        refund_id=ours(refund),
        failure_reason=f"mollie refund {status}" if status in {"failed", "canceled"} else None,
        acquirer_reference=acquirer_reference(refund),
    )


def acquirer_reference(refund: dict[str, Any]) -> str | None:
    """The refund's ARN: ``externalReference.id`` when its ``type`` is ``acquirer-reference`` (mollie.yaml
    ``entity-refund-response.externalReference``, the type's only value; ``id``: "Unique reference from the payment
    provider"). Which methods get one, and when, Mollie does not say: it is read whenever the refund is read. A value
    our model cannot hold (not 6-40 letters and digits) is left out rather than refusing the refund."""
    found = refund.get("externalReference")
    if not isinstance(found, dict) or found.get("type") != "acquirer-reference":
        return None
    value = found.get("id")
    if isinstance(value, str) and 6 <= len(value) <= 40 and value.isascii() and value.isalnum():
        return value
    return None
