"""Freshdesk through the ticket kit's domain, with the real verifier and connector against the Freshdesk simulator
and the refunds table on moto: the agent's action delivered (shared secret), the ticket read again, the refund
accepted once whatever the redeliveries, withdrawn before money moved, and every refund event written back to the
ticket once (status field and private note), a lost answer included."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from importlib import resources

import pytest
import yaml

from local.simulators.freshdesk import DEFAULT_API_KEY, FreshdeskSimulator
from refundflow.connectors.http import HttpClient
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.tickets import (
    APPROVAL_WITHDRAWN,
    LABELS,
    TicketOutcome,
    apply_ticket_news,
    load_mapping,
    write_back,
)
from refundflow.domain.validation import validate_refund
from refundflow.errors import OutcomeUnknownError
from refundflow.events import RefundEvent
from refundflow.platforms.freshdesk.connector import FreshdeskTickets
from refundflow.platforms.freshdesk.inbound import FreshdeskInbound
from refundflow.policy import load_default_policy
from refundflow.ports import TicketNews
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import TIMING, World, world
from tests.support.servers import DeliveryRecorder, serve_wsgi

MAPPING = load_mapping(
    yaml.safe_load(resources.files("refundflow.platforms.freshdesk").joinpath("mapping.yaml").read_text()),
    source="freshdesk default",
)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FreshdeskSimulator, str, DeliveryRecorder]]:
    simulator = FreshdeskSimulator()
    recorder = DeliveryRecorder()
    with serve_wsgi(simulator) as url, serve_wsgi(recorder) as endpoint:
        simulator.send_webhooks_to(endpoint)
        yield simulator, url, recorder


@pytest.fixture
def simulator(served: tuple[FreshdeskSimulator, str, DeliveryRecorder]) -> FreshdeskSimulator:
    served[0].reset_state()
    served[0].faults.clear()
    served[2].clear()
    return served[0]


@pytest.fixture
def tickets(served: tuple[FreshdeskSimulator, str, DeliveryRecorder]) -> FreshdeskTickets:
    credentials = base64.b64encode(f"{DEFAULT_API_KEY}:X".encode()).decode()
    http = HttpClient(
        platform="freshdesk",
        base_url=served[1],
        default_headers={"Authorization": f"Basic {credentials}"},
        timeout=(5.0, 30.0),
    )
    return FreshdeskTickets(http)


@pytest.fixture
def env() -> Iterator[World]:
    with world() as env:
        env.provider.add_payment(PAYMENT, eur(10_000))
        yield env


def act(served: tuple[FreshdeskSimulator, str, DeliveryRecorder], ticket_id: str, intent: str) -> TicketNews:
    """The agent's action in Freshdesk, and the delivery it triggers as intake verifies it."""
    simulator, _, recorder = served
    before = len(recorder.deliveries)
    simulator.agent_action(ticket_id, intent)
    recorder.wait_until(lambda deliveries: len(deliveries) > before)
    headers, raw = recorder.deliveries[-1]
    [news] = FreshdeskInbound().verify(headers, raw, simulator.local_secrets()["verification"]).tickets
    return news


def apply(env: World, tickets: FreshdeskTickets, news: TicketNews) -> TicketOutcome:
    return apply_ticket_news(
        news,
        tickets=tickets,
        mapping=MAPPING,
        recorder=env.recorder,
        starter=env.starter,
        callbacks=env.callbacks,
        policy=load_default_policy(),
        timing=TIMING,
    )


def seed(simulator: FreshdeskSimulator) -> str:
    return simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": PAYMENT,
            "amount": "25.00",
            "currency": "EUR",
            "approver_role": "team_lead",
        }
    )


def ready_to_pay(env: World, refund_id: str) -> None:
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)


def events_of(env: World, refund_id: str) -> list[RefundEvent]:
    return [event for event in env.publisher.events if event.refund_id == refund_id]


def test_an_approval_in_freshdesk_becomes_one_refund_whatever_the_redeliveries(
    served: tuple[FreshdeskSimulator, str, DeliveryRecorder],
    simulator: FreshdeskSimulator,
    tickets: FreshdeskTickets,
    env: World,
) -> None:
    # GIVEN a ticket the agent approves in Freshdesk
    ticket_id = seed(simulator)
    news = act(served, ticket_id, "approve")
    # WHEN its delivery is applied, and applied again (Freshdesk retries)
    first = apply(env, tickets, news)
    again = apply(env, tickets, news)
    # THEN one refund of 25.00 EUR from that ticket, its workflow started once, the approver's claim recorded
    assert (first.outcome, again.outcome, again.duplicate) == ("accepted", "accepted", True)
    assert first.refund_id == again.refund_id
    assert first.refund_id is not None
    refund = env.repository.get(first.refund_id)
    assert (refund.source_platform, refund.source.ticket_id, refund.requested_amount) == (
        "freshdesk",
        ticket_id,
        eur(2_500),
    )
    assert refund.approved_by is not None
    assert (refund.approved_by.id, refund.approved_by.role) == ("48000000101", "team_lead")
    assert len(env.starter.executions) == 1


def test_a_withdrawal_before_money_moved_stops_the_refund(
    served: tuple[FreshdeskSimulator, str, DeliveryRecorder],
    simulator: FreshdeskSimulator,
    tickets: FreshdeskTickets,
    env: World,
) -> None:
    ticket_id = seed(simulator)
    refund_id = str(apply(env, tickets, act(served, ticket_id, "approve")).refund_id)
    ready_to_pay(env, refund_id)
    # WHEN the agent sets the Refund action to Cancelled
    assert apply(env, tickets, act(served, ticket_id, "withdraw")).outcome == "cancelled"
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    # THEN the payment step rejects it before the provider is called
    refund = env.repository.get(refund_id)
    assert refund.status is RefundStatus.REJECTED
    assert refund.failure is not None
    assert refund.failure.code == APPROVAL_WITHDRAWN
    assert env.provider.calls_to("create_refund") == []


def test_every_refund_event_reaches_the_ticket_once_even_after_a_lost_answer(
    served: tuple[FreshdeskSimulator, str, DeliveryRecorder],
    simulator: FreshdeskSimulator,
    tickets: FreshdeskTickets,
    env: World,
) -> None:
    ticket_id = seed(simulator)
    refund_id = str(apply(env, tickets, act(served, ticket_id, "approve")).refund_id)
    ready_to_pay(env, refund_id)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    events = events_of(env, refund_id)
    # GIVEN the first note's answer is lost after Freshdesk added it
    simulator.inject_fault("write_back", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        write_back(events[0], platform="freshdesk", tickets=tickets, repository=env.repository)
    # WHEN the queue delivers every event, twice
    for event in events + events:
        write_back(event, platform="freshdesk", tickets=tickets, repository=env.repository)
    # THEN each event is one private note on the ticket, in order, and the field shows the refund's state now
    view = simulator.ticket_view(ticket_id)
    markers = [note.rsplit("[", 1)[1].rstrip("]") for note in view["notes"]]
    assert markers == [f"refundflow:{event.event_id}" for event in events]
    assert view["public"] == []
    assert view["labels"] == [LABELS[env.repository.get(refund_id).status]]
    # AND none of those writes fired the automation rule again (only the agent's approval was delivered)
    simulator.webhooks.wait_idle(timeout=10)
    assert len(served[2].deliveries) == 1
