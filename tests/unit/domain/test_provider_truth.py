"""The provider is the truth (issue 6, items 3, 4 and 8a): webhooks are news that make us read the
provider, refunds made outside refundflow are never refunded or booked again, the books' document is
recorded whatever happened meanwhile, amounts the platforms cannot represent are refused before
anything is reserved, errors are classified by their class, and an unreachable provider during the
payment look-up is asked again later."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow.domain.books import update_invoice
from refundflow.domain.failures import LOOKUP_RETRY, handle_failure
from refundflow.domain.payments import issue_refund, look_up_payment, poll_refund, reserve_amount
from refundflow.domain.recorder import PROVIDER_REVERSED
from refundflow.domain.validation import validate_refund
from refundflow.errors import (
    InsufficientRefundableAmount,
    InvalidRequest,
    OutcomeUnknownError,
    PolicyViolation,
    RejectedError,
    TransientError,
    error_class,
)
from refundflow.models import BooksSystem, CreditDocument, PaymentProvider, PaymentReference, ReservationState
from refundflow.money import Money
from refundflow.ports import BooksCapabilities, BooksConnector, CreditBooking, ProviderRefund, ProviderRefundStatus
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, completed, eur, lambda_cause
from tests.support.fakes import (
    FakeLedger,
    FakeRefundProvider,
    Outcome,
    World,
    provider_event,
    refund_request_body,
    world,
)

S = RefundStatus
ROOT = Path(__file__).resolve().parents[3]


def lies(truth: ProviderRefund, status: ProviderRefundStatus, **changes: object) -> ProviderRefund:
    """What a forged (validly signed) or stale delivery claims about a real refund."""
    return truth.model_copy(update={"status": status, **changes})


def deliver(env: World, refund: ProviderRefund, event_id: str | None = None) -> bool:
    event = provider_event(refund, event_id=event_id)
    return env.deliver(event)


# ---------------------------------------------------------------- webhooks are news, not truth


def test_a_signed_refund_failed_for_a_refund_that_succeeded_changes_nothing(paid: World) -> None:
    env = paid
    # GIVEN a completed refund of 40.00 that succeeded at the provider
    refund_id = completed(env)
    before = env.repository.get(refund_id)
    balance = env.balance(PAYMENT)
    truth = env.provider.only_refund()
    # WHEN a validly signed "refund.failed" arrives for it, which the provider never sent
    deliver(env, lies(truth, ProviderRefundStatus.FAILED, failure_reason="lost_or_stolen_card"))
    # THEN refundflow asked the provider, which says succeeded: nothing moved, the reservation stays consumed
    assert env.provider.calls_to("get_refund")[-1].arguments == {"provider_refund_id": truth.provider_refund_id}
    after = env.repository.get(refund_id)
    assert after == before
    assert after.reservation is not None
    assert after.reservation.state is ReservationState.CONSUMED
    assert env.balance(PAYMENT) == balance == {"captured": 10_000, "refunded": 4_000, "reserved": 0, "remaining": 6_000}
    # AND a second request for the rest is paid with its own refund and booked once: no second 40.00 note
    rest = completed(env, reference="RMA-2", amount=None)
    assert env.repository.get(rest).amount == eur(6_000)
    assert sorted(r.amount.minor_units for r in env.provider.refunds.values()) == [4_000, 6_000]
    assert [document.total for document in env.books.documents.values()] == [eur(4_000), eur(6_000)]


def test_a_delivery_naming_another_provider_refund_is_checked_against_the_one_we_stored(paid: World) -> None:
    env = paid
    # GIVEN a completed refund
    refund_id = completed(env)
    before = env.repository.get(refund_id)
    # WHEN a signed event carries our refund id on a refund object the provider never made, "failed"
    forged = lies(env.provider.only_refund(), ProviderRefundStatus.FAILED, provider_refund_id="re_forged")
    deliver(env, forged)
    # THEN the refund we stored is what was read, and nothing changed
    assert [call.arguments["provider_refund_id"] for call in env.provider.calls_to("get_refund")] == [
        before.provider_refund_id
    ]
    assert env.repository.get(refund_id) == before


def test_a_real_reversal_is_still_applied_because_the_provider_says_so(paid: World) -> None:
    env = paid
    # GIVEN a completed refund that the provider then really reports failed (money back with the merchant)
    refund_id = completed(env)
    truth = env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.FAILED)
    # WHEN even a stale delivery saying "succeeded" arrives for it
    deliver(env, lies(truth, ProviderRefundStatus.SUCCEEDED))
    # THEN the provider's answer wins: the refund needs a person and the amount is refundable again
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason) == (S.NEEDS_ATTENTION, PROVIDER_REVERSED)
    assert env.balance(PAYMENT)["remaining"] == 10_000


def test_an_older_event_after_a_newer_one_does_not_move_the_refund_back(paid: World) -> None:
    env = paid
    # GIVEN a pending refund
    env.provider.outcomes = [Outcome.PENDING]
    refund_id = env.reserved(refund_request_body())
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    pending = env.provider.only_refund()
    # WHEN the provider settles it, the newer "succeeded" arrives, then the older "failed" of a previous
    # attempt and an older "pending"
    succeeded = env.provider.settle(pending.provider_refund_id, ProviderRefundStatus.SUCCEEDED)
    deliver(env, succeeded)
    settled = env.repository.get(refund_id)
    for older in (lies(succeeded, ProviderRefundStatus.FAILED), pending):
        deliver(env, older)
    # THEN the refund stays REFUNDED with its reservation consumed
    assert settled.status is S.REFUNDED
    assert env.repository.get(refund_id) == settled
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 2_500, "reserved": 0, "remaining": 7_500}


def test_a_delivery_saying_succeeded_for_a_refund_still_pending_at_the_provider_changes_nothing(
    paid: World,
) -> None:
    env = paid
    # GIVEN a pending refund
    env.provider.outcomes = [Outcome.PENDING]
    refund_id = env.reserved(refund_request_body())
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    before = env.repository.get(refund_id)
    # WHEN a delivery claims it succeeded while the provider still has it pending
    deliver(env, lies(env.provider.only_refund(), ProviderRefundStatus.SUCCEEDED))
    # THEN it stays pending: no books, the reservation held
    assert env.repository.get(refund_id) == before
    assert before.status is S.REFUND_PENDING


def test_a_delivery_while_the_provider_is_unreachable_changes_nothing_and_can_be_delivered_again(
    paid: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = paid
    # GIVEN a pending refund that the provider settled, and a provider that cannot be read right now
    env.provider.outcomes = [Outcome.PENDING]
    refund_id = env.reserved(refund_request_body())
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    before = env.repository.get(refund_id)
    succeeded = env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.SUCCEEDED)

    def unreachable(provider_refund_id: str, payment: object) -> ProviderRefund:
        raise TransientError("Stripe answered 503", platform="stripe")

    # WHEN its webhook arrives THEN the delivery fails (answered 503) and nothing changed
    with monkeypatch.context() as patched:
        patched.setattr(env.provider, "get_refund", unreachable)
        with pytest.raises(TransientError):
            deliver(env, succeeded, event_id="evt_retried")
    assert env.repository.get(refund_id) == before
    # AND the provider's retry of the same delivery is applied once the provider answers
    assert deliver(env, succeeded, event_id="evt_retried") is False
    assert env.repository.get(refund_id).status is S.REFUNDED


# ---------------------------------------------------------------- refunds made outside refundflow


def test_a_payment_refunded_in_full_outside_is_rejected_as_nothing_refundable(paid: World) -> None:
    env = paid
    # GIVEN the payment was fully refunded at the provider by someone else
    env.provider.refund_outside(PAYMENT, eur(10_000))
    for reference, amount in (("RMA-all", None), ("RMA-some", 4_000)):
        refund_id = env.accept(refund_request_body(reference=reference, amount=amount), f"dlv-{reference}")
        validate_refund(refund_id.refund.refund_id, recorder=env.recorder)
        # WHEN a request for everything, or for 40.00, is looked up
        with pytest.raises(PolicyViolation) as refused:
            look_up_payment(refund_id.refund.refund_id, recorder=env.recorder, provider=env.provider)
        assert refused.value.code == "nothing_refundable"
        handle_failure(
            refund_id.refund.refund_id,
            "PolicyViolation",
            lambda_cause(refused.value),
            recorder=env.recorder,
            max_books_attempts=3,
        )
        # THEN it is REJECTED before any reservation: no refund, no credit note
        refund = env.repository.get(refund_id.refund.refund_id)
        assert (refund.status, refund.failure and refund.failure.code) == (S.REJECTED, "nothing_refundable")
        assert refund.reservation is None
    assert env.provider.calls_to("create_refund") == []
    assert env.books.record_calls == []
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 10_000, "reserved": 0, "remaining": 0}


def test_a_payment_refunded_outside_after_our_first_refund_is_not_refunded_or_booked_again(paid: World) -> None:
    env = paid
    # GIVEN refundflow refunded 40.00 of 100.00 (the balance is open), then someone refunded the other
    # 60.00 in the provider's dashboard
    completed(env)
    env.provider.refund_outside(PAYMENT, eur(6_000))
    # WHEN a request for "everything left" arrives
    refund_id = env.accept(refund_request_body(reference="RMA-2", amount=None), "dlv-2").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    with pytest.raises(PolicyViolation) as refused:
        look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN nothing is refundable: the balance now counts the outside refund, and nothing is reserved or paid
    assert refused.value.code == "nothing_refundable"
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 10_000, "reserved": 0, "remaining": 0}
    assert len(env.provider.calls_to("create_refund")) == 1
    assert len(env.books.documents) == 1


def test_a_partial_refund_outside_reduces_what_can_be_reserved(paid: World) -> None:
    env = paid
    # GIVEN refundflow refunded 40.00 (balance open) and someone refunded 50.00 outside
    completed(env)
    env.provider.refund_outside(PAYMENT, eur(5_000))
    # WHEN a request for 30.00 is looked up and approved
    over = env.accept(refund_request_body(reference="RMA-over", amount=3_000), "dlv-over").refund.refund_id
    validate_refund(over, recorder=env.recorder)
    look_up_payment(over, recorder=env.recorder, provider=env.provider)
    env.approve(over)
    # THEN only 10.00 remains: the reservation is refused and the provider is never asked
    assert env.balance(PAYMENT)["remaining"] == 1_000
    with pytest.raises(InsufficientRefundableAmount):
        reserve_amount(over, recorder=env.recorder)
    assert len(env.provider.calls_to("create_refund")) == 1
    # AND a request for "everything left" refunds exactly the 10.00
    rest = completed(env, reference="RMA-rest", amount=None)
    assert env.repository.get(rest).amount == eur(1_000)
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 10_000, "reserved": 0, "remaining": 0}


def test_our_own_pending_refund_is_not_mistaken_for_an_outside_refund(paid: World) -> None:
    env = paid
    # GIVEN a refund of 30.00 of ours still pending at the provider (counted there as refunded)
    env.provider.outcomes = [Outcome.PENDING]
    first = env.reserved(refund_request_body(reference="RMA-p", amount=3_000), "dlv-p")
    issue_refund(first, recorder=env.recorder, provider=env.provider)
    # WHEN another request for 70.00 is looked up and reserved
    second = env.reserved(refund_request_body(reference="RMA-q", amount=7_000), "dlv-q")
    # THEN the 70.00 is reserved: the pending 30.00 is counted once, not twice
    assert env.repository.get(second).reservation is not None
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 0, "reserved": 10_000, "remaining": 0}


# ---------------------------------------------------------------- the books' document is always recorded


class RacingLedger(BooksConnector):
    """Books that create the document while a webhook moves the refund on (between create and record)."""

    def __init__(self, env: World, refund_id: str) -> None:
        self.env = env
        self.refund_id = refund_id
        self.created: list[CreditDocument] = []

    name = "xero"

    @property
    def capabilities(self) -> BooksCapabilities:
        return FakeLedger().capabilities

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        refund = self.env.repository.get(self.refund_id)
        self.env.recorder.move(
            refund, S.NEEDS_ATTENTION, actor="tests:webhook", changes={"attention_reason": PROVIDER_REVERSED}
        )
        document = CreditDocument(
            system=BooksSystem.XERO,
            document_id="cn-raced",
            number="CN-0001",
            total=booking.amount,
            allocated_to_invoice=booking.amount,
            cash_refunded=booking.amount,
        )
        self.created.append(document)
        return document

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        return self.created[-1] if self.created else None


def test_a_credit_note_created_while_a_webhook_moved_the_refund_is_recorded(paid: World) -> None:
    env = paid
    # GIVEN a refunded refund, and books that create the credit note just as a webhook moves the refund
    refund_id = env.reserved(refund_request_body())
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    books = RacingLedger(env, refund_id)
    # WHEN the books step runs
    result = update_invoice(refund_id, recorder=env.recorder, books=books)
    # THEN the document the books created is on the refund, and the webhook's status stands
    refund = env.repository.get(refund_id)
    assert refund.credit_document == books.created[0]
    assert (refund.status, refund.attention_reason, result.status) == (
        S.NEEDS_ATTENTION,
        PROVIDER_REVERSED,
        S.NEEDS_ATTENTION,
    )
    assert "CreditDocumentRecorded" in [entry.type for entry in env.repository.timeline(refund_id)]


# ---------------------------------------------------------------- amounts the platforms cannot represent


def test_an_amount_stripe_cannot_represent_is_rejected_before_anything_is_reserved(env: World) -> None:
    # GIVEN a KWD payment and a request for 3.333 KWD (Stripe takes KWD in steps of 0.010)
    env.provider.add_payment(PAYMENT, Money.of(10_000, "KWD"))
    refund_id = env.accept(refund_request_body(amount=3_333, currency="KWD", invoice_id=None)).refund.refund_id
    # WHEN it is validated
    with pytest.raises(InvalidRequest) as refused:
        validate_refund(refund_id, recorder=env.recorder)
    handle_failure(
        refund_id,
        type(refused.value).__name__,
        lambda_cause(refused.value),
        recorder=env.recorder,
        max_books_attempts=3,
    )
    # THEN it is rejected with a reason naming the currency and Stripe's rule; nothing was asked or reserved
    refund = env.repository.get(refund_id)
    assert refund.status is S.REJECTED
    assert refund.failure is not None
    assert refund.failure.code == "amount_not_representable"
    assert "3.333 KWD" in refund.failure.message
    assert "0.010 KWD" in refund.failure.message
    assert env.provider.calls == []
    assert env.repository.get_balance(PaymentProvider.STRIPE, PAYMENT) is None


def test_an_amount_or_line_the_books_cannot_represent_is_rejected_in_validation(env: World) -> None:
    # GIVEN 3.340 KWD (fine for Stripe) with a line of 1.235 KWD for Xero (two decimals only)
    lines = [
        {"description": "Lamp", "quantity": 1, "amount": {"minor_units": 1_235, "currency": "KWD"}},
        {"description": "Shade", "quantity": 1, "amount": {"minor_units": 2_105, "currency": "KWD"}},
    ]
    body = refund_request_body(amount=3_340, currency="KWD", lines=lines)
    refund_id = env.accept(body).refund.refund_id
    # WHEN validated THEN the books' rule refuses it, naming Xero
    with pytest.raises(InvalidRequest, match="Xero") as refused:
        validate_refund(refund_id, recorder=env.recorder)
    assert refused.value.code == "amount_not_representable"


def test_an_amount_the_policy_adjusted_to_an_unrepresentable_one_is_not_reserved(env: World) -> None:
    # GIVEN a KWD request approved at 3.333 KWD (a percentage fee taken off)
    env.provider.add_payment(PAYMENT, Money.of(10_000, "KWD"))
    refund_id = env.accept(refund_request_body(amount=3_920, currency="KWD", invoice_id=None)).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id, Money.of(3_333, "KWD"))
    # WHEN the amount is to be reserved THEN it is refused and nothing is held
    with pytest.raises(InvalidRequest, match="amount_not_representable"):
        reserve_amount(refund_id, recorder=env.recorder)
    assert env.repository.get(refund_id).reservation is None
    assert env.balance(PAYMENT)["reserved"] == 0


def test_validation_does_not_import_the_platform_sdks() -> None:
    # GIVEN a fresh interpreter WHEN it imports the validation step THEN neither stripe nor requests is loaded
    code = (
        "import sys, json; import refundflow.domain.validation; "
        "print(json.dumps([name for name in ('stripe', 'requests') if name in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "layers" / "common"), "PATH": ""},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ---------------------------------------------------------------- errors classified by their class


class ChargeDisputed(RejectedError):
    """A connector's own kind of final refusal."""


