"""The refund-request secret document: one set of signing secrets per source system, checked at load, and a
delivery attributed to the one source whose secret verified it (issue 6, items 1 and 7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from refundflow.connectors.standard_webhooks import (
    MIN_SECRET_BYTES,
    SigningSources,
    VerifiedSource,
    verify_source_delivery,
)
from refundflow.errors import AuthenticationFailed, ConfigurationError

BODY = json.dumps({"source": {"system": "helpdesk", "reference": "T-1"}}).encode()


def new_secret(size: int = 32) -> str:
    return "whsec_" + base64.b64encode(os.urandom(size)).decode()


PORTAL, PORTAL_OLD, HELPDESK = new_secret(), new_secret(), new_secret()


def document(**sources: list[str]) -> dict[str, Any]:
    return {"sources": {name: {"signing_secrets": secrets} for name, secrets in sources.items()}}


def signed(secret: str, body: bytes = BODY, *, at: datetime | None = None) -> dict[str, str]:
    moment = at or datetime.now(UTC)
    msg_id = f"msg_{uuid.uuid4().hex}"
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=body.decode()),
    }


SOURCES = SigningSources.from_secret(
    "test", {**document(**{"returns-portal": [PORTAL, PORTAL_OLD]}, helpdesk=[HELPDESK])}
)


@pytest.mark.parametrize(
    ("secret", "source"), [(PORTAL, "returns-portal"), (HELPDESK, "helpdesk")], ids=["returns-portal", "helpdesk"]
)
def test_a_delivery_is_attributed_to_the_source_whose_secret_signed_it(secret: str, source: str) -> None:
    headers = signed(secret)
    verified = verify_source_delivery(headers, BODY, SOURCES)
    assert verified.source == VerifiedSource(source)
    assert verified.delivery_id == headers["webhook-id"]


def test_both_secrets_of_a_rotating_source_verify_as_that_source() -> None:
    # GIVEN a returns portal with its new and its old secret WHEN either signs THEN it is the returns portal
    assert verify_source_delivery(signed(PORTAL), BODY, SOURCES).source.name == "returns-portal"
    assert verify_source_delivery(signed(PORTAL_OLD), BODY, SOURCES).source.name == "returns-portal"


def test_a_delivery_no_source_signed_is_unauthenticated() -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        verify_source_delivery(signed(new_secret()), BODY, SOURCES)
    assert caught.value.code == "signature_invalid"


def test_a_stale_delivery_is_refused_whoever_signed_it() -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        verify_source_delivery(signed(HELPDESK, at=datetime.now(UTC) - timedelta(minutes=10)), BODY, SOURCES)
    assert caught.value.code == "timestamp_out_of_tolerance"


def test_the_old_single_list_shape_is_refused_at_load() -> None:
    # GIVEN the secret document of the previous release: one list of secrets for every source
    with pytest.raises(ConfigurationError, match='"signing_secrets" list is no longer accepted') as caught:
        SigningSources.from_secret("refundflow/refund-requests", {"signing_secrets": [PORTAL]})
    assert "refundflow/refund-requests" in caught.value.message


@pytest.mark.parametrize("size", [16, MIN_SECRET_BYTES - 1])
def test_a_signing_secret_shorter_than_24_bytes_is_refused_at_load(size: int) -> None:
    with pytest.raises(ConfigurationError, match=f"has {size} bytes, at least 24") as caught:
        SigningSources.from_secret("s", document(helpdesk=[HELPDESK, new_secret(size)]))
    assert "source helpdesk" in caught.value.message


def test_a_signing_secret_of_exactly_24_bytes_is_accepted() -> None:
    secret = new_secret(MIN_SECRET_BYTES)
    sources = SigningSources.from_secret("s", document(helpdesk=[secret]))
    assert verify_source_delivery(signed(secret), BODY, sources).source.name == "helpdesk"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({}, '"sources" must be a non-empty object'),
        ({"sources": {}}, '"sources" must be a non-empty object'),
        ({"sources": {"helpdesk": {"signing_secrets": []}}, "extra": 1}, "unknown key(s) extra"),
        ({"sources": {"helpdesk": {"signing_secrets": []}}}, "non-empty list"),
        ({"sources": {"helpdesk": ["whsec_x"]}}, "must be an object"),
        ({"sources": {"help desk": {"signing_secrets": [HELPDESK]}}}, "not a valid source system name"),
        ({"sources": {"helpdesk": {"signing_secrets": ["not-whsec"]}}}, "does not start with whsec_"),
        ({"sources": {"helpdesk": {"signing_secrets": ["whsec_***"]}}}, "not base64"),
        (
            {"sources": {"helpdesk": {"signing_secrets": [HELPDESK], "may_assert_roles": ["finance"]}}},
            "policy's sources: section",
        ),
        (document(helpdesk=[HELPDESK], portal=[HELPDESK]), "shares a signing secret with source helpdesk"),
    ],
)
def test_malformed_secret_documents_are_refused_at_load(value: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SigningSources.from_secret("s", value)
    assert problem in caught.value.message


def test_a_body_that_is_not_utf8_is_verified_on_its_bytes() -> None:
    # GIVEN a help desk delivery whose body is not UTF-8, signed over its raw bytes
    raw = b'{"note": "\xff\xfe caf\xe9"}'
    headers = signed(HELPDESK)
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    key = base64.b64decode(HELPDESK.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + raw, hashlib.sha256).digest()
    headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
    # WHEN verified THEN it is the help desk's (the body is refused later as malformed, 400, not as unsigned)
    assert verify_source_delivery(headers, raw, SOURCES).source.name == "helpdesk"
    # AND a forged one is still unauthenticated
    with pytest.raises(AuthenticationFailed):
        verify_source_delivery(signed(new_secret()), raw, SOURCES)
