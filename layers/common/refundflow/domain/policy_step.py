"""Workflow step EvaluatePolicy: gather the facts, let the policy in force decide, record why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from refundflow.domain.deployment import ensure_representable
from refundflow.domain.payments import AMOUNT_RESERVED, reserve_items
from refundflow.domain.recorder import RefundRecorder, step_result
from refundflow.domain.split_tenders import PARENT_RULE_ID, tenders_remaining
from refundflow.errors import IllegalTransition, InsufficientRefundableAmount, InvalidRequest
from refundflow.models import (
    ApprovalRecord,
    CustomerVelocity,
    FailureRecord,
    PolicyDecisionRecord,
    Refund,
    StepResult,
)
from refundflow.observability import logger
from refundflow.policy import ActivePolicy, Approver, PolicyDecision, build_policy_input
from refundflow.policy.inputs import velocity_edge_days, velocity_span
from refundflow.ports import RefundStore, StatusMove
from refundflow.status import RefundStatus

APPROVED_AT_SOURCE = "approved_at_source"
NOTHING_LEFT = "nothing_left_after_deductions"
# The audit entry of a decision, on a new return step, that the refund still waits for its return.
STILL_AWAITING_RETURN = "PolicyStillAwaitingReturn"
# The audit entry of a decision, on a new return step, that the refund still needs a person's approval.
STILL_PENDING_APPROVAL = "PolicyStillPendingApproval"
_OUTCOME_STATUS = {
    "approve": RefundStatus.APPROVED,
    "require_approval": RefundStatus.PENDING_APPROVAL,
    "reject": RefundStatus.REJECTED,
    "wait_for_return": RefundStatus.AWAITING_RETURN,
}
# Where the policy decides: a refund looked up, or one waiting for its return or for a person that a returns system
# reported on (a new return step: the decision may change).
_DECIDED_FROM = frozenset({RefundStatus.VALIDATED, RefundStatus.AWAITING_RETURN, RefundStatus.PENDING_APPROVAL})
_DECIDED_AGAIN = {
    RefundStatus.AWAITING_RETURN: STILL_AWAITING_RETURN,
    RefundStatus.PENDING_APPROVAL: STILL_PENDING_APPROVAL,
}


def evaluate_policy(
    refund_id: str, *, recorder: RefundRecorder, policy: ActivePolicy, now: Callable[[], datetime] | None = None
) -> StepResult:
    """Approve, ask for approval by a role, or reject; the audit entry keeps the policy version, the
    matching rule, the inputs the policy saw and the outcome.

    Raises:
        IllegalTransition: the payment was not looked up yet (no amount or balance).
    """
    repository = recorder.repository
    refund = repository.get(refund_id)
    if refund.status not in _DECIDED_FROM:
        # Approved with its amount held (the same write): the workflow goes on to the refund, as the first time.
        held = refund.status is RefundStatus.APPROVED and refund.reservation is not None
        return recorder.replay(refund, "RESERVED" if held else None)
    if refund.status in _DECIDED_AGAIN and refund.return_seq <= refund.return_seen_seq:
        # Nothing was reported since the policy decided to wait (a retried step): the decision stands.
        return recorder.replay(refund)
    at = (now or (lambda: datetime.now(UTC)))()
    if refund.parent_refund_id is not None:
        return _decide_leg(refund, recorder, at)
    if refund.tenders:
        # A split-tender refund: what all its tenders have left (each leg reserves its share on its own payment).
        remaining = tenders_remaining(refund, recorder=recorder)
    else:
        balance = repository.get_balance(refund.payment.provider, refund.payment.payment_id)
        remaining = balance.remaining if balance is not None else None
    if refund.amount is None or remaining is None:
        raise IllegalTransition(f"{refund_id}: policy evaluated before the payment was looked up")
    velocity = customer_velocity(repository, refund, at)
    # The claim is the request's source's: intake refused any request whose source.system was not the
    # source whose secret verified it. The policy's sources: section decides whether it is honoured.
    claim = refund.approved_by
    approver = Approver(id=claim.id, role=claim.role, source=refund.source.system) if claim else None
    facts = build_policy_input(
        refund,
        remaining=remaining,
        customer_velocity=velocity,
        refunded_today=repository.daily_total(refund.amount.currency, at.date()),
        now=at,
        approver=approver,
        return_steps=repository.return_steps(refund.refund_id),
    )
    decision = policy.decide(facts)
    if decision.flags:
        logger.warning("policy decision flagged", extra={"flags": list(decision.flags), "rule_id": decision.rule_id})
    if decision.outcome != "reject" and decision.final_amount is not None and not decision.final_amount.is_positive():
        # Deductions ate the whole amount: there is nothing to pay, so nobody should be asked to approve it.
        decision = decision.model_copy(
            update={
                "outcome": "reject",
                "reason_code": NOTHING_LEFT,
                "required_role": None,
                "explanation": f"{decision.explanation} Nothing is left to refund after the deductions.",
            }
        )
    target = _OUTCOME_STATUS[decision.outcome]
    changes: dict[str, Any] = {"policy": decision.to_record()}
    if decision.final_amount is not None and target is not RefundStatus.AWAITING_RETURN:
        # A refund that waits keeps the amount it was decided on: it is decided again, on the same amount.
        changes["amount"] = decision.final_amount
    if target is RefundStatus.REJECTED:
        changes["failure"] = FailureRecord(
            code=decision.reason_code or "rejected_by_policy", message=decision.explanation[:2000]
        )
    if APPROVED_AT_SOURCE in decision.flags and refund.approved_by is not None:
        changes["approval"] = ApprovalRecord(
            decision="approve",
            approver=refund.approved_by.id,
            role=refund.approved_by.role,
            channel=f"source:{refund.source.system}",
            decided_at=at,
        )
    summary = _summary(decision)
    details = {
        **summary,
        "inputs": decision.inputs,
        **_rules_tried(decision),
        "source_approval": decision.source_approval.model_dump(mode="json") if decision.source_approval else None,
    }
    actor = f"policy:{decision.policy_version}"
    if target in _DECIDED_AGAIN:
        # The wait (for the goods, or for a person) is decided again when a return step comes that this decision has
        # not seen (waiting.WaitFor.RETURN / APPROVAL).
        changes["return_seen_seq"] = refund.return_seq
        if refund.status is target:
            # Decided again on a new step, and it still waits: the same status, so an entry without a change.
            refund = recorder.note(refund, _DECIDED_AGAIN[target], actor=actor, details=details, changes=changes)
            return step_result(refund)
    if target is RefundStatus.APPROVED and not refund.tenders:
        # (A split-tender refund holds nothing: ReserveAmount passes it on, its legs hold their shares.)
        reserved = _approve_and_reserve(refund, recorder, actor, details, changes, summary, at)
        if reserved is not None:
            return step_result(reserved, "RESERVED")
    refund = recorder.move(refund, target, actor=actor, details=details, changes=changes, event_details=summary)
    return step_result(refund)


def _approve_and_reserve(
    refund: Refund,
    recorder: RefundRecorder,
    actor: str,
    details: dict[str, Any],
    changes: dict[str, Any],
    summary: dict[str, Any],
    at: datetime,
) -> Refund | None:
    """The approval and the reservation of the approved amount in one write (what ReserveAmount would write next:
    one state write, one index update and one Lambda invocation fewer). None when the amount cannot be held (less
    remains, or it cannot be represented): the approval is then written alone and ReserveAmount refuses it, as
    for an approval by a person."""
    amount = changes.get("amount", refund.amount)
    if amount is None:
        return None
    try:
        ensure_representable(amount, refund.payment, refund.invoice)
    except InvalidRequest:
        return None
    reserved, reservation, extra = reserve_items(recorder, refund, amount, at.date())
    moves = [
        StatusMove(RefundStatus.APPROVED, actor, details, changes, event_details=summary),
        StatusMove(RefundStatus.APPROVED, "step:EvaluatePolicy", reserved, reservation, note=AMOUNT_RESERVED),
    ]
    try:
        return recorder.move_through(refund, moves, extra=extra)
    except InsufficientRefundableAmount:
        return None


# What makes a leg's parent's decision an approval: the parent was approved (by rule or by a person) and has
# gone on to pay its legs.
_PARENT_PAYING = frozenset({RefundStatus.REFUND_SUBMITTED, RefundStatus.REFUND_PENDING, RefundStatus.NEEDS_ATTENTION})


def _decide_leg(refund: Refund, recorder: RefundRecorder, at: datetime) -> StepResult:
    """A split-tender refund's leg is approved by its parent's decision, never by a rule of its own (velocity and
    limits saw the parent's total once): approved, and its share held on its payment, when the parent was approved,
    is paying its legs and lists this refund as a leg of this payment and amount; rejected otherwise
    (``parent_not_approved``), so a leg nobody approved never pays."""
    parent = recorder.repository.find(refund.parent_refund_id or "")
    leg = next((leg for leg in parent.legs if leg.refund_id == refund.refund_id), None) if parent else None
    decided = (
        parent is not None
        and parent.policy is not None
        and (
            parent.policy.outcome == "approve"
            or (parent.approval is not None and parent.approval.decision == "approve")
        )
    )
    approved = (
        parent is not None
        and decided
        and parent.status in _PARENT_PAYING
        and leg is not None
        and leg.payment == refund.payment
        and leg.amount == refund.requested_amount
    )
    actor = f"policy:{PARENT_RULE_ID}"
    version = parent.policy.policy_version if parent is not None and parent.policy is not None else "none"
    if not approved or parent is None or leg is None:
        explanation = f"Not a leg of an approved split-tender refund ({refund.parent_refund_id})."
        record = PolicyDecisionRecord(
            outcome="reject",
            policy_version=version,
            rule_id=PARENT_RULE_ID,
            reason_code="parent_not_approved",
            explanation=explanation,
        )
        failure = FailureRecord(code="parent_not_approved", message=explanation)
        details = {"rule_id": PARENT_RULE_ID, "outcome": "reject", "parent_refund_id": refund.parent_refund_id}
        rejected = recorder.move(
            refund,
            RefundStatus.REJECTED,
            actor=actor,
            details=details,
            changes={"policy": record, "failure": failure},
        )
        return step_result(rejected)
    assert parent.policy is not None
    explanation = (
        f"Leg {leg.index} of split-tender refund {parent.refund_id}, approved by its decision "
        f"({parent.policy.rule_id})."
    )
    record = PolicyDecisionRecord(
        outcome="approve", policy_version=version, rule_id=PARENT_RULE_ID, explanation=explanation
    )
    summary = {
        "rule_id": PARENT_RULE_ID,
        "outcome": "approve",
        "parent_refund_id": parent.refund_id,
        "leg": leg.index,
        "final_amount": leg.amount.model_dump(mode="json"),
        "explanation": explanation,
    }
    changes: dict[str, Any] = {"policy": record, "amount": leg.amount}
    reserved = _approve_and_reserve(refund, recorder, actor, summary, changes, summary, at)
    if reserved is not None:
        return step_result(reserved, "RESERVED")
    approved_leg = recorder.move(refund, RefundStatus.APPROVED, actor=actor, details=summary, changes=changes)
    return step_result(approved_leg)


def customer_velocity(repository: RefundStore, refund: Refund, at: datetime) -> CustomerVelocity:
    """The customer's velocity at ``at``: the day counters of the last year (one Query on the customer's
    partition, at most one small item a day) and, only where a window starts or ends inside a day that holds
    other refunds, that day's refunds one by one (the by-customer index). The cost is bounded by the windows,
    not by the customer's history."""
    email = refund.customer.email
    first, last = velocity_span(at)
    days = repository.velocity_days(email, first, last)
    edges = velocity_edge_days(refund, days, at)
    edge_refunds = [summary for day in edges for summary in repository.customer_refunds_on(email, day)]
    return CustomerVelocity(first_day=first, last_day=last, days=days, edge_days=edges, edge_refunds=edge_refunds)


