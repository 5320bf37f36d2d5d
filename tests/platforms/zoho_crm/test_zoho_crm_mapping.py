"""The default mapping.yaml applied to deals as the Zoho CRM simulator's API returns them: the record decides,
never the delivery; the owner's user id is the approver's group."""

from __future__ import annotations

from typing import Any

import pytest

from local.simulators.zoho_crm import ZohoCrmSimulator
from refundflow.domain.tickets import Intent, ticket_request
from refundflow.errors import CardDataRefused
from refundflow.ports import TicketNews
from tests.conformance.ticket_suite import default_mapping
from tests.platforms.zoho_crm.conftest import records
from tests.support.servers import DeliveryRecorder

Served = tuple[ZohoCrmSimulator, str, DeliveryRecorder]
MAPPING = default_mapping("zoho_crm")


def read(served: Served, intent: str | None, **request: Any) -> tuple[str, dict[str, Any]]:
    simulator, url, _ = served
    deal = simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": "pi_3QzZoho0000001",
            "amount": "49.90",
            "currency": "EUR",
            "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace",
            "approver_role": "team_lead",
            **request,
        }
    )
    if intent is not None:
        simulator.agent_action(deal, intent)
    return deal, records(url, simulator.local_secrets()["api"]).read_ticket(deal)


def news(deal: str, **payload: Any) -> TicketNews:
    return TicketNews(platform="zoho_crm", event_id=f"{deal}:x", ticket_id=deal, payload={"record_id": deal, **payload})


def test_an_approved_deal_names_its_owner_as_the_team_lead(served: Served) -> None:
    deal, record = read(served, "approve")
    intent, request = ticket_request(news(deal), record, MAPPING)
    assert intent is Intent.APPROVED
    assert request.approved_by is not None
    assert (request.approved_by.id, request.approved_by.role) == ("110000000000000101", "team_lead")
    assert request.customer.email == "ada@example.com"
    assert request.reason == "product_return"  # no reason on the deal: the mapping's default


def test_a_deal_nobody_acted_on_asks_nothing_whatever_the_delivery_says(served: Served) -> None:
    deal, record = read(served, None)
    intent, _ = ticket_request(news(deal, refund_action="Approved"), record, MAPPING)
    assert intent is None


def test_the_delivery_never_overrides_the_record(served: Served) -> None:
    deal, record = read(served, "withdraw")
    intent, _ = ticket_request(news(deal, refund_action="Approved"), record, MAPPING)
    assert intent is Intent.CANCELLED


def test_a_card_number_in_the_order_field_is_refused(served: Served) -> None:
    deal, record = read(served, "approve", order_id="4111-1111-1111-1111")
    with pytest.raises(CardDataRefused):
        ticket_request(news(deal), record, MAPPING)


def test_a_real_length_record_id_that_reads_as_a_visa_number_is_taken_as_the_records_id(served: Served) -> None:
    # Zoho's own ids are 19 digits; one starting with 4 that passes the Luhn check reads as a 19-digit Visa number
    # (README, "Zoho CRM setup"). The record the delivery names is the desk's own: its id is an id, not card data.
    _, record = read(served, "approve")
    real_shaped = "4876876000005996160"
    intent, request = ticket_request(news(real_shaped), {**record, "id": real_shaped}, MAPPING)
    assert intent is Intent.APPROVED
    assert request.source.ticket_id == real_shaped
