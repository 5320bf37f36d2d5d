"""The domain acts on each platform's capabilities, never on its name (ports v2): the same steps against fakes of
each shape (synchronous, webhook-only, find-first without idempotency, void-first), unknown outcomes resolved by
what each platform can do, inbound news split between intake (dedupe + forward) and the platform function (read,
apply, resume), books found before any re-create, and platforms that cannot read a payment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from refundflow.domain.books import update_invoice
from refundflow.domain.failures import handle_failure
from refundflow.domain.inbound import apply_news, forward_delivery
from refundflow.domain.payments import issue_refund, look_up_payment, poll_refund, reserve_amount
from refundflow.domain.recorder import BOOKS_PENDING, OUTCOME_NOT_REPORTED, OUTCOME_UNRESOLVED
from refundflow.domain.validation import validate_refund
from refundflow.domain.waiting import WaitFor, register_wait
from refundflow.errors import (
    InsufficientRefundableAmount,
    InvalidRequest,
    OutcomeUnknownError,
    PaymentNotKnown,
    PolicyViolation,
    TransientError,
)
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.ports import (
    IdempotencySupport,
    InboundDelivery,
    NewsForwarder,
    PaymentCapabilities,
    ProviderEvent,
    ProviderRefundStatus,
)
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur, lambda_cause
from tests.support.fakes import (
    FakeLedger,
    FakeRefundProvider,
    Outcome,
    Shape,
    World,
    provider_event,
    refund_request_body,
)

S = RefundStatus
ALL_SHAPES = list(Shape)


def shaped(env: World, shape: Shape, outcomes: list[Outcome] | None = None, *, settled: bool = True) -> World:
    """``env`` with a provider of ``shape`` holding a captured 100.00 EUR payment."""
    env.provider = FakeRefundProvider(outcomes, shape=shape)
    env.provider.add_payment(PAYMENT, eur(10_000), settled=settled)
    return env


def now_of(env: World) -> Callable[[], datetime]:
    return lambda: env.clock.current


def settle_by_news(env: World, refund_id: str, status: ProviderRefundStatus = ProviderRefundStatus.SUCCEEDED) -> None:
    """The platform settles our refund and its webhook reaches the platform function."""
    refund = env.repository.get(refund_id)
    assert refund.provider_refund_id is not None
    told = env.provider.settle(refund.provider_refund_id, status)
    apply_news(provider_event(told), recorder=env.recorder, provider=env.provider, callbacks=env.callbacks)


# ---------------------------------------------------------------- every shape refunds exactly once


@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_every_shape_refunds_once_and_completes(env: World, shape: Shape) -> None:
    # GIVEN a reserved refund of 25.00 EUR at a platform of this shape
    env = shaped(env, shape)
    refund_id = env.reserved(refund_request_body(amount=2_500))
    # WHEN it is issued (and, webhook-only, its outcome is told by the platform's webhook)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    if shape is Shape.WEBHOOK_ONLY:
        assert env.repository.get(refund_id).status is S.REFUND_PENDING
        settle_by_news(env, refund_id)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    # THEN it is complete, one refund exists at the platform, and the balance consumed exactly 25.00
    assert env.repository.get(refund_id).status is S.COMPLETED
    assert len(env.provider.refunds) == 1
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 2_500, "reserved": 0, "remaining": 7_500}
    # AND a webhook-only platform was never polled or searched
    if shape is Shape.WEBHOOK_ONLY:
        assert not env.provider.calls_to("get_refund")
        assert not env.provider.calls_to("find_refund")


@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_an_unknown_outcome_is_resolved_by_what_the_platform_can_do_without_refunding_twice(
    env: World, shape: Shape
) -> None:
    # GIVEN a platform that created the refund but whose answer was lost
    env = shaped(env, shape, [Outcome.UNKNOWN_AFTER_CREATE])
    refund_id = env.reserved(refund_request_body(amount=2_500))
    with pytest.raises(OutcomeUnknownError):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # WHEN the step is retried
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider, now=now_of(env))
    # THEN one refund exists at the platform, and the refund knows it
    assert len(env.provider.refunds) == 1
    refund = env.repository.get(refund_id)
    assert refund.provider_refund_id == env.provider.only_refund().provider_refund_id
    creates = len(env.provider.calls_to("create_refund"))
    if env.provider.capabilities.find_by_reference:
        # found by our reference: nothing sent again
        assert creates == 1
        assert env.provider.calls_to("find_refund")
    else:
        # cannot be found: the same request under the same (still remembered) key, replayed by the platform
        assert creates == 2
        assert len(set(env.provider.idempotency_keys)) == 1
        assert not env.provider.calls_to("find_refund")


def test_a_platform_that_forgot_the_key_and_cannot_find_leaves_the_refund_to_a_person(env: World) -> None:
    # GIVEN a webhook-only platform (keys kept 744 h, no find) whose answer to the refund was lost
    env = shaped(env, Shape.WEBHOOK_ONLY, [Outcome.UNKNOWN_AFTER_CREATE])
    refund_id = env.reserved(refund_request_body(amount=2_500))
    with pytest.raises(OutcomeUnknownError):
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # WHEN the retry comes after the platform forgot the key
    env.clock.set(env.clock.current + timedelta(hours=745))
    result = issue_refund(refund_id, recorder=env.recorder, provider=env.provider, now=now_of(env))
    # THEN nothing is sent again: a person decides, and the reservation stays held
    assert len(env.provider.calls_to("create_refund")) == 1
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason, result.outcome) == (
        S.NEEDS_ATTENTION,
        OUTCOME_UNRESOLVED,
        "NEEDS_ATTENTION",
    )
    assert env.balance(PAYMENT)["reserved"] == 2_500


def test_no_idempotency_and_no_find_sends_an_unknown_outcome_straight_to_a_person(env: World) -> None:
    # GIVEN a platform that neither takes a key nor finds our refund
    env = shaped(env, Shape.SYNCHRONOUS, [Outcome.UNKNOWN_AFTER_CREATE])
    env.provider._capabilities = PaymentCapabilities(
        idempotency=IdempotencySupport(carrier="none"), find_by_reference=False, outcome="pollable"
    )
    refund_id = env.reserved(refund_request_body(amount=2_500))
    # WHEN its answer to the refund is lost
    result = issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN the step does not raise for a retry (a retry could refund twice): a person decides at once
    assert result.outcome == "NEEDS_ATTENTION"
    assert env.repository.get(refund_id).attention_reason == OUTCOME_UNRESOLVED
    # AND a later run of the step sends nothing either
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider, now=now_of(env))
    assert len(env.provider.calls_to("create_refund")) == 1


# ---------------------------------------------------------------- webhook-only outcomes


def test_a_webhook_only_outcome_that_never_comes_is_not_polled_and_late_news_still_resolves_it(env: World) -> None:
    # GIVEN a webhook-only refund pending at the platform, whose workflow waited for the outcome in vain
    env = shaped(env, Shape.WEBHOOK_ONLY)
    refund_id = env.reserved(refund_request_body(amount=2_500))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # WHEN the bounded wait ends and the poll step runs
    result = poll_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN the platform is not asked (it cannot be): a person is told the outcome was not reported
    assert not env.provider.calls_to("get_refund")
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason, result.outcome) == (
        S.NEEDS_ATTENTION,
        OUTCOME_NOT_REPORTED,
        "NEEDS_ATTENTION",
    )
    # AND the webhook arriving later still moves the money's record on; as no workflow will book it, a person
    # is told (books_pending), and a books run (a redrive) books it and completes the refund
    settle_by_news(env, refund_id)
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason) == (S.NEEDS_ATTENTION, BOOKS_PENDING)
    assert env.balance(PAYMENT)["refunded"] == 2_500
    assert env.publisher.for_refund(refund_id)[-1] == "RefundNeedsAttention"
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    assert env.repository.get(refund_id).status is S.COMPLETED
    assert len(env.books.documents) == 1


def test_webhook_only_news_resumes_the_waiting_workflow(env: World) -> None:
    # GIVEN a webhook-only refund whose workflow parks on the outcome
    env = shaped(env, Shape.WEBHOOK_ONLY)
    refund_id = env.reserved(refund_request_body(amount=2_500))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    register_wait(refund_id, WaitFor.REFUND_OUTCOME, "token-1", repository=env.repository, callbacks=env.callbacks)
    assert env.callbacks.succeeded == []
    # WHEN the platform reports a failure
    settle_by_news(env, refund_id, ProviderRefundStatus.FAILED)
    # THEN the refund failed, its reservation is back, and the workflow was resumed with that outcome
    assert env.repository.get(refund_id).status is S.FAILED
    assert env.balance(PAYMENT)["reserved"] == 0
    [(token, output)] = env.callbacks.succeeded
    assert (token, output["outcome"]) == ("token-1", "FAILED")


def test_webhook_only_news_about_another_refund_id_at_the_platform_is_not_applied(env: World) -> None:
    # GIVEN a pending webhook-only refund
    env = shaped(env, Shape.WEBHOOK_ONLY)
    refund_id = env.reserved(refund_request_body(amount=2_500))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    ours = env.provider.only_refund()
    # WHEN news names our refund id but another platform refund
    other = ours.model_copy(update={"provider_refund_id": "re_other", "status": ProviderRefundStatus.SUCCEEDED})
    touched = apply_news(provider_event(other), recorder=env.recorder, provider=env.provider, callbacks=env.callbacks)
    # THEN nothing is applied
    assert touched == []
    assert env.repository.get(refund_id).status is S.REFUND_PENDING


# ---------------------------------------------------------------- void before settlement


def test_a_void_first_platform_voids_an_unsettled_payment_and_the_audit_says_so(env: World) -> None:
    # GIVEN a payment the platform has not settled yet
    env = shaped(env, Shape.VOID_FIRST, settled=False)
    refund_id = env.reserved(refund_request_body(amount=10_000))
    # WHEN it is refunded
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN the platform voided it, the refund is REFUNDED like any other, and the audit entry names the void
    assert env.provider.only_refund().method == "void"
    assert env.repository.get(refund_id).status is S.REFUNDED
    refunded = [entry for entry in env.repository.timeline(refund_id) if entry.to_status is S.REFUNDED]
    assert refunded[-1].details["method"] == "void"


def test_a_part_of_an_unsettled_payment_is_refused_at_the_look_up_before_anything_is_reserved(env: World) -> None:
    # GIVEN a payment of 100.00 a void-first platform has not settled yet
    env = shaped(env, Shape.VOID_FIRST, settled=False)
    refund_id = env.accept(refund_request_body(amount=2_500)).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    # WHEN a refund of 25.00 is looked up THEN it is refused with the reason, and the platform was never asked
    with pytest.raises(PolicyViolation) as refused:
        look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    assert refused.value.code == "partial_refund_before_settlement"
    assert env.provider.calls_to("create_refund") == []
    assert env.repository.get(refund_id).amount is None


# ---------------------------------------------------------------- no invoice: completed in the payment step


@pytest.mark.parametrize("shape", [Shape.SYNCHRONOUS, Shape.WEBHOOK_ONLY])
def test_a_refund_without_invoice_is_completed_where_the_money_is_confirmed(env: World, shape: Shape) -> None:
    # GIVEN a refund without an invoice reference (no books step in its workflow)
    env = shaped(env, shape)
    refund_id = env.reserved(refund_request_body(amount=2_500, invoice_id=None))
    # WHEN the platform confirms the money
    result = issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    if shape is Shape.WEBHOOK_ONLY:
        settle_by_news(env, refund_id)
        result = poll_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN it is complete without any books call, and the step says so (books null)
    assert env.repository.get(refund_id).status is S.COMPLETED
    assert (result.outcome, result.books) == ("COMPLETED", None)
    assert env.books.record_calls == []


def test_step_results_name_the_books_system_of_the_invoice(env: World) -> None:
    env = shaped(env, Shape.SYNCHRONOUS)
    refund_id = env.reserved(refund_request_body(amount=2_500))
    result = issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert (result.outcome, result.books, result.model_dump(mode="json")["books"]) == ("REFUNDED", "xero", "xero")


# ---------------------------------------------------------------- inbound: intake forwards, the platform applies


class RecordingForwarder(NewsForwarder):
    def __init__(self, failures: int = 0) -> None:
        self.forwarded: list[tuple[str, str]] = []
        self.failures = failures

    def forward(self, platform: str, event: ProviderEvent) -> None:
        if self.failures:
            self.failures -= 1
            raise TransientError("the platform function could not be invoked")
        self.forwarded.append((platform, event.event_id))


def test_intake_forwards_each_new_event_of_a_batch_once_and_marks_it_seen_after(env: World) -> None:
    # GIVEN a verified batch of two events, one of them seen before
    forwarder = RecordingForwarder()
    first, second = provider_event(event_id="evt_a"), provider_event(event_id="evt_b")
    env.repository.mark_delivery("stripe", "evt_a", "-")
    # WHEN intake handles it, twice (a redelivery)
    duplicate = forward_delivery(
        InboundDelivery(events=[first, second]), platform="stripe", recorder=env.recorder, forwarder=forwarder
    )
    again = forward_delivery(
        InboundDelivery(events=[first, second]), platform="stripe", recorder=env.recorder, forwarder=forwarder
    )
    # THEN only the new event went to the platform function, once; the redelivery was all duplicates
    assert forwarder.forwarded == [("stripe", "evt_b")]
    assert (duplicate, again) == (False, True)
    assert env.repository.delivery_refund_id("stripe", "evt_b") is not None


def test_an_event_that_could_not_be_forwarded_is_not_marked_seen(env: World) -> None:
    # GIVEN a platform function that cannot be invoked
    forwarder = RecordingForwarder(failures=1)
    delivery = InboundDelivery(events=[provider_event(event_id="evt_c")])
    # WHEN intake handles the delivery THEN it fails (answered 5xx) and the event stays unseen
    with pytest.raises(TransientError):
        forward_delivery(delivery, platform="stripe", recorder=env.recorder, forwarder=forwarder)
    assert env.repository.delivery_refund_id("stripe", "evt_c") is None
    # AND the platform's redelivery is forwarded
    assert forward_delivery(delivery, platform="stripe", recorder=env.recorder, forwarder=forwarder) is False
    assert forwarder.forwarded == [("stripe", "evt_c")]


def test_news_about_a_payment_reads_the_truth_for_our_open_refunds_on_it(env: World) -> None:
    # GIVEN a pending refund at a synchronous platform that later succeeded there
    env = shaped(env, Shape.SYNCHRONOUS, [Outcome.PENDING])
    refund_id = env.reserved(refund_request_body(amount=2_500))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.SUCCEEDED)
    # WHEN news names only the payment (no refund objects)
    touched = apply_news(
        provider_event(payment_id=PAYMENT), recorder=env.recorder, provider=env.provider, callbacks=env.callbacks
    )
    # THEN the truth was read from the platform and applied
    assert [refund.refund_id for refund in touched] == [refund_id]
    assert env.provider.calls_to("get_refund")
    assert env.repository.get(refund_id).status is S.REFUNDED


def test_news_naming_only_the_platforms_refund_id_reads_the_truth_for_that_refund(env: World) -> None:
    # GIVEN a pending refund at a synchronous platform that later succeeded there, and another refund's id
    env = shaped(env, Shape.SYNCHRONOUS, [Outcome.PENDING])
    refund_id = env.reserved(refund_request_body(amount=2_500))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    made = env.provider.only_refund().provider_refund_id
    env.provider.settle(made, ProviderRefundStatus.SUCCEEDED)
    # WHEN news names the refund by the platform's id only (no amount, no status, no payment)
    news = provider_event().model_copy(update={"named_refund_ids": [made, "re_not_ours"]})
    touched = apply_news(news, recorder=env.recorder, provider=env.provider, callbacks=env.callbacks)
    # THEN our refund was found by that id, read from the platform and the truth applied; the other id is ignored
    assert [refund.refund_id for refund in touched] == [refund_id]
    assert env.provider.calls_to("get_refund")
    assert env.repository.get(refund_id).status is S.REFUNDED


# ---------------------------------------------------------------- books: find before any re-create


def test_books_that_can_find_are_asked_before_a_second_record(env: World) -> None:
    # GIVEN books that recorded the document but whose answer was lost (then a retry)
    env = shaped(env, Shape.SYNCHRONOUS)
    refund_id = env.reserved(refund_request_body(amount=2_500))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    books = FakeLedger()
    lost = books.record_credit
    calls: list[str] = []

    def record_then_lose(booking: object) -> object:
        calls.append("record")
        lost(booking)  # type: ignore[arg-type]
        if len(calls) == 1:
            raise TransientError("answer lost after the document was created")
        raise AssertionError("recorded twice")

    books.record_credit = record_then_lose  # type: ignore[assignment,method-assign]
    with pytest.raises(TransientError):
        update_invoice(refund_id, recorder=env.recorder, books=books)
    handle_failure(refund_id, "TransientError", "", recorder=env.recorder, max_books_attempts=5)
    # WHEN the books step runs again
    update_invoice(refund_id, recorder=env.recorder, books=books)
    # THEN the document was found by our reference and not recorded again; the refund is complete
    assert calls == ["record"]
    assert len(books.documents) == 1
    refund = env.repository.get(refund_id)
    assert refund.status is S.COMPLETED
    assert refund.credit_document is not None
    assert refund.credit_document.external_reference == refund_id
    # AND every attempt carried the same idempotency key and external reference
    keys = {(booking.idempotency_key, booking.external_reference) for booking in books.find_calls}
    assert keys == {(f"{refund_id}:books", refund_id)}


def test_books_that_cannot_find_rely_on_the_key(env: World) -> None:
    # GIVEN books without find-by-reference
    env = shaped(env, Shape.SYNCHRONOUS)
    refund_id = env.reserved(refund_request_body(amount=2_500))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    books = FakeLedger([TransientError("books down")], find_by_reference=False)
    with pytest.raises(TransientError):
        update_invoice(refund_id, recorder=env.recorder, books=books)
    # WHEN retried THEN it records again under the same key, and find is never asked
    update_invoice(refund_id, recorder=env.recorder, books=books)
    assert books.find_calls == []
    assert {booking.idempotency_key for booking in books.record_calls} == {f"{refund_id}:books"}
    assert env.repository.get(refund_id).status is S.COMPLETED


# ---------------------------------------------------------------- platforms that cannot read a payment


def blind(env: World) -> World:
    """A webhook-only platform that cannot read payments (Adyen): its news is the only account of them."""
    env = shaped(env, Shape.WEBHOOK_ONLY)
    env.provider._capabilities = env.provider.capabilities.model_copy(update={"payment_lookup": False})
    return env


def payment_news(env: World, captured: int, refunded: int = 0) -> None:
    """The platform's verified news of the payment (an AUTHORISATION or CAPTURE notification)."""
    news = env.provider.payments[PAYMENT].model_copy(update={"captured": eur(captured), "refunded": eur(refunded)})
    event = provider_event().model_copy(update={"payments": [news]})
    apply_news(event, recorder=env.recorder, provider=env.provider, callbacks=env.callbacks)