def _rules_tried(decision: PolicyDecision) -> dict[str, Any]:
    """The rules the policy tried, for the decision's audit entry. A first-match decision (every rule before the
    deciding one unmatched, the deciding one matched) keeps their count only: its explanation names the unmatched
    ones in order ("Not matched before it: ...") and ``rule_id`` the one that matched, so the list of
    ``{rule_id, matched}`` pairs (about 650 bytes for the packaged policy, which took the entry past 2 KB: 2 more
    write units in its transaction) would say it all a second time. Any other trace (an evaluation error) is kept
    whole."""
    trace = decision.evaluated_rules
    first_match = (
        bool(trace)
        and trace[-1].matched
        and trace[-1].rule_id == decision.rule_id
        and not any(tried.matched for tried in trace[:-1])
    )
    if first_match:
        return {"rules_tried": len(trace)}
    return {"evaluated_rules": [tried.model_dump(mode="json") for tried in trace]}


def _summary(decision: PolicyDecision) -> dict[str, Any]:
    return {
        "policy_version": decision.policy_version,
        "policy_digest": decision.policy_digest,
        "policy_source": decision.policy_source,
        "rule_id": decision.rule_id,
        "outcome": decision.outcome,
        "reason_code": decision.reason_code,
        "required_role": decision.required_role,
        "requested_amount": decision.requested_amount.model_dump(mode="json") if decision.requested_amount else None,
        "final_amount": decision.final_amount.model_dump(mode="json") if decision.final_amount else None,
        "adjustments": [adjustment.model_dump(mode="json") for adjustment in decision.adjustments],
        "flags": list(decision.flags),
        "explanation": decision.explanation[:2000],
    }
