"""Every help desk of the catalog, end to end on the local stack: what an agent does in a ticket reaches
``POST /webhooks/<name>`` signed as the platform signs it, intake verifies it and hands it to the help desk's own
function, which reads the ticket and asks for (approves, withdraws) the refund; every refund event comes back to
the ticket through the bus, the FIFO queue and the same function. Parametrised over ``catalog.ticket_platforms()``:
a new help desk is covered here without an edit (its simulator is a TicketSandbox)."""

from __future__ import annotations

import json

import pytest

from local.scenarios import Scenario, ScenarioContext, ticket_refund_id, ticket_scenarios
from local.stack import DevStack
from refundflow import catalog
from tests.e2e.harness import E2EClient

HELP_DESKS = [entry.name for entry in catalog.ticket_platforms()]


def scenario(platform: str, name: str) -> Scenario:
    found = next((item for item in ticket_scenarios(platform) if item.name == name), None)
    if found is None:  # e.g. a shop's returns name no approver: no team lead approves in them
        pytest.skip(f"{platform} offers no scenario {name!r}")
    return found


@pytest.mark.parametrize("platform", HELP_DESKS)
def test_a_team_leads_approval_refunds_and_every_event_is_written_back_once_through_a_rate_limit(
    stack: DevStack, client: E2EClient, platform: str
) -> None:
    # GIVEN the help desk's sandbox, whose next write-back call meets its rate limit (a 429 with Retry-After)
    simulator = stack.simulators[platform]
    function = catalog.platform(platform).logical_id("ticket")
    before = stack.functions.invocations[function]
    simulator.inject_fault("write_back", "transient")
    # WHEN a team lead approves a partial refund in a ticket (the payment seeded at Stripe's sandbox)
    outcome = scenario(platform, "team lead approves in the ticket")(ScenarioContext(client, platform, simulator))
    # THEN the refund completes at Stripe, and the ticket shows every event from requested to completed, once, in
    # order, with the Stripe refund id and the final state label (the limited write was retried, not lost)
    assert outcome.refund_ids, outcome
    assert outcome.problems == [], (outcome.expected, outcome.problems)
    assert all(rule.times == 0 for rule in simulator.faults), "the rate limit was never met"
    # AND the help desk's own function did the reading and the writing
    assert stack.functions.invocations[function] > before


@pytest.mark.parametrize("platform", HELP_DESKS)
def test_a_forged_delivery_is_refused_401_and_nothing_moves(stack: DevStack, client: E2EClient, platform: str) -> None:
    # GIVEN an approved ticket (its trigger not fired: the forger writes the delivery)
    simulator = stack.simulators[platform]
    ticket_id = simulator.seed_ticket(
        {"payment_provider": "stripe", "payment_id": client.create_payment(5_000, "EUR"), "approver_role": "team_lead"}
    )
    body = json.dumps({"ticket_id": ticket_id, "id": ticket_id, "event": "refund_approved"}).encode()
    # WHEN it is posted unsigned, and signed the platform's way with a secret that is not the endpoint's
    forged = simulator.sign_webhook(body, "not-the-endpoints-secret-0123456789")
    unsigned: dict[str, str] = {}
    for headers in (unsigned, forged):
        answer = client.post_raw(f"/webhooks/{platform}", body, {"Content-Type": "application/json", **headers})
        # THEN it is refused as unauthenticated
        assert answer.status_code == 401, answer.text
    # AND no refund was asked for and nothing was written to the ticket
    assert client.refund_or_none(ticket_refund_id(platform, ticket_id)) is None
    assert simulator.ticket_view(ticket_id)["notes"] == []


@pytest.mark.parametrize("platform", HELP_DESKS)
def test_an_approval_withdrawn_before_money_moved_stops_the_refund(
    stack: DevStack, client: E2EClient, platform: str
) -> None:
    simulator = stack.simulators[platform]
    # GIVEN a ticket asking for more than automatic approval allows (the refund waits for a person)
    # WHEN the agent withdraws it in the ticket
    outcome = scenario(platform, "approval withdrawn before money moved")(ScenarioContext(client, platform, simulator))
    # THEN the refund is REJECTED approval_withdrawn, nothing was refunded at Stripe, and the ticket says so
    assert outcome.refund_ids, outcome
    assert outcome.problems == [], (outcome.expected, outcome.problems)


def test_the_acquirer_reference_reaches_the_ticket_when_the_network_assigns_it(
    stack: DevStack, client: E2EClient
) -> None:
    from local.scenarios import wait_for_notes, wait_until_stored

    platform = HELP_DESKS[0]  # the write-back is the kit's; each desk's own writing is its conformance suite's
    simulator = stack.simulators[platform]
    context = ScenarioContext(client, platform, simulator)
    # GIVEN a refund a team lead approved in a ticket, paid at Stripe and completed
    payment_id = client.create_payment(8_000, "EUR")
    ticket_id = simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": payment_id,
            "amount": "30.00",
            "currency": "EUR",
            "customer_email": "arn.e2e@example.com",
            "approver_role": "team_lead",
        }
    )
    simulator.agent_action(ticket_id, "approve")
    refund_id = ticket_refund_id(platform, ticket_id)
    wait_until_stored(context, refund_id)
    refund = client.wait_for(refund_id, {"COMPLETED", "FAILED", "REJECTED", "NEEDS_ATTENTION"}, timeout=60)
    assert refund["status"] == "COMPLETED", refund
    assert refund["acquirer_reference"] is None
    # WHEN the card network assigns the refund its ARN days later (Stripe's refund.updated)
    stripe = stack.simulators["stripe"].assign_acquirer_reference(refund["provider_refund_id"])
    arn = stripe["destination_details"]["card"]["reference"]
    # THEN the ticket gets a note naming it, the refund shows it, its status stays, and it is recorded once
    view = wait_for_notes(context, ticket_id, lambda notes: any(arn in note for note in notes))
    assert [note for note in view["notes"] if arn in note] != [], view["notes"]
    refund = client.refund(refund_id)
    assert (refund["status"], refund["acquirer_reference"]) == ("COMPLETED", arn)
    entries = [entry for entry in refund["timeline"] if entry["type"] == "RefundAcquirerReference"]
    assert len(entries) == 1
