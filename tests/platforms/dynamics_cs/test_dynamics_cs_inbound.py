"""Dynamics 365 Customer Service deliveries: the Power Automate flow's HTTP action with a shared secret header
(Power Automate signs nothing); the case id must be a GUID."""

from __future__ import annotations

import json
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.dynamics_cs.inbound import DynamicsCaseInbound, inbound

SECRET = "dynamics-cs-test-flow-secret-0123456789"
OLD_SECRET = "dynamics-cs-old-flow-secret-9876543210"
CONFIGURED = {"shared_secrets": [OLD_SECRET, SECRET]}
CASE = "5b1c7f2e-9a0d-4e8b-b6a1-2f3c4d5e6f70"


def delivery(
    body: Any, *, secret: str | None = SECRET, header: str = "X-Refundflow-Secret"
) -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[header] = secret
    return headers, raw


def flow_body(**changes: Any) -> dict[str, Any]:
    return {
        "incidentid": CASE,
        "ticketnumber": "CAS-01001-R3F7D9",
        "statecode": 1,
        "new_refundaction": 100000001,
        "modifiedon": "2026-12-06T12:00:00Z",
        **changes,
    }


def verify(headers: dict[str, str], raw: bytes, configured: dict[str, Any] = CONFIGURED) -> Any:
    return DynamicsCaseInbound().verify(headers, raw, configured)


def test_a_delivery_with_the_secret_names_its_case_as_news() -> None:
    verified = verify(*delivery(flow_body()))
    [news] = verified.tickets
    assert (news.platform, news.ticket_id, news.payload["ticketnumber"]) == ("dynamics_cs", CASE, "CAS-01001-R3F7D9")
    assert news.event_id == f"{CASE}:2026-12-06T12:00:00Z:1:100000001"
    assert news.occurred_at is not None
    assert news.occurred_at.isoformat() == "2026-12-06T12:00:00+00:00"
    assert verified.answer.status == 200
    assert not verified.events


def test_a_retry_keeps_its_id_and_another_change_in_the_same_second_gets_another() -> None:
    first = verify(*delivery(flow_body())).tickets[0]
    again = verify(*delivery(flow_body())).tickets[0]
    reopened = verify(*delivery(flow_body(statecode=0, new_refundaction=100000002))).tickets[0]
    assert first.event_id == again.event_id
    assert reopened.event_id != first.event_id


def test_a_body_without_modifiedon_is_named_by_its_digest() -> None:
    body = flow_body()
    del body["modifiedon"]
    news = verify(*delivery(body)).tickets[0]
    assert news.event_id.startswith(f"{CASE}:")
    assert len(news.event_id) == len(CASE) + 1 + 32
    assert news.occurred_at is None


def test_an_upper_case_guid_is_the_same_case() -> None:
    assert verify(*delivery(flow_body(incidentid=CASE.upper()))).tickets[0].ticket_id == CASE


def test_both_secrets_of_a_rotation_are_accepted_whatever_the_header_case() -> None:
    for secret in (OLD_SECRET, SECRET):
        assert verify(*delivery(flow_body(), secret=secret, header="x-refundflow-secret")).tickets[0].ticket_id == CASE


@pytest.mark.parametrize(
    ("secret", "code"),
    [(None, "signature_missing"), ("", "signature_missing"), (SECRET[:-1] + "x", "signature_invalid")],
)
def test_a_missing_or_other_secret_is_refused(secret: str | None, code: str) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        verify(*delivery(flow_body(), secret=secret))
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ({}, SECRET),
        ({"shared_secrets": []}, SECRET),
        ({"shared_secrets": SECRET}, SECRET),  # a string, not a list
        ({"shared_secrets": ["short"]}, "short"),  # shorter than MIN_SHARED_SECRET_LENGTH: a mistake, never a match
    ],
)
def test_no_usable_secret_configured_refuses_everything(configured: dict[str, Any], sent: str) -> None:
    with pytest.raises(AuthenticationFailed):
        verify(*delivery(flow_body(), secret=sent), configured)


@pytest.mark.parametrize(
    "incident",
    [
        None,
        4711,
        "",
        "../incidents",
        CASE + "0",
        CASE[:-1],
        "{" + CASE + "}",
        CASE.replace("-", ""),
        "\u0665b1c7f2e-9a0d-4e8b-b6a1-2f3c4d5e6f70",  # an Arabic-Indic digit five
        CASE + ")?$select=title",
        True,
    ],
)
def test_a_case_id_that_is_not_a_guid_is_refused(incident: Any) -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery(flow_body(incidentid=incident)))


@pytest.mark.parametrize("raw", [b"\xff\xfe{", b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_utf8_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        verify(*delivery(raw))


def test_the_secret_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(AuthenticationFailed):
        verify(*delivery(b"\xff\xfe{", secret=SECRET[:-1] + "x"))


def test_the_factory_gives_the_platforms_inbound() -> None:
    assert inbound().name == "dynamics_cs"


def test_a_changed_body_is_only_news_about_the_case_it_names() -> None:
    # GIVEN a body changed by whoever holds the secret (Power Automate signs nothing): another action, a claim
    changed = flow_body(new_refundaction=100000001, statecode=1, approved_by="team_lead")
    # WHEN intake verifies it THEN it names the case and nothing more: the function reads the case from the API
    [news] = verify(*delivery(changed)).tickets
    assert news.ticket_id == CASE
    assert news.payload["approved_by"] == "team_lead"  # carried as the body's news, never read by the mapping
