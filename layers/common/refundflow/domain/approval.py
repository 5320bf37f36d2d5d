"""Human approval: a person whose role the policy names decides on a PENDING_APPROVAL refund, once;
and the workflow's EscalateApproval step hands an unanswered request to the next role, or rejects it
as expired after the last one.

What makes an approval count: the refund is still waiting (not decided, not expired); the approver's
role is the role the policy (or the last escalation) asked for, or above; the token was minted for
this refund if it names one; and the token has not been used before (its ``jti`` is spent on first use).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from refundflow.domain.recorder import RefundRecorder, step_result
from refundflow.domain.views import readable_refund
from refundflow.domain.waiting import WaitFor, resume_waiting
from refundflow.errors import AuthenticationFailed, Forbidden, IllegalTransition, NotFound
from refundflow.events import APPROVAL_ESCALATED
from refundflow.models import ApprovalRecord, FailureRecord, Refund, StepResult, StrictModel
from refundflow.policy import Policy
from refundflow.ports import RefundStore, TaskCallbacks
from refundflow.status import RefundStatus

APPROVAL_TOKENS = "approval-token"


class ApproverIdentity(StrictModel):
    """Who is deciding, from the claims API Gateway's JWT authorizer verified."""

    subject: str = Field(min_length=1, max_length=256)
    role: str | None
    token_id: str | None = Field(description="The JWT's jti: spent on first use.")
    bound_refund_id: str | None = Field(default=None, description="The refund the token was minted for, if any.")


def decide_approval(
    refund_id: str,
    decision: Literal["approve", "reject"],
    note: str | None,
    approver: ApproverIdentity,
    *,
    recorder: RefundRecorder,
    policy: Policy,
    callbacks: TaskCallbacks,
    now: Callable[[], datetime] | None = None,
) -> Refund:
    """Record an approver's decision and resume the waiting workflow.

    Who may ask is settled from the token alone, before the refund is read: a caller without an
    approver role, or holding a spent token, learns nothing about any refund. A refund that does not
    exist and a refund the token was not minted for are the same answer.

    Raises:
        AuthenticationFailed: the token has no ``jti`` (single use cannot be enforced), or was used before
            (``token_spent``).
        Forbidden: the token carries no approver role the policy knows, or a role below the one required.
        NotFound: no such refund, or the token is bound to another one (the same answer for both).
        IllegalTransition: the refund is not waiting for approval (decided, expired, never needed one).
        ConcurrentModification: another decision landed at the same moment (the first one wins).
    """
    repository = recorder.repository
    refund, token_id = approvers_refund(refund_id, approver, repository=repository, policy=policy)
    if refund.status is not RefundStatus.PENDING_APPROVAL or refund.policy is None:
        raise IllegalTransition(
            f"refund {refund_id} is {refund.status.value}, not waiting for approval", code="not_pending_approval"
        )
    required = refund.policy.required_role
    if not policy.role_satisfies(approver.role, required):
        raise Forbidden(
            f"role {approver.role} may not decide this refund; it needs {required} or above",
            code="role_not_allowed",
        )
    spend_token = repository.spend_once(APPROVAL_TOKENS, token_id, refund_id, _token_spent)
    decided_at = (now or (lambda: datetime.now(UTC)))()
    record = ApprovalRecord(
        decision=decision,
        approver=approver.subject,
        role=str(approver.role),
        channel="api",
        decided_at=decided_at,
        note=note,
    )
    changes: dict[str, object] = {"approval": record}
    if decision == "reject":
        changes["failure"] = FailureRecord(
            code="rejected_by_approver", message=note or f"rejected by {approver.subject}"
        )
    refund = recorder.move(
        refund,
        RefundStatus.APPROVED if decision == "approve" else RefundStatus.REJECTED,
        actor=f"approver:{approver.subject}",
        details={
            "decision": decision,
            "role": approver.role,
            "required_role": required,
            "token_id": approver.token_id,
            "note": note,
        },
        changes=changes,
        extra=[spend_token],  # the token is spent with the decision, or not at all
    )
    resume_waiting(refund, WaitFor.APPROVAL, repository=repository, callbacks=callbacks)
    return refund


def approvers_refund(
    refund_id: str, approver: ApproverIdentity, *, repository: RefundStore, policy: Policy
) -> tuple[Refund, str]:
    """The refund an approver's token may act on (a decision, or a split refund's remedy), and the token's ``jti``
    to spend with the act: the token has a ``jti`` not spent yet, an approver role the policy knows, and is bound to
    this refund if bound at all.

    Raises:
        AuthenticationFailed: no ``jti``, or a token used before (``token_spent``).
        Forbidden: not an approver role.
        NotFound: no such refund, or the token is bound to another one (the same answer for both).
    """
    if not approver.token_id:
        raise AuthenticationFailed(
            "the token has no jti claim, so it cannot be held to a single use", code="token_without_jti"
        )
    if approver.role is None or approver.role not in policy.roles:
        raise Forbidden(f"role {approver.role or 'none'} is not an approver role", code="role_not_allowed")
    if repository.delivery_refund_id(APPROVAL_TOKENS, approver.token_id) is not None:
        raise _token_spent()
    if approver.bound_refund_id and approver.bound_refund_id != refund_id:
        raise _no_such_refund(refund_id)
    # As a reader sees it (GET /refunds/{id}): a request whose refund its workflow has not made yet is the RECEIVED
    # refund it becomes, waiting for nobody's decision (409).
    return readable_refund(refund_id, repository=repository), approver.token_id


def _token_spent() -> AuthenticationFailed:
    return AuthenticationFailed("this approval token was already used", code="token_spent")


def _no_such_refund(refund_id: str) -> NotFound:
    # Word for word what the repository says of a refund that does not exist (GET /refunds/{id} too).
    return NotFound(f"refund {refund_id} does not exist")


def escalate_approval(refund_id: str, *, recorder: RefundRecorder, policy: Policy) -> StepResult:
    """No decision in time: ask the next role up, or reject as expired when there is none."""
    refund = recorder.repository.get(refund_id)
    decision = refund.policy
    if refund.status is not RefundStatus.PENDING_APPROVAL or decision is None:
        return recorder.replay(refund)
    current = decision.required_role or policy.lowest_role
    roles = list(policy.roles)
    position = roles.index(current) if current in roles else len(roles) - 1
    if position + 1 >= len(roles):
        refund = recorder.move(
            refund,
            RefundStatus.REJECTED,
            actor="step:EscalateApproval",
            details={"reason": "approval_expired", "last_role": current},
            changes={
                "failure": FailureRecord(code="approval_expired", message=f"no decision by {current} or above in time")
            },
        )
        return step_result(refund)
    escalated = roles[position + 1]
    refund = recorder.note(
        refund,
        "ApprovalEscalated",
        actor="step:EscalateApproval",
        details={"from_role": current, "to_role": escalated},
        changes={"policy": decision.model_copy(update={"required_role": escalated})},
        event=APPROVAL_ESCALATED,
    )
    return step_result(refund)
