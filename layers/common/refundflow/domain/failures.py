"""The workflow's catch path: decide what an error means for the refund, given how far it got.

Errors arrive by name (a Lambda ``errorType``); they are classified by their class in
:mod:`refundflow.errors` and its hierarchy, so a connector's subclass of ``RejectedError`` is a
rejection. Before the provider was asked, nothing moved: release a held reservation (exactly once)
and reject or fail the refund; a provider that cannot be reached for the payment's look-up is asked
again later (``LOOKUP_RETRY``: the Standard parent waits, then runs the steps again), a bounded
number of times. While the provider's answer is unknown, money may have moved: keep the
reservation and look again. After the money moved, a books failure never undoes the refund: the
refund needs attention and the books update is retried."""

from __future__ import annotations

import json
import re

from refundflow.domain.intake import create_requested
from refundflow.domain.payments import release_items
from refundflow.domain.recorder import (
    BOOKS_PENDING,
    BOOKS_REJECTED,
    BOOKS_UPDATE_FAILED,
    OUTCOME_UNKNOWN,
    RefundRecorder,
    step_result,
)
from refundflow.errors import (
    IdempotencyConflict,
    IllegalTransition,
    InsufficientRefundableAmount,
    InvalidRequest,
    NotFound,
    PaymentNotKnown,
    PolicyViolation,
    RefundflowError,
    RejectedError,
    TransientError,
    is_kind,
)
from refundflow.models import FailureRecord, Refund, StepResult
from refundflow.ports import RequestedRefund
from refundflow.status import RefundStatus

S = RefundStatus
# Errors that mean "this request cannot be granted": a decision (REJECTED), not a breakdown.
REJECTING_ERRORS: tuple[type[RefundflowError], ...] = (
    PolicyViolation,
    InsufficientRefundableAmount,
    InvalidRequest,  # UnsupportedProvider, amount_not_representable, ...
    IdempotencyConflict,
    NotFound,
)
# Errors after which the books will not accept the document without a person fixing something.
BOOKS_FINAL_ERRORS: tuple[type[RefundflowError], ...] = (RejectedError, NotFound, InvalidRequest, IllegalTransition)
# The payment look-up could not reach the provider: the parent waits and runs the steps again.
LOOKUP_RETRY = "LOOKUP_RETRY"
PROVIDER_UNAVAILABLE = "provider_unavailable"
DEFAULT_MAX_LOOKUP_ATTEMPTS = 24
CHILD_STOPPED = "RefundSteps."
BEFORE_SUBMISSION = frozenset({S.RECEIVED, S.VALIDATED, S.PENDING_APPROVAL, S.AWAITING_RETURN, S.APPROVED})
# The workflow's wait for a return (WaitForReturn) ran out: the goods never came back.
WAIT_TIMED_OUT = "States.Timeout"
RETURN_NOT_RECEIVED = "return_not_received"
BOOKS_PHASE = frozenset({S.REFUNDED, S.INVOICE_UPDATED})
_OUR_MESSAGE = re.compile(r"^(?:\[(?P<platform>[^\]]+)\] )?(?P<code>[a-z][a-z0-9_]*): (?P<message>.*)$", re.DOTALL)


def describe_error(error_name: str, cause: str) -> FailureRecord:
    """Turn a Step Functions error (name + cause, usually a Lambda error JSON) into a failure record."""
    message = cause
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict):
            message = str(parsed.get("errorMessage") or cause)
    except (ValueError, TypeError):
        pass
    match = _OUR_MESSAGE.match(message)
    if match:
        return FailureRecord(code=match["code"], message=match["message"][:2000], platform=match["platform"])
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", error_name.replace(".", "_"))
    code = re.sub(r"_+", "_", words).strip("_").lower()
    return FailureRecord(code=code[:256] or "unknown_error", message=(message or error_name)[:2000])


def unwrap_child_failure(error_name: str, cause: str) -> tuple[str, str]:
    """An Express child that ended in Fail surfaces in the parent as ``States.TaskFailed`` whose cause
    is the child's DescribeExecution (as JSON); the child's own error and cause are what count."""
    if error_name != "States.TaskFailed":
        return error_name, cause
    try:
        described = json.loads(cause)
    except (ValueError, TypeError):
        return error_name, cause
    if not isinstance(described, dict):
        return error_name, cause
    inner_error = described.get("Error") or described.get("error")
    inner_cause = described.get("Cause") or described.get("cause") or ""
    return (str(inner_error), str(inner_cause)) if inner_error else (error_name, cause)


