"""Freshdesk's webhook verification: a shared secret in the admin's custom header (Freshdesk signs nothing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.freshdesk.inbound import FreshdeskInbound, inbound

SECRET = "freshdesk-test-shared-secret-0123456789"
OLD_SECRET = "freshdesk-old-shared-secret-9876543210"
CONFIGURED = {"shared_secrets": [OLD_SECRET, SECRET]}


def delivery(body: Any, *, secret: str | None = SECRET) -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Refundflow-Secret"] = secret
    return headers, raw


def verify(headers: dict[str, str], raw: bytes, configured: dict[str, Any] = CONFIGURED) -> Any:
    return FreshdeskInbound().verify(headers, raw, configured)


def test_a_delivery_with_the_secret_names_its_ticket_as_news() -> None:
    # GIVEN the automation rule's webhook body, with the shared secret in its custom header
    headers, raw = delivery({"ticket_id": 4711, "refund_action": "Approved"})
    # WHEN intake verifies it
    verified = verify(headers, raw)
    # THEN it is news about ticket 4711, with the body as payload and a delivery id derived from the body
    [news] = verified.tickets
    assert (news.platform, news.ticket_id, news.payload["refund_action"]) == ("freshdesk", "4711", "Approved")
    assert news.event_id.startswith("4711:")
    assert len(news.event_id) > len("4711:")
    assert verified.answer.status == 200


def test_the_same_delivery_sent_again_keeps_its_id_and_another_change_gets_another() -> None:
    first = verify(*delivery({"ticket_id": "4711", "refund_action": "Approved"})).tickets[0]
    again = verify(*delivery({"ticket_id": "4711", "refund_action": "Approved"})).tickets[0]
    other = verify(*delivery({"ticket_id": "4711", "refund_action": "Cancelled"})).tickets[0]
    assert first.event_id == again.event_id
    assert other.event_id != first.event_id


def test_a_body_carrying_updated_at_is_named_by_it() -> None:
    news = verify(*delivery({"ticket_id": 4711, "updated_at": "2026-12-06T12:00:00Z"})).tickets[0]
    assert news.event_id == "4711:2026-12-06T12:00:00Z"
    assert news.occurred_at is not None
    assert news.occurred_at.isoformat() == "2026-12-06T12:00:00+00:00"


def test_both_secrets_of_a_rotation_are_accepted() -> None:
    for secret in (OLD_SECRET, SECRET):
        assert verify(*delivery({"ticket_id": 1}, secret=secret)).tickets[0].ticket_id == "1"


@pytest.mark.parametrize(
    ("secret", "code"),
    [
        (None, "signature_missing"),
        ("", "signature_missing"),
        ("freshdesk-forged-shared-secret-000000000", "signature_invalid"),
        (SECRET[:-1], "signature_invalid"),
        (SECRET + "x", "signature_invalid"),
        ("fréshdesk-test-shared-secret-0123456789", "signature_invalid"),
    ],
)
def test_a_delivery_without_the_secret_is_refused(secret: str | None, code: str) -> None:
    headers, raw = delivery({"ticket_id": 4711}, secret=secret)
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw)
    assert refused.value.code == code


def test_a_secret_retired_from_the_rotation_is_refused() -> None:
    headers, raw = delivery({"ticket_id": 4711}, secret=OLD_SECRET)
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw, {"shared_secrets": [SECRET]})


@pytest.mark.parametrize("configured", [{}, {"shared_secrets": []}, {"shared_secrets": "x"}, {"shared_secrets": [""]}])
def test_nothing_matches_when_no_usable_secret_is_configured(configured: dict[str, Any]) -> None:
    # an empty or too short configured secret never matches, not even an empty-looking header
    headers, raw = delivery({"ticket_id": 4711}, secret=" ")
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw, configured)


def test_the_header_name_is_case_insensitive() -> None:
    raw = json.dumps({"ticket_id": 7}).encode()
    assert verify({"x-refundflow-secret": SECRET}, raw).tickets[0].ticket_id == "7"


@pytest.mark.parametrize("ticket_id", ["٤٧١١", "47 11", "4711/../1", "", None, True, 4.5, "-1", ["4711"], "1" * 21])
def test_a_delivery_naming_no_plain_ticket_id_is_refused(ticket_id: Any) -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery({"ticket_id": ticket_id}))


@pytest.mark.parametrize(
    "raw",
    [
        '{"ticket_id": "4711", "note": "caf\xe9"}'.encode("latin-1"),
        json.dumps({"ticket_id": 4711}).encode("utf-16"),
        b"ticket_id=4711",
        b"[4711]",
        b"",
    ],
)
def test_a_body_that_is_not_a_utf8_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery(raw))


def test_the_secret_is_checked_before_the_body_is_read() -> None:
    # a forged delivery with a broken body is an authentication failure, never a parse error that tells anything
    headers, raw = delivery(b"\xff\xfe not json", secret="freshdesk-forged-shared-secret-000000000")
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw)


def test_the_package_exposes_its_verifier() -> None:
    assert isinstance(inbound(), FreshdeskInbound)
    assert inbound().name == "freshdesk"
