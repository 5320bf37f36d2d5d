"""Refunds made outside refundflow (issue 12): recorded from the provider's news once, with origin ``external``,
counted on the payment's balance exactly once, never refunded again, booked as the merchant configures; a
refund of ours whose news outruns the storing of its provider id never becomes one; news about a payment reads
only our refunds still open."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from refundflow import settings
from refundflow.domain import external
from refundflow.domain.external import NO_CUSTOMER, external_refund_id
from refundflow.domain.payments import issue_refund, look_up_payment
from refundflow.domain.recorder import EXTERNAL_REFUND_UNBOOKED
from refundflow.domain.validation import validate_refund
from refundflow.domain.views import refund_view
from refundflow.errors import OutcomeUnknownError, PolicyViolation, TransientError
from refundflow.models import PaymentProvider, PaymentReference, RefundOrigin, ReservationState
from refundflow.ports import PaymentCapabilities, ProviderEvent, ProviderRefund, ProviderRefundStatus
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, completed, eur
from tests.support.fakes import FakeRefundProvider, Outcome, World, provider_event, refund_request_body

S = RefundStatus


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EXTERNAL_REFUND_BOOKING", raising=False)
    settings.load.cache_clear()
    yield
    settings.load.cache_clear()


def charge_refunded(event_id: str | None = None) -> ProviderEvent:
    """Stripe's ``charge.refunded`` in current API versions: the payment, no refund objects."""
    return provider_event(event_id=event_id, payment_id=PAYMENT).model_copy(update={"event_type": "charge.refunded"})


def ask_for_the_rest(env: World, reference: str) -> str:
    refund_id = completed(env, reference=reference, amount=None)
    return refund_id


def test_a_dashboard_refund_is_recorded_once_as_external_and_never_refunded_again(paid: World) -> None:
    env = paid
    # GIVEN refundflow refunded 40.00 of 100.00 (booked on inv-1001), then someone refunded 25.00 in the dashboard
    completed(env)
    outside = env.provider.refund_outside(PAYMENT, eur(2_500))
    # WHEN its refund.created arrives, twice (a redelivery under another event id), then the charge's event
    for event_id in ("evt_created", "evt_created_again"):
        assert env.deliver(provider_event(outside, event_id=event_id)) is False
    env.deliver(charge_refunded("evt_charge"))
    # THEN one refund of origin external holds it, on its own timeline, read from the provider first
    refund_id = external_refund_id("stripe", outside.provider_refund_id)
    recorded = env.repository.get(refund_id)
    assert recorded.origin is RefundOrigin.EXTERNAL
    assert (recorded.amount, recorded.provider_refund_id, recorded.customer.email) == (
        eur(2_500),
        outside.provider_refund_id,
        NO_CUSTOMER,
    )
    assert [entry.type for entry in env.repository.timeline(refund_id)] == ["ExternalRefundRecorded"]
    assert env.provider.calls_to("get_refund")
    # AND it is announced to the books of the payment's invoice (inv-1001 in Xero), whose queue books it
    assert (recorded.status, recorded.invoice and recorded.invoice.invoice_id) == (S.REFUNDED, "inv-1001")
    issued = [event for event in env.publisher.events if event.refund_id == refund_id]
    assert {(event.detail_type, event.origin, event.books) for event in issued} == {
        ("RefundIssued", RefundOrigin.EXTERNAL, "xero")
    }
    # AND the balance counts it once, at once
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 6_500, "reserved": 0, "remaining": 3_500}
    # AND a request for everything left gets only the 35.00 that is left
    rest = ask_for_the_rest(env, "RMA-rest")
    assert env.repository.get(rest).amount == eur(3_500)
    assert [call.arguments["request"].amount for call in env.provider.calls_to("create_refund")] == [
        eur(4_000),
        eur(3_500),
    ]
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 10_000, "reserved": 0, "remaining": 0}
    # AND the status API says where it came from
    assert refund_view(refund_id, repository=env.repository).origin is RefundOrigin.EXTERNAL


def test_a_refund_a_look_up_already_counted_is_not_counted_twice(paid: World) -> None:
    env = paid
    # GIVEN 30.00 refunded in the dashboard before refundflow ever looked the payment up, and a request that
    # looked it up (the balance opens from Stripe's figures, the 30.00 among them) and refunded 20.00
    outside = env.provider.refund_outside(PAYMENT, eur(3_000))
    completed(env, amount=2_000)
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 5_000, "reserved": 0, "remaining": 5_000}
    # WHEN the dashboard refund's news arrives late
    env.deliver(provider_event(outside))
    # THEN it is recorded, and the balance is what it was: the look-up had counted it
    assert env.repository.get(external_refund_id("stripe", outside.provider_refund_id)).origin is RefundOrigin.EXTERNAL
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 5_000, "reserved": 0, "remaining": 5_000}


