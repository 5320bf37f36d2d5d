"""The default mapping.yaml applied to tickets as the Freshdesk simulator's API returns them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import yaml

from local.simulators.freshdesk import DEFAULT_API_KEY, FreshdeskSimulator
from refundflow.connectors.http import HttpClient
from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.errors import CardDataRefused, InvalidRequest
from refundflow.models import RefundRequestBody
from refundflow.platforms.freshdesk.connector import FreshdeskTickets
from refundflow.ports import TicketNews
from tests.support.servers import serve_wsgi

MAPPING_TEXT = resources.files("refundflow.platforms.freshdesk").joinpath("mapping.yaml").read_text()
MAPPING = load_mapping(yaml.safe_load(MAPPING_TEXT), source="freshdesk default")


@pytest.fixture(scope="module")
def desk() -> Iterator[tuple[FreshdeskSimulator, FreshdeskTickets]]:
    simulator = FreshdeskSimulator()
    with serve_wsgi(simulator) as url:
        credentials = base64.b64encode(f"{DEFAULT_API_KEY}:X".encode()).decode()
        http = HttpClient(
            platform="freshdesk",
            base_url=url,
            default_headers={"Authorization": f"Basic {credentials}"},
            timeout=(5.0, 30.0),
        )
        yield simulator, FreshdeskTickets(http)


def ticket(
    desk: tuple[FreshdeskSimulator, FreshdeskTickets], intent: str | None = "approve", **request: Any
) -> tuple[str, dict[str, Any]]:
    """A ticket seeded in the sandbox, the agent's action taken (no webhook is configured: nothing is sent), and
    the ticket read back through the API as the function reads it."""
    simulator, tickets = desk
    ticket_id = simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": "pi_3PqFreshdesk0000001",
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
        simulator.agent_action(ticket_id, intent)
    return ticket_id, tickets.read_ticket(ticket_id)


def news(ticket_id: str, payload: dict[str, Any] | None = None) -> TicketNews:
    return TicketNews(
        platform="freshdesk",
        event_id=f"{ticket_id}:x",
        ticket_id=ticket_id,
        payload=payload or {"ticket_id": int(ticket_id)},
    )


def test_an_approved_ticket_asks_for_its_refund_with_the_team_leads_claim(desk: Any) -> None:
    # GIVEN a ticket in the team leads' group whose Refund action the agent set to Approved
    ticket_id, read = ticket(desk, "approve")
    # WHEN the default mapping reads it
    intent, request = ticket_request(news(ticket_id), read, MAPPING)
    # THEN it asks for 49.90 EUR of the Stripe payment, for Ada, approved by the ticket's agent as team lead
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert request.amount is not None
    assert (request.amount.minor_units, request.amount.currency) == (4990, "EUR")
    assert (request.payment.provider.value, request.payment.payment_id) == ("stripe", "pi_3PqFreshdesk0000001")
    assert (request.source.system, request.source.reference, request.source.ticket_id) == (
        "freshdesk",
        ticket_id,
        ticket_id,
    )
    assert request.approved_by is not None
    assert (request.approved_by.id, request.approved_by.role) == ("48000000101", "team_lead")
    assert (request.customer.email, request.reason.value) == ("ada@example.com", "damaged")


def test_a_ticket_in_the_agents_group_claims_the_agent_role(desk: Any) -> None:
    _, read = ticket(desk, "approve", approver_role="agent")
    _, request = ticket_request(news(str(read["id"])), read, MAPPING)
    assert request.approved_by is not None
    assert request.approved_by.role == "agent"


def test_a_ticket_that_only_asks_carries_no_approvers_claim(desk: Any) -> None:
    ticket_id, read = ticket(desk, "request")
    intent, request = ticket_request(news(ticket_id), read, MAPPING)
    assert intent is Intent.REQUESTED
    assert isinstance(request, RefundRequestBody)
    assert request.approved_by is None


def test_a_cancelled_action_withdraws(desk: Any) -> None:
    ticket_id, read = ticket(desk, "withdraw")
    assert ticket_request(news(ticket_id), read, MAPPING)[0] is Intent.CANCELLED


def test_a_ticket_closed_while_only_asking_withdraws_and_a_closed_approval_stays_approved(desk: Any) -> None:
    ticket_id, asked = ticket(desk, "request")
    assert ticket_request(news(ticket_id), {**asked, "status": 5}, MAPPING)[0] is Intent.CANCELLED
    ticket_id, approved = ticket(desk, "approve")
    assert ticket_request(news(ticket_id), {**approved, "status": 5}, MAPPING)[0] is Intent.APPROVED


def test_a_ticket_whose_refund_action_is_not_set_asks_nothing(desk: Any) -> None:
    ticket_id, read = ticket(desk, None)
    assert ticket_request(news(ticket_id), read, MAPPING) == (None, None)


def test_an_approval_in_a_group_nobody_mapped_claims_no_role(desk: Any) -> None:
    ticket_id, read = ticket(desk, "approve", approver_role=None)
    assert read["group_id"] == 48000000003
    _, request = ticket_request(news(ticket_id), read, MAPPING)
    assert isinstance(request, RefundRequestBody)
    assert request.approved_by is None


def test_what_the_delivery_claims_is_never_read(desk: Any) -> None:
    # GIVEN an unsigned delivery that claims an approval by the team leads' group, for a ticket that only asks
    ticket_id, read = ticket(desk, "request", approver_role=None)
    forged = news(
        ticket_id,
        {"ticket_id": int(ticket_id), "refund_action": "Approved", "group_id": 48000000001, "custom_fields": {}},
    )
    # WHEN it is mapped THEN the ticket says what it asks: a request, with no role claimed
    intent, request = ticket_request(forged, read, MAPPING)
    assert intent is Intent.REQUESTED
    assert request.approved_by is None


def test_a_ticket_without_an_amount_asks_for_a_full_refund(desk: Any) -> None:
    ticket_id, read = ticket(desk, "approve", amount=None, currency=None)
    _, request = ticket_request(news(ticket_id), read, MAPPING)
    assert isinstance(request, RefundRequestBody)
    assert request.amount is None


@pytest.mark.parametrize(("amount", "currency"), [("49.905", "EUR"), ("12.5", "JPY"), ("abc", "EUR"), ("49.90", None)])
def test_an_amount_the_currency_cannot_carry_is_refused(desk: Any, amount: str, currency: str | None) -> None:
    ticket_id, read = ticket(desk, "approve", amount=amount, currency=currency)
    with pytest.raises(InvalidRequest) as refused:
        ticket_request(news(ticket_id), read, MAPPING)
    assert refused.value.code in {"amount_not_representable", "invalid_ticket_amount"}


def test_a_card_number_typed_into_a_mapped_field_is_refused_and_never_echoed(desk: Any) -> None:
    card = "4111 1111 1111 1111"
    ticket_id, read = ticket(desk, "approve", order_id=card)
    with pytest.raises(CardDataRefused) as refused:
        ticket_request(news(ticket_id), read, MAPPING)
    assert card not in str(refused.value)
    assert [error["field"] for error in refused.value.errors] == ["order.order_id"]


def test_a_ticket_without_a_payment_is_refused_with_the_field_named(desk: Any) -> None:
    ticket_id, read = ticket(desk, "approve")
    read["custom_fields"]["cf_payment_id"] = None
    with pytest.raises(InvalidRequest) as refused:
        ticket_request(news(ticket_id), read, MAPPING)
    assert refused.value.code == "ticket_not_a_refund_request"
    assert any("payment" in error["field"] for error in refused.value.errors)  # type: ignore[attr-defined]


def test_the_default_mapping_names_only_fields_the_simulated_account_has() -> None:
    # the sandbox refuses custom fields it does not define, so a field the mapping reads must be one of them
    from local.simulators.freshdesk import CUSTOM_FIELDS

    named: set[str] = set()
    for expression in [*MAPPING.when.values(), *MAPPING.fields.values(), MAPPING.amount.value, MAPPING.amount.currency]:  # type: ignore[union-attr]
        named.update(
            part for part in expression.replace("'", " ").replace("|", " ").split() if "custom_fields." in part
        )
    fields = {part.split("custom_fields.")[1].rstrip(")") for part in named}
    assert fields
    assert fields <= set(CUSTOM_FIELDS)


def test_the_sample_events_verify_and_map_to_an_approved_refund() -> None:
    # GIVEN the sample webhook body and the ticket the API returns for it (events/freshdesk/)
    from pathlib import Path

    from refundflow.platforms.freshdesk.inbound import FreshdeskInbound
    from refundflow.ports import InboundDelivery

    events = Path(__file__).resolve().parents[3] / "events" / "freshdesk"
    secret = "freshdesk-sample-shared-secret-000000000"
    raw = (events / "freshdesk_webhook_refund_approved.json").read_bytes()
    verified: InboundDelivery = FreshdeskInbound().verify(
        {"X-Refundflow-Secret": secret}, raw, {"shared_secrets": [secret]}
    )
    ticket = json.loads((events / "freshdesk_ticket_refund_approved.json").read_text())
    # WHEN the default mapping reads them
    intent, request = ticket_request(verified.tickets[0], ticket, MAPPING)
    # THEN the ticket approves 49.90 EUR of its Stripe payment as a team lead
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert request.amount is not None
    assert (request.amount.minor_units, request.order.order_id if request.order else None) == (4990, "ORD-2042")
    assert request.approved_by is not None
    assert request.approved_by.role == "team_lead"
    # AND the function's sample event is that news, as intake forwards it
    forwarded = json.loads((events / "freshdesk_apply_ticket_news.json").read_text())
    assert TicketNews.model_validate(forwarded["event"]).payload == verified.tickets[0].payload
