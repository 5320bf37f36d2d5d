"""The workflow's catch path: what an error means given how far the refund got (handle_failure),
and books that fail after the money moved (R11)."""

from __future__ import annotations

import pytest

from refundflow.domain.books import update_invoice
from refundflow.domain.failures import describe_error, handle_failure
from refundflow.domain.payments import apply_provider_event, issue_refund, poll_refund
from refundflow.domain.validation import validate_refund
from refundflow.errors import NotFound, OutcomeUnknownError, PolicyViolation, RejectedError, TransientError
from refundflow.models import ReservationState
from refundflow.ports import ProviderRefundStatus
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur, lambda_cause
from tests.support.fakes import Outcome, World, provider_event, refund_request_body, today

S = RefundStatus
MAX_BOOKS_ATTEMPTS = 3


def fail(env: World, refund_id: str, error: Exception | str, max_books_attempts: int = MAX_BOOKS_ATTEMPTS) -> str:
    name = error if isinstance(error, str) else type(error).__name__
    cause = "" if isinstance(error, str) else lambda_cause(error)
    return handle_failure(refund_id, name, cause, recorder=env.recorder, max_books_attempts=max_books_attempts).outcome


def submitted_with_unknown_outcome(env: World) -> str:
    env.provider.outcomes = [Outcome.UNKNOWN_AFTER_CREATE]
    refund_id = env.reserved(refund_request_body())
    with pytest.raises(OutcomeUnknownError):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id


def refunded(env: World) -> str:
    refund_id = env.reserved(refund_request_body())
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.repository.get(refund_id).status is S.REFUNDED
    return refund_id


# ---------------------------------------------------------------- before the provider was asked


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PolicyViolation("too many refunds this month", code="velocity"), S.REJECTED),
        ("InsufficientRefundableAmount", S.REJECTED),
        ("InvalidRequest", S.REJECTED),
        (RejectedError("payment not captured", code="payment_not_captured", platform="stripe"), S.FAILED),
        ("States.Timeout", S.FAILED),
        ("Lambda.ServiceException", S.FAILED),
    ],
)
def test_before_submission_a_decision_rejects_and_a_breakdown_fails(
    paid: World, error: Exception | str, expected: RefundStatus
) -> None:
    env = paid
    # GIVEN a validated refund that never reached the provider
    refund_id = env.accept(refund_request_body()).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    # WHEN a step fails with a policy-type error or a breakdown
    outcome = fail(env, refund_id, error)
    # THEN the refund is REJECTED or FAILED with the error on record, and its event is published
    refund = env.repository.get(refund_id)
    assert (refund.status, outcome) == (expected, expected.value)
    assert refund.failure is not None
    assert env.publisher.for_refund(refund_id)[-1] == ("RefundRejected" if expected is S.REJECTED else "RefundFailed")


@pytest.mark.parametrize(
    ("error", "expected"), [(PolicyViolation("daily cap reached"), S.REJECTED), ("States.Timeout", S.FAILED)]
)
def test_before_submission_a_held_reservation_is_released(
    paid: World, error: Exception | str, expected: RefundStatus
) -> None:
    env = paid
    # GIVEN an approved refund holding 25.00 of the payment and of today's total
    refund_id = env.reserved(refund_request_body())
    assert env.balance(PAYMENT)["reserved"] == 2_500
    assert env.repository.daily_total("EUR", today()) == eur(2_500)
    # WHEN it fails before the provider was asked
    fail(env, refund_id, error)
    # THEN the reservation goes back to the payment and to the day's total, and the provider was never asked
    refund = env.repository.get(refund_id)
    assert refund.status is expected
    assert refund.reservation is not None
    assert refund.reservation.state is ReservationState.RELEASED
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 0, "reserved": 0, "remaining": 10_000}
    assert env.repository.daily_total("EUR", today()) == eur(0)
    assert env.provider.calls_to("create_refund") == []


