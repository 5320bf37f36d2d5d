"""Gorgias HTTP integration calls at intake: the bearer token (rotation, constant-time compare), the ticket id
checked before it goes anywhere, and the event id stable across Gorgias's retries of one update."""

from __future__ import annotations

import json
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.platforms.gorgias.inbound import GorgiasInbound, tag_names

TOKEN = "gorgias-test-integration-token-0123456789"
OLD_TOKEN = "gorgias-old-integration-token-9876543210"
SECRET = {"tokens": [OLD_TOKEN, TOKEN]}
UPDATED = "2026-12-06T12:00:00.123456+00:00"


def call(body: Any, token: str | None = TOKEN, scheme: str = "Bearer") -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    return headers, raw


def body(**changes: Any) -> dict[str, Any]:
    return {"ticket_id": "4711", "updated_datetime": UPDATED, "tags": "refund, refund_approved", **changes}


def test_a_call_with_our_token_names_its_ticket_as_news() -> None:
    # GIVEN a call the HTTP integration sends after the ticket was tagged
    headers, raw = call(body())
    # WHEN intake verifies it
    delivery = GorgiasInbound().verify(headers, raw, SECRET)
    # THEN it is news of that ticket, at the update's time
    [news] = delivery.tickets
    assert (news.platform, news.ticket_id) == ("gorgias", "4711")
    assert news.event_id.startswith("4711:")
    assert news.occurred_at is not None
    assert news.occurred_at.isoformat() == UPDATED
    assert json.loads(delivery.answer.body) == {"received": True}


def event_id(**changes: Any) -> str:
    return str(GorgiasInbound().verify(*call(body(**changes)), SECRET).tickets[0].event_id)


def test_a_retried_call_and_the_calls_our_own_writes_cause_share_the_event_id_of_the_state_applied() -> None:
    applied = event_id()
    assert event_id() == applied  # Gorgias retried the call
    later = "2026-12-06T12:00:05+00:00"
    assert event_id(updated_datetime=later, tags="refund, refund_approved, refund_processing") == applied
    assert event_id(updated_datetime=later, tags="refund_issued, refund_approved, refund") == applied


@pytest.mark.parametrize(
    "change",
    [
        {"tags": "refund, refund_approved, refund_cancelled"},
        {"tags": "refund"},
        {"status": "closed"},
        {"assignee_team_id": "7001"},
        {"custom_fields": '{"5001": "10.00"}'},
    ],
)
def test_a_change_an_agent_makes_is_a_new_event(change: dict[str, Any]) -> None:
    assert event_id(**change) != event_id()


def test_without_tags_in_the_template_every_update_is_its_own_event() -> None:
    without = body()
    del without["tags"]
    [news] = GorgiasInbound().verify(*call(without), SECRET).tickets
    assert news.event_id == f"4711@{UPDATED}"


@pytest.mark.parametrize(
    "rendered",
    [
        "refund, refund_approved",
        "[refund, refund_approved]",
        ["refund", "refund_approved"],
        [{"id": 1, "name": "refund"}, {"id": 2, "name": "refund_approved"}],
        "[{'id': 1, 'name': 'refund'}, {'id': 2, 'name': 'refund_approved'}]",
        '[{"name": "refund_approved"}, {"name": "refund"}]',
    ],
)
def test_the_tags_are_read_however_gorgias_renders_them(rendered: Any) -> None:
    assert tag_names(rendered) == ["refund", "refund_approved"]


def test_the_token_being_replaced_is_still_taken_while_both_are_listed() -> None:
    [news] = GorgiasInbound().verify(*call(body(), token=OLD_TOKEN), SECRET).tickets
    assert news.ticket_id == "4711"


@pytest.mark.parametrize(
    ("token", "scheme", "code"),
    [
        (None, "Bearer", "signature_missing"),
        ("", "Bearer", "signature_missing"),
        (TOKEN, "Basic", "signature_missing"),
        ("gorgias-forged-integration-token-000000000", "Bearer", "signature_invalid"),
        (TOKEN + "x", "Bearer", "signature_invalid"),
    ],
)
def test_a_call_without_one_of_our_tokens_is_refused(token: str | None, scheme: str, code: str) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        GorgiasInbound().verify(*call(body(), token=token, scheme=scheme), SECRET)
    assert refused.value.code == code


def test_a_token_that_is_no_longer_listed_is_refused() -> None:
    with pytest.raises(AuthenticationFailed):
        GorgiasInbound().verify(*call(body(), token=OLD_TOKEN), {"tokens": [TOKEN]})


@pytest.mark.parametrize("secret", [{}, {"tokens": []}, {"tokens": ["short"]}, {"tokens": "not-a-list"}])
def test_a_verification_secret_of_another_shape_is_a_configuration_error(secret: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        GorgiasInbound().verify(*call(body()), secret)


@pytest.mark.parametrize("ticket_id", ["٤٧١١", "47 11", "4711/../1", "", None, True, "4711?x=1"])
def test_a_call_naming_no_plain_ticket_id_is_refused(ticket_id: Any) -> None:
    with pytest.raises(InvalidRequest):
        GorgiasInbound().verify(*call(body(ticket_id=ticket_id)), SECRET)


def test_a_call_without_its_update_time_is_refused() -> None:
    without = body()
    del without["updated_datetime"]
    with pytest.raises(InvalidRequest):
        GorgiasInbound().verify(*call(without), SECRET)


@pytest.mark.parametrize("raw", [b"\xff\xfe not utf-8", b"{not json", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_refused_after_the_token(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        GorgiasInbound().verify(*call(raw), SECRET)
    with pytest.raises(AuthenticationFailed):
        GorgiasInbound().verify(*call(raw, token="gorgias-forged-integration-token-000000000"), SECRET)


def test_an_update_of_a_ticket_without_refund_tags_is_acknowledged_and_forwarded_to_nobody() -> None:
    delivery = GorgiasInbound().verify(*call(body(tags="vip, shipping")), SECRET)
    assert delivery.tickets == []
    assert delivery.answer.status == 200


def test_a_template_without_tags_forwards_every_update() -> None:
    without = body()
    del without["tags"]
    assert [news.ticket_id for news in GorgiasInbound().verify(*call(without), SECRET).tickets] == ["4711"]


def test_the_sample_calls_in_events_read_as_news_or_as_nothing() -> None:
    from pathlib import Path

    samples = Path(__file__).parents[3] / "events" / "gorgias"
    forwarded = {
        path.name: [news.ticket_id for news in GorgiasInbound().verify(*call(path.read_bytes()), SECRET).tickets]
        for path in sorted(samples.glob("gorgias_*.json"))
    }
    assert forwarded == {
        "gorgias_refund_approved.json": ["1017"],
        "gorgias_refund_cancelled.json": ["1017"],
        "gorgias_refund_requested.json": ["1018"],
        "gorgias_ticket_updated_no_refund.json": [],
    }


def test_a_tag_named_like_a_key_is_still_a_tag_and_our_state_tags_are_the_connectors() -> None:
    from refundflow.platforms.gorgias.connector import STATE_TAGS
    from refundflow.platforms.gorgias.inbound import OWN_TAGS

    assert tag_names("rename, refund") == ["refund", "rename"]
    assert set(STATE_TAGS) == OWN_TAGS
