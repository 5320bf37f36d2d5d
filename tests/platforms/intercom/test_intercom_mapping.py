"""The default mapping (platforms/intercom/mapping.yaml) applied to conversations as the simulator's API returns
them, read through the connector: what each agent action asks for, and what is refused."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
import yaml

from local.simulators.intercom import IntercomSimulator
from refundflow.domain.tickets import Intent, TicketMapping, load_mapping, ticket_request
from refundflow.errors import CardDataRefused, InvalidRequest
from refundflow.models import RefundRequestBody
from refundflow.platforms.intercom.connector import IntercomConversations
from refundflow.platforms.intercom.inbound import IntercomInbound
from refundflow.ports import TicketNews
from tests.support.servers import DeliveryRecorder, serve_wsgi

REQUEST = {
    "payment_provider": "stripe",
    "payment_id": "pi_3PqIntercom000001",
    "reason": "damaged",
    "order_id": "ord-1001",
    "amount": "49.90",
    "currency": "EUR",
    "customer_email": "ada@example.com",
    "customer_name": "Ada Lovelace",
    "approver_role": "team_lead",
}


@pytest.fixture(scope="module")
def mapping() -> TicketMapping:
    text = resources.files("refundflow.platforms.intercom").joinpath("mapping.yaml").read_text()
    return load_mapping(yaml.safe_load(text), source="intercom default")


def news(conversation_id: str) -> TicketNews:
    return TicketNews(platform="intercom", event_id="notif_1", ticket_id=conversation_id, payload={})


def asked(
    simulator: IntercomSimulator,
    intercom: IntercomConversations,
    mapping: TicketMapping,
    intent: str,
    **changes: Any,
) -> tuple[Intent | None, Any]:
    conversation_id = simulator.seed_ticket({**REQUEST, **changes})
    simulator.agent_action(conversation_id, intent)
    return ticket_request(news(conversation_id), intercom.read_ticket(conversation_id), mapping)


def test_a_team_leads_approval_asks_for_the_refund_with_the_team_leads_claim(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    intent, request = asked(simulator, intercom, mapping, "approve")
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert request.amount is not None
    assert (request.amount.minor_units, request.amount.currency) == (4990, "EUR")
    assert (request.payment.provider.value, request.payment.payment_id) == ("stripe", "pi_3PqIntercom000001")
    assert request.approved_by is not None
    assert (request.approved_by.id, request.approved_by.role) == ("991267002", "team_lead")
    assert (request.customer.email, request.customer.name) == ("ada@example.com", "Ada Lovelace")
    assert request.order is not None
    assert request.order.order_id == "ord-1001"
    assert request.source.system == "intercom"


def test_an_agents_approval_claims_the_agent_role(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    _, request = asked(simulator, intercom, mapping, "approve", approver_role="agent")
    assert request.approved_by is not None
    assert request.approved_by.role == "agent"


def test_a_conversation_that_only_asks_carries_no_approvers_claim(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    intent, request = asked(simulator, intercom, mapping, "request")
    assert intent is Intent.REQUESTED
    assert request.approved_by is None


def test_a_withdrawn_approval_asks_to_cancel(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(conversation_id, "approve")
    simulator.agent_action(conversation_id, "withdraw")
    intent, _ = ticket_request(news(conversation_id), intercom.read_ticket(conversation_id), mapping)
    assert intent is Intent.CANCELLED


def test_an_approval_from_a_team_nobody_mapped_claims_no_role(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    intent, request = asked(simulator, intercom, mapping, "approve", approver_role=None)
    assert intent is Intent.APPROVED
    assert request.approved_by is None


def test_the_approvers_team_is_read_from_the_api_never_from_the_notification(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    # GIVEN a notification whose item claims the team leads' team, on a conversation of the general inbox
    conversation_id = simulator.seed_ticket({**REQUEST, "approver_role": None})
    simulator.agent_action(conversation_id, "approve")
    forged = TicketNews(
        platform="intercom",
        event_id="notif_2",
        ticket_id=conversation_id,
        payload={"data": {"item": {"team_assignee_id": 5017691, "admin_assignee_id": 991267002}}},
    )
    _, request = ticket_request(forged, intercom.read_ticket(conversation_id), mapping)
    assert request.approved_by is None


def test_a_conversation_without_refund_tags_asks_nothing(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    assert ticket_request(news(conversation_id), intercom.read_ticket(conversation_id), mapping) == (None, None)


def test_a_card_number_typed_into_an_attribute_is_refused_and_never_echoed(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    card = "4111 1111 1111 1111"
    with pytest.raises(CardDataRefused) as refused:
        asked(simulator, intercom, mapping, "approve", order_id=card)
    assert card not in str(refused.value)
    assert [error["field"] for error in refused.value.errors] == ["order.order_id"]


@pytest.mark.parametrize(("amount", "currency"), [("49.905", "EUR"), ("10.5", "JPY"), ("abc", "EUR")])
def test_an_amount_its_currency_cannot_carry_is_refused(
    simulator: IntercomSimulator,
    intercom: IntercomConversations,
    mapping: TicketMapping,
    amount: str,
    currency: str,
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        asked(simulator, intercom, mapping, "approve", amount=amount, currency=currency)
    assert refused.value.code in {"amount_not_representable", "invalid_ticket_amount"}


def test_no_amount_asks_for_a_full_refund(
    simulator: IntercomSimulator, intercom: IntercomConversations, mapping: TicketMapping
) -> None:
    _, request = asked(simulator, intercom, mapping, "approve", amount=None)
    assert request.amount is None


def test_the_simulators_tag_notification_verifies_and_names_the_tagged_conversation() -> None:
    # GIVEN the simulator sending its notifications to a recording endpoint
    simulator = IntercomSimulator()
    recorder = DeliveryRecorder()
    with serve_wsgi(recorder) as url:
        simulator.send_webhooks_to(url)
        conversation_id = simulator.seed_ticket(REQUEST)
        # WHEN the agent tags the conversation
        simulator.agent_action(conversation_id, "approve")
        recorder.wait_until(lambda deliveries: len(deliveries) == 1)
    # THEN intake's verifier takes it with the client secret the simulator gives the stack
    headers, raw = recorder.deliveries[0]
    verification = simulator.local_secrets()["verification"]
    [item] = IntercomInbound().verify(headers, raw, verification).tickets
    assert item.ticket_id == conversation_id
    assert json.loads(raw)["topic"] == "conversation_part.tag.created"
    assert [tag["name"] for tag in item.payload["data"]["item"]["tags"]["tags"]] == ["refund_approved"]