class PolicyCapReached(PolicyViolation):
    """A policy's own kind of violation."""


def test_a_subclass_of_rejected_error_after_submission_fails_and_releases(paid: World) -> None:
    env = paid
    # GIVEN a submitted refund whose provider call ended in a connector's subclass of RejectedError
    env.provider.outcomes = [Outcome.UNKNOWN_BEFORE_CREATE]
    refund_id = env.reserved(refund_request_body())
    with pytest.raises(OutcomeUnknownError):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.repository.get(refund_id).status is S.REFUND_SUBMITTED
    # WHEN the catch path gets its name
    handle_failure(refund_id, "ChargeDisputed", "", recorder=env.recorder, max_books_attempts=3)
    # THEN it is a rejection: FAILED and the reservation released (not NEEDS_ATTENTION holding it)
    refund = env.repository.get(refund_id)
    assert refund.status is S.FAILED
    assert env.balance(PAYMENT)["reserved"] == 0


def test_the_amount_error_name_is_known_to_the_catch_path_as_a_rejection(paid: World) -> None:
    env = paid
    # GIVEN the name Step Functions hands over for a platform's amount refusal (its currency profile's)
    assert error_class("AmountNotRepresentable") is not None
    refund_id = env.reserved(refund_request_body())
    env.recorder.move(env.repository.get(refund_id), S.REFUND_SUBMITTED, actor="tests")
    # WHEN handled after submission THEN FAILED and released
    handle_failure(refund_id, "AmountNotRepresentable", "", recorder=env.recorder, max_books_attempts=3)
    assert env.repository.get(refund_id).status is S.FAILED
    assert env.balance(PAYMENT)["reserved"] == 0


