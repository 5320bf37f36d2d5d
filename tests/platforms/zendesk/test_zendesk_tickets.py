"""Zendesk's webhook verification and the default mapping of its tickets (pure: no stack, no simulator)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
import yaml

from refundflow.domain.tickets import Intent, load_mapping, ticket_request
from refundflow.errors import AuthenticationFailed, CardDataRefused, InvalidRequest
from refundflow.models import RefundRequestBody
from refundflow.platforms.zendesk.inbound import ZendeskInbound, sign
from refundflow.ports import TicketNews

SECRET = "zendesk-test-signing-secret-0123456789"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
MAPPING = load_mapping(
    yaml.safe_load(resources.files("refundflow.platforms.zendesk").joinpath("mapping.yaml").read_text()),
    source="zendesk default",
)


def delivery(body: dict[str, Any], *, at: datetime = NOW, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(body).encode()
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "X-Zendesk-Webhook-Signature": sign(secret, stamp, raw),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Invocation-Id": "inv-1",
    }
    return headers, raw


def verify(headers: dict[str, str], raw: bytes) -> Any:
    return ZendeskInbound(now=lambda: NOW).verify(headers, raw, {"signing_secrets": ["old-" + SECRET, SECRET]})


def test_a_signed_delivery_names_its_ticket_as_news() -> None:
    headers, raw = delivery({"ticket_id": "4711", "event": "refund_approved"})
    news = verify(headers, raw).tickets
    assert [(item.platform, item.ticket_id, item.event_id) for item in news] == [("zendesk", "4711", "inv-1")]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret": "another-secret-of-enough-length-000"}, "signature_invalid"),
        ({"at": NOW - timedelta(minutes=6)}, "signature_stale"),
        ({"at": NOW + timedelta(minutes=6)}, "signature_stale"),
    ],
)
def test_a_forged_or_stale_delivery_is_refused(change: dict[str, Any], code: str) -> None:
    headers, raw = delivery({"ticket_id": "4711"}, **change)
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw)
    assert refused.value.code == code


def test_a_body_changed_after_signing_is_refused() -> None:
    headers, raw = delivery({"ticket_id": "4711"})
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw.replace(b"4711", b"4712"))


def ticket(tags: list[str], fields: dict[int, Any] | None = None) -> dict[str, Any]:
    values = {
        9000000001: "stripe",
        9000000002: "pi_3PqTicket00000001",
        9000000003: "damaged",
        9000000005: "49.90",
        9000000008: "EUR",
        **(fields or {}),
    }
    return {
        "id": 4711,
        "status": "open",
        "tags": tags,
        "assignee_id": 301,
        "group_id": 9100000001,
        "requester": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "custom_fields": [{"id": key, "value": value} for key, value in values.items()],
    }


def news(payload: dict[str, Any] | None = None) -> TicketNews:
    return TicketNews(platform="zendesk", event_id="inv-1", ticket_id="4711", payload=payload or {"ticket_id": "4711"})


def test_an_approved_ticket_asks_for_its_refund_with_the_team_leads_claim() -> None:
    intent, request = ticket_request(news(), ticket(["refund_approved"]), MAPPING)
    assert intent is Intent.APPROVED
    assert isinstance(request, RefundRequestBody)
    assert request.amount is not None
    assert (request.amount.minor_units, request.amount.currency) == (4990, "EUR")
    assert (request.source.system, request.source.reference, request.source.ticket_id) == ("zendesk", "4711", "4711")
    assert request.approved_by is not None
    assert (request.approved_by.id, request.approved_by.role) == ("301", "team_lead")
    assert request.customer.email == "ada@example.com"


def test_a_ticket_that_only_asks_carries_no_approvers_claim() -> None:
    intent, request = ticket_request(news(), ticket(["refund_requested"]), MAPPING)
    assert intent is Intent.REQUESTED
    assert request.approved_by is None


def test_an_approval_by_a_group_nobody_mapped_claims_no_role() -> None:
    unmapped = {**ticket(["refund_approved"]), "group_id": 123}
    _, request = ticket_request(news(), unmapped, MAPPING)
    assert request.approved_by is None


def test_the_approvers_group_is_read_from_the_ticket_never_from_the_delivery() -> None:
    forged = news({"ticket_id": "4711", "ticket": {"group_id": 9100000001}, "group_id": 9100000001})
    _, request = ticket_request(forged, {**ticket(["refund_approved"]), "group_id": 555}, MAPPING)
    assert request.approved_by is None


def test_a_ticket_without_refund_tags_asks_nothing() -> None:
    assert ticket_request(news(), ticket(["question"]), MAPPING) == (None, None)


def test_a_removed_approval_with_the_cancel_tag_withdraws() -> None:
    intent, _ = ticket_request(news(), ticket(["refund_approved", "refund_cancelled"]), MAPPING)
    assert intent is Intent.CANCELLED


@pytest.mark.parametrize("amount", ["49.905", "abc", "-"])
def test_an_amount_the_currency_cannot_carry_is_refused(amount: str) -> None:
    with pytest.raises(InvalidRequest):
        ticket_request(news(), ticket(["refund_approved"], {9000000005: amount}), MAPPING)


def test_a_card_number_typed_into_a_mapped_field_is_refused_and_never_echoed() -> None:
    card = "4111 1111 1111 1111"
    with pytest.raises(CardDataRefused) as refused:
        ticket_request(news(), ticket(["refund_approved"], {9000000004: card}), MAPPING)
    assert card not in str(refused.value)
    assert [error["field"] for error in refused.value.errors] == ["order.order_id"]


def test_a_ticket_without_a_payment_is_refused_with_the_field_named() -> None:
    missing = ticket(["refund_approved"])
    missing["custom_fields"] = [field for field in missing["custom_fields"] if field["id"] != 9000000002]
    with pytest.raises(InvalidRequest) as refused:
        ticket_request(news(), missing, MAPPING)
    assert refused.value.code == "ticket_not_a_refund_request"
    assert any("payment" in error["field"] for error in refused.value.errors)  # type: ignore[attr-defined]


@pytest.mark.parametrize("ticket_id", ["٤٧١١", "47 11", "4711/../1", ""])
def test_a_delivery_naming_no_plain_ticket_id_is_refused(ticket_id: str) -> None:
    headers, raw = delivery({"ticket_id": ticket_id})
    with pytest.raises(InvalidRequest):
        verify(headers, raw)


def test_a_mapping_with_a_broken_expression_is_never_loaded() -> None:
    document = yaml.safe_load(resources.files("refundflow.platforms.zendesk").joinpath("mapping.yaml").read_text())
    document["amount"]["value"] = "ticket.custom_fields[?id=="
    with pytest.raises(InvalidRequest) as refused:
        load_mapping(document, source="broken")
    assert refused.value.code == "invalid_ticket_mapping"
