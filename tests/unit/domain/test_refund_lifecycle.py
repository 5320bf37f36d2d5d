"""A refund through the workflow's steps, with the repository on moto and fakes for the platforms:
the happy path, partial refunds, duplicates (R1, R2), a changed amount (R3), an unknown provider
outcome (R9), asynchronous outcomes and reversals, and a store that cannot be reached (R17)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from refundflow.adapters.dynamodb import RefundRepository
from refundflow.audit import verify_chain
from refundflow.connectors.standard_webhooks import VerifiedSource
from refundflow.domain.books import update_invoice
from refundflow.domain.failures import handle_failure
from refundflow.domain.intake import accept_refund_request
from refundflow.domain.payments import (
    apply_provider_event,
    issue_refund,
    look_up_payment,
    poll_refund,
    release_items,
    reserve_amount,
)
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.validation import validate_refund
from refundflow.domain.waiting import WaitFor, register_wait
from refundflow.errors import (
    GuardUnavailable,
    IdempotencyConflict,
    IllegalTransition,
    InsufficientRefundableAmount,
    OutcomeUnknownError,
    PolicyViolation,
    RejectedError,
    TransientError,
)
from refundflow.events import RefundEvent
from refundflow.ids import idempotency_key
from refundflow.models import ReservationState
from refundflow.ports import ProviderRefundStatus
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import (
    TEST_AUDIT_KEYS,
    TIMING,
    FakeRefundProvider,
    FakeWorkflowStarter,
    Outcome,
    RecordingPublisher,
    UnreachableDynamoDB,
    World,
    provider_event,
    refund_request_body,
    world,
)

S = RefundStatus


def pay(env: World, refund_id: str) -> None:
    """Issue the refund and update the books (the provider answers as configured)."""
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)


# ---------------------------------------------------------------- the happy path


def test_a_refund_goes_from_request_to_completed_with_its_events_in_order(paid: World) -> None:
    env = paid
    # GIVEN a signed request for the full amount of a 100.00 EUR payment
    accepted = env.accept(refund_request_body(amount=None), "dlv-1")
    refund_id = accepted.refund.refund_id
    # WHEN every step runs
    outcomes = [
        validate_refund(refund_id, recorder=env.recorder).outcome,
        look_up_payment(refund_id, recorder=env.recorder, provider=env.provider).outcome,
        env.approve(refund_id).status.value,
        reserve_amount(refund_id, recorder=env.recorder).outcome,
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider).outcome,
        update_invoice(refund_id, recorder=env.recorder, books=env.books).outcome,
    ]
    # THEN the refund is complete, each step reported where it stands, and the events came in order
    assert outcomes == ["VALIDATED", "PAYMENT_FOUND", "APPROVED", "RESERVED", "REFUNDED", "COMPLETED"]
    assert env.publisher.for_refund(refund_id) == [
        "RefundRequested",
        "RefundValidated",
        "RefundApproved",
        "RefundSubmitted",
        "RefundIssued",
        "InvoiceUpdated",
        "RefundCompleted",
    ]
    refund = env.repository.get(refund_id)
    assert refund.status is S.COMPLETED
    assert refund.amount == eur(10_000)
    # AND the provider was asked once, with the refund's own key; the books hold one credit note
    (call,) = env.provider.calls_to("create_refund")
    assert call.arguments["request"].amount == eur(10_000)
    assert call.arguments["request"].idempotency_key == idempotency_key(refund_id, "refund")
    assert refund.provider_refund_id == env.provider.only_refund().provider_refund_id
    assert list(env.books.documents) == [refund_id]
    assert refund.credit_document == env.books.documents[refund_id]
    # AND the money is accounted for: consumed reservation, nothing left to refund
    assert refund.reservation is not None
    assert refund.reservation.state is ReservationState.CONSUMED
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 10_000, "reserved": 0, "remaining": 0}
    assert verify_chain(
        env.repository.timeline(refund_id), expected_head=refund.audit_head, keys=TEST_AUDIT_KEYS
    ).intact
    assert list(env.starter.executions) == [refund_id]


def test_events_carry_the_refund_but_no_contact_details(paid: World) -> None:
    env = paid
    # GIVEN a completed refund of a customer with an e-mail address
    refund_id = env.reserved(refund_request_body(email="jane.doe@example.com"))
    pay(env, refund_id)
    # WHEN its events are looked at THEN each has a unique id, the amount and source, and no e-mail
    events = [event for event in env.publisher.events if event.refund_id == refund_id]
    assert len({event.event_id for event in events}) == len(events)
    for event in events:
        assert event.amount == eur(2_500)
        assert event.source.reference == "RMA-1001"
        assert "jane.doe" not in event.model_dump_json()


def test_steps_run_again_after_completion_change_nothing(paid: World) -> None:
    env = paid
    # GIVEN a completed refund
    refund_id = env.reserved(refund_request_body())
    pay(env, refund_id)
    done = env.repository.get(refund_id)
    published = env.publisher.distinct(refund_id)
    # WHEN the state machine re-runs its steps (a redrive, a retried Lambda)
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    reserve_amount(refund_id, recorder=env.recorder)
    pay(env, refund_id)
    poll_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN no money moves again, no document is created again, and nothing is written; events may be
    # published again, but only under ids already sent (consumers deduplicate on event_id)
    assert len(env.provider.calls_to("create_refund")) == 1
    assert len(env.books.record_calls) == 1
    assert env.repository.get(refund_id) == done
    assert env.publisher.distinct(refund_id) == published


def test_a_refund_without_an_invoice_completes_without_books(paid: World) -> None:
    env = paid
    # GIVEN a refund request that names no invoice
    refund_id = env.reserved(refund_request_body(invoice_id=None))
    # WHEN paid THEN it completes straight from REFUNDED and the books are not asked
    pay(env, refund_id)
    assert env.repository.get(refund_id).status is S.COMPLETED
    assert env.books.record_calls == []
    assert "InvoiceUpdated" not in env.publisher.for_refund(refund_id)


# ---------------------------------------------------------------- partial refunds


def test_successive_partial_refunds_until_nothing_is_left(paid: World) -> None:
    env = paid
    # GIVEN two partial refunds of 30.00 and 20.00 on a 100.00 payment
    first = env.reserved(refund_request_body(reference="RMA-A", amount=3_000), "dlv-a")
    pay(env, first)
    second = env.reserved(refund_request_body(reference="RMA-B", amount=2_000), "dlv-b")
    pay(env, second)
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 5_000, "reserved": 0, "remaining": 5_000}
    # WHEN a third asks for 60.00
    third = env.accept(refund_request_body(reference="RMA-C", amount=6_000), "dlv-c").refund.refund_id
    validate_refund(third, recorder=env.recorder)
    look_up_payment(third, recorder=env.recorder, provider=env.provider)
    env.approve(third)
    with pytest.raises(InsufficientRefundableAmount):
        reserve_amount(third, recorder=env.recorder)
    handle_failure(third, "InsufficientRefundableAmount", "", recorder=env.recorder, max_books_attempts=3)
    # THEN it is rejected without reaching the provider, and a refund of the rest (no amount) takes what remains
    assert env.repository.get(third).status is S.REJECTED
    assert [c.arguments["request"].amount for c in env.provider.calls_to("create_refund")] == [eur(3_000), eur(2_000)]
    rest = env.reserved(refund_request_body(reference="RMA-D", amount=None), "dlv-d")
    pay(env, rest)
    assert env.repository.get(rest).amount == eur(5_000)
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 10_000, "reserved": 0, "remaining": 0}


def test_the_approved_amount_is_what_the_provider_refunds(paid: World) -> None:
    env = paid
    # GIVEN a request for 25.00 that the policy approves at 22.50 (a restocking fee)
    refund_id = env.reserved(refund_request_body(amount=2_500), amount=eur(2_250))
    # WHEN paid THEN 22.50 is refunded and only 22.50 leaves the refundable balance
    pay(env, refund_id)
    assert env.provider.only_refund().amount == eur(2_250)
    assert env.balance(PAYMENT)["remaining"] == 7_750


def test_a_payment_in_another_currency_is_a_policy_violation(paid: World) -> None:
    env = paid
    # GIVEN a request in USD for a EUR payment
    refund_id = env.accept(refund_request_body(currency="USD")).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    # WHEN the payment is looked up THEN the refund is refused before any balance is touched
    with pytest.raises(PolicyViolation):
        look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.repository.get_balance(env.provider.provider, PAYMENT) is None


# ---------------------------------------------------------------- duplicates and changed requests (R1, R2, R3)


def test_the_same_refund_key_with_another_amount_is_refused_and_never_paid(paid: World) -> None:
    env = paid
    # GIVEN a request for 25.00 accepted
    original = env.accept(refund_request_body(amount=2_500), "dlv-1").refund
    # WHEN the same source reference arrives with 99.99, under a new and under the same delivery id
    with pytest.raises(IdempotencyConflict):
        env.accept(refund_request_body(amount=9_999), "dlv-2")
    with pytest.raises(IdempotencyConflict):
        env.accept(refund_request_body(amount=9_999), "dlv-1")
    # THEN the stored request is unchanged, no second workflow started, and the changed amount is never paid (R3)
    assert env.repository.get(original.refund_id).requested_amount == eur(2_500)
    assert len(env.starter.executions) == 1
    assert env.publisher.for_refund(original.refund_id) == ["RefundRequested"]
    validate_refund(original.refund_id, recorder=env.recorder)
    look_up_payment(original.refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(original.refund_id)
    reserve_amount(original.refund_id, recorder=env.recorder)
    pay(env, original.refund_id)
    assert [c.arguments["request"].amount for c in env.provider.calls_to("create_refund")] == [eur(2_500)]


def test_fifty_identical_deliveries_at_once_store_and_start_one_refund() -> None:
    with world(serialized=True) as env:
        # GIVEN 50 copies of one signed delivery arriving at the same moment
        body = refund_request_body()
        barrier = threading.Barrier(50)
        results: list[object] = []

        def deliver() -> None:
            barrier.wait()
            try:
                results.append(env.accept(body, "dlv-1"))
            except Exception as error:  # pragma: no cover - reported below
                results.append(error)

        threads = [threading.Thread(target=deliver) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        # THEN every copy gets the same refund, one of them first, and one workflow execution exists (R1)
        refund_ids = {result.refund.refund_id for result in results}  # type: ignore[attr-defined]
        assert len(results) == 50
        assert len(refund_ids) == 1
        assert sum(not result.duplicate for result in results) == 1  # type: ignore[attr-defined]
        (refund_id,) = refund_ids
        assert list(env.starter.executions) == [refund_id]
        assert [detail_type for _, detail_type in env.publisher.distinct(refund_id)] == ["RefundRequested"]
        assert len(env.repository.timeline(refund_id)) == 1


def test_the_same_delivery_days_later_changes_nothing(paid: World) -> None:
    env = paid
    # GIVEN a refund accepted and already being worked on
    refund_id = env.accept(refund_request_body(), "dlv-1").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    stored = env.repository.get(refund_id)
    starts, published = len(env.starter.calls), len(env.publisher.events)
    # WHEN the same delivery comes again 1 h, 25 h and 72 h later
    for hours in (1, 25, 72):
        env.clock.set(stored.updated_at + timedelta(hours=hours))
        again = env.accept(refund_request_body(), "dlv-1")
        # THEN it is answered as a duplicate with no effect: no start, no event, no write (R2)
        assert again.duplicate
        assert again.refund == stored
    assert len(env.starter.calls) == starts
    assert len(env.publisher.events) == published
    assert env.repository.get(refund_id) == stored


def test_a_redelivery_before_the_workflow_moved_starts_it_again_under_the_same_name(env: World) -> None:
    # GIVEN a refund stored, whose start may have been lost (the refund is still RECEIVED)
    refund_id = env.accept(refund_request_body(), "dlv-1").refund.refund_id
    # WHEN the delivery comes again
    again = env.accept(refund_request_body(), "dlv-1")
    # THEN the start is repeated under the refund's own name, so at most one execution ever exists
    assert again.duplicate
    assert [name for name, _ in env.starter.calls] == [refund_id, refund_id]
    assert list(env.starter.executions) == [refund_id]


# ---------------------------------------------------------------- unknown outcomes (R9)


def test_a_retry_after_an_unknown_outcome_finds_the_refund_instead_of_paying_again(paid: World) -> None:
    env = paid
    # GIVEN the provider created the refund, but the answer was lost (read timeout)
    env.provider.outcomes = [Outcome.UNKNOWN_AFTER_CREATE]
    refund_id = env.reserved(refund_request_body())
    with pytest.raises(OutcomeUnknownError):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.repository.get(refund_id).status is S.REFUND_SUBMITTED
    # WHEN the step is retried
    result = issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN it looked the refund up first and sent nothing new: one refund at the provider (R9)
    assert result.outcome == "REFUNDED"
    assert env.provider.method_sequence[-2:] == ["create_refund", "find_refund"]
    assert len(env.provider.calls_to("create_refund")) == 1
    assert env.repository.get(refund_id).provider_refund_id == env.provider.only_refund().provider_refund_id
    assert env.balance(PAYMENT)["refunded"] == 2_500


@pytest.mark.parametrize("first", [Outcome.UNKNOWN_BEFORE_CREATE, Outcome.TRANSIENT])
def test_a_retry_after_a_lost_request_sends_it_again_with_the_same_key(paid: World, first: Outcome) -> None:
    env = paid
    # GIVEN the first request never took effect (timeout before processing, or a 503)
    env.provider.outcomes = [first]
    refund_id = env.reserved(refund_request_body())
    with pytest.raises((OutcomeUnknownError, TransientError)):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # WHEN the step is retried
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN it looked first, found nothing, and sent the same request under the same key: one refund (R9)
    assert env.provider.method_sequence[-3:] == ["create_refund", "find_refund", "create_refund"]
    assert env.provider.idempotency_keys == [idempotency_key(refund_id, "refund")] * 2
    assert len(env.provider.refunds) == 1
    assert env.repository.get(refund_id).status is S.REFUNDED


def test_a_payment_refunded_elsewhere_meanwhile_fails_and_is_neither_refunded_nor_booked(paid: World) -> None:
    env = paid
    # GIVEN a reserved refund, and the payment then refunded in full at the provider by someone else
    refund_id = env.reserved(refund_request_body())
    env.provider.refund_outside(PAYMENT, eur(10_000))
    # WHEN the refund is issued THEN the provider's "already refunded" is a refusal, not our success
    with pytest.raises(RejectedError) as refused:
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert refused.value.code == "nothing_refundable"
    handle_failure(refund_id, type(refused.value).__name__, "", recorder=env.recorder, max_books_attempts=3)
    # AND the catch path fails it and gives the reservation back: nothing refunded by us, nothing booked
    refund = env.repository.get(refund_id)
    assert refund.status is S.FAILED
    assert refund.reservation is not None
    assert refund.reservation.state is ReservationState.RELEASED
    assert refund.credit_document is None
    assert env.books.record_calls == []
    assert [r.refund_id for r in env.provider.refunds.values()] == [None]


def test_a_refund_the_provider_rejects_fails_and_gives_the_amount_back(paid: World) -> None:
    env = paid
    # GIVEN a provider that refuses the refund for good
    env.provider.outcomes = [Outcome.REJECTED]
    refund_id = env.reserved(refund_request_body())
    with pytest.raises(RejectedError):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # WHEN the catch path handles it
    handle_failure(refund_id, "RejectedError", "", recorder=env.recorder, max_books_attempts=3)
    # THEN the refund failed and the amount is refundable again
    assert env.repository.get(refund_id).status is S.FAILED
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 0, "reserved": 0, "remaining": 10_000}


def test_a_refund_is_never_sent_without_a_held_reservation(paid: World) -> None:
    env = paid
    # GIVEN an approved refund whose reservation step did not run
    refund_id = env.accept(refund_request_body()).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    # WHEN the refund step runs THEN it refuses and the provider is never asked
    with pytest.raises(IllegalTransition, match="without a held reservation"):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.provider.calls_to("create_refund") == []


# ---------------------------------------------------------------- asynchronous outcomes


def pending_refund(env: World) -> str:
    env.provider.outcomes = [Outcome.PENDING]
    refund_id = env.reserved(refund_request_body())
    result = issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert result.outcome == "REFUND_PENDING"
    return refund_id


def test_a_pending_refund_that_succeeds_is_refunded_and_resumes_its_workflow_once(paid: World) -> None:
    env = paid
    # GIVEN a pending refund whose workflow waits for the outcome
    refund_id = pending_refund(env)
    assert not register_wait(
        refund_id, WaitFor.REFUND_OUTCOME, "token-1", repository=env.repository, callbacks=env.callbacks
    )
    # WHEN the provider's webhook says it succeeded (and is delivered twice, and re-sent under a new id)
    succeeded = env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.SUCCEEDED)
    event = provider_event(succeeded)
    duplicates = [env.deliver(e) for e in (event, event, provider_event(succeeded))]
    # THEN the refund is REFUNDED, the reservation consumed, and the workflow resumed exactly once
    assert duplicates == [False, True, False]
    refund = env.repository.get(refund_id)
    assert refund.status is S.REFUNDED
    assert refund.reservation is not None
    assert refund.reservation.state is ReservationState.CONSUMED
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 2_500, "reserved": 0, "remaining": 7_500}
    assert [(token, output["outcome"]) for token, output in env.callbacks.succeeded] == [("token-1", "REFUNDED")]
    assert env.publisher.for_refund(refund_id).count("RefundIssued") == 1


def test_a_pending_refund_that_fails_releases_its_reservation_exactly_once(paid: World) -> None:
    env = paid
    # GIVEN a pending refund whose workflow waits for the outcome
    refund_id = pending_refund(env)
    register_wait(refund_id, WaitFor.REFUND_OUTCOME, "token-1", repository=env.repository, callbacks=env.callbacks)
    # WHEN the provider reports it failed, and the news comes again by webhook, by poll and by the catch path
    failed = env.provider.settle(
        env.provider.only_refund().provider_refund_id, ProviderRefundStatus.FAILED, "expired_card"
    )
    env.deliver(provider_event(failed))
    env.deliver(provider_event(failed))
    poll_refund(refund_id, recorder=env.recorder, provider=env.provider)
    handle_failure(refund_id, "RejectedError", "", recorder=env.recorder, max_books_attempts=3)
    # THEN the refund failed with the provider's reason, and the amount was given back once
    refund = env.repository.get(refund_id)
    assert refund.status is S.FAILED
    assert refund.failure is not None
    assert refund.failure.code == "expired_card"
    assert refund.reservation is not None
    assert refund.reservation.state is ReservationState.RELEASED
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 0, "reserved": 0, "remaining": 10_000}
    assert [output["outcome"] for _, output in env.callbacks.succeeded] == ["FAILED"]
    # AND there is nothing left that could release it a second time
    assert release_items(env.recorder, refund) == ({}, [])


def test_a_pending_refund_is_settled_by_polling_when_no_webhook_comes(paid: World) -> None:
    env = paid
    # GIVEN a pending refund that succeeded at the provider, with its webhook lost
    refund_id = pending_refund(env)
    env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.SUCCEEDED)
    # WHEN the workflow polls THEN the refund is REFUNDED
    assert poll_refund(refund_id, recorder=env.recorder, provider=env.provider).outcome == "REFUNDED"
    assert env.balance(PAYMENT)["refunded"] == 2_500


def test_a_webhook_without_refund_objects_is_resolved_through_the_provider(paid: World) -> None:
    env = paid
    # GIVEN a pending refund and a charge.refunded-style event that names only the payment
    refund_id = pending_refund(env)
    env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.SUCCEEDED)
    # WHEN it is applied
    touched = apply_provider_event(provider_event(payment_id=PAYMENT), recorder=env.recorder, provider=env.provider)
    # THEN the open refund on that payment is fetched and settled
    assert [refund.refund_id for refund in touched] == [refund_id]
    assert env.repository.get(refund_id).status is S.REFUNDED


def test_a_refund_reversed_after_success_needs_attention_and_is_refundable_again(paid: World) -> None:
    env = paid
    # GIVEN a completed refund of 25.00
    refund_id = env.reserved(refund_request_body())
    pay(env, refund_id)
    assert env.balance(PAYMENT)["remaining"] == 7_500
    # WHEN the provider later reports the same refund failed (the money went back to the merchant)
    reversed_refund = env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.FAILED)
    env.deliver(provider_event(reversed_refund))
    # THEN a person is needed, and the 25.00 is refundable again (once, even if the news repeats)
    env.deliver(provider_event(reversed_refund))
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason) == (S.NEEDS_ATTENTION, "provider_reversed_refund")
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 0, "reserved": 0, "remaining": 10_000}
    assert env.publisher.for_refund(refund_id)[-1] == "RefundNeedsAttention"


def test_a_reversal_that_names_only_the_platforms_refund_id_is_found_by_that_id(paid: World) -> None:
    env = paid
    # GIVEN a completed refund of 25.00
    refund_id = env.reserved(refund_request_body())
    pay(env, refund_id)
    # WHEN the platform later reports its refund failed, naming only its own refund id (no reference of ours)
    reversed_refund = env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.FAILED)
    touched = apply_provider_event(
        provider_event(reversed_refund.model_copy(update={"refund_id": None})),
        recorder=env.recorder,
        provider=env.provider,
    )
    # THEN our refund is found by the id the platform gave it, read again, and needs a person
    assert [refund.refund_id for refund in touched] == [refund_id]
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason) == (S.NEEDS_ATTENTION, "provider_reversed_refund")
    assert env.balance(PAYMENT)["remaining"] == 10_000


def test_stale_and_out_of_order_events_change_nothing(paid: World) -> None:
    env = paid
    # GIVEN a pending refund that the provider reports succeeded
    refund_id = pending_refund(env)
    provider_refund = env.provider.only_refund()
    succeeded = env.provider.settle(provider_refund.provider_refund_id, ProviderRefundStatus.SUCCEEDED)
    apply_provider_event(provider_event(succeeded), recorder=env.recorder, provider=env.provider)
    settled = env.repository.get(refund_id)
    published = len(env.publisher.events)
    # WHEN late events arrive: the old "pending", "succeeded" again, and a refund refundflow did not make
    stranger = succeeded.model_copy(update={"provider_refund_id": "re_dashboard", "refund_id": None})
    for late in (provider_refund, succeeded, stranger):
        apply_provider_event(provider_event(late), recorder=env.recorder, provider=env.provider)
    # THEN nothing is written or published
    assert env.repository.get(refund_id) == settled
    assert len(env.publisher.events) == published
    assert env.balance(PAYMENT)["refunded"] == 2_500


# ---------------------------------------------------------------- failing closed (R17)


def test_no_money_moves_when_the_guard_store_is_unreachable() -> None:
    # GIVEN a store that cannot be reached, and a provider that would pay
    provider, starter = FakeRefundProvider(), FakeWorkflowStarter()
    recorder = RefundRecorder(
        RefundRepository("refunds", dynamodb=UnreachableDynamoDB(), audit_keys=lambda: TEST_AUDIT_KEYS),
        RecordingPublisher(),
    )
    refund_id = "rf_" + "1" * 32
    # WHEN a request arrives, or any money step runs
    steps = [
        lambda: accept_refund_request(
            refund_request_body(),
            source=VerifiedSource("returns-portal"),
            delivery_id="dlv-1",
            recorder=recorder,
            starter=starter,
            timing=TIMING,
        ),
        lambda: look_up_payment(refund_id, recorder=recorder, provider=provider),
        lambda: reserve_amount(refund_id, recorder=recorder),
        lambda: issue_refund(refund_id, recorder=recorder, provider=provider),
        lambda: poll_refund(refund_id, recorder=recorder, provider=provider),
    ]
    for step in steps:
        with pytest.raises(GuardUnavailable):
            step()
    # THEN the provider is never called and no workflow is started (R17)
    assert provider.calls == []
    assert starter.calls == []


# ---------------------------------------------------------------- events after a failed publish


class BusDownOnce(RecordingPublisher):
    """An event bus that refuses the first event of one detail-type (after the state change committed)."""

    def __init__(self, detail_type: str) -> None:
        super().__init__()
        self.detail_type = detail_type

    def publish(self, events: list[RefundEvent]) -> None:
        if self.detail_type and any(event.detail_type == self.detail_type for event in events):
            self.detail_type = ""
            raise TransientError("events:PutEvents FailedEntryCount=1")
        super().publish(events)


def test_an_event_lost_to_a_bus_outage_is_published_when_the_step_is_retried(paid: World) -> None:
    env = paid
    # GIVEN a bus that fails once when the refund is issued
    env.publisher = BusDownOnce("RefundIssued")
    refund_id = env.reserved(refund_request_body())
    with pytest.raises(TransientError):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.repository.get(refund_id).status is S.REFUNDED
    # WHEN the state machine retries the step
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN RefundIssued reaches the bus (at least once)
    assert "RefundIssued" in env.publisher.for_refund(refund_id)


def test_every_published_event_is_also_counted_as_a_metric(env: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN metrics enabled (as in Lambda)
    from refundflow import settings
    from refundflow.observability import metrics

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    settings.load.cache_clear()
    metrics.clear_metrics()
    try:
        # WHEN a refund request is accepted and validated
        refund_id = env.accept(refund_request_body(), "dlv-metrics").refund.refund_id
        validate_refund(refund_id, recorder=env.recorder)
        # THEN each event published is a count in the metric of the same name
        assert {"RefundRequested", "RefundValidated"} <= set(metrics.metric_set)
    finally:
        metrics.clear_metrics()
