"""The default mapping.yaml over cases read through the Web API from the simulator: an approval counts once the case
is resolved with it, the owning team names the role, the delivery's claims are never read."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import yaml

from local.simulators.dynamics_cs import CANCELLED_STATE, DynamicsCaseSimulator
from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.models import RefundRequestBody
from refundflow.money import Money
from refundflow.platforms.dynamics_cs.connector import DynamicsCases
from refundflow.ports import TicketNews
from tests.platforms.dynamics_cs.test_dynamics_cs_conformance import connector
from tests.support.servers import serve_wsgi

MAPPING_TEXT = resources.files("refundflow.platforms.dynamics_cs").joinpath("mapping.yaml").read_text()
MAPPING = load_mapping(yaml.safe_load(MAPPING_TEXT), source="dynamics_cs default")


@pytest.fixture(scope="module")
def desk() -> Iterator[tuple[DynamicsCaseSimulator, DynamicsCases]]:
    simulator = DynamicsCaseSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, connector(simulator, url)


def case(desk: tuple[DynamicsCaseSimulator, DynamicsCases], *intents: str, **request: Any) -> tuple[str, Any]:
    """A case seeded, the agent's actions taken (no flow URL is configured: nothing is sent), read back."""
    simulator, cases = desk
    case_id = simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": "pi_3PqDynamicsCs000001",
            "amount": "49.90",
            "currency": "EUR",
            "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace",
            "approver_role": "team_lead",
            **request,
        }
    )
    for intent in intents:
        simulator.agent_action(case_id, intent)
    return case_id, cases.read_ticket(case_id)


def asks(case_id: str, read: Any, payload: dict[str, Any] | None = None) -> tuple[Intent | None, Any]:
    news = TicketNews(platform="dynamics_cs", event_id=f"{case_id}:x", ticket_id=case_id, payload=payload or {})
    return ticket_request(news, read, MAPPING)


def test_a_case_resolved_with_its_refund_approved_asks_with_the_owning_teams_role(desk: Any) -> None:
    case_id, read = case(desk, "approve")
    intent, request = asks(case_id, read)
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert request.amount == Money.of(4990, "EUR")
    assert request.customer.email == "ada@example.com"
    assert request.approved_by is not None
    assert (request.approved_by.role, request.approved_by.id) == ("team_lead", read["_modifiedby_value"])


def test_an_approval_on_a_case_still_open_asks_nothing_yet(desk: Any) -> None:
    simulator, _ = desk
    case_id, _ = case(desk)
    simulator.cases[case_id]["new_refundaction"] = 100000001  # Approved, but the case is not resolved
    intent, request = asks(case_id, desk[1].read_ticket(case_id))
    assert (intent, request) == (None, None)


def test_a_requested_refund_carries_no_approvers_claim(desk: Any) -> None:
    case_id, read = case(desk, "request", amount=None)
    intent, request = asks(case_id, read)
    assert intent is Intent.REQUESTED
    assert request.approved_by is None
    assert request.amount is None


def test_a_case_cancelled_while_only_asking_withdraws(desk: Any) -> None:
    simulator, cases = desk
    case_id, _ = case(desk, "request")
    simulator.cases[case_id]["statecode"] = CANCELLED_STATE
    intent, _ = asks(case_id, cases.read_ticket(case_id))
    assert intent is Intent.CANCELLED


def test_what_the_delivery_claims_is_never_read(desk: Any) -> None:
    case_id, read = case(desk, "request", approver_role="agent")
    claims = {"incidentid": case_id, "statecode": 1, "new_refundaction": 100000001, "approved_by": "team_lead"}
    intent, request = asks(case_id, read, claims)
    assert intent is Intent.REQUESTED
    assert request.approved_by is None
