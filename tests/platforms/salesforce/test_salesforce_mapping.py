"""The default mapping.yaml applied to cases as the Salesforce simulator's REST API returns them."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import yaml

from local.simulators.salesforce import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, USER_FOR_ROLE, SalesforceSimulator
from refundflow.connectors.http import HttpClient
from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.errors import CardDataRefused, InvalidRequest
from refundflow.models import RefundRequestBody
from refundflow.platforms.salesforce.connector import SalesforceTickets, SalesforceTokenSource
from refundflow.ports import TicketNews
from tests.support.servers import serve_wsgi

MAPPING_TEXT = resources.files("refundflow.platforms.salesforce").joinpath("mapping.yaml").read_text()
MAPPING = load_mapping(yaml.safe_load(MAPPING_TEXT), source="salesforce default")


@pytest.fixture(scope="module")
def desk() -> Iterator[tuple[SalesforceSimulator, SalesforceTickets]]:
    simulator = SalesforceSimulator()
    with serve_wsgi(simulator) as url:
        http = HttpClient(platform="salesforce", base_url=url, timeout=(5.0, 30.0))
        tokens = SalesforceTokenSource(http, client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET)
        yield simulator, SalesforceTickets(http, tokens)


def case(
    desk: tuple[SalesforceSimulator, SalesforceTickets], intent: str | None = "approve", **request: Any
) -> tuple[str, dict[str, Any]]:
    """A case seeded in the org, the agent's action taken (no callout endpoint is set: nothing is sent), and the
    case read back through the API as the function reads it."""
    simulator, tickets = desk
    case_id = simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": "pi_3PqSalesforce000001",
            "reason": "damaged",
            "amount": "49.90",
            "currency": "EUR",
            "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace",
            "approver_role": "team_lead",
            **request,
        }
    )
    if intent is not None:
        simulator.agent_action(case_id, intent)
    return case_id, tickets.read_ticket(case_id)


def news(case_id: str) -> TicketNews:
    return TicketNews(platform="salesforce", event_id=f"{case_id}:x", ticket_id=case_id, payload={"caseId": case_id})


def test_an_approved_case_asks_for_its_refund_with_the_team_leads_claim(desk: Any) -> None:
    case_id, read = case(desk, "approve")
    intent, request = ticket_request(news(case_id), read, MAPPING)
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert request.amount is not None
    assert (request.amount.minor_units, request.amount.currency) == (4990, "EUR")
    assert (request.payment.provider.value, request.payment.payment_id) == ("stripe", "pi_3PqSalesforce000001")
    assert request.source.ticket_id == case_id
    assert request.approved_by is not None
    assert (request.approved_by.id, request.approved_by.role) == (USER_FOR_ROLE["team_lead"], "team_lead")
    assert (request.customer.email, request.customer.name) == ("ada@example.com", "Ada Lovelace")
    assert request.reason.value == "damaged"


def test_a_case_in_the_agents_queue_claims_the_agent_role(desk: Any) -> None:
    case_id, read = case(desk, "approve", approver_role="agent")
    _, request = ticket_request(news(case_id), read, MAPPING)
    assert request.approved_by is not None
    assert request.approved_by.role == "agent"


def test_a_case_in_a_queue_nobody_mapped_claims_no_role(desk: Any) -> None:
    case_id, read = case(desk, "approve", approver_role=None)
    _, request = ticket_request(news(case_id), read, MAPPING)
    assert read["OwnerId"] not in MAPPING.roles
    assert request.approved_by is None  # an approval that claims no role claims nothing


def test_a_case_that_only_asks_carries_no_approvers_claim(desk: Any) -> None:
    case_id, read = case(desk, "request")
    intent, request = ticket_request(news(case_id), read, MAPPING)
    assert intent is Intent.REQUESTED
    assert isinstance(request, RefundRequestBody)
    assert request.approved_by is None


def test_a_cancelled_action_withdraws_and_no_action_asks_nothing(desk: Any) -> None:
    case_id, read = case(desk, "withdraw")
    assert ticket_request(news(case_id), read, MAPPING)[0] is Intent.CANCELLED
    case_id, untouched = case(desk, None)
    assert ticket_request(news(case_id), untouched, MAPPING)[0] is None


def test_a_case_closed_while_only_asking_withdraws_and_a_closed_approval_stays_approved(desk: Any) -> None:
    case_id, asked = case(desk, "request")
    assert ticket_request(news(case_id), {**asked, "IsClosed": True}, MAPPING)[0] is Intent.CANCELLED
    case_id, approved = case(desk, "approve")
    assert ticket_request(news(case_id), {**approved, "IsClosed": True}, MAPPING)[0] is Intent.APPROVED


def test_no_amount_is_a_full_refund(desk: Any) -> None:
    case_id, read = case(desk, "approve", amount=None, currency=None)
    _, request = ticket_request(news(case_id), read, MAPPING)
    assert isinstance(request, RefundRequestBody)
    assert request.amount is None


def test_a_web_to_case_case_without_a_contact_uses_the_supplied_email(desk: Any) -> None:
    case_id, read = case(desk, "approve")
    web = {key: value for key, value in read.items() if key != "requester"}
    web.update({"ContactId": None, "SuppliedEmail": "grace@example.com", "SuppliedName": "Grace Hopper"})
    _, request = ticket_request(news(case_id), web, MAPPING)
    assert (request.customer.email, request.customer.name) == ("grace@example.com", "Grace Hopper")


def test_an_amount_that_is_not_a_decimal_is_refused(desk: Any) -> None:
    case_id, read = case(desk, "approve", amount="forty")
    with pytest.raises(InvalidRequest):
        ticket_request(news(case_id), read, MAPPING)


def test_a_card_number_in_a_mapped_field_is_refused(desk: Any) -> None:
    case_id, read = case(desk, "approve", order_id="4111 1111 1111 1111")
    with pytest.raises(CardDataRefused) as refused:
        ticket_request(news(case_id), read, MAPPING)
    assert "4111" not in str(refused.value)
