"""Workflow step ValidateRefund."""

from __future__ import annotations

from refundflow.domain.deployment import ensure_books_representable, ensure_deployed, ensure_representable
from refundflow.domain.intake import create_requested
from refundflow.domain.recorder import RefundRecorder, step_result
from refundflow.errors import InvalidRequest, NotFound
from refundflow.models import Refund, StepResult
from refundflow.ports import RequestedRefund, StatusMove
from refundflow.status import RefundStatus


def validate_refund(refund_id: str, *, recorder: RefundRecorder) -> StepResult:
    """Check that the stored request can be carried out by this deployment and mark it VALIDATED.

    Raises:
        InvalidRequest: no connector for the payment provider or the books system, mixed currencies,
            or an amount the provider or the books cannot represent exactly (``amount_not_representable``,
            e.g. 3.333 KWD at Stripe); the catch path rejects the refund with this reason, before
            anything is reserved.
        NotFound: the refund does not exist.
    """
    # A request the request intake stored becomes its refund here (refundflow.request_intake: intake only
    # verifies, checks, stores the request and starts this workflow): a valid one is created VALIDATED, in one
    # write; an invalid one is created RECEIVED, and the catch path rejects it.
    found = recorder.repository.find_refund_or_request(refund_id)
    if found is None:
        raise NotFound(f"refund {refund_id} does not exist")
    if isinstance(found, RequestedRefund):
        try:
            validated = validated_move(found.refund)
        except InvalidRequest:
            create_requested(found, recorder=recorder)
            raise
        return step_result(create_requested(found, recorder=recorder, then=[validated]))
    if found.status is not RefundStatus.RECEIVED:
        return recorder.replay(found)
    return step_result(recorder.move_through(found, [validated_move(found)]))


def validated_move(refund: Refund) -> StatusMove:
    """The move to VALIDATED of a RECEIVED refund this deployment can carry out. Raises InvalidRequest."""
    ensure_deployed(refund.payment, refund.invoice)  # checked at intake too; a deployment may have changed
    currencies = {line.amount.currency for line in refund.lines}
    if refund.requested_amount is not None:
        currencies.add(refund.requested_amount.currency)
    if len(currencies) > 1:
        raise InvalidRequest(f"mixed currencies {sorted(currencies)}", code="currency_mismatch")
    line_amounts = [line.amount for line in refund.lines]
    if refund.requested_amount is not None:
        ensure_representable(refund.requested_amount, refund.payment, refund.invoice, books_only=line_amounts)
    elif refund.invoice is not None:
        # The amount is known after the look-up (checked there); the lines only go to the books.
        ensure_books_representable(line_amounts, refund.invoice)
    return StatusMove(
        RefundStatus.VALIDATED,
        actor="step:ValidateRefund",
        details={
            "provider": refund.payment.provider.value,
            "books": refund.invoice.system.value if refund.invoice else None,
        },
    )