def test_a_subclass_of_a_policy_violation_rejects(paid: World) -> None:
    env = paid
    refund_id = env.accept(refund_request_body()).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    # WHEN the catch path gets a subclass of PolicyViolation THEN the refund is REJECTED, not FAILED
    handle_failure(refund_id, "PolicyCapReached", "", recorder=env.recorder, max_books_attempts=3)
    assert env.repository.get(refund_id).status is S.REJECTED


# ---------------------------------------------------------------- the look-up waits out a provider outage


class StripeOutage(TransientError):
    """A connector's own kind of transient failure."""


def test_an_unreachable_provider_during_look_up_is_asked_again_later_then_completes(paid: World) -> None:
    env = paid
    refund_id = env.accept(refund_request_body()).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    # WHEN the look-up fails with a transient error (a subclass, as a connector may raise), twice
    outcomes = [
        handle_failure(refund_id, name, "", recorder=env.recorder, max_books_attempts=3, max_lookup_attempts=5).outcome
        for name in ("TransientError", "StripeOutage")
    ]
    # THEN the refund waits to be looked up again: still VALIDATED, nothing reserved, attempts counted
    refund = env.repository.get(refund_id)
    assert outcomes == [LOOKUP_RETRY, LOOKUP_RETRY]
    assert (refund.status, refund.lookup_attempts, refund.reservation) == (S.VALIDATED, 2, None)
    # AND the parent, resolving the child's stop, routes it to the wait as well
    stopped = handle_failure(
        refund_id, "RefundSteps.LOOKUP_RETRY", "", recorder=env.recorder, max_books_attempts=3, max_lookup_attempts=5
    )
    assert stopped.outcome == LOOKUP_RETRY
    # AND when the provider is back, the steps run again from validation and the look-up goes through
    assert validate_refund(refund_id, recorder=env.recorder).status is S.VALIDATED
    assert look_up_payment(refund_id, recorder=env.recorder, provider=env.provider).outcome == "PAYMENT_FOUND"
    refund = env.repository.get(refund_id)
    assert (refund.amount, refund.failure) == (eur(2_500), None)


