"""What the status API shows of a refund: its state and its verified audit timeline."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from refundflow.audit import LEGACY_SCHEME, ChainVerification, verify_chain
from refundflow.domain.acquirer_references import reason_without_reference
from refundflow.domain.arrival import ExpectedArrival, money_moved_at, refund_arrival
from refundflow.errors import NotFound
from refundflow.models import (
    ApprovalRecord,
    AuditEntry,
    CreditDocument,
    CustomerContact,
    FailureRecord,
    InvoiceReference,
    PaymentReference,
    PolicyDecisionRecord,
    Refund,
    RefundOrigin,
    RefundReason,
    ReturnInfo,
    ReturnLifecycle,
    SourceReference,
    SplitLeg,
    Tender,
    return_lifecycle,
)
from refundflow.money import Money
from refundflow.ports import RefundStore, RequestedRefund
from refundflow.status import RefundStatus


class RefundView(BaseModel):
    """``GET /refunds/{refund_id}``: status, amounts, references and the verified audit timeline."""

    model_config = ConfigDict(
        defer_build=True, frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True
    )

    refund_id: str
    status: RefundStatus
    origin: RefundOrigin
    created_at: datetime
    updated_at: datetime
    requested_amount: Money | None
    amount: Money | None
    reason: RefundReason
    payment: PaymentReference
    source: SourceReference
    order_id: str | None
    invoice: InvoiceReference | None
    return_info: ReturnInfo | None = Field(description="The return as the request described it.")
    return_lifecycle: ReturnLifecycle | None = Field(
        alias="return",
        description="The return's status (its highest-ranked step's) and its steps oldest first: the request's own "
        "return, then what the returns system reported (POST /triggers/return-updates).",
    )
    customer: CustomerContact
    policy: PolicyDecisionRecord | None
    approval: ApprovalRecord | None
    provider_refund_id: str | None
    acquirer_reference: str | None = Field(
        default=None, description="The card network's reference (ARN), once the provider has it."
    )
    acquirer_reference_unavailable: str | None = Field(
        default=None,
        description="Why no ARN will come: the platform exposes none (or only in a webhook that carried none), the "
        "refund was a reversal, or none came before the cut-off. None while one may still come.",
    )
    expected_arrival: ExpectedArrival | None = Field(
        default=None,
        description="Once the money moved: the window in which it usually reaches the customer, as the payment "
        "platform documents it (or the merchant's default range), counted from that moment; never a promised date.",
    )
    provider_status: str | None
    credit_document: CreditDocument | None
    attention_reason: str | None
    failure: FailureRecord | None
    tenders: list[Tender] = Field(
        default_factory=list, description="A split-tender refund's tenders (empty for a refund of one payment)."
    )
    allocation_rule: str | None = Field(default=None, description="The rule a split-tender refund was divided by.")
    legs: list[SplitLeg] = Field(
        default_factory=list, description="A split-tender refund's legs: each its own refund (refund_id) and status."
    )
    parent_refund_id: str | None = Field(default=None, description="A leg's split-tender refund.")
    timeline: list[AuditEntry]
    audit: ChainVerification


def readable_refund(refund_id: str, *, repository: RefundStore) -> Refund:
    """The refund as a reader sees it: the stored refund, or, in the moment between the request intake storing a
    request and its workflow's first step creating the refund, the RECEIVED refund it becomes (no audit entry yet).

    Raises:
        NotFound: neither.
    """
    found = repository.find_refund_or_request(refund_id)
    if found is None:
        raise NotFound(f"refund {refund_id} does not exist")
    return found.refund if isinstance(found, RequestedRefund) else found


def refund_view(refund_id: str, *, repository: RefundStore) -> RefundView:
    """Raises: NotFound."""
    refund = readable_refund(refund_id, repository=repository)
    timeline, keyed_from_seq = repository.audit_trail(refund_id)
    # One snapshot: the state was read first, so entries the workflow appended since belong to a later state (their
    # head is not this one). The view shows the trail up to the state it shows, and verifies exactly that.
    timeline = [entry for entry in timeline if entry.seq <= refund.audit_seq]
    # The audit key is read only for trails that have keyed entries (cached: no call per view).
    keys = repository.audit_keys() if any(entry.scheme != LEGACY_SCHEME for entry in timeline) else None
    policy = refund.policy
    if policy is not None and policy.explanation is None:
        # The state keeps the decision lean; its explanation is in the policy's audit entry.
        decided = [entry for entry in timeline if entry.details.get("rule_id") == policy.rule_id]
        if decided and isinstance(decided[-1].details.get("explanation"), str):
            policy = policy.model_copy(update={"explanation": decided[-1].details["explanation"]})
    return RefundView(
        refund_id=refund.refund_id,
        status=refund.status,
        origin=refund.origin,
        created_at=refund.created_at,
        updated_at=refund.updated_at,
        requested_amount=refund.requested_amount,
        amount=refund.amount,
        reason=refund.reason,
        payment=refund.payment,
        source=refund.source,
        order_id=refund.order.order_id if refund.order else None,
        invoice=refund.invoice,
        return_info=refund.return_info,
        return_lifecycle=return_lifecycle(refund, repository.return_steps(refund_id)),
        customer=refund.customer,
        policy=policy,
        approval=refund.approval,
        provider_refund_id=refund.provider_refund_id,
        acquirer_reference=refund.acquirer_reference,
        acquirer_reference_unavailable=reason_without_reference(refund),
        expected_arrival=refund_arrival(refund, money_moved_at(timeline), reversal=_voided(timeline)),
        provider_status=refund.provider_status,
        credit_document=refund.credit_document,
        attention_reason=refund.attention_reason,
        failure=refund.failure,
        tenders=refund.tenders,
        allocation_rule=refund.allocation_rule,
        legs=refund.legs,
        parent_refund_id=refund.parent_refund_id,
        timeline=timeline,
        audit=verify_chain(timeline, expected_head=refund.audit_head, keys=keys, keyed_from_seq=keyed_from_seq),
    )


def _voided(timeline: list[AuditEntry]) -> bool:
    """The provider voided the payment before settlement instead of refunding it (its move to REFUNDED says so)."""
    moved = next((entry for entry in timeline if entry.to_status is RefundStatus.REFUNDED), None)
    return moved is not None and moved.details.get("method") == "void"
