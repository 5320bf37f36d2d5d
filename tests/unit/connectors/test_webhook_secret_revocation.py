"""Webhook secrets are read through the secrets cache (SECRETS_CACHE_SECONDS): a secret revoked in Secrets
Manager stops verifying deliveries once the cache expires, without a cold start (issue 6, item 7).

Powertools' parameter cache reads its expiry from ``datetime.now()``; the tests move that clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws
from standardwebhooks.webhooks import Webhook

from refundflow import settings
from refundflow.adapters.secrets import get_json_secret, platform_secret_name
from refundflow.connectors.standard_webhooks import SigningSources, verify_source_delivery
from refundflow.errors import AuthenticationFailed
from refundflow.platforms.stripe.inbound import StripeInbound

BODY = b'{"id": "evt_1", "object": "event", "type": "x", "created": 1, "data": {"object": {}}}'
TTL = 60


class Clock:
    """Stands in for the ``datetime`` of Powertools' parameter cache."""

    def __init__(self) -> None:
        self.at = datetime.now()

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    from aws_lambda_powertools.utilities.parameters import base

    moved = Clock()
    monkeypatch.setattr(base, "datetime", moved)
    monkeypatch.setenv("SECRETS_CACHE_SECONDS", str(TTL))
    settings.load.cache_clear()
    with mock_aws():
        yield moved
    settings.load.cache_clear()


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def standard_signed(secret: str) -> dict[str, str]:
    at = datetime.now(UTC)
    msg_id = f"msg_{uuid.uuid4().hex}"
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=BODY.decode()),
    }


def refund_request_source(name: str, headers: dict[str, str]) -> str:
    """What receive_webhook does for POST /refund-requests: the secret through the cache, then the delivery."""
    return verify_source_delivery(headers, BODY, SigningSources.from_secret(name, get_json_secret(name))).source.name


def test_a_revoked_refund_request_secret_stops_working_once_the_cache_expires(clock: Clock) -> None:
    name = f"refundflow/refund-requests/{uuid.uuid4().hex}"
    secrets = boto3.client("secretsmanager")
    revoked = whsec()
    # GIVEN the help desk's secret in use, then replaced in Secrets Manager
    secrets.create_secret(Name=name, SecretString=json.dumps({"sources": {"helpdesk": {"signing_secrets": [revoked]}}}))
    assert refund_request_source(name, standard_signed(revoked)) == "helpdesk"
    replacement = {"sources": {"helpdesk": {"signing_secrets": [whsec()]}}}
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps(replacement))
    # WHEN a delivery signed with it arrives within the cache's lifetime THEN the cached secret still verifies it
    clock.at += timedelta(seconds=TTL - 1)
    assert refund_request_source(name, standard_signed(revoked)) == "helpdesk"
    # AND once the cache expired it is refused, in the same process
    clock.at += timedelta(seconds=2)
    with pytest.raises(AuthenticationFailed):
        refund_request_source(name, standard_signed(revoked))


def stripe_signed(secret: str) -> dict[str, str]:
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + BODY, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={digest}"}


def stripe_delivery(headers: dict[str, str]) -> int:
    """What intake does for POST /webhooks/stripe: the verification secret through the cache, then the delivery."""
    secret = get_json_secret(platform_secret_name("stripe", verification=True))
    return len(StripeInbound().verify(headers, BODY, secret).events)


def test_a_revoked_stripe_webhook_secret_stops_working_once_the_cache_expires(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"refundflow/{uuid.uuid4().hex}/"
    monkeypatch.setenv("SECRETS_PREFIX", prefix)
    settings.load.cache_clear()
    name = f"{prefix}webhooks/stripe"
    secrets = boto3.client("secretsmanager")
    # GIVEN the Stripe endpoint's verification secret in use by a warm intake, then rolled in Secrets Manager
    secrets.create_secret(Name=name, SecretString=json.dumps({"webhook_secrets": ["whsec_a"]}))
    assert stripe_delivery(stripe_signed("whsec_a")) == 1
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps({"webhook_secrets": ["whsec_b"]}))
    # WHEN the cache expires
    clock.at += timedelta(seconds=TTL + 1)
    # THEN the old secret is refused and the new one accepted, without a cold start
    with pytest.raises(AuthenticationFailed):
        stripe_delivery(stripe_signed("whsec_a"))
    assert stripe_delivery(stripe_signed("whsec_b")) == 1
