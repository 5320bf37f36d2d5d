"""Salesforce's second trigger end to end: the org sends Outbound Messages (SOAP, the token in the endpoint URL)
instead of the Flow's callout; intake verifies them and the help desk's function does the rest, as for the callout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.scenarios import ScenarioContext, ticket_scenarios
from local.simulators.salesforce import SalesforceSimulator
from local.stack import DevStack
from tests.e2e.harness import E2EClient


@pytest.fixture
def outbound_org(stack: DevStack) -> Iterator[SalesforceSimulator]:
    simulator = stack.simulators["salesforce"]
    assert isinstance(simulator, SalesforceSimulator)
    simulator.use_trigger("outbound_message")
    try:
        yield simulator
    finally:
        simulator.use_trigger("callout")


def test_a_team_leads_approval_sent_as_an_outbound_message_refunds(
    outbound_org: SalesforceSimulator, client: E2EClient
) -> None:
    before = len(outbound_org.webhooks.deliveries)
    # GIVEN the org sending Outbound Messages; WHEN a team lead approves a partial refund in a case
    scenario = next(item for item in ticket_scenarios("salesforce") if item.name == "team lead approves in the ticket")
    outcome = scenario(ScenarioContext(client, "salesforce", outbound_org))
    # THEN the refund completes and the case shows every event, as with the callout
    assert outcome.refund_ids, outcome
    assert outcome.problems == [], (outcome.expected, outcome.problems)
    # AND what reached intake were Outbound Messages, each taken for acknowledged (the SOAP Ack) at once
    sent = outbound_org.webhooks.deliveries[before:]
    assert sent
    assert all(delivery.event_type == "outbound_message" for delivery in sent)
    assert all(delivery.delivered and delivery.attempts == 1 for delivery in sent)
    assert all("?token=" in delivery.url for delivery in sent)