def looked_up(env: World, amount: int | None, reference: str = "RMA-1") -> str:
    refund_id = env.accept(refund_request_body(amount=amount, reference=reference), f"dlv-{reference}").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id


def test_a_platform_that_cannot_be_read_is_not_asked_and_its_news_bounds_the_refund(env: World) -> None:
    env = blind(env)
    # GIVEN the platform reported a capture of 60.00
    payment_news(env, 6_000)
    # WHEN a refund of 40.00 is looked up and reserved THEN the platform was never asked, and the news is the bound
    first = env.reserved(refund_request_body(amount=4_000, reference="RMA-1"), delivery_id="dlv-1")
    assert not env.provider.calls_to("get_payment")
    assert env.balance(PAYMENT) == {"captured": 6_000, "refunded": 0, "reserved": 4_000, "remaining": 2_000}
    # AND a request for more than is left does not widen what is refundable: it cannot be reserved
    second = looked_up(env, 3_000, reference="RMA-2")
    env.approve(second)
    with pytest.raises(InsufficientRefundableAmount):
        reserve_amount(second, recorder=env.recorder)
    assert env.balance(PAYMENT)["captured"] == 6_000
    assert env.repository.get(first).reservation is not None


def test_without_payment_news_the_look_up_waits_then_the_refund_is_rejected_payment_not_known(env: World) -> None:
    env = blind(env)
    # GIVEN no news of the payment, whatever the request asks for
    refund_id = env.accept(refund_request_body(amount=2_500)).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    # WHEN it is looked up THEN the look-up is retried later (a transient error), nothing opened
    with pytest.raises(PaymentNotKnown) as unknown:
        look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.repository.get_balance(PaymentProvider.STRIPE, PAYMENT) is None
    result = handle_failure(
        refund_id,
        "PaymentNotKnown",
        lambda_cause(unknown.value),
        recorder=env.recorder,
        max_books_attempts=3,
        max_lookup_attempts=2,
    )
    assert result.outcome == "LOOKUP_RETRY"
    # AND when the news never comes the refund is rejected payment_not_known
    with pytest.raises(PaymentNotKnown) as again:
        look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    handle_failure(
        refund_id,
        "PaymentNotKnown",
        lambda_cause(again.value),
        recorder=env.recorder,
        max_books_attempts=3,
        max_lookup_attempts=2,
    )
    refund = env.repository.get(refund_id)
    assert refund.status is S.REJECTED
    assert refund.failure is not None
    assert refund.failure.code == "payment_not_known"