def test_the_failure_record_keeps_the_platform_and_code_of_our_errors(paid: World) -> None:
    env = paid
    # GIVEN a refund that failed with one of our errors, passed through Step Functions as a Lambda error
    refund_id = env.accept(refund_request_body()).refund.refund_id
    fail(env, refund_id, PolicyViolation("return not received yet", code="return_not_received", platform="shopify"))
    # WHEN its failure is read THEN code, platform and message are ours, not the Lambda envelope
    failure = env.repository.get(refund_id).failure
    assert failure is not None
    assert (failure.code, failure.platform, failure.message) == (
        "return_not_received",
        "shopify",
        "return not received yet",
    )


def test_describe_error_falls_back_to_the_error_name_for_foreign_errors() -> None:
    # GIVEN an error that is not ours (a Lambda timeout) WHEN described THEN it still has a code and message
    failure = describe_error("States.Timeout", "")
    assert failure.code
    assert failure.message == "States.Timeout"


# ---------------------------------------------------------------- while the provider's answer is open


def test_a_provider_rejection_after_submission_fails_and_releases(paid: World) -> None:
    env = paid
    # GIVEN a refund submitted to the provider, which refused it
    env.provider.outcomes = [Outcome.REJECTED]
    refund_id = env.reserved(refund_request_body())
    with pytest.raises(RejectedError) as raised:
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # WHEN the catch path handles the rejection
    outcome = fail(env, refund_id, raised.value)
    # THEN the refund failed and the amount is refundable again
    assert outcome == "FAILED"
    assert env.balance(PAYMENT)["remaining"] == 10_000


def test_an_unknown_outcome_after_submission_needs_attention_and_keeps_the_reservation(paid: World) -> None:
    env = paid
    # GIVEN a refund whose provider call timed out after sending, beyond the step's retries
    refund_id = submitted_with_unknown_outcome(env)
    # WHEN the catch path handles it
    outcome = fail(env, refund_id, OutcomeUnknownError("read timed out", platform="stripe"))
    # THEN money may have moved: NEEDS_ATTENTION, routed to polling, the reservation still held
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason, outcome) == (
        S.NEEDS_ATTENTION,
        "provider_outcome_unknown",
        "REFUND_PENDING",
    )
    assert refund.reservation is not None
    assert refund.reservation.state is ReservationState.HELD
    assert env.balance(PAYMENT)["reserved"] == 2_500
    # AND polling finds the refund the provider did make, without creating another
    assert poll_refund(refund_id, recorder=env.recorder, provider=env.provider).outcome == "REFUNDED"
    assert len(env.provider.calls_to("create_refund")) == 1
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 2_500, "reserved": 0, "remaining": 7_500}
    assert env.repository.get(refund_id).attention_reason is None


def test_an_error_while_waiting_for_the_provider_changes_nothing(paid: World) -> None:
    env = paid
    # GIVEN a pending refund at the provider
    env.provider.outcomes = [Outcome.PENDING]
    refund_id = env.reserved(refund_request_body())
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    pending = env.repository.get(refund_id)
    # WHEN a poll fails THEN the refund keeps waiting with its reservation
    assert fail(env, refund_id, "TransientError") == "REFUND_PENDING"
    assert env.repository.get(refund_id) == pending


@pytest.mark.parametrize("status_setup", ["failed", "rejected"])
def test_a_final_refund_is_left_alone(paid: World, status_setup: str) -> None:
    env = paid
    # GIVEN a refund that already failed or was rejected
    refund_id = env.accept(refund_request_body()).refund.refund_id
    fail(env, refund_id, "States.Timeout" if status_setup == "failed" else "PolicyViolation")
    final = env.repository.get(refund_id)
    # WHEN another error reaches the catch path THEN nothing changes
    fail(env, refund_id, "RejectedError")
    assert env.repository.get(refund_id) == final


def test_an_unknown_refund_is_not_found(env: World) -> None:
    # GIVEN no such refund WHEN the catch path runs THEN NotFound
    with pytest.raises(NotFound):
        fail(env, "rf_" + "0" * 32, "States.Timeout")