def test_a_provider_unreachable_for_too_long_fails_the_refund_with_a_clear_reason(paid: World) -> None:
    env = paid
    refund_id = env.accept(refund_request_body()).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    # WHEN the look-up finds the provider unreachable three times, with three attempts allowed
    outcomes = [
        handle_failure(
            refund_id, "TransientError", "", recorder=env.recorder, max_books_attempts=3, max_lookup_attempts=3
        ).outcome
        for _ in range(3)
    ]
    # THEN the third gives up: FAILED with provider_unavailable, and a stopped child no longer says retry
    refund = env.repository.get(refund_id)
    assert outcomes == [LOOKUP_RETRY, LOOKUP_RETRY, "FAILED"]
    assert refund.failure is not None
    assert refund.failure.code == "provider_unavailable"
    assert env.publisher.for_refund(refund_id)[-1] == "RefundFailed"
    resolved = handle_failure(refund_id, "RefundSteps.LOOKUP_RETRY", "", recorder=env.recorder, max_books_attempts=3)
    assert resolved.outcome == "FAILED"


def test_a_fake_provider_counts_every_live_refund_as_refunded() -> None:
    # GIVEN the fake provider the tests above rely on: refunds by anyone count at the provider
    provider = FakeRefundProvider()
    provider.add_payment(PAYMENT, eur(10_000))
    provider.refund_outside(PAYMENT, eur(1_000))
    assert provider.get_payment(PaymentReference(provider=PaymentProvider.STRIPE, payment_id=PAYMENT)).refunded == eur(
        1_000
    )