def test_payment_news_arriving_while_the_look_up_waits_lets_it_through(env: World) -> None:
    env = blind(env)
    refund_id = env.accept(refund_request_body(amount=2_500)).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    with pytest.raises(PaymentNotKnown):
        look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    # WHEN the capture is reported, then the look-up runs again
    payment_news(env, 10_000)
    result = look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN it finds the payment from the news
    assert result.outcome == "PAYMENT_FOUND"
    assert env.repository.get(refund_id).amount == eur(2_500)


def test_payment_news_only_ever_raises_what_was_captured(env: World) -> None:
    env = blind(env)
    payment_news(env, 10_000)
    env.reserved(refund_request_body(amount=4_000))
    # WHEN older news reports a smaller capture THEN nothing shrinks (reserved money stays covered)
    payment_news(env, 3_000)
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 0, "reserved": 4_000, "remaining": 6_000}
    # AND a later, larger capture raises it
    payment_news(env, 12_000)
    assert env.balance(PAYMENT)["remaining"] == 8_000


def test_a_platform_that_can_be_read_ignores_payment_news(env: World) -> None:
    env = shaped(env, Shape.SYNCHRONOUS)
    payment_news(env, 99_999)
    assert env.repository.get_balance(PaymentProvider.STRIPE, PAYMENT) is None


