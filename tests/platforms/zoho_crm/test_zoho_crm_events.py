"""The sample events (``events/zoho_crm/``): the workflow webhook's body verifies with the token and names its deal;
the deal as the API answers it (with its contact, as the connector adds it) asks for the refund under the default
mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from refundflow.domain.tickets import Intent, ticket_request
from refundflow.money import Money
from refundflow.platforms.zoho_crm.inbound import ZohoCrmInbound
from tests.conformance.ticket_suite import default_mapping

EVENTS = Path(__file__).resolve().parents[3] / "events" / "zoho_crm"
TOKEN = "zoho-crm-sample-webhook-token-0123456789"


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def test_the_sample_delivery_verifies_and_the_sample_deal_asks_for_its_refund() -> None:
    raw = (EVENTS / "webhook_refund_approved.json").read_bytes()
    [news] = ZohoCrmInbound().verify({"X-Refundflow-Token": TOKEN}, raw, {"tokens": [TOKEN]}).tickets
    [deal] = load("deal_refund_approved.json")["data"]
    [contact] = load("contact.json")["data"]
    assert deal["id"] == news.ticket_id == load("zoho_crm_apply_ticket_news.json")["event"]["ticket_id"]
    deal["requester"] = {"id": contact["id"], "email": contact["Email"], "name": contact["Full_Name"]}
    intent, request = ticket_request(news, deal, default_mapping("zoho_crm"))
    assert intent is Intent.APPROVED
    assert request.amount == Money.of(4990, "EUR")
    assert request.payment.payment_id == "pi_3QzZohoCrm0000001"
    assert request.customer.email == "ada@example.com"
    assert request.approved_by is not None
    assert request.approved_by.role == "team_lead"
