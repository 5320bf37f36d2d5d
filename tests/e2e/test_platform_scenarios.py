"""Every payment platform of the catalog, end to end on the local stack through the kit: its simulator built and
wired by the stack from the catalog, its function reached by the computed name, its money checked at the
sandbox. The scenarios are the platform's own DEMO_SCENARIOS when its simulator module has them, else the usual
full and partial refunds (local/scenarios.py): a new platform is covered here without an edit. The books
platforms' scenarios are test_books_scenarios.py's (a file of their own, so the suite's workers share the load)."""

from __future__ import annotations

import importlib

import pytest

from local.scenarios import Scenario, ScenarioContext, payment_scenarios, ticket_scenarios
from local.simulators.base import WebhookSender
from local.stack import DevStack
from refundflow import catalog
from tests.e2e.harness import E2EClient


def platform_scenarios() -> list[tuple[str, Scenario]]:
    found = []
    for entry in catalog.payment_platforms():
        assert entry.simulator is not None, entry.name
        module = importlib.import_module(entry.simulator.partition(":")[0])
        scenarios = getattr(module, "DEMO_SCENARIOS", None) or payment_scenarios(entry.name, unknown_outcome=None)
        # a platform that is also a help desk (WooCommerce): its help-desk scenarios run in test_help_desks.py
        help_desk = {scenario.name for scenario in ticket_scenarios(entry.name)} if entry.ticket is not None else set()
        found += [(entry.name, scenario) for scenario in scenarios if scenario.name not in help_desk]
    return found


@pytest.mark.parametrize(
    ("platform", "scenario"), platform_scenarios(), ids=lambda value: value if isinstance(value, str) else value.name
)
def test_each_payment_platform_refunds_end_to_end_on_the_kit(
    stack: DevStack, client: E2EClient, platform: str, scenario: Scenario
) -> None:
    # GIVEN the platform's sandbox as the local stack built it from the catalog
    simulator = stack.simulators[platform]
    context = ScenarioContext(client, platform, simulator)
    senders = [sender for sender in vars(simulator).values() if isinstance(sender, WebhookSender)]
    already = [len(sender.deliveries) for sender in senders]
    # WHEN the scenario runs through the API, the workflow and the platform's own function
    outcome = scenario(context)
    # THEN it ends where the scenario expects, with the money checked at the platform
    assert outcome.refund_ids, outcome
    assert outcome.problems == [], (outcome.expected, outcome.problems)
    assert stack.functions.invocations[catalog.platform(platform).logical_id("payment")] > 0
    # AND every webhook the platform sent meanwhile was taken by intake as the platform sends it (its content type,
    # its signature): none refused, so the outcome did not come from polling alone
    for sender, before in zip(senders, already, strict=True):
        assert sender.wait_idle(timeout=30)
        refused = [(d.event_type, d.last_status) for d in sender.deliveries[before:] if not d.delivered]
        assert refused == [], refused