# ---------------------------------------------------------------- the bound, under any mix of refunds

_step = st.one_of(
    st.tuples(st.just("ours"), st.integers(1, 6_000), st.booleans()),
    st.tuples(st.just("outside"), st.integers(1, 6_000), st.just(False)),
    st.tuples(st.just("settle"), st.just(0), st.just(False)),
)


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(_step, min_size=1, max_size=7))
def test_whatever_was_refunded_and_by_whom_the_provider_is_never_asked_for_more_than_it_holds(
    steps: list[tuple[str, int, bool]],
) -> None:
    # GIVEN a 100.00 payment and any sequence of our refunds (paid at once or left pending), refunds made
    # outside refundflow, and pending refunds settling
    with world() as env:
        env.provider.add_payment(PAYMENT, eur(10_000))
        pending: list[str] = []
        for index, (kind, amount, stays_pending) in enumerate(steps):
            at_provider = env.provider.get_payment(
                PaymentReference(provider=PaymentProvider.STRIPE, payment_id=PAYMENT)
            )
            held_there = at_provider.captured.minor_units - at_provider.refunded.minor_units
            if kind == "outside":
                if amount <= held_there:
                    env.provider.refund_outside(PAYMENT, eur(amount))
                continue
            if kind == "settle":
                for refund_id in pending:
                    refund = env.repository.get(refund_id)
                    assert refund.provider_refund_id is not None
                    env.provider.settle(refund.provider_refund_id, ProviderRefundStatus.SUCCEEDED)
                    poll_refund(refund_id, recorder=env.recorder, provider=env.provider)
                pending.clear()
                continue
            # WHEN refundflow is asked for a refund
            body = refund_request_body(reference=f"RMA-{index}", amount=amount)
            refund_id = env.accept(body, f"dlv-{index}").refund.refund_id
            validate_refund(refund_id, recorder=env.recorder)
            try:
                look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
            except PolicyViolation:
                assert held_there == 0 or env.balance(PAYMENT)["remaining"] == 0
                continue
            # THEN the look-up leaves exactly what the provider still holds as refundable
            assert env.balance(PAYMENT)["remaining"] == held_there
            env.approve(refund_id)
            try:
                reserve_amount(refund_id, recorder=env.recorder)
            except InsufficientRefundableAmount:
                assert amount > held_there
                continue
            env.provider.outcomes = [Outcome.PENDING if stays_pending else Outcome.SUCCEEDED]
            # AND whatever was reserved, the provider accepts: it is never asked for more than it holds
            issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
            if stays_pending:
                pending.append(refund_id)
        at_provider = env.provider.get_payment(PaymentReference(provider=PaymentProvider.STRIPE, payment_id=PAYMENT))
        assert at_provider.refunded.minor_units <= at_provider.captured.minor_units
        # AND what is still reserved is exactly our refunds still pending at the provider
        if pending:
            held = [env.repository.get(refund_id).amount for refund_id in pending]
            assert env.balance(PAYMENT)["reserved"] == sum(money.minor_units for money in held if money)