def handle_failure(
    refund_id: str,
    error_name: str,
    cause: str,
    *,
    recorder: RefundRecorder,
    max_books_attempts: int,
    max_lookup_attempts: int = DEFAULT_MAX_LOOKUP_ATTEMPTS,
) -> StepResult:
    """Resolve where the refund stands after the workflow stopped or failed, and undo what must be undone.

    The child workflow stops on purpose (error ``RefundSteps.<OUTCOME>``) whenever a refund is not
    completed straight through: then the refund's status already says what happens next.
    """
    found = recorder.repository.find_refund_or_request(refund_id)
    if found is None:
        raise NotFound(f"refund {refund_id} does not exist")
    # A stored request whose first step never ran (its function could not be invoked): its refund is made here,
    # RECEIVED, so that it is failed or rejected like any other.
    refund = create_requested(found, recorder=recorder) if isinstance(found, RequestedRefund) else found
    error_name, cause = unwrap_child_failure(error_name, cause)
    if error_name.startswith(CHILD_STOPPED):
        if error_name == CHILD_STOPPED + LOOKUP_RETRY and _lookup_to_retry(refund):
            return step_result(refund, LOOKUP_RETRY)
        return step_result(refund)
    if refund.status is S.AWAITING_RETURN and error_name == WAIT_TIMED_OUT:
        return _return_not_received(refund, recorder=recorder)
    failure = describe_error(error_name, cause)
    actor = "step:HandleFailure"
    details: dict[str, object] = {"error": error_name, "code": failure.code, "message": failure.message[:500]}
    if refund.status in BEFORE_SUBMISSION:
        if refund.status is S.VALIDATED and refund.amount is None and is_kind(error_name, TransientError):
            return _lookup_failed(refund, failure, details, recorder=recorder, max_attempts=max_lookup_attempts)
        target = S.REJECTED if is_kind(error_name, *REJECTING_ERRORS) else S.FAILED
        changes, extra = release_items(recorder, refund)
        refund = recorder.move(
            refund, target, actor=actor, details=details, changes={**changes, "failure": failure}, extra=extra
        )
        return step_result(refund)
    if refund.status is S.REFUND_SUBMITTED:
        if is_kind(error_name, RejectedError):
            changes, extra = release_items(recorder, refund)
            refund = recorder.move(
                refund, S.FAILED, actor=actor, details=details, changes={**changes, "failure": failure}, extra=extra
            )
        else:
            refund = recorder.move(
                refund,
                S.NEEDS_ATTENTION,
                actor=actor,
                details=details,
                changes={"attention_reason": OUTCOME_UNKNOWN, "failure": failure},
            )
        return step_result(refund)
    books_attention = refund.status is S.NEEDS_ATTENTION and refund.attention_reason in {
        BOOKS_UPDATE_FAILED,
        BOOKS_REJECTED,
        BOOKS_PENDING,
    }
    if refund.status in BOOKS_PHASE or books_attention:
        attempts = refund.books_attempts + 1
        final = is_kind(error_name, *BOOKS_FINAL_ERRORS) or attempts >= max_books_attempts
        changes = {
            "attention_reason": BOOKS_REJECTED if final else BOOKS_UPDATE_FAILED,
            "books_attempts": attempts,
            "failure": failure,
        }
        details = {**details, "books_attempts": attempts, "will_retry": not final}
        if refund.status is S.NEEDS_ATTENTION:
            refund = recorder.note(refund, "BooksUpdateFailed", actor=actor, details=details, changes=changes)
        else:
            refund = recorder.move(refund, S.NEEDS_ATTENTION, actor=actor, details=details, changes=changes)
        return step_result(refund)
    # Waiting for the provider, or already final: nothing to undo here.
    return step_result(refund)


def _return_not_received(refund: Refund, *, recorder: RefundRecorder) -> StepResult:
    """The refund waited for its return as long as the workflow waits (ReturnWaitSeconds) and the returns system
    never reported what the policy waited for: rejected, nothing moved (a held reservation is released)."""
    failure = FailureRecord(
        code=RETURN_NOT_RECEIVED,
        message="The return did not arrive in time: the policy waited for it and no step ended the wait.",
    )
    changes, extra = release_items(recorder, refund)
    refund = recorder.move(
        refund,
        S.REJECTED,
        actor="step:HandleFailure",
        details={"error": WAIT_TIMED_OUT, "code": RETURN_NOT_RECEIVED, "message": failure.message},
        changes={**changes, "failure": failure},
        extra=extra,
    )
    return step_result(refund)


def _lookup_to_retry(refund: Refund) -> bool:
    return refund.status is S.VALIDATED and refund.amount is None and refund.lookup_attempts > 0


def _lookup_failed(
    refund: Refund, failure: FailureRecord, details: dict[str, object], *, recorder: RefundRecorder, max_attempts: int
) -> StepResult:
    """The provider could not be reached to look the payment up (after the step's own retries).
    Nothing is reserved yet and nothing moved: try again later, up to ``max_attempts`` times, then
    fail the refund with ``provider_unavailable`` (a new request can be sent once the provider is back)."""
    attempts = refund.lookup_attempts + 1
    actor = "step:HandleFailure"
    if attempts < max_attempts:
        refund = recorder.note(
            refund,
            "PaymentLookupFailed",
            actor=actor,
            details={**details, "lookup_attempts": attempts, "will_retry": True},
            changes={"lookup_attempts": attempts, "failure": failure},
        )
        return step_result(refund, LOOKUP_RETRY)
    unknown = failure.code == PaymentNotKnown.code
    gave_up = FailureRecord(
        code=PaymentNotKnown.code if unknown else PROVIDER_UNAVAILABLE,
        message=(
            f"the platform never reported the payment in {attempts} look-ups: {failure.message}"
            if unknown
            else f"the payment could not be looked up in {attempts} attempts; last error: {failure.message}"
        )[:2000],
        platform=failure.platform,
    )
    refund = recorder.move(
        refund,
        # A payment the platform never told us of is a request we cannot grant (REJECTED), not a breakdown.
        S.REJECTED if unknown else S.FAILED,
        actor=actor,
        details={**details, "lookup_attempts": attempts, "will_retry": False},
        changes={"lookup_attempts": attempts, "failure": gave_up},
    )
    return step_result(refund)
