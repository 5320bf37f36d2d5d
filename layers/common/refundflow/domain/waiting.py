"""Parking a workflow on a task token and resuming it (approval, provider outcome).

The token is stored before the refund is re-read, and taken with an atomic delete, so whichever side
comes second (the answer or the wait) resumes the workflow, and only one of them does."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from refundflow.domain.recorder import OUTCOME_NOT_REPORTED, OUTCOME_UNKNOWN, OUTCOME_UNRESOLVED, step_result
from refundflow.errors import TransientError
from refundflow.models import Refund
from refundflow.ports import RefundStore, TaskCallbacks
from refundflow.status import RefundStatus


class WaitFor(StrEnum):
    APPROVAL = "approval"
    REFUND_OUTCOME = "refund_outcome"
    RETURN = "return"


# What a waiting workflow is told when a return step arrived: decide again (the refund is still AWAITING_RETURN, or
# still PENDING_APPROVAL: nobody decided yet, and the policy may now decide by rule).
RETURN_REPORTED = "RETURN_REPORTED"
# The statuses a return step decides again, and the wait their workflow is parked in.
REDECIDED_ON_RETURN: dict[RefundStatus, WaitFor] = {
    RefundStatus.AWAITING_RETURN: WaitFor.RETURN,
    RefundStatus.PENDING_APPROVAL: WaitFor.APPROVAL,
}


_OPEN_OUTCOME = frozenset({OUTCOME_UNKNOWN, OUTCOME_UNRESOLVED, OUTCOME_NOT_REPORTED})
_STILL_WAITING: dict[WaitFor, Callable[[Refund], bool]] = {
    # Still waiting for a person while no return step was recorded since the policy asked for one (return steps
    # make the policy decide again: it may now approve by rule).
    WaitFor.APPROVAL: lambda refund: (
        refund.status is RefundStatus.PENDING_APPROVAL and refund.return_seq <= refund.return_seen_seq
    ),
    # Still waiting while no return step was recorded since the policy decided to wait (return_seq: the audit entry
    # of the latest step; return_seen_seq: the latest step the decision saw); other notes (a ticket's) do not count.
    WaitFor.RETURN: lambda refund: (
        refund.status is RefundStatus.AWAITING_RETURN and refund.return_seq <= refund.return_seen_seq
    ),
    WaitFor.REFUND_OUTCOME: lambda refund: (
        refund.status in {RefundStatus.REFUND_SUBMITTED, RefundStatus.REFUND_PENDING}
        or (refund.status is RefundStatus.NEEDS_ATTENTION and refund.attention_reason in _OPEN_OUTCOME)
    ),
}


def register_wait(
    refund_id: str, wait_for: WaitFor, task_token: str, *, repository: RefundStore, callbacks: TaskCallbacks
) -> bool:
    """Store the token of a workflow that now waits; resume it at once if the answer is already in.
    Returns True if it was resumed here."""
    repository.put_wait_token(refund_id, wait_for.value, task_token)
    return resume_waiting(repository.get(refund_id), wait_for, repository=repository, callbacks=callbacks)


def resume_waiting(refund: Refund, wait_for: WaitFor, *, repository: RefundStore, callbacks: TaskCallbacks) -> bool:
    """Resume the workflow waiting on ``refund`` if it no longer has to wait. Returns True if resumed.

    Raises:
        TransientError: the workflow could not be told; the token is put back for the next try.
    """
    if _STILL_WAITING[wait_for](refund):
        return False
    token = repository.take_wait_token(refund.refund_id, wait_for.value)
    if token is None:
        return False
    # A refund still AWAITING_RETURN or PENDING_APPROVAL was resumed by a return step: the workflow decides it again.
    # The token is taken with an atomic delete, so a person's decision and a return step never both resume it; the
    # one that comes second finds the refund decided (EvaluatePolicy replays a decided refund).
    outcome = RETURN_REPORTED if refund.status in REDECIDED_ON_RETURN else None
    try:
        return callbacks.succeed(token, step_result(refund, outcome).model_dump(mode="json"))
    except TransientError:
        repository.put_wait_token(refund.refund_id, wait_for.value, token)
        raise
