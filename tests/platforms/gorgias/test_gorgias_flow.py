"""Gorgias through the ticket kit's domain: an agent's tag in the simulator becomes the HTTP integration's call,
intake's verification, one refund, and every refund event back on the ticket as a state tag and an internal note,
once, whatever the redeliveries and a lost answer."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import yaml

from local.simulators.base import FaultRule
from refundflow.domain.payments import look_up_payment, reserve_amount
from refundflow.domain.tickets import TicketMapping, apply_ticket_news, load_mapping, write_back
from refundflow.domain.validation import validate_refund
from refundflow.errors import OutcomeUnknownError
from refundflow.platforms.gorgias.inbound import GorgiasInbound
from refundflow.policy import load_default_policy
from refundflow.ports import TicketNews
from tests.platforms.gorgias.conftest import Served
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import TIMING, World, world


@pytest.fixture
def env() -> Iterator[World]:
    with world() as env:
        env.provider.add_payment(PAYMENT, eur(10_000))
        yield env


@pytest.fixture(scope="module")
def mapping() -> TicketMapping:
    text = resources.files("refundflow.platforms.gorgias").joinpath("mapping.yaml").read_text()
    return load_mapping(yaml.safe_load(text), source="gorgias default")


def delivered(served: Served, count: int) -> list[TicketNews]:
    """The integration's calls so far, verified by intake as Gorgias sent them."""
    served.receiver.wait_until(lambda deliveries: len(deliveries) >= count)
    secret = served.simulator.local_secrets()["verification"]
    return [
        news
        for headers, raw in served.receiver.deliveries
        for news in GorgiasInbound().verify(headers, raw, secret).tickets
    ]


def apply(env: World, served: Served, news: TicketNews, mapping: TicketMapping) -> Any:
    return apply_ticket_news(
        news,
        tickets=served.connector(),
        mapping=mapping,
        recorder=env.recorder,
        starter=env.starter,
        callbacks=env.callbacks,
        policy=load_default_policy(),
        timing=TIMING,
    )


def test_an_agents_tag_becomes_one_refund_whatever_gorgias_retries(
    env: World, served: Served, mapping: TicketMapping
) -> None:
    # GIVEN a ticket about an order paid through the merchant's Stripe, with a 25.00 EUR refund amount
    ticket_id = served.simulator.seed_ticket(
        {"payment_provider": "stripe", "payment_id": PAYMENT, "amount": "25.00", "currency": "EUR"}
    )
    # WHEN an agent tags it refund and the integration's call is applied twice (Gorgias retried it)
    served.simulator.agent_action(ticket_id, "request")
    [news] = delivered(served, 1)
    first, again = apply(env, served, news, mapping), apply(env, served, news, mapping)
    # THEN there is one refund of that charge, from that ticket
    assert first.outcome == "accepted"
    assert first.refund_id == again.refund_id
    assert again.duplicate
    refund = env.repository.get(first.refund_id)
    assert refund.payment.payment_id == PAYMENT
    assert refund.requested_amount == eur(2_500)
    assert (refund.source_platform, refund.source.ticket_id) == ("gorgias", ticket_id)
    assert len(env.starter.executions) == 1


def test_every_event_reaches_the_ticket_once_even_after_a_lost_answer(
    env: World, served: Served, mapping: TicketMapping
) -> None:
    # GIVEN a refund from a Gorgias ticket, validated, looked up, approved and reserved
    ticket_id = served.simulator.seed_ticket({"payment_provider": "stripe", "payment_id": PAYMENT, "amount": "25.00"})
    served.simulator.agent_action(ticket_id, "request")
    refund_id = str(apply(env, served, delivered(served, 1)[0], mapping).refund_id)
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    events = [event for event in env.publisher.events if event.refund_id == refund_id]
    # WHEN the first note is stored but its answer is lost, and the queue then redelivers every event twice
    served.simulator.add_fault(
        FaultRule(method="POST", path=r"/messages$", status=None, when="after", lose_answer=True)
    )
    with pytest.raises(OutcomeUnknownError):
        write_back(events[0], platform="gorgias", tickets=served.connector(), repository=env.repository)
    for event in events + events:
        write_back(event, platform="gorgias", tickets=served.connector(), repository=env.repository)
    # THEN the ticket holds one internal note per event and the refund's current state tag only
    notes = served.simulator.ticket_view(ticket_id)["notes"]
    assert sorted(note.rsplit("[", 1)[1] for note in notes) == sorted(f"refundflow:{e.event_id}]" for e in events)
    assert served.simulator.ticket_view(ticket_id)["labels"] == ["refund_processing"]


def test_the_calls_our_own_writes_cause_name_the_state_already_applied(
    env: World, served: Served, mapping: TicketMapping
) -> None:
    # GIVEN a refund asked for in a ticket, its call applied (intake marks that event id seen)
    ticket_id = served.simulator.seed_ticket({"payment_provider": "stripe", "payment_id": PAYMENT, "amount": "25.00"})
    served.simulator.agent_action(ticket_id, "request")
    [applied] = delivered(served, 1)
    refund_id = str(apply(env, served, applied, mapping).refund_id)
    # WHEN Gorgias calls the integration for every update our write-backs make (state tags and notes)
    served.simulator.notify_api_updates = True
    validate_refund(refund_id, recorder=env.recorder)
    for event in [event for event in env.publisher.events if event.refund_id == refund_id]:
        write_back(event, platform="gorgias", tickets=served.connector(), repository=env.repository)
    assert served.simulator.webhooks.wait_idle()
    # THEN every one of those calls carries the applied event's id: intake answers them without a read
    caused = delivered(served, 2)[1:]
    assert len(caused) >= 2
    assert {news.event_id for news in caused} == {applied.event_id}
