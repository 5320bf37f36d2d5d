"""Zoho CRM's workflow webhook verification: the admin's custom token header (Zoho signs nothing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.zoho_crm.inbound import ZohoCrmInbound, inbound

TOKEN = "zoho-crm-test-webhook-token-0123456789"
OLD_TOKEN = "zoho-crm-old-webhook-token-9876543210"
CONFIGURED = {"tokens": [OLD_TOKEN, TOKEN]}
RECORD = "110000000000004711"
BODY = {
    "module": "Deals",
    "record_id": RECORD,
    "refund_action": "Approved",
    "modified_time": "2026-12-06T12:00:00+01:00",
}


def delivery(body: Any = BODY, *, token: str | None = TOKEN) -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Refundflow-Token"] = token
    return headers, raw


def verify(headers: dict[str, str], raw: bytes, configured: dict[str, Any] = CONFIGURED) -> Any:
    return ZohoCrmInbound().verify(headers, raw, configured)


def test_a_delivery_with_the_token_names_its_record_as_news() -> None:
    # GIVEN the workflow webhook's raw JSON body, with the token in its custom header
    headers, raw = delivery()
    # WHEN intake verifies it
    verified = verify(headers, raw)
    # THEN it is news about the deal, with the body as payload, its modified time and a delivery id from the body
    [news] = verified.tickets
    assert (news.platform, news.ticket_id, news.payload["refund_action"]) == ("zoho_crm", RECORD, "Approved")
    assert news.event_id.startswith(f"{RECORD}:")
    assert news.occurred_at is not None
    assert news.occurred_at.isoformat() == "2026-12-06T12:00:00+01:00"
    assert verified.answer.status == 200
    assert inbound().name == "zoho_crm"


def test_the_same_delivery_sent_again_keeps_its_id_and_another_change_gets_another() -> None:
    first = verify(*delivery()).tickets[0]
    again = verify(*delivery()).tickets[0]
    later = verify(*delivery({**BODY, "modified_time": "2026-12-06T12:00:01+01:00"})).tickets[0]
    other = verify(*delivery({**BODY, "refund_action": "Cancelled"})).tickets[0]
    assert first.event_id == again.event_id
    assert len({first.event_id, later.event_id, other.event_id}) == 3


def test_both_tokens_of_a_rotation_are_accepted_and_the_header_name_is_any_case() -> None:
    for token in (OLD_TOKEN, TOKEN):
        assert verify(*delivery(token=token)).tickets[0].ticket_id == RECORD
    _, raw = delivery()
    assert verify({"x-refundflow-token": TOKEN}, raw).tickets[0].ticket_id == RECORD


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "signature_missing"),
        ("", "signature_missing"),
        ("zoho-crm-forged-webhook-token-000000000", "signature_invalid"),
        (TOKEN[:-1], "signature_invalid"),
        (TOKEN + "x", "signature_invalid"),
        ("zohö-crm-test-webhook-token-0123456789", "signature_invalid"),
    ],
)
def test_a_delivery_without_the_token_is_refused(token: str | None, code: str) -> None:
    headers, raw = delivery(token=token)
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw)
    assert refused.value.code == code


@pytest.mark.parametrize("configured", [{}, {"tokens": []}, {"tokens": "not-a-list"}, {"tokens": ["short"]}])
def test_no_usable_token_configured_refuses_everything(configured: dict[str, Any]) -> None:
    # a configured token shorter than 24 characters is a mistake and never matches, even when sent
    headers, raw = delivery(token="short")
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw, configured)


@pytest.mark.parametrize(
    "record_id",
    ["../1", "1/../../users/me", "٤٧١١", "1?x=1", "", "12 34", "12345678901234567890", None, True, 1.5, ["1"]],
)
def test_an_odd_record_id_is_refused(record_id: Any) -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery({**BODY, "record_id": record_id}))


def test_a_bare_number_id_is_read_as_its_digits() -> None:
    assert verify(*delivery({**BODY, "record_id": 110000000000004711})).tickets[0].ticket_id == RECORD


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b"not json", b"[1, 2]", b'"text"', b""])
def test_a_body_that_is_not_a_utf8_json_object_is_refused_after_the_token(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery(raw))
    with pytest.raises(AuthenticationFailed):  # the token is checked first: nothing is parsed for a stranger
        verify(*delivery(raw, token="zoho-crm-forged-webhook-token-000000000"))


def test_a_tampered_body_is_still_only_news_about_the_record_it_names() -> None:
    headers, raw = delivery()
    tampered = raw.replace(b"Approved", b"Cancelled")
    [news] = verify(headers, tampered).tickets
    # the body is never believed: the record is read from the API; the id changes with the body
    assert news.ticket_id == RECORD
    assert news.event_id != verify(headers, raw).tickets[0].event_id
