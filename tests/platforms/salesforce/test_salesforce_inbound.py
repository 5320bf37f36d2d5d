"""The Flow HTTP Callout's verification: the External Credential's shared-secret header, the org, the case id."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.salesforce.ids import case_id18, checksum, record_id18
from refundflow.platforms.salesforce.inbound import SalesforceInbound

SECRET = "salesforce-inbound-secret-0123456789abcdef"
NEXT_SECRET = "salesforce-inbound-next-secret-0123456789ab"
ORG = "00D5e000000RfSiEAK"
CASE_15 = "5005e000001AbCd"
CASE_18 = CASE_15 + checksum(CASE_15)
VERIFICATION: dict[str, Any] = {"shared_secrets": [SECRET], "organization_id": ORG}


def callout(**overrides: Any) -> bytes:
    body = {
        "caseId": CASE_18,
        "organizationId": ORG,
        "refundAction": "Approved",
        "lastModifiedDate": "2026-12-06T20:15:00.000+0000",
        **overrides,
    }
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def verify(body: bytes, secret: str = SECRET, verification: dict[str, Any] | None = None) -> Any:
    headers = {"Content-Type": "application/json", "X-Refundflow-Secret": secret}
    return SalesforceInbound().verify(headers, body, verification if verification is not None else VERIFICATION)


def test_a_good_callout_is_news_about_its_case() -> None:
    delivered = verify(callout())
    [news] = delivered.tickets
    assert news.platform == "salesforce"
    assert news.ticket_id == CASE_18
    assert news.event_id == f"{CASE_18}:2026-12-06T20:15:00.000+0000"
    assert news.occurred_at is not None
    assert news.occurred_at.isoformat() == "2026-12-06T20:15:00+00:00"
    assert delivered.answer.body == '{"received": true}'


def test_a_15_character_case_id_becomes_the_18_character_one() -> None:
    [news] = verify(callout(caseId=CASE_15)).tickets
    assert news.ticket_id == CASE_18


def test_without_lastmodifieddate_the_event_id_is_the_bodys_hash() -> None:
    body = callout(lastModifiedDate=None)
    [news] = verify(body).tickets
    assert news.event_id == f"{CASE_18}:{hashlib.sha256(body).hexdigest()[:32]}"
    assert news.occurred_at is None


def test_either_secret_verifies_while_rotating() -> None:
    both = {"shared_secrets": [SECRET, NEXT_SECRET]}
    assert verify(callout(), SECRET, both).tickets
    assert verify(callout(), NEXT_SECRET, both).tickets


@pytest.mark.parametrize("sent", ["", SECRET[:-1] + "x", NEXT_SECRET, SECRET + " "])
def test_a_missing_or_other_secret_is_refused(sent: str) -> None:
    with pytest.raises(AuthenticationFailed):
        verify(callout(), sent)


def test_a_short_configured_secret_never_matches() -> None:
    with pytest.raises(AuthenticationFailed):
        verify(callout(), "short", {"shared_secrets": ["short"]})


def test_no_configured_secret_refuses_everything() -> None:
    with pytest.raises(AuthenticationFailed):
        verify(callout(), SECRET, {"shared_secrets": []})


@pytest.mark.parametrize("org", ["00D5e000000RfSiXXX", "00D5e000000OtHeR", None, "005000000000001"])
def test_a_callout_from_another_org_is_refused(org: str | None) -> None:
    with pytest.raises(AuthenticationFailed):
        verify(callout(organizationId=org))


def test_the_org_is_not_checked_when_none_is_configured() -> None:
    assert verify(callout(organizationId=None), SECRET, {"shared_secrets": [SECRET]}).tickets


def test_the_org_may_be_sent_as_15_characters() -> None:
    assert verify(callout(organizationId=ORG[:15])).tickets


@pytest.mark.parametrize(
    "case_id",
    [
        "",
        "500",
        "../5005e000001AbCd",
        "5005e000001AbCdXYZ",  # wrong checksum
        "0035e000001AbCd",  # a contact, not a case
        "5005e000001AbC\u0661",  # another script's digit
        "5005e000001AbCd?x",
        "5005e000001AbCdAAA1",
        12345,
        None,
    ],
)
def test_an_odd_case_id_is_refused(case_id: Any) -> None:
    with pytest.raises(InvalidRequest):
        verify(callout(caseId=case_id) if case_id is not None else json.dumps({"organizationId": ORG}).encode())


@pytest.mark.parametrize("body", [b"\xff\xfe{}", b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_utf8_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        verify(body)


def test_a_changed_body_is_still_only_news() -> None:
    """Salesforce signs nothing: a changed action verifies, and the case is what gets read."""
    [news] = verify(callout(refundAction="Cancelled")).tickets
    assert news.ticket_id == CASE_18
    assert news.payload["refundAction"] == "Cancelled"


def test_the_checksum_follows_the_letters_case() -> None:
    assert checksum("00D000000000062") == "EAA"  # D is bit 2 of the first block: 4
    assert checksum("A0000B0000C0000") == "BBB"  # bit 0 of each block
    assert checksum("0000Z0000Z0000Z") == "QQQ"  # bit 4 of each block: 16
    assert checksum("ZZZZZZZZZZZZZZZ") == "555"  # all five bits: 31
    assert record_id18("00d000000000062") != record_id18("00D000000000062")
    assert case_id18(CASE_18.lower()) is None  # the 18 characters carry their case
    assert case_id18(CASE_18) == CASE_18