def test_a_payment_never_looked_up_gets_its_record_and_the_look_up_counts_the_refund(paid: World) -> None:
    env = paid
    outside = env.provider.refund_outside(PAYMENT, eur(10_000))
    env.deliver(provider_event(outside))
    recorded = env.repository.get(external_refund_id("stripe", outside.provider_refund_id))
    # No earlier refund of ours names the invoice: a person books it
    assert (recorded.status, recorded.attention_reason) == (S.NEEDS_ATTENTION, EXTERNAL_REFUND_UNBOOKED)
    assert env.repository.get_balance(PaymentProvider.STRIPE, PAYMENT) is None
    refund_id = env.accept(refund_request_body(reference="RMA-late", amount=None), "dlv-late").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    with pytest.raises(PolicyViolation, match="nothing is left"):
        look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.provider.calls_to("create_refund") == []


def test_the_merchant_may_book_none_of_them(paid: World, monkeypatch: pytest.MonkeyPatch) -> None:
    env = paid
    monkeypatch.setenv("EXTERNAL_REFUND_BOOKING", "none")
    settings.load.cache_clear()
    completed(env)
    outside = env.provider.refund_outside(PAYMENT, eur(1_000))
    env.deliver(provider_event(outside))
    recorded = env.repository.get(external_refund_id("stripe", outside.provider_refund_id))
    assert (recorded.status, recorded.invoice) == (S.COMPLETED, None)
    assert len(env.books.documents) == 1  # ours only


def test_a_pending_dashboard_refund_holds_its_amount_and_gives_it_back_when_it_fails(paid: World) -> None:
    env = paid
    completed(env)
    outside = env.provider.refund_outside(PAYMENT, eur(1_500))
    env.provider.settle(outside.provider_refund_id, ProviderRefundStatus.PENDING)
    env.deliver(provider_event(env.provider.refunds[outside.provider_refund_id]))
    refund_id = external_refund_id("stripe", outside.provider_refund_id)
    pending = env.repository.get(refund_id)
    assert pending.status is S.REFUND_PENDING
    assert pending.reservation is not None
    assert pending.reservation.state is ReservationState.HELD
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 4_000, "reserved": 1_500, "remaining": 4_500}
    # WHEN the provider reports it failed (news naming only its id)
    failed = env.provider.settle(outside.provider_refund_id, ProviderRefundStatus.FAILED, "expired_or_canceled_card")
    env.deliver(provider_event(failed))
    # THEN it failed and its amount is refundable again
    assert env.repository.get(refund_id).status is S.FAILED
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 4_000, "reserved": 0, "remaining": 6_000}


def test_a_failed_dashboard_refund_seen_first_is_not_recorded(paid: World) -> None:
    env = paid
    completed(env)
    outside = env.provider.refund_outside(PAYMENT, eur(1_500))
    failed = env.provider.settle(outside.provider_refund_id, ProviderRefundStatus.FAILED, "lost_or_stolen_card")
    env.deliver(provider_event(failed))
    assert env.repository.find(external_refund_id("stripe", outside.provider_refund_id)) is None
    assert env.balance(PAYMENT)["remaining"] == 6_000


def test_a_crash_after_recording_is_finished_by_the_redelivery(paid: World, monkeypatch: pytest.MonkeyPatch) -> None:
    env = paid
    completed(env)
    outside = env.provider.refund_outside(PAYMENT, eur(2_000))

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the function stopped")

    monkeypatch.setattr(external, "after_external_refund", crash)
    with pytest.raises(RuntimeError):
        env.deliver(provider_event(outside, event_id="evt_1"))
    refund_id = external_refund_id("stripe", outside.provider_refund_id)
    assert env.repository.get(refund_id).status is S.REFUNDED
    monkeypatch.undo()
    # WHEN the platform delivers the same event again (it was not marked seen)
    assert env.deliver(provider_event(outside, event_id="evt_1")) is False
    # THEN its event goes out again for the books, and the balance counted it once
    assert env.repository.get(refund_id).status is S.REFUNDED
    assert env.publisher.for_refund(refund_id).count("RefundIssued") == 2
    assert len({event.event_id for event in env.publisher.events if event.refund_id == refund_id}) == 1
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 6_000, "reserved": 0, "remaining": 4_000}


# ---------------------------------------------------------------- our own refund's news, before its id is stored


class NoEchoOnRead(FakeRefundProvider):
    """A platform whose refund, read by its id, does not carry our reference (only a search by it finds it)."""

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        return super().get_refund(provider_refund_id, payment).model_copy(update={"refund_id": None})


def sent_but_not_stored(env: World) -> tuple[str, ProviderRefund]:
    """Our refund of 30.00 reached the provider, the step stopped before storing the provider's id."""
    env.provider.add_payment(PAYMENT, eur(10_000))
    env.provider.outcomes = [Outcome.UNKNOWN_AFTER_CREATE]
    refund_id = env.reserved(refund_request_body(reference="RMA-race", amount=3_000), "dlv-race")
    with pytest.raises(OutcomeUnknownError):  # the step is retried later
        issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    stored = env.repository.get(refund_id)
    assert (stored.status, stored.provider_refund_id) == (S.REFUND_SUBMITTED, None)
    made = env.provider.only_refund()
    return refund_id, made.model_copy(update={"refund_id": None})  # the news does not echo our reference