# ---------------------------------------------------------------- locators


def test_a_locator_the_provider_does_not_own_is_refused_at_intake(env: World) -> None:
    # GIVEN a Stripe payment reference with a locator key Stripe's catalog entry does not declare
    body = refund_request_body(amount=2_500)
    body = body.model_copy(
        update={"payment": PaymentReference(provider=PaymentProvider.STRIPE, payment_id=PAYMENT, locator={"kind": "x"})}
    )
    # WHEN it is asked for THEN refused with invalid_locator, and nothing is stored or started
    with pytest.raises(InvalidRequest) as refused:
        env.accept(body)
    assert refused.value.code == "invalid_locator"
    assert env.starter.calls == []


def test_webhook_only_news_never_replaces_a_recorded_acquirer_reference(env: World) -> None:
    # GIVEN a webhook-only refund whose REFUND news carried the ARN (Adyen: additionalData.arn, outside the HMAC)
    env = shaped(env, Shape.WEBHOOK_ONLY)
    refund_id = env.reserved(refund_request_body(amount=2_500))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    ours = env.provider.only_refund()
    told = ours.model_copy(update={"status": ProviderRefundStatus.SUCCEEDED, "acquirer_reference": "74123456789012"})
    apply_news(provider_event(told), recorder=env.recorder, provider=env.provider, callbacks=env.callbacks)
    assert env.repository.get(refund_id).acquirer_reference == "74123456789012"
    written = len(env.repository.timeline(refund_id))
    # WHEN news claims another ARN for it (a replay with the arn edited, or a forgery with a leaked key)
    forged = told.model_copy(update={"acquirer_reference": "74000000000000"})
    apply_news(provider_event(forged), recorder=env.recorder, provider=env.provider, callbacks=env.callbacks)
    # THEN the platform cannot confirm it: the recorded one stays and nothing is written
    assert env.repository.get(refund_id).acquirer_reference == "74123456789012"
    assert len(env.repository.timeline(refund_id)) == written
