"""HubSpot's v3 request signature on workflow webhooks, as intake verifies it (pure: no stack, no simulator)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.platforms.hubspot.inbound import HubSpotInbound, sign, signed_uri

SECRET = "hubspot-client-secret-0123456789abcdef"
URL = "https://refunds.example.com/webhooks/hubspot"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
VERIFICATION = {"client_secrets": ["old-" + SECRET, SECRET], "webhook_urls": [URL]}


def millis(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def delivery(
    body: dict[str, Any] | bytes, *, at: datetime = NOW, secret: str = SECRET, url: str = URL
) -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = millis(at)
    return {"X-HubSpot-Signature-v3": sign(secret, "POST", url, raw, stamp), "X-HubSpot-Request-Timestamp": stamp}, raw


def verify(headers: dict[str, str], raw: bytes, secret: dict[str, Any] | None = None) -> Any:
    return HubSpotInbound(now=lambda: NOW).verify(headers, raw, VERIFICATION if secret is None else secret)


def test_the_signature_is_hubspots_v3_hmac_of_method_uri_body_and_timestamp() -> None:
    # GIVEN the source string HubSpot documents, computed here by hand
    raw, stamp = b'{"hs_object_id":"4711"}', "1765022400000"
    source = f"POST{URL}".encode() + raw + stamp.encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), source, hashlib.sha256).digest()).decode()
    # THEN the module signs the same
    assert sign(SECRET, "POST", URL, raw, stamp) == expected


def test_a_signed_delivery_names_its_ticket_as_news() -> None:
    headers, raw = delivery({"hs_object_id": "4711", "hs_pipeline_stage": "90000002"})
    news = verify(headers, raw).tickets
    assert [(item.platform, item.ticket_id, item.occurred_at) for item in news] == [("hubspot", "4711", NOW)]
    assert news[0].payload["hs_pipeline_stage"] == "90000002"


def test_a_retry_of_the_same_enrolment_has_the_same_event_id_and_the_next_enrolment_another() -> None:
    # GIVEN the same body sent twice (HubSpot's retry, a new timestamp) and a later enrolment of the ticket
    first = verify(*delivery({"hs_object_id": "4711", "hs_lastmodifieddate": "1"})).tickets[0]
    retry = verify(*delivery({"hs_object_id": "4711", "hs_lastmodifieddate": "1"}, at=NOW + timedelta(minutes=1)))
    later = verify(*delivery({"hs_object_id": "4711", "hs_lastmodifieddate": "2"})).tickets[0]
    # THEN the retry is the same event, the new enrolment a new one
    assert retry.tickets[0].event_id == first.event_id
    assert later.event_id != first.event_id


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret": "another-secret-of-enough-length-000"}, "signature_invalid"),
        ({"url": "https://attacker.example/webhooks/hubspot"}, "signature_invalid"),
        ({"at": NOW - timedelta(minutes=5, seconds=1)}, "signature_stale"),
        ({"at": NOW + timedelta(minutes=5, seconds=1)}, "signature_stale"),
    ],
    ids=["other-secret", "other-url", "stale", "future"],
)
def test_a_forged_or_stale_delivery_is_refused(change: dict[str, Any], code: str) -> None:
    headers, raw = delivery({"hs_object_id": "4711"}, **change)
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw)
    assert refused.value.code == code


def test_a_delivery_just_inside_five_minutes_is_taken() -> None:
    headers, raw = delivery({"hs_object_id": "4711"}, at=NOW - timedelta(minutes=4, seconds=59))
    assert verify(headers, raw).tickets[0].ticket_id == "4711"


def test_a_body_changed_after_signing_is_refused() -> None:
    headers, raw = delivery({"hs_object_id": "4711"})
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw.replace(b"4711", b"4712"))


def test_a_timestamp_changed_after_signing_is_refused() -> None:
    headers, raw = delivery({"hs_object_id": "4711"})
    headers["X-HubSpot-Request-Timestamp"] = str(int(headers["X-HubSpot-Request-Timestamp"]) + 1)
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, raw)
    assert refused.value.code == "signature_invalid"


@pytest.mark.parametrize("headers", [{}, {"X-HubSpot-Signature-v3": "abc"}, {"X-HubSpot-Request-Timestamp": "1"}])
def test_a_delivery_without_the_v3_headers_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        verify(headers, b'{"hs_object_id": "4711"}')
    assert refused.value.code == "signature_missing"


@pytest.mark.parametrize("stamp", ["1765022400000.5", "-1", "2026-12-06T12:00:00Z", "١٧٦٥٠٢٢٤٠٠٠٠٠"])
def test_a_timestamp_that_is_not_milliseconds_is_refused(stamp: str) -> None:
    headers, raw = delivery({"hs_object_id": "4711"})
    headers["X-HubSpot-Request-Timestamp"] = stamp
    with pytest.raises(AuthenticationFailed):
        verify(headers, raw)


def test_either_client_secret_verifies_while_it_is_rotated() -> None:
    # GIVEN deliveries signed with the old and with the new secret / THEN both verify
    for secret in ("old-" + SECRET, SECRET):
        assert verify(*delivery({"hs_object_id": "4711"}, secret=secret)).tickets[0].ticket_id == "4711"
    # AND once the old one is dropped from the secret, its signature no longer verifies
    with pytest.raises(AuthenticationFailed):
        verify(
            *delivery({"hs_object_id": "4711"}, secret="old-" + SECRET),
            {"client_secrets": [SECRET], "webhook_urls": [URL]},
        )


def test_the_webhook_url_is_signed_with_hubspots_listed_encodings_decoded() -> None:
    # GIVEN a workflow URL with a query whose characters HubSpot decodes before signing
    encoded = "https://refunds.example.com/webhooks/hubspot?tag=a%3Ab%2Cc%40d"
    decoded = "https://refunds.example.com/webhooks/hubspot?tag=a:b,c@d"
    assert signed_uri(encoded) == decoded
    assert signed_uri("https://x.example/a%2fb%20c") == "https://x.example/a/b%20c"  # %20 is not on the list
    # WHEN HubSpot signs the decoded URI and our secret names the URL as entered in the workflow
    stamp = millis(NOW)
    raw = b'{"hs_object_id":"4711"}'
    headers = {
        "X-HubSpot-Signature-v3": sign(SECRET, "POST", decoded, raw, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
    }
    # THEN it verifies
    assert verify(headers, raw, {"client_secrets": [SECRET], "webhook_urls": [encoded]}).tickets[0].ticket_id == "4711"


@pytest.mark.parametrize(
    "body",
    [
        {"hs_object_id": "٤٧١١"},
        {"hs_object_id": "47 11"},
        {"hs_object_id": "4711/../1"},
        {"hs_object_id": ""},
        {"hs_object_id": True},
        {"hs_object_id": "4711", "objectId": 4712},
        {"subject": "no id"},
    ],
    ids=["arabic-digits", "space", "path", "empty", "bool", "two-tickets", "none"],
)
def test_a_delivery_naming_no_plain_ticket_id_is_refused(body: dict[str, Any]) -> None:
    headers, raw = delivery(body)
    with pytest.raises(InvalidRequest) as refused:
        verify(headers, raw)
    assert refused.value.code == "invalid_ticket_id"


def test_the_object_id_of_an_all_properties_body_names_the_ticket() -> None:
    headers, raw = delivery({"objectId": 4711, "properties": {}})
    assert verify(headers, raw).tickets[0].ticket_id == "4711"


@pytest.mark.parametrize("raw", [b"\xff\xfe{not utf-8", b"[1, 2]", b"not json"], ids=["non-utf8", "array", "text"])
def test_a_signed_body_that_is_not_a_json_object_is_refused_after_verification(raw: bytes) -> None:
    headers, _ = delivery(raw)
    with pytest.raises(InvalidRequest) as refused:
        verify(headers, raw)
    assert refused.value.code == "invalid_json"


@pytest.mark.parametrize(
    "secret",
    [{}, {"client_secrets": [SECRET]}, {"client_secrets": "one", "webhook_urls": [URL]}, {"client_secrets": [""]}],
)
def test_a_verification_secret_of_another_shape_is_a_configuration_error(secret: dict[str, Any]) -> None:
    headers, raw = delivery({"hs_object_id": "4711"})
    with pytest.raises(ConfigurationError):
        verify(headers, raw, secret)