def test_our_refunds_news_before_its_id_is_stored_is_found_by_our_reference(env: World) -> None:
    env.provider = NoEchoOnRead()
    refund_id, news = sent_but_not_stored(env)
    env.deliver(provider_event(news))
    # THEN it is applied to our refund, and no external refund exists
    assert env.repository.get(refund_id).status is S.REFUNDED
    assert env.repository.find(external_refund_id("stripe", news.provider_refund_id)) is None
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 3_000, "reserved": 0, "remaining": 7_000}


def test_our_refunds_news_is_refused_for_now_where_the_platform_cannot_search_by_our_reference(env: World) -> None:
    provider = NoEchoOnRead()
    provider._capabilities = PaymentCapabilities(  # a pollable platform without a search
        idempotency=provider.capabilities.idempotency, find_by_reference=False, outcome="pollable"
    )
    env.provider = provider
    refund_id, news = sent_but_not_stored(env)
    event = provider_event(news, event_id="evt_race")
    # WHEN its news comes first: refused for now (answered 5xx: the platform delivers again), nothing recorded
    with pytest.raises(TransientError):
        env.deliver(event)
    assert env.repository.find(external_refund_id("stripe", news.provider_refund_id)) is None
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 0, "reserved": 3_000, "remaining": 7_000}
    # AND once the step stored the id (resent under the same key: the platform replays it), the redelivery is ours
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider, now=env.clock)
    assert env.repository.get(refund_id).provider_refund_id == news.provider_refund_id
    env.deliver(event)
    assert env.repository.get(refund_id).status is S.REFUNDED
    assert env.repository.find(external_refund_id("stripe", news.provider_refund_id)) is None
    assert env.balance(PAYMENT) == {"captured": 10_000, "refunded": 3_000, "reserved": 0, "remaining": 7_000}


# ---------------------------------------------------------------- charge.refunded reads what it needs once


def test_news_about_a_payment_reads_only_our_refunds_still_open(paid: World, monkeypatch: pytest.MonkeyPatch) -> None:
    env = paid
    for number in range(4):
        completed(env, reference=f"RMA-{number}", amount=1_000)
    env.provider.outcomes = [Outcome.PENDING]
    pending = env.reserved(refund_request_body(reference="RMA-open", amount=1_000), "dlv-open")
    issue_refund(pending, recorder=env.recorder, provider=env.provider)
    env.provider.settle(env.repository.get(pending).provider_refund_id or "", ProviderRefundStatus.SUCCEEDED)
    read: list[str] = []
    find = env.repository.find

    def counting(refund_id: str) -> Any:
        read.append(refund_id)
        return find(refund_id)

    monkeypatch.setattr(env.repository, "find", counting)
    env.deliver(charge_refunded())
    # THEN only the open refund was read (and settled), none of the four done ones
    assert set(read) == {pending}
    assert env.repository.get(pending).status is S.REFUNDED


# ---------------------------------------------------------------- news naming a refund by the platform's id only


def pointer(provider_refund_id: str, *, payment_id: str | None = PAYMENT) -> ProviderEvent:
    """News that only names a refund by the platform's id (Chargebee's refund transaction, Amazon Pay's IPN)."""
    return provider_event(payment_id=payment_id).model_copy(update={"named_refund_ids": [provider_refund_id]})


def test_a_dashboard_refund_named_only_by_its_id_is_read_and_recorded(paid: World) -> None:
    env = paid
    completed(env)
    outside = env.provider.refund_outside(PAYMENT, eur(1_000))
    # WHEN news names it by the platform's id only, with and without its payment
    env.deliver(pointer(outside.provider_refund_id))
    env.deliver(pointer(outside.provider_refund_id, payment_id=None))
    # THEN it was read from the platform and recorded once, with the platform's amount
    recorded = env.repository.get(external_refund_id("stripe", outside.provider_refund_id))
    assert (recorded.origin, recorded.amount) == (RefundOrigin.EXTERNAL, eur(1_000))
    assert [entry.type for entry in env.repository.timeline(recorded.refund_id)].count("ExternalRefundRecorded") == 1
    assert env.balance(PAYMENT)["refunded"] == 5_000


def test_a_pointer_to_a_refund_the_platform_does_not_show_records_nothing(paid: World) -> None:
    env = paid
    completed(env)
    # WHEN news names a refund id the platform does not know
    env.deliver(pointer("re_nobody_knows"))
    # THEN nothing is recorded and the balance is unchanged (the delivery is not refused)
    assert env.repository.find(external_refund_id("stripe", "re_nobody_knows")) is None
    assert env.balance(PAYMENT)["refunded"] == 4_000
