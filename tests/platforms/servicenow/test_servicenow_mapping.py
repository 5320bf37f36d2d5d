"""The default mapping.yaml applied to records as the ServiceNow simulator's Table API returns them (incidents and
customer service cases)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import yaml

from local.simulators.servicenow import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    GROUPS,
    SERVICE_DESK_GROUP,
    ServiceNowSimulator,
)
from refundflow.connectors.http import HttpClient
from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.errors import CardDataRefused, InvalidRequest
from refundflow.models import RefundRequestBody
from refundflow.money import Money
from refundflow.platforms.servicenow.connector import ServiceNowTickets, ServiceNowTokens
from refundflow.ports import TicketNews
from tests.support.servers import serve_wsgi

MAPPING_TEXT = resources.files("refundflow.platforms.servicenow").joinpath("mapping.yaml").read_text()
MAPPING = load_mapping(yaml.safe_load(MAPPING_TEXT), source="servicenow default")
Desk = tuple[ServiceNowSimulator, str]


@pytest.fixture(scope="module")
def desk() -> Iterator[Desk]:
    simulator = ServiceNowSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


def tickets(url: str, table: str = "incident") -> ServiceNowTickets:
    tokens = ServiceNowTokens(
        HttpClient(platform="servicenow", base_url=url, timeout=(5.0, 30.0)),
        grant="client_credentials",
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
    )
    return ServiceNowTickets(
        HttpClient(platform="servicenow", base_url=url, timeout=(5.0, 30.0)), table=table, tokens=tokens
    )


def requested(
    desk: Desk, intent: str | None = "approve", *, table: str = "incident", **request: Any
) -> tuple[Intent | None, Any]:
    """A record seeded, the agent's action taken (no endpoint configured: nothing is sent), and the record read
    back through the Table API and mapped as the function does."""
    simulator, url = desk
    sys_id = simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": "pi_3PqServiceNow000001",
            "reason": "damaged",
            "amount": "49.90",
            "currency": "EUR",
            "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace",
            "approver_role": "team_lead",
            "table": table,
            **request,
        }
    )
    if intent is not None:
        simulator.agent_action(sys_id, intent)
    news = TicketNews(platform="servicenow", event_id=f"{sys_id}:1", ticket_id=sys_id, payload={"sys_id": sys_id})
    return ticket_request(news, tickets(url, table).read_ticket(sys_id), MAPPING)


def test_the_default_roles_name_the_simulators_groups() -> None:
    assert set(MAPPING.roles) < set(GROUPS)
    assert SERVICE_DESK_GROUP not in MAPPING.roles


@pytest.mark.parametrize("table", ["incident", "sn_customerservice_case"])
def test_an_approved_record_asks_for_its_refund_on_either_table(desk: Desk, table: str) -> None:
    intent, request = requested(desk, table=table, order_id="ORD-1001", invoice_system="xero", invoice_id="INV-7")
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert request.payment.payment_id == "pi_3PqServiceNow000001"
    assert request.amount == Money.of(4990, "EUR")
    assert request.reason.value == "damaged"
    assert request.customer.email == "ada@example.com"
    assert request.order is not None
    assert request.order.order_id == "ORD-1001"
    assert request.invoice is not None
    assert request.invoice.invoice_id == "INV-7"
    assert request.approved_by is not None
    assert request.approved_by.role == "team_lead"
    assert request.source.system == "servicenow"


def test_empty_fields_are_absent_not_empty_strings(desk: Desk) -> None:
    # ServiceNow answers an empty field as "": no amount is a full refund, no reason the default one
    intent, request = requested(desk, "request", amount=None, reason=None)
    assert intent is Intent.REQUESTED
    assert request.amount is None
    assert request.reason.value == "product_return"
    assert request.order is None


def test_a_record_with_no_refund_action_asks_nothing(desk: Desk) -> None:
    assert requested(desk, None) == (None, None)


def test_a_record_closed_while_only_asking_withdraws(desk: Desk) -> None:
    simulator, url = desk
    sys_id = simulator.seed_ticket({"payment_provider": "stripe", "payment_id": "pi_1", "approver_role": "agent"})
    simulator.agent_action(sys_id, "request")
    with simulator.lock:
        simulator.records["incident"][sys_id]["state"] = "7"  # Closed
    news = TicketNews(platform="servicenow", event_id=f"{sys_id}:2", ticket_id=sys_id, payload={})
    intent, _ = ticket_request(news, tickets(url).read_ticket(sys_id), MAPPING)
    assert intent is Intent.CANCELLED


def test_an_amount_that_is_not_exact_in_its_currency_is_refused(desk: Desk) -> None:
    with pytest.raises(InvalidRequest):
        requested(desk, amount="49.905")
    with pytest.raises(InvalidRequest):
        requested(desk, amount="forty")


def test_a_card_number_in_the_payment_id_is_refused_by_field(desk: Desk) -> None:
    with pytest.raises(CardDataRefused) as refused:
        requested(desk, payment_id="4111111111111111")
    assert "4111111111111111" not in str(refused.value)


def test_the_sample_events_verify_and_map_to_an_approved_refund() -> None:
    # GIVEN the sample REST message and the record the Table API returns for it (events/servicenow/)
    import json
    from pathlib import Path

    from refundflow.platforms.servicenow.inbound import ServiceNowInbound

    events = Path(__file__).resolve().parents[3] / "events" / "servicenow"
    secret = "servicenow-sample-shared-secret-00000000"
    raw = (events / "servicenow_rest_message_refund_approved.json").read_bytes()
    verified = ServiceNowInbound().verify({"X-Refundflow-Secret": secret}, raw, {"shared_secrets": [secret]})
    record = json.loads((events / "servicenow_incident_refund_approved.json").read_text())
    # WHEN the default mapping reads them
    intent, request = ticket_request(verified.tickets[0], record, MAPPING)
    # THEN the record approves 49.90 EUR of its Stripe payment as a team lead
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert request.amount == Money.of(4990, "EUR")
    assert request.order is not None
    assert request.order.order_id == "ORD-2042"
    assert request.approved_by is not None
    assert request.approved_by.role == "team_lead"
    # AND the function's sample event is that news, as intake forwards it
    forwarded = json.loads((events / "servicenow_apply_ticket_news.json").read_text())
    news = TicketNews.model_validate(forwarded["event"])
    assert (news.payload, news.event_id) == (verified.tickets[0].payload, verified.tickets[0].event_id)
