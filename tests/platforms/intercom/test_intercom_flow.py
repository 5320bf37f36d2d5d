"""The ticket kit's domain with the real Intercom connector against the simulator: a tagged conversation becomes a
refund, a withdrawn approval stops it, and every refund event reaches the conversation once, as a note and the
status attribute, even when an answer is lost or Intercom rate-limits."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import yaml

from local.simulators.base import FaultRule
from local.simulators.intercom import IntercomSimulator
from refundflow.domain.payments import look_up_payment, reserve_amount
from refundflow.domain.tickets import TicketOutcome, apply_ticket_news, load_mapping, write_back
from refundflow.domain.validation import validate_refund
from refundflow.errors import OutcomeUnknownError, TransientError
from refundflow.policy import load_default_policy
from refundflow.ports import TicketNews
from refundflow.status import RefundStatus
from tests.platforms.intercom.conftest import connector_for
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import TIMING, World, world

MAPPING = load_mapping(
    yaml.safe_load(resources.files("refundflow.platforms.intercom").joinpath("mapping.yaml").read_text()),
    source="intercom default",
)
REQUEST = {
    "payment_provider": "stripe",
    "payment_id": PAYMENT,
    "reason": "damaged",
    "amount": "25.00",
    "currency": "EUR",
    "customer_email": "ada@example.com",
    "approver_role": "team_lead",
}


@pytest.fixture
def env() -> Iterator[World]:
    with world() as env:
        env.provider.add_payment(PAYMENT, eur(10_000))
        yield env


@pytest.fixture
def intercom_url(served: tuple[IntercomSimulator, str], simulator: IntercomSimulator) -> str:
    return served[1]


def deliver(env: World, url: str, conversation_id: str, notification_id: str) -> TicketOutcome:
    return apply_ticket_news(
        TicketNews(platform="intercom", event_id=notification_id, ticket_id=conversation_id, payload={}),
        tickets=connector_for(url),
        mapping=MAPPING,
        recorder=env.recorder,
        starter=env.starter,
        callbacks=env.callbacks,
        policy=load_default_policy(),
        timing=TIMING,
    )


def test_a_conversation_tagged_refund_approved_becomes_one_refund_whatever_the_redeliveries(
    env: World, simulator: IntercomSimulator, intercom_url: str
) -> None:
    # GIVEN a team lead tagged the conversation refund_approved
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(conversation_id, "approve")
    # WHEN its notification comes, and comes again
    first = deliver(env, intercom_url, conversation_id, "notif_1")
    again = deliver(env, intercom_url, conversation_id, "notif_2")
    # THEN one refund of 25.00 EUR, from that conversation, with the team lead's claim
    assert (first.outcome, again.outcome, again.duplicate) == ("accepted", "accepted", True)
    assert first.refund_id == again.refund_id
    refund = env.repository.get(str(first.refund_id))
    assert (refund.source_platform, refund.source.ticket_id) == ("intercom", conversation_id)
    assert refund.requested_amount == eur(2_500)
    assert refund.approved_by is not None
    assert (refund.approved_by.id, refund.approved_by.role) == ("991267002", "team_lead")
    assert len(env.starter.executions) == 1


def test_a_withdrawn_approval_before_money_moved_cancels(
    env: World, simulator: IntercomSimulator, intercom_url: str
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(conversation_id, "approve")
    refund_id = str(deliver(env, intercom_url, conversation_id, "notif_1").refund_id)
    simulator.agent_action(conversation_id, "withdraw")
    outcome = deliver(env, intercom_url, conversation_id, "notif_2")
    assert (outcome.outcome, outcome.refund_id) == ("cancelled", refund_id)


def events_for(env: World, simulator: IntercomSimulator, url: str) -> tuple[str, list[Any]]:
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(conversation_id, "approve")
    refund_id = str(deliver(env, url, conversation_id, "notif_1").refund_id)
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    return conversation_id, [event for event in env.publisher.events if event.refund_id == refund_id]


def test_every_event_is_written_once_even_when_intercom_answered_too_late(
    env: World, simulator: IntercomSimulator, intercom_url: str
) -> None:
    conversation_id, events = events_for(env, simulator, intercom_url)
    intercom = connector_for(intercom_url)
    # GIVEN the first note is written but its answer comes after the client gave up
    simulator.add_fault(FaultRule(method="POST", path=r"/reply$", status=None, when="after", lose_answer=True))
    with pytest.raises(OutcomeUnknownError):
        write_back(events[0], platform="intercom", tickets=intercom, repository=env.repository)
    # WHEN the queue redelivers everything, twice
    for event in events + events:
        write_back(event, platform="intercom", tickets=intercom, repository=env.repository)
    # THEN each event is one note on the conversation, and the attribute shows the refund's state now
    view = simulator.ticket_view(conversation_id)
    markers = sorted(f"refundflow:{event.event_id}" for event in events)
    assert sorted(marker for note in view["notes"] for marker in markers if f"[{marker}]" in note) == markers
    assert len(view["notes"]) == len(events)
    assert view["labels"] == ["approved"]
    assert env.repository.get(events[0].refund_id).status is RefundStatus.APPROVED


def test_a_rate_limited_write_back_waits_for_intercoms_reset_then_writes(
    env: World, simulator: IntercomSimulator, intercom_url: str
) -> None:
    conversation_id, events = events_for(env, simulator, intercom_url)
    intercom = connector_for(intercom_url)
    simulator.inject_fault("write_back", "transient")
    with pytest.raises(TransientError) as limited:
        write_back(events[0], platform="intercom", tickets=intercom, repository=env.repository)
    assert limited.value.retry_after_seconds is not None
    assert 1.0 <= limited.value.retry_after_seconds <= 10.0
    assert simulator.ticket_view(conversation_id)["notes"] == []
    assert write_back(events[0], platform="intercom", tickets=intercom, repository=env.repository)
    assert len(simulator.ticket_view(conversation_id)["notes"]) == 1
