"""Intercom's signed notifications (X-Hub-Signature, HMAC-SHA1 of the raw body): pure, no stack, no simulator."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.intercom.inbound import IntercomInbound
from refundflow.ports import InboundDelivery

SECRET = "intercom-test-client-secret-0123456789"
OLD_SECRET = "intercom-previous-client-secret-987654"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def notification(
    conversation_id: Any = "4711", *, topic: str = "conversation_part.tag.created", at: datetime = NOW
) -> dict[str, Any]:
    return {
        "type": "notification_event",
        "app_id": "abc123",
        "id": "notif_5a0e1f52-3c0a-4f2b-9c7e-0123456789ab",
        "topic": topic,
        "created_at": int(at.timestamp()),
        "data": {"type": "notification_event_data", "item": {"type": "conversation", "id": conversation_id}},
    }


def signed(body: dict[str, Any] | bytes, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    # Computed here from the documented scheme, not with the module's own signer.
    digest = hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
    return {"X-Hub-Signature": f"sha1={digest}", "Content-Type": "application/json"}, raw


def verify(headers: dict[str, str], raw: bytes, secrets: list[str] | None = None) -> InboundDelivery:
    configured = {"client_secrets": secrets if secrets is not None else [OLD_SECRET, SECRET]}
    return IntercomInbound(now=lambda: NOW).verify(headers, raw, configured)


def test_a_signed_conversation_notification_is_news_of_that_conversation() -> None:
    # GIVEN a tag notification signed with the app's client secret / WHEN verified
    delivery = verify(*signed(notification()))
    # THEN one piece of news: the conversation, under the notification's id, at its creation time
    [news] = delivery.tickets
    assert (news.platform, news.ticket_id, news.event_id) == (
        "intercom",
        "4711",
        "notif_5a0e1f52-3c0a-4f2b-9c7e-0123456789ab",
    )
    assert news.occurred_at == NOW
    assert news.payload["topic"] == "conversation_part.tag.created"


def test_a_numeric_conversation_id_is_read_as_its_digits() -> None:
    [news] = verify(*signed(notification(4711))).tickets
    assert news.ticket_id == "4711"


@pytest.mark.parametrize("secrets", [[SECRET], [OLD_SECRET, SECRET], [SECRET, OLD_SECRET]])
def test_any_configured_client_secret_verifies_during_a_rotation(secrets: list[str]) -> None:
    assert len(verify(*signed(notification()), secrets=secrets).tickets) == 1


def test_a_notification_signed_with_another_secret_is_refused() -> None:
    headers, raw = signed(notification(), secret="someone-elses-client-secret-000000")
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw)
    assert refused.value.code == "signature_invalid"


def test_the_old_secret_alone_no_longer_verifies_after_it_is_dropped() -> None:
    headers, raw = signed(notification(), secret=OLD_SECRET)
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw, secrets=[SECRET])


@pytest.mark.parametrize(
    "header",
    [
        {},
        {"X-Hub-Signature": ""},
        {"X-Hub-Signature": "sha256=" + "0" * 64},
        {"X-Hub-Signature": "sha1=" + "z" * 40},
        {"X-Hub-Signature": "0" * 40},
    ],
    ids=["missing", "empty", "sha256", "not-hex", "no-prefix"],
)
def test_a_missing_or_malformed_signature_is_refused(header: dict[str, str]) -> None:
    _, raw = signed(notification())
    with pytest.raises(AuthenticationFailed):
        verify(header, raw)


def test_a_body_changed_after_signing_is_refused() -> None:
    headers, raw = signed(notification())
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw.replace(b"4711", b"4712"))
    assert refused.value.code == "signature_invalid"


def test_an_upper_case_signature_header_still_verifies() -> None:
    headers, raw = signed(notification())
    assert verify({"x-hub-signature": headers["X-Hub-Signature"].upper().replace("SHA1=", "sha1=")}, raw).tickets


@pytest.mark.parametrize(
    "age", [timedelta(hours=1), timedelta(hours=7), timedelta(minutes=-6)], ids=["an-hour", "old", "ahead"]
)
def test_a_notification_created_out_of_bounds_is_refused_as_stale(age: timedelta) -> None:
    headers, raw = signed(notification(at=NOW - age))
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw)
    assert refused.value.code == "signature_stale"


def test_a_notification_held_by_intercoms_pause_is_still_taken() -> None:
    # Intercom pauses a failing subscription for 15 minutes, then delivers again.
    assert verify(*signed(notification(at=NOW - timedelta(minutes=59)))).tickets


@pytest.mark.parametrize("created_at", [None, "1765022400", 10**20, True])
def test_a_notification_without_a_usable_creation_time_is_refused(created_at: Any) -> None:
    body = {**notification(), "created_at": created_at}
    with pytest.raises(AuthenticationFailed):
        verify(*signed(body))


@pytest.mark.parametrize("conversation_id", ["٤٧١١", "47 11", "4711/../1", "", None, "abc"])
def test_a_notification_naming_no_plain_conversation_id_is_refused(conversation_id: Any) -> None:
    with pytest.raises(InvalidRequest):
        verify(*signed(notification(conversation_id)))


def test_a_signed_body_that_is_not_utf8_json_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        verify(*signed(b"\xff\xfe{not json"))
    assert refused.value.code == "invalid_json"


def test_a_signed_json_body_that_is_no_notification_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        verify(*signed({"conversation_id": "4711"}))


def test_the_ping_sent_when_the_subscription_is_saved_is_answered_without_news() -> None:
    ping = {**notification(), "topic": "ping", "data": {"type": "notification_event_data", "item": {"type": "ping"}}}
    delivery = verify(*signed(ping))
    assert delivery.tickets == []
    assert delivery.answer.status == 200


def test_a_notification_about_a_contact_is_no_ticket_news() -> None:
    body = notification()
    body["topic"], body["data"]["item"] = "contact.user.created", {"type": "contact", "id": "6762f1"}
    assert verify(*signed(body)).tickets == []


def test_no_configured_secret_refuses_everything() -> None:
    headers, raw = signed(notification())
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw, secrets=[])


def test_a_deleted_conversation_is_no_news() -> None:
    assert verify(*signed(notification(topic="conversation.deleted"))).tickets == []
