"""Domain events: one EventBridge detail-type per refund status, in the past tense."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from refundflow.models import Refund, RefundOrigin, StrictModel
from refundflow.money import Money
from refundflow.status import RefundStatus

EVENT_SOURCE = "refundflow"

EVENT_FOR_STATUS: dict[RefundStatus, str] = {
    RefundStatus.RECEIVED: "RefundRequested",
    RefundStatus.VALIDATED: "RefundValidated",
    RefundStatus.PENDING_APPROVAL: "RefundApprovalRequested",
    RefundStatus.AWAITING_RETURN: "RefundAwaitingReturn",
    RefundStatus.APPROVED: "RefundApproved",
    RefundStatus.REJECTED: "RefundRejected",
    RefundStatus.REFUND_SUBMITTED: "RefundSubmitted",
    RefundStatus.REFUND_PENDING: "RefundPending",
    RefundStatus.REFUNDED: "RefundIssued",
    RefundStatus.INVOICE_UPDATED: "InvoiceUpdated",
    RefundStatus.COMPLETED: "RefundCompleted",
    RefundStatus.SETTLED: "RefundSettled",
    RefundStatus.FAILED: "RefundFailed",
    RefundStatus.NEEDS_ATTENTION: "RefundNeedsAttention",
}
# Events that are not a status change.
APPROVAL_ESCALATED = "RefundApprovalEscalated"
RECONCILIATION_MISMATCH = "ReconciliationMismatch"


class EventSource(StrictModel):
    platform: str
    system: str
    reference: str
    ticket_id: str | None = None


class RefundEvent(StrictModel):
    """What goes on the bus. Never card data, never the customer's contact details."""

    event_id: str = Field(description="Stable per audit entry: consumers deduplicate on it.")
    detail_type: str
    refund_id: str
    status: RefundStatus
    amount: Money | None
    currency: str | None
    source: EventSource
    correlation_id: str
    occurred_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)
    origin: RefundOrigin = Field(
        default=RefundOrigin.REFUNDFLOW,
        description="external: a refund made outside refundflow, recorded from the provider's news.",
    )
    books: str | None = Field(
        default=None,
        description="The books platform of the refund's invoice (None: no invoice known). The books platform's "
        "queue subscribes to external refunds' RefundIssued by it, to book their credit document.",
    )

    @classmethod
    def for_refund(cls, refund: Refund, detail_type: str, *, seq: int, details: dict[str, Any]) -> RefundEvent:
        amount = refund.amount or refund.requested_amount
        return cls(
            event_id=f"{refund.refund_id}#{seq}",
            detail_type=detail_type,
            refund_id=refund.refund_id,
            status=refund.status,
            amount=amount,
            currency=amount.currency if amount else None,
            source=EventSource(
                platform=refund.source_platform,
                system=refund.source.system,
                reference=refund.source.reference,
                ticket_id=refund.source.ticket_id,
            ),
            correlation_id=refund.correlation_id,
            occurred_at=refund.updated_at,
            details=details,
            origin=refund.origin,
            books=refund.invoice.system.value if refund.invoice is not None else None,
        )


class ReconciliationEvent(StrictModel):
    """A ``ReconciliationMismatch`` that belongs to no refund of ours (a refund made outside refundflow, a
    fee-only line, a payout the bank never credited...). Mismatches of one of our refunds are
    :class:`RefundEvent`\\ s of that refund, so they show on its timeline."""

    event_id: str = Field(description="Stable per settlement line: consumers deduplicate on it.")
    detail_type: str = RECONCILIATION_MISMATCH
    refund_id: None = None
    match_class: str
    reference: str
    amount: Money | None
    file: str
    line_no: int | None
    difference_minor_units: int = 0
    correlation_id: str
    occurred_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)