# ---------------------------------------------------------------- after the money moved: the books (R11)


def test_books_down_after_the_money_moved_needs_attention_then_recovers(paid: World) -> None:
    env = paid
    # GIVEN a refunded refund and books that are down
    refund_id = refunded(env)
    env.books.failures = [TransientError("Xero 503", platform="xero")]
    with pytest.raises(TransientError) as raised:
        update_invoice(refund_id, recorder=env.recorder, books=env.books)
    # WHEN the catch path handles it
    outcome = fail(env, refund_id, raised.value)
    # THEN the refund is paid but not booked: NEEDS_ATTENTION, routed to an automatic books retry
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason, outcome) == (
        S.NEEDS_ATTENTION,
        "books_update_failed",
        "BOOKS_RETRY",
    )
    assert refund.books_attempts == 1
    # AND when the books are back, the retry books it once and completes the refund (R11)
    result = update_invoice(refund_id, recorder=env.recorder, books=env.books)
    refund = env.repository.get(refund_id)
    assert (result.outcome, refund.attention_reason) == ("COMPLETED", None)
    assert env.publisher.for_refund(refund_id)[-3:] == ["RefundNeedsAttention", "InvoiceUpdated", "RefundCompleted"]
    assert len(env.books.documents) == 1
    assert env.balance(PAYMENT)["refunded"] == 2_500  # the money was never given back


def test_books_attempts_exhausted_need_a_person(paid: World) -> None:
    env = paid
    # GIVEN a refunded refund whose books stay down, with two attempts allowed
    refund_id = refunded(env)
    env.books.failures = [TransientError("Xero 503"), TransientError("Xero 503")]
    outcomes = []
    for _ in range(2):
        with pytest.raises(TransientError):
            update_invoice(refund_id, recorder=env.recorder, books=env.books)
        outcomes.append(fail(env, refund_id, "TransientError", max_books_attempts=2))
    # WHEN the second attempt fails THEN the refund stops retrying and waits for a person
    refund = env.repository.get(refund_id)
    assert outcomes == ["BOOKS_RETRY", "NEEDS_ATTENTION"]
    assert (refund.status, refund.attention_reason, refund.books_attempts) == (S.NEEDS_ATTENTION, "books_rejected", 2)
    last = env.repository.timeline(refund_id)[-1]
    assert (last.type, last.details["will_retry"]) == ("BooksUpdateFailed", False)


@pytest.mark.parametrize("error", [RejectedError("invoice is voided", platform="xero"), NotFound("no such invoice")])
def test_books_refusing_the_document_need_a_person_at_once(paid: World, error: Exception) -> None:
    env = paid
    # GIVEN a refunded refund whose books refuse the credit note for good
    refund_id = refunded(env)
    env.books.failures = [error]
    with pytest.raises(type(error)):
        update_invoice(refund_id, recorder=env.recorder, books=env.books)
    # WHEN the catch path handles it THEN no automatic retry: NEEDS_ATTENTION for a person
    assert fail(env, refund_id, error) == "NEEDS_ATTENTION"
    refund = env.repository.get(refund_id)
    assert (refund.attention_reason, refund.books_attempts) == ("books_rejected", 1)
    assert env.balance(PAYMENT)["refunded"] == 2_500


def test_a_reversal_while_the_books_are_retried_makes_the_amount_refundable_again(paid: World) -> None:
    env = paid
    # GIVEN a refunded refund waiting for a books retry
    refund_id = refunded(env)
    fail(env, refund_id, "TransientError")
    # WHEN the provider reports that the refund was reversed
    reversed_refund = env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.FAILED)
    apply_provider_event(provider_event(reversed_refund), recorder=env.recorder, provider=env.provider)
    # THEN the amount is refundable again and the books are no longer retried
    assert env.balance(PAYMENT)["remaining"] == 10_000
    assert env.repository.get(refund_id).attention_reason == "provider_reversed_refund"
