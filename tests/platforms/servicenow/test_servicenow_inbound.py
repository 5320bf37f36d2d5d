"""ServiceNow's REST message verification: a shared secret in a header the message sets, or HTTP Basic (ServiceNow
signs nothing); the body only names a record by its sys_id."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.servicenow.inbound import ServiceNowInbound, inbound

SECRET = "servicenow-test-shared-secret-0123456789"
OLD_SECRET = "servicenow-old-shared-secret-9876543210"
CONFIGURED = {"shared_secrets": [OLD_SECRET, SECRET]}
SYS_ID = "9d385017c611228701d22104cc95c371"
BODY = {
    "table": "incident",
    "sys_id": SYS_ID,
    "number": "INC0010001",
    "sys_mod_count": "3",
    "sys_updated_on": "2026-12-06 12:00:00",
    "u_refund_action": "approved",
}


def delivery(body: Any = BODY, *, secret: str | None = SECRET) -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Refundflow-Secret"] = secret
    return headers, raw


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def verify(headers: dict[str, str], raw: bytes, configured: dict[str, Any] = CONFIGURED) -> Any:
    return ServiceNowInbound().verify(headers, raw, configured)


def test_a_rest_message_with_the_secret_names_its_record_as_news() -> None:
    verified = verify(*delivery())
    [news] = verified.tickets
    assert (news.platform, news.ticket_id, news.payload["u_refund_action"]) == ("servicenow", SYS_ID, "approved")
    assert news.event_id == f"{SYS_ID}:3"  # the record's update counter names the delivery
    assert news.occurred_at is not None
    assert news.occurred_at.isoformat() == "2026-12-06T12:00:00+00:00"
    assert verified.answer.status == 200
    assert inbound().name == "servicenow"


def test_the_same_message_sent_again_keeps_its_id_and_the_next_update_gets_another() -> None:
    first = verify(*delivery()).tickets[0]
    again = verify(*delivery()).tickets[0]
    later = verify(*delivery({**BODY, "sys_mod_count": "4"})).tickets[0]
    assert first.event_id == again.event_id
    assert later.event_id != first.event_id


def test_without_an_update_counter_the_body_names_the_delivery() -> None:
    plain = {"sys_id": SYS_ID, "u_refund_action": "approved"}
    first = verify(*delivery(plain)).tickets[0]
    other = verify(*delivery({**plain, "u_refund_action": "cancelled"})).tickets[0]
    assert first.event_id.startswith(f"{SYS_ID}:")
    assert len(first.event_id) == 33 + 32
    assert first.event_id != other.event_id
    assert first.occurred_at is None


def test_both_secrets_of_a_rotation_are_accepted() -> None:
    for secret in (OLD_SECRET, SECRET):
        assert verify(*delivery(secret=secret)).tickets[0].ticket_id == SYS_ID


def test_http_basic_with_the_secret_as_password_is_accepted() -> None:
    _, raw = delivery(secret=None)
    assert verify(basic("servicenow", SECRET), raw).tickets[0].ticket_id == SYS_ID
    configured = {**CONFIGURED, "basic_user": "snc_refunds"}
    assert verify(basic("snc_refunds", OLD_SECRET), raw, configured).tickets[0].ticket_id == SYS_ID


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Refundflow-Secret": "servicenow-test-shared-secret-0123456788"},  # forged: one character off
        {"X-Refundflow-Secret": "servicenow-other-shared-secret-012345678"},  # another endpoint's secret
        basic("servicenow", "servicenow-test-shared-secret-0123456788"),
        basic("admin", SECRET),  # the secret under another user name
    ],
)
def test_a_wrong_secret_is_refused(headers: dict[str, str]) -> None:
    _, raw = delivery(secret=None)
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw)
    assert refused.value.code == "signature_invalid"


def test_no_credentials_at_all_is_refused_as_missing() -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        verify(*delivery(secret=None))
    assert refused.value.code == "signature_missing"
    with pytest.raises(AuthenticationFailed):
        verify({"Authorization": "Basic %%%not-base64"}, delivery(secret=None)[1])


def test_a_short_configured_secret_never_matches_even_when_sent() -> None:
    with pytest.raises(AuthenticationFailed):
        verify(*delivery(secret="short-secret"), {"shared_secrets": ["short-secret"]})
    with pytest.raises(AuthenticationFailed):
        verify(*delivery(), {"shared_secrets": []})
    with pytest.raises(AuthenticationFailed):
        verify(*delivery(), {})


def test_the_secret_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(AuthenticationFailed):
        verify(*delivery(b"\xff\xfe not json", secret="servicenow-forged-secret-000000000000"))


@pytest.mark.parametrize(
    "sys_id",
    [
        SYS_ID.upper(),  # sys_ids are lowercase hex
        SYS_ID + "1",
        SYS_ID[:-1],
        "../" + SYS_ID[3:],
        "INC0010001",
        "",
        None,
        12345,
        "٤" * 32,
    ],
)
def test_an_odd_sys_id_is_refused(sys_id: Any) -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery({**BODY, "sys_id": sys_id}))


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00", b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_utf8_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery(raw))


def test_a_table_that_is_not_a_table_name_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery({**BODY, "table": "incident^ORDERBYsys_id"}))
    assert verify(*delivery({**BODY, "table": "sn_customerservice_case"})).tickets[0].ticket_id == SYS_ID


def test_an_odd_update_counter_or_time_is_not_believed() -> None:
    news = verify(*delivery({**BODY, "sys_mod_count": "3; drop", "sys_updated_on": "2026-13-45 99:99:99"})).tickets[0]
    assert news.event_id != f"{SYS_ID}:3; drop"
    assert news.event_id.startswith(f"{SYS_ID}:")
    assert news.occurred_at is None
