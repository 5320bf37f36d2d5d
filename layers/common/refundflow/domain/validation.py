"""Workflow step ValidateRefund."""

from __future__ import annotations

from refundflow.connectors.registry import BOOKS_SYSTEMS, PAYMENT_PROVIDERS
from refundflow.domain.journal import Journal, step_result
from refundflow.errors import InvalidRequest
from refundflow.models import StepResult
from refundflow.status import RefundStatus


def validate_refund(refund_id: str, *, journal: Journal) -> StepResult:
    """Check that the stored request can be carried out by this deployment and mark it VALIDATED.

    Raises:
        InvalidRequest: no connector for the payment provider or the books system (the catch path
            rejects the refund with this reason).
        NotFound: the refund does not exist.
    """
    refund = journal.repository.get(refund_id)
    if refund.status is not RefundStatus.RECEIVED:
        return journal.replay(refund)
    if refund.payment.provider not in PAYMENT_PROVIDERS:
        raise InvalidRequest(
            f"no connector for payment provider {refund.payment.provider}", code="provider_not_supported"
        )
    if refund.invoice is not None and refund.invoice.system not in BOOKS_SYSTEMS:
        raise InvalidRequest(f"no connector for books system {refund.invoice.system}", code="books_not_supported")
    currencies = {line.amount.currency for line in refund.lines}
    if refund.requested_amount is not None:
        currencies.add(refund.requested_amount.currency)
    if len(currencies) > 1:
        raise InvalidRequest(f"mixed currencies {sorted(currencies)}", code="currency_mismatch")
    refund = journal.move(
        refund,
        RefundStatus.VALIDATED,
        actor="step:ValidateRefund",
        details={
            "provider": refund.payment.provider.value,
            "books": refund.invoice.system.value if refund.invoice else None,
        },
    )
    return step_result(refund)
