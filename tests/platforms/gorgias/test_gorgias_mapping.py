"""The default mapping (platforms/gorgias/mapping.yaml) over tickets of the simulator as the connector reads
them: what an agent does in Gorgias becomes a refund request, an approval or a withdrawal, or nothing."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml

from refundflow.domain.tickets import Intent, TicketMapping, load_mapping, ticket_request
from refundflow.errors import CardDataRefused, InvalidRequest
from refundflow.models import RefundRequestBody
from refundflow.ports import TicketNews
from tests.platforms.gorgias.conftest import Served

PAYMENT = "ch_3PqGorgias0000009"


@pytest.fixture(scope="module")
def mapping() -> TicketMapping:
    text = resources.files("refundflow.platforms.gorgias").joinpath("mapping.yaml").read_text()
    return load_mapping(yaml.safe_load(text), source="gorgias default")


def news(ticket_id: str, **payload: Any) -> TicketNews:
    body = {"ticket_id": ticket_id, "updated_datetime": "2026-12-06T12:00:00+00:00", **payload}
    return TicketNews(platform="gorgias", event_id=f"{ticket_id}@x", ticket_id=ticket_id, payload=body)


def read(served: Served, intent: str | None = None, **request: Any) -> tuple[str, dict[str, Any]]:
    seeded = {"payment_provider": "stripe", "payment_id": PAYMENT, "customer_email": "ada@example.com", **request}
    ticket_id = served.simulator.seed_ticket(seeded)
    if intent is not None:
        served.simulator.agent_action(ticket_id, intent)
    return ticket_id, served.connector().read_ticket(ticket_id)


def test_a_team_leads_approval_asks_for_the_orders_stripe_charge_with_the_team_leads_claim(
    served: Served, mapping: TicketMapping
) -> None:
    # GIVEN a ticket of a team lead's team, its order paid through Stripe, tagged refund_approved
    ticket_id, ticket = read(
        served, "approve", amount="49.90", currency="EUR", approver_role="team_lead", reason="damaged"
    )
    # WHEN the default mapping reads it
    intent, request = ticket_request(news(ticket_id), ticket, mapping)
    # THEN it asks for a refund of that charge, of that amount, approved by the assignee as a team lead
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert (request.payment.provider.value, request.payment.payment_id) == ("stripe", PAYMENT)
    assert request.amount is not None
    assert (request.amount.minor_units, request.amount.currency) == (4990, "EUR")
    assert request.order is not None
    assert request.order.platform == "shopify"
    assert request.order.order_id == ticket["order"]["name"]  # the "#1001" agents and customers see
    assert request.approved_by is not None
    assert (request.approved_by.id, request.approved_by.role) == (
        "301",
        "team_lead",
    )
    assert (request.customer.email, request.reason.value) == ("ada@example.com", "damaged")
    assert (request.source.system, request.source.reference, request.source.ticket_id) == (
        "gorgias",
        ticket_id,
        ticket_id,
    )


def test_a_ticket_tagged_refund_only_asks_and_claims_no_approval(served: Served, mapping: TicketMapping) -> None:
    ticket_id, ticket = read(served, "request", approver_role="team_lead")
    intent, request = ticket_request(news(ticket_id), ticket, mapping)
    assert intent is Intent.REQUESTED
    assert request.approved_by is None
    assert request.amount is None  # no amount field: a full refund


def test_the_cancel_tag_withdraws_an_approval(served: Served, mapping: TicketMapping) -> None:
    ticket_id = served.simulator.seed_ticket({"payment_provider": "stripe", "payment_id": PAYMENT})
    served.simulator.agent_action(ticket_id, "approve")
    served.simulator.agent_action(ticket_id, "withdraw")
    intent, _ = ticket_request(news(ticket_id), served.connector().read_ticket(ticket_id), mapping)
    assert intent is Intent.CANCELLED


def test_a_requested_refund_closed_without_approval_is_withdrawn(served: Served, mapping: TicketMapping) -> None:
    ticket_id, _ = read(served, "request")
    served.simulator.close_ticket(ticket_id)
    intent, _ = ticket_request(news(ticket_id), served.connector().read_ticket(ticket_id), mapping)
    assert intent is Intent.CANCELLED


def test_a_ticket_without_refund_tags_asks_nothing(served: Served, mapping: TicketMapping) -> None:
    ticket_id, ticket = read(served)
    assert ticket_request(news(ticket_id), ticket, mapping) == (None, None)


def test_an_approval_in_a_team_nobody_mapped_claims_no_role(served: Served, mapping: TicketMapping) -> None:
    ticket_id, ticket = read(served, "approve")
    assert ticket["assignee_team_id"] == 7003  # a team the default mapping gives no role
    _, request = ticket_request(news(ticket_id), ticket, mapping)
    assert request.approved_by is None


def test_the_approvers_team_is_read_from_the_ticket_never_from_the_call(served: Served, mapping: TicketMapping) -> None:
    ticket_id, ticket = read(served, "approve", approver_role="agent")
    forged = news(ticket_id, assignee_team_id=7001, ticket={"assignee_team_id": 7001})
    _, request = ticket_request(forged, ticket, mapping)
    assert request.approved_by is not None
    assert request.approved_by.role == "agent"


def test_another_providers_payment_comes_from_the_payment_fields(served: Served, mapping: TicketMapping) -> None:
    ticket_id, ticket = read(served, "request", payment_provider="paypal", payment_id="8AB12345CD6789012")
    _, request = ticket_request(news(ticket_id), ticket, mapping)
    assert (request.payment.provider.value, request.payment.payment_id) == ("paypal", "8AB12345CD6789012")


def test_a_ticket_whose_order_carries_no_payment_is_refused_naming_the_payment(
    served: Served, mapping: TicketMapping
) -> None:
    # GIVEN a customer with several orders and a ticket that names none of them
    ticket_id = served.simulator.seed_ticket({"payment_provider": "stripe", "payment_id": PAYMENT, "orders": 2})
    served.simulator.field_values[int(ticket_id)].pop(5000)
    served.simulator.agent_action(ticket_id, "approve")
    # WHEN it is read, THEN it is no refund request, and the payment is what is missing
    with pytest.raises(InvalidRequest) as refused:
        ticket_request(news(ticket_id), served.connector().read_ticket(ticket_id), mapping)
    assert refused.value.code == "ticket_not_a_refund_request"
    assert any(error["field"].startswith("payment") for error in refused.value.errors)  # type: ignore[attr-defined]


def test_a_card_number_typed_into_a_mapped_field_is_refused_and_never_echoed(
    served: Served, mapping: TicketMapping
) -> None:
    card = "4111 1111 1111 1111"
    ticket_id, _ = read(served, "approve", invoice_id=card, invoice_system="xero")
    with pytest.raises(CardDataRefused) as refused:
        ticket_request(news(ticket_id), served.connector().read_ticket(ticket_id), mapping)
    assert card not in str(refused.value)
    assert [error["field"] for error in refused.value.errors] == ["invoice.invoice_id"]


@pytest.mark.parametrize(("amount", "currency"), [("49.905", "EUR"), ("10.5", "JPY"), ("abc", "EUR")])
def test_an_amount_the_currency_cannot_carry_is_refused(
    served: Served, mapping: TicketMapping, amount: str, currency: str
) -> None:
    ticket_id, ticket = read(served, "approve", amount=amount, currency=currency)
    with pytest.raises(InvalidRequest):
        ticket_request(news(ticket_id), ticket, mapping)
