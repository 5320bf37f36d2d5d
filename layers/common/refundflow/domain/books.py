"""Workflow step UpdateInvoice: the credit document in the books, then the refund is complete.

The domain passes the books an explicit idempotency key and external reference (both derived from the
refund id, the same on every attempt), and, when the books can find a document by that reference, looks
for it before any re-create: a retry never books twice, whatever the books' key lifetime.
"""

from __future__ import annotations

from datetime import UTC, datetime

from refundflow.domain.recorder import BOOKS_PENDING, BOOKS_REJECTED, BOOKS_UPDATE_FAILED, RefundRecorder, step_result
from refundflow.errors import ConcurrentModification
from refundflow.ids import idempotency_key
from refundflow.models import CreditDocument, CreditDocumentState, LegStatus, Refund, StepResult
from refundflow.observability import logger
from refundflow.ports import BooksConnector, CreditBooking, CreditLeg, StatusMove
from refundflow.status import RefundStatus

S = RefundStatus


def update_invoice(refund_id: str, *, recorder: RefundRecorder, books: BooksConnector) -> StepResult:
    """Record the refund in the books (credit document linked to the invoice, cash refund), exactly once,
    then complete the refund. A refund without an invoice reference completes without books.

    Whatever the books create is recorded on the refund, even if the refund moved on while the books
    were called (a reversal by the provider, news from a webhook).

    Raises:
        TransientError: the books could not be reached; retried, then the refund waits and tries again.
        RejectedError, NotFound: the books refuse the document; the refund needs a person.
    """
    refund = recorder.repository.get(refund_id)
    if refund.status is S.INVOICE_UPDATED:
        return step_result(recorder.move(refund, S.COMPLETED, actor="step:UpdateInvoice"))
    if refund.status is not S.REFUNDED and not _books_retrying(refund):
        return recorder.replay(refund)
    if refund.invoice is None:
        refund = recorder.move(
            refund, S.COMPLETED, actor="step:UpdateInvoice", details={"books": "no invoice reference: nothing to book"}
        )
        return step_result(refund)
    if refund.legs and refund.credit_document is not None:
        # A split-tender parent completing again after a remedy for a leg its provider reversed once the parent was
        # booked: its one credit note is in the books already (booking the new leg again would credit the invoice
        # twice). How the remedy changed the note's cash and store credit is the person's, by hand.
        refund = recorder.move(
            refund,
            S.COMPLETED,
            actor="step:UpdateInvoice",
            details={"books": "booked before", "document_id": refund.credit_document.document_id},
        )
        return step_result(refund)
    booking = credit_booking(refund)
    document = _existing_document(refund, booking, books) or books.record_credit(booking)
    refund = _record_document(refund, document, recorder=recorder)
    if refund.status is not S.COMPLETED:
        return recorder.replay(refund)
    return step_result(refund)


def credit_booking(refund: Refund) -> CreditBooking:
    """What the books must record for ``refund`` (the same key and reference on every attempt)."""
    assert refund.amount is not None
    assert refund.invoice is not None
    legs = booked_legs(refund)
    return CreditBooking(
        refund_id=refund.refund_id,
        invoice=refund.invoice,
        amount=refund.amount,
        lines=refund.lines
        if sum(line.amount.minor_units for line in refund.lines) == refund.amount.minor_units
        else [],
        customer=refund.customer,
        booking_date=datetime.now(UTC).date(),
        reference=refund.refund_id,
        payment_provider=next(
            (leg.payment_provider for leg in legs if leg.payment_provider is not None), refund.payment.provider
        ),
        idempotency_key=idempotency_key(refund.refund_id, "books"),
        external_reference=refund.refund_id,
        legs=legs,
    )


def booked_legs(refund: Refund) -> list[CreditLeg]:
    """A split-tender parent's legs as the books record them: the legs that moved money, in leg order (a failed leg
    a remedy replaced is not booked; its replacement is). None for a refund of one payment, whose booking stays what
    it always was (its cash refund is all ``payment_provider``'s, the first cash leg's for a split refund)."""
    return [
        CreditLeg(
            index=leg.index,
            kind=leg.kind,
            payment_provider=leg.payment.provider if leg.payment is not None else None,
            amount=leg.amount,
            provider_refund_id=leg.provider_refund_id,
        )
        for leg in sorted(refund.legs, key=lambda leg: leg.index)
        if leg.status is LegStatus.SUCCEEDED
    ]


def _existing_document(refund: Refund, booking: CreditBooking, books: BooksConnector) -> CreditDocument | None:
    """A complete document already in the books for this refund (found by our reference), looked up
    before any re-create when the books can find one; None to (re-)record."""
    if not books.capabilities.find_by_reference:
        return None
    found = books.find_credit_document(booking)
    if found is None:
        return None
    # A split refund's store credit stays on the document as credit: it is settled by being kept (unless the books
    # allocated it to an invoice that still owed).
    settled = found.allocated_to_invoice + found.cash_refunded
    if found.state is CreditDocumentState.POSTED and found.total in (settled, settled + booking.store_credit):
        logger.info("credit document found in the books, not recorded again", extra={"refund_id": refund.refund_id})
        return found
    # Recorded but not settled yet (a crash between steps): recording again resumes it.
    return None


def _record_document(refund: Refund, document: CreditDocument, *, recorder: RefundRecorder) -> Refund:
    """Store what the books created, whatever happened to the refund meanwhile (a webhook may have
    moved it to NEEDS_ATTENTION while the books were called): the document exists in the books, so
    our record of it must too. A refund still in the books phase moves to INVOICE_UPDATED and on to COMPLETED in
    one write (two audit entries, two events); any other keeps its status and gets the document through an audit
    entry."""
    assert refund.invoice is not None
    details = {
        "kind": document.kind.value,
        "document_id": document.document_id,
        "number": document.number,
        "allocated_to_invoice": document.allocated_to_invoice.model_dump(mode="json"),
        "cash_refunded": document.cash_refunded.model_dump(mode="json"),
    }
    actor = f"books:{refund.invoice.system.value}"
    for _ in range(5):
        try:
            if refund.status is S.REFUNDED or _books_retrying(refund):
                return recorder.move_through(
                    refund,
                    [
                        StatusMove(
                            S.INVOICE_UPDATED,
                            actor,
                            details,
                            {"credit_document": document, "attention_reason": None, "failure": None},
                        ),
                        StatusMove(S.COMPLETED, "step:UpdateInvoice"),
                    ],
                )
            if refund.credit_document == document:
                return refund
            logger.warning(
                "credit document created while the refund moved on",
                extra={"refund_id": refund.refund_id, "status": refund.status.value},
            )
            return recorder.note(
                refund, "CreditDocumentRecorded", actor=actor, details=details, changes={"credit_document": document}
            )
        except ConcurrentModification:
            refund = recorder.repository.get(refund.refund_id)
    raise ConcurrentModification(f"{refund.refund_id}: could not record credit document {document.document_id}")


def _books_retrying(refund: Refund) -> bool:
    return refund.status is S.NEEDS_ATTENTION and refund.attention_reason in {
        BOOKS_UPDATE_FAILED,
        BOOKS_REJECTED,
        BOOKS_PENDING,
    }
