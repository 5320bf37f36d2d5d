"""Every books platform of the catalog, end to end on the local stack through the kit: its simulator built and
wired by the stack from the catalog, its function reached by the computed name, exactly one credit document in its
books. The scenarios are the platform's own DEMO_SCENARIOS when its simulator module has them, else the usual ones
(local/scenarios.py): a new books platform is covered here without an edit."""

from __future__ import annotations

import importlib

import pytest

from local.scenarios import Scenario, ScenarioContext, books_scenarios
from local.stack import DevStack
from refundflow import catalog
from tests.e2e.harness import E2EClient


def books_platform_scenarios() -> list[tuple[str, Scenario]]:
    found = []
    for entry in catalog.books_platforms():
        assert entry.simulator is not None, entry.name
        module = importlib.import_module(entry.simulator.partition(":")[0])
        scenarios = getattr(module, "DEMO_SCENARIOS", None) or books_scenarios(entry.name)
        found += [(entry.name, scenario) for scenario in scenarios]
    return found


@pytest.mark.parametrize(
    ("platform", "scenario"),
    books_platform_scenarios(),
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_each_books_platform_credits_the_invoice_end_to_end_on_the_kit(
    stack: DevStack, client: E2EClient, platform: str, scenario: Scenario
) -> None:
    # GIVEN the books platform's sandbox as the local stack built it from the catalog (money moves at Stripe's)
    context = ScenarioContext(client, platform, stack.simulators[platform])
    # WHEN the scenario runs through the API, the workflow and the books platform's own function
    outcome = scenario(context)
    # THEN the refund completes with exactly one credit document in those books naming it
    assert outcome.refund_ids, outcome
    assert outcome.problems == [], (outcome.expected, outcome.problems)
    assert stack.functions.invocations[catalog.platform(platform).logical_id("books")] > 0
