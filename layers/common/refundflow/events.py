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
# The status events a rule on the bus routes whatever the refund's source (template.yaml: CustomerNotificationsRule,
# OpsNotificationsRule, each books platform's ExternalRefundsRule). A help desk's or shop's write-back rule takes
# every event of the refunds that came from it (by ``detail.source.platform``). The other status events
# (RefundRequested, RefundValidated, RefundApproved, RefundSubmitted, InvoiceUpdated, RefundCompleted...) reach no
# target: they are published only for such refunds, or for every refund with PUBLISH_ALL_STATUS_EVENTS
# (PublishAllStatusEvents: a merchant's own rule on the bus). The audit trail records every status change anyway.
ROUTED_STATUS_EVENTS = frozenset({"RefundIssued", "RefundFailed", "RefundNeedsAttention", "RefundApprovalRequested"})
_STATUS_EVENTS = frozenset(EVENT_FOR_STATUS.values())


def is_consumed(
    detail_type: str, source_platform: str, *, write_back_platforms: frozenset[str], publish_all: bool
) -> bool:
    """Whether an event of ``detail_type`` for a refund from ``source_platform`` reaches a target on the bus (or
    the merchant asked for every status event): only those are published. Events that are not a status change
    (ReturnUpdated, RefundAcquirerReference, escalations, reconciliation mismatches) always are."""
    if publish_all or detail_type not in _STATUS_EVENTS or detail_type in ROUTED_STATUS_EVENTS:
        return True
    return source_platform in write_back_platforms


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
    parent_refund_id: str | None = Field(
        default=None,
        description="A split-tender refund's leg: its parent (the customer and the help desk hear of the parent once, "
        "not of each leg).",
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
            parent_refund_id=refund.parent_refund_id,
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
