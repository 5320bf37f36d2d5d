"""The ticket kit's domain: a help desk's ticket asks for, approves or withdraws a refund; every refund event goes
back to that ticket once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.tickets import APPROVAL_WITHDRAWN, apply_ticket_news, load_mapping, write_back
from refundflow.domain.validation import validate_refund
from refundflow.errors import TransientError
from refundflow.events import RefundEvent
from refundflow.policy import load_default_policy
from refundflow.ports import TicketNews, TicketPlatform, TicketUpdate
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import TIMING, World, world

S = RefundStatus
MAPPING = load_mapping(
    {
        "when": {
            "cancelled": "contains(ticket.tags, 'refund_cancelled')",
            "approved": "contains(ticket.tags, 'refund_approved')",
            "requested": "contains(ticket.tags, 'refund_requested')",
        },
        "fields": {
            "payment.provider": "ticket.provider",
            "payment.payment_id": "ticket.payment",
            "reason": "'damaged'",
            "customer.email": "ticket.email",
        },
        "amount": {"value": "ticket.amount", "currency": "ticket.currency"},
        "approver": {"id": "ticket.assignee", "group": "ticket.group"},
        "roles": {"leads": "team_lead"},
    },
    source="tests",
)


class FakeTickets(TicketPlatform):
    name = "zendesk"

    def __init__(self) -> None:
        self.tickets: dict[str, dict[str, Any]] = {}
        self.updates: list[tuple[str, TicketUpdate]] = []
        self.lose_next_answer = False
        self.rate_limited = 0

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        return dict(self.tickets[ticket_id])

    def has_update(self, ticket_id: str, marker: str) -> bool:
        return any(written == ticket_id and update.marker == marker for written, update in self.updates)

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        if self.rate_limited:
            self.rate_limited -= 1
            raise TransientError("429", code="rate_limited", retry_after_seconds=7)
        self.updates.append((ticket_id, update))
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise TransientError("the answer was lost")


@pytest.fixture
def env() -> Iterator[World]:
    with world() as env:
        env.provider.add_payment(PAYMENT, eur(10_000))
        yield env


@pytest.fixture
def desk() -> FakeTickets:
    desk = FakeTickets()
    desk.tickets["4711"] = {
        "tags": ["refund_approved"],
        "provider": "stripe",
        "payment": PAYMENT,
        "email": "ada@example.com",
        "amount": "25.00",
        "currency": "EUR",
        "assignee": "301",
        "group": "leads",
    }
    return desk


def deliver(env: World, desk: FakeTickets, event_id: str = "inv-1", **policy_sources: Any) -> Any:
    policy = load_default_policy()
    return apply_ticket_news(
        TicketNews(platform="zendesk", event_id=event_id, ticket_id="4711", payload={"ticket_id": "4711"}),
        tickets=desk,
        mapping=MAPPING,
        recorder=env.recorder,
        starter=env.starter,
        callbacks=env.callbacks,
        policy=policy,
        timing=TIMING,
    )


def test_an_approved_ticket_becomes_one_refund_of_that_desk_whatever_the_redeliveries(
    env: World, desk: FakeTickets
) -> None:
    first = deliver(env, desk, "inv-1")
    again = deliver(env, desk, "inv-2")
    assert first.outcome == again.outcome == "accepted"
    assert first.refund_id == again.refund_id
    assert again.duplicate
    refund = env.repository.get(first.refund_id)
    assert (refund.source_platform, refund.source.ticket_id, refund.amount or refund.requested_amount) == (
        "zendesk",
        "4711",
        eur(2_500),
    )
    assert refund.approved_by is not None
    assert refund.approved_by.role == "team_lead"
    assert len(env.starter.executions) == 1


def test_a_ticket_without_refund_tags_stores_nothing(env: World, desk: FakeTickets) -> None:
    desk.tickets["4711"]["tags"] = ["question"]
    assert deliver(env, desk).outcome == "ignored"
    assert env.starter.executions == {}


def ready_to_pay(env: World, desk: FakeTickets) -> str:
    refund_id = str(deliver(env, desk).refund_id)
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    return refund_id


def test_an_approval_withdrawn_before_money_moved_stops_the_refund_at_the_last_gate(
    env: World, desk: FakeTickets
) -> None:
    refund_id = ready_to_pay(env, desk)
    desk.tickets["4711"]["tags"] = ["refund_cancelled"]
    assert deliver(env, desk, "inv-2").outcome == "cancelled"

    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)

    refund = env.repository.get(refund_id)
    assert refund.status is S.REJECTED
    assert refund.failure is not None
    assert refund.failure.code == APPROVAL_WITHDRAWN
    assert env.provider.calls_to("create_refund") == []
    assert env.balance(PAYMENT)["reserved"] == 0


def test_a_withdrawal_after_money_moved_is_too_late_and_changes_nothing(env: World, desk: FakeTickets) -> None:
    refund_id = ready_to_pay(env, desk)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    status = env.repository.get(refund_id).status
    desk.tickets["4711"]["tags"] = ["refund_cancelled"]
    assert deliver(env, desk, "inv-2").outcome == "too_late"
    assert env.repository.get(refund_id).status is status


def events_of(env: World, refund_id: str) -> list[RefundEvent]:
    return [event for event in env.publisher.events if event.refund_id == refund_id]


def test_every_event_goes_to_its_ticket_once_and_a_lost_answer_is_not_written_twice(
    env: World, desk: FakeTickets
) -> None:
    refund_id = ready_to_pay(env, desk)
    events = events_of(env, refund_id)
    desk.lose_next_answer = True
    with pytest.raises(TransientError):
        write_back(events[0], platform="zendesk", tickets=desk, repository=env.repository)
    for event in events + events:  # the queue redelivers everything
        write_back(event, platform="zendesk", tickets=desk, repository=env.repository)
    markers = [update.marker for _, update in desk.updates]
    assert sorted(markers) == sorted({f"refundflow:{event.event_id}" for event in events})
    assert all(ticket == "4711" for ticket, _ in desk.updates)


def test_a_rate_limit_is_retried_with_the_platforms_wait(env: World, desk: FakeTickets) -> None:
    refund_id = ready_to_pay(env, desk)
    desk.rate_limited = 1
    with pytest.raises(TransientError) as limited:
        write_back(events_of(env, refund_id)[0], platform="zendesk", tickets=desk, repository=env.repository)
    assert limited.value.retry_after_seconds == 7
    assert write_back(events_of(env, refund_id)[0], platform="zendesk", tickets=desk, repository=env.repository)


def test_a_refund_from_another_channel_writes_to_no_ticket(env: World, desk: FakeTickets) -> None:
    from tests.support.fakes import refund_request_body

    refund_id = env.accept(refund_request_body(source={"system": "zendesk", "reference": "R-9", "ticket_id": "4711"}))
    for event in events_of(env, refund_id.refund.refund_id):
        assert not write_back(event, platform="zendesk", tickets=desk, repository=env.repository)
    assert desk.updates == []


def test_a_refused_ticket_is_told_why_once_naming_fields_never_their_values(env: World, desk: FakeTickets) -> None:
    from refundflow.domain.tickets import write_refusal
    from refundflow.errors import CardDataRefused

    # GIVEN a ticket whose order field holds a card number (the mapping refuses it, nothing is stored)
    desk.tickets["4711"]["email"] = "4111 1111 1111 1111"
    news = TicketNews(platform="zendesk", event_id="inv-card", ticket_id="4711", payload={"ticket_id": "4711"})
    with pytest.raises(CardDataRefused) as refused:
        deliver(env, desk, "inv-card")
    # WHEN the refusal is written to the ticket, and the same delivery comes again (and its answer was lost once)
    desk.lose_next_answer = True
    with pytest.raises(TransientError):
        write_refusal(news, refused.value, tickets=desk, repository=env.repository)
    assert write_refusal(news, refused.value, tickets=desk, repository=env.repository) is False  # found by marker
    assert write_refusal(news, refused.value, tickets=desk, repository=env.repository) is False
    # THEN the ticket has one note: why, which field, no digits of the card, and no refund state
    assert len(desk.updates) == 1
    ticket_id, update = desk.updates[0]
    assert ticket_id == "4711"
    assert update.label is None
    assert update.status is None
    assert update.refund_id is None
    assert update.text.startswith("Refund request not taken")
    assert "customer.email" in update.text
    assert "1111" not in update.text
    # AND another delivery of the ticket, refused again, is told again (the agent triggered it again)
    again = TicketNews(platform="zendesk", event_id="inv-card-2", ticket_id="4711", payload={"ticket_id": "4711"})
    assert write_refusal(again, refused.value, tickets=desk, repository=env.repository) is True
    assert len(desk.updates) == 2


def test_the_ticket_is_told_once_that_the_goods_are_back(env: World, desk: FakeTickets) -> None:
    from datetime import UTC, datetime

    from refundflow.domain.returns import record_platform_return_step
    from refundflow.models import ReturnStatus

    refund_id = str(deliver(env, desk).refund_id)

    def step(status: ReturnStatus, day: int, delivery: str) -> None:
        record_platform_return_step(
            refund_id,
            status,
            datetime(2026, 12, day, 9, tzinfo=UTC),
            source="sap",
            delivery_id=delivery,
            recorder=env.recorder,
        )

    # GIVEN the return in transit, received, received again at another moment, and received redelivered
    step(ReturnStatus.IN_TRANSIT, 2, "sap-1")
    step(ReturnStatus.RECEIVED, 4, "sap-2")
    step(ReturnStatus.RECEIVED, 5, "sap-3")
    step(ReturnStatus.RECEIVED, 4, "sap-4")
    returns = [event for event in events_of(env, refund_id) if event.detail_type == "ReturnUpdated"]
    assert len(returns) == 4
    # WHEN the queue delivers every ReturnUpdated event (twice)
    written = [write_back(event, platform="zendesk", tickets=desk, repository=env.repository) for event in returns * 2]
    # THEN one note says the goods are back; in_transit and the later "received" add nothing
    assert written.count(True) == 1
    notes = [update for _, update in desk.updates if update.event == "ReturnUpdated"]
    assert len(notes) == 1
    assert notes[0].marker == f"refundflow:{refund_id}#return-received"
    assert "Returned goods received" in notes[0].text
    assert "received at 2026-12-04T09:00:00" in notes[0].text
    assert "reported by sap" in notes[0].text
