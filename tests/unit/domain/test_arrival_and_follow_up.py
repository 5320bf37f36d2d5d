"""The expected arrival window (the platform's documented range, or the merchant's default, counted from when the money
moved) in the refund view and the customer's first message; the ARN that comes later makes one follow-up message,
through the same channel as the first (issue 17, part 2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from refundflow import settings
from refundflow.domain.arrival import ArrivalSettings, add_days, expected_arrival
from refundflow.domain.notifications import ARN_MEANING, Channel, customer_message, notify
from refundflow.domain.payments import ACQUIRER_REFERENCE, apply_provider_outcome
from refundflow.domain.tickets import write_back
from refundflow.domain.views import refund_view
from refundflow.errors import ConfigurationError
from refundflow.events import RefundEvent
from refundflow.status import RefundStatus
from tests.support.fakes import World
from tests.unit.domain.test_customer_channel import (
    OPS,
    REPLY_DESKS,
    RecordingDesk,
    RecordingWebhook,
    env,  # noqa: F401 - the fixture: a payment of 100.00 EUR
    event_of,
    issued_refund,
)

ARN = "74123456789012345678901"
FRIDAY = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    settings.load.cache_clear()
    yield
    settings.load.cache_clear()


def test_business_days_skip_the_weekend() -> None:
    assert add_days(date(2026, 12, 4), 1, "business") == date(2026, 12, 7)  # Friday + 1 = Monday
    assert add_days(date(2026, 12, 4), 10, "business") == date(2026, 12, 18)
    assert add_days(date(2026, 12, 4), 30, "calendar") == date(2027, 1, 3)


def test_a_documented_window_is_quoted_as_a_range_with_its_source() -> None:
    stripe = expected_arrival("stripe", FRIDAY)
    assert (stripe.from_days, stripe.to_days, stripe.day_kind, stripe.method) == (5, 10, "business", "card")
    assert (stripe.earliest_date, stripe.latest_date) == (date(2026, 12, 11), date(2026, 12, 18))
    assert stripe.source == "https://support.stripe.com/questions/how-long-refunds-take-to-process"
    assert stripe.in_words() == "usually 5-10 business days after the refund, depending on your bank"
    assert "not a date Stripe promised" in stripe.basis
    paypal = expected_arrival("paypal", FRIDAY)
    assert paypal.in_words() == "usually within 30 days of the refund, depending on your bank"
    assert paypal.latest_date == date(2027, 1, 3)
    # per method where the platform documents them apart (Mollie: card vs bank transfer)
    assert expected_arrival("mollie", FRIDAY, method="bank").to_days == 4
    assert expected_arrival("mollie", FRIDAY, method="card").to_days == 14


def test_a_platform_without_a_documented_window_gets_the_merchants_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (expected_arrival("braintree", FRIDAY).from_days, expected_arrival("braintree", FRIDAY).to_days) == (5, 10)
    monkeypatch.setenv("ARRIVAL_DEFAULT_BUSINESS_DAYS", "3-7")
    settings.load.cache_clear()
    shopify = expected_arrival("shopify", FRIDAY)
    assert (shopify.from_days, shopify.to_days, shopify.source) == (3, 7, None)
    assert shopify.basis.startswith("the merchant's default")
    monkeypatch.setenv("ARRIVAL_DEFAULT_BUSINESS_DAYS", "9-2")
    settings.load.cache_clear()
    with pytest.raises(ConfigurationError):
        settings.load(ArrivalSettings)


def test_the_view_shows_the_window_from_when_the_money_moved(env: World) -> None:  # noqa: F811
    refund_id = issued_refund(env)
    view = refund_view(refund_id, repository=env.repository)
    moved = next(entry.at for entry in view.timeline if entry.to_status is RefundStatus.REFUNDED)
    assert view.expected_arrival is not None
    assert view.expected_arrival.earliest_date == add_days(moved.date(), 5, "business")
    assert view.expected_arrival.latest_date == add_days(moved.date(), 10, "business")
    assert view.acquirer_reference is None


def assign(world: World, refund_id: str) -> RefundEvent:
    """The provider now has the ARN and refundflow records it: its RefundAcquirerReference event."""
    truth = world.provider.only_refund()
    world.provider.refunds[truth.provider_refund_id] = truth.model_copy(update={"acquirer_reference": ARN})
    apply_provider_outcome(world.repository.get(refund_id), world.provider.only_refund(), recorder=world.recorder)
    return event_of(world, refund_id, ACQUIRER_REFERENCE)


def tell(env: World, event: RefundEvent, webhook: RecordingWebhook | None = None) -> str | None:  # noqa: F811
    return notify(
        event,
        Channel.CUSTOMER,
        repository=env.repository,
        mailer=env.mailer,
        ops_email=OPS,
        webhook=webhook,
        reply_desks=REPLY_DESKS,
    )


def test_the_first_email_says_the_window_and_the_late_arn_makes_one_follow_up(env: World) -> None:  # noqa: F811
    refund_id = issued_refund(env)
    tell(env, event_of(env, refund_id, "RefundIssued"))
    (first,) = env.mailer.sent
    assert first["data"]["arrival"] == (
        "It usually reaches your account 5-10 business days after the refund, depending on your bank."
    )
    assert first["data"]["trace"] == ""
    # WHEN the ARN comes later and its event reaches the customer queue twice
    follow_up = assign(env, refund_id)
    tell(env, follow_up)
    tell(env, follow_up)
    # THEN one follow-up e-mail, with the ARN and what it is for
    assert [mail["template"] for mail in env.mailer.sent] == ["refund-issued", "refund-acquirer-reference"]
    second = env.mailer.sent[1]
    assert (second["data"]["acquirer_reference"], second["data"]["meaning"]) == (ARN, ARN_MEANING)
    assert second["idempotency_key"] == f"{refund_id}:acquirer_reference"


def test_an_arn_known_when_the_money_moved_is_in_the_first_message(env: World) -> None:  # noqa: F811
    refund_id = issued_refund(env)
    refund = env.repository.get(refund_id).model_copy(update={"acquirer_reference": ARN})
    text = customer_message("issued", refund, None, arrival=expected_arrival("stripe", FRIDAY))
    assert f"the refund's reference is {ARN}: {ARN_MEANING}" in text
    assert "usually reaches your account 5-10 business days" in text
    reversal = customer_message("issued", refund, None, reversal=True)
    assert "the charge simply disappears" in reversal
    assert ARN not in reversal


def test_the_merchant_webhook_carries_the_window_then_the_arn(env: World) -> None:  # noqa: F811
    webhook = RecordingWebhook()
    refund_id = issued_refund(env)
    tell(env, event_of(env, refund_id, "RefundIssued"), webhook)
    tell(env, assign(env, refund_id), webhook)
    (issued_id, issued), (later_id, later) = webhook.taken
    assert (issued_id, later_id) == (f"msg_{refund_id}_issued", f"msg_{refund_id}_acquirer_reference")
    assert issued["data"]["expected_arrival"]["to_days"] == 10
    assert issued["data"]["acquirer_reference"] is None
    assert (later["type"], later["data"]["acquirer_reference"]) == ("refund.acquirer_reference", ARN)
    assert ARN in later["data"]["message"]


def test_the_desk_gets_the_arn_as_a_note_and_one_public_reply(env: World) -> None:  # noqa: F811
    desk = RecordingDesk()
    refund_id = issued_refund(env, system="zendesk", channel="zendesk")
    follow_up = assign(env, refund_id)
    for event in (event_of(env, refund_id, "RefundIssued"), follow_up, follow_up):
        write_back(event, platform="zendesk", tickets=desk, repository=env.repository, public_reply=True)
    replies = [update for _, update in desk.updates if update.kind == "public_reply"]
    notes = [update for _, update in desk.updates if update.kind == "internal_note"]
    assert [reply.marker for reply in replies] == [
        f"refundflow:reply:{refund_id}:issued",
        f"refundflow:reply:{refund_id}:acquirer_reference",
    ]
    assert "usually reaches your account 5-10 business days" in replies[0].text
    assert ARN in replies[1].text
    assert ARN_MEANING in replies[1].text
    assert any(ARN in note.text for note in notes if note.event == ACQUIRER_REFERENCE)


def test_no_window_is_quoted_once_the_provider_took_the_money_back(env: World) -> None:  # noqa: F811
    from refundflow.ports import ProviderRefundStatus
    from tests.support.fakes import provider_event

    # GIVEN a paid refund, quoted a window
    refund_id = issued_refund(env)
    assert refund_view(refund_id, repository=env.repository).expected_arrival is not None
    # WHEN the provider reverses it (the refund failed after it succeeded: the money is back with the merchant)
    truth = env.provider.settle(env.provider.only_refund().provider_refund_id, ProviderRefundStatus.FAILED)
    env.deliver(provider_event(truth, event_id="evt_reversed"))
    # THEN the view quotes no window for money that is not on its way
    view = refund_view(refund_id, repository=env.repository)
    assert view.attention_reason == "provider_reversed_refund"
    assert view.expected_arrival is None
