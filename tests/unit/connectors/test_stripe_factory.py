"""stripe_provider(): settings and the JSON secret in, one cached provider out (moto Secrets Manager)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from refundflow.connectors.stripe import StripeRefundProvider, stripe_provider
from refundflow.errors import AuthenticationFailed, ConfigurationError


@pytest.fixture
def secret_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # A fresh name per test: Powertools caches secrets by name for the process.
    name = f"refundflow/stripe/{uuid.uuid4().hex}"
    monkeypatch.setenv("STRIPE_SECRET_NAME", name)
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9/_sandbox/stripe")
    monkeypatch.setenv("STRIPE_WEBHOOK_TOLERANCE_SECONDS", "120")
    stripe_provider.cache_clear()
    with mock_aws():
        yield name
    stripe_provider.cache_clear()


def signed(body: bytes, secret: str, at: float) -> str:
    timestamp = int(at)
    return f"t={timestamp},v1={hmac.new(secret.encode(), f'{timestamp}.'.encode() + body, hashlib.sha256).hexdigest()}"


def store(name: str, value: object) -> None:
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))


def test_factory_builds_one_provider_from_settings_and_secret(secret_name: str) -> None:
    # GIVEN the secret in its documented shape
    store(secret_name, {"api_key": "sk_test_factory", "webhook_secrets": ["whsec_new", "whsec_old"]})

    # WHEN the factory is called twice
    provider = stripe_provider()

    # THEN it is one provider, configured from both, with no SDK client built yet
    assert isinstance(provider, StripeRefundProvider)
    assert stripe_provider() is provider
    assert provider._api_base == "http://127.0.0.1:9/_sandbox/stripe"
    assert provider._client is None
    # the old secret verifies (rotation) within the configured 120 s, and not beyond
    body = b'{"id": "evt_1", "object": "event", "type": "x", "created": 1, "data": {"object": {}}}'
    assert provider.parse_webhook({"Stripe-Signature": signed(body, "whsec_old", time.time() - 100)}, body)
    with pytest.raises(AuthenticationFailed, match="old"):
        provider.parse_webhook({"Stripe-Signature": signed(body, "whsec_old", time.time() - 200)}, body)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ({"webhook_secrets": ["whsec_1"]}, "api_key"),
        ({"api_key": "pk_test_publishable", "webhook_secrets": ["whsec_1"]}, "api_key"),
        ({"api_key": "sk_test_1"}, "webhook_secrets"),
        ({"api_key": "sk_test_1", "webhook_secrets": []}, "webhook_secrets"),
        ({"api_key": "sk_test_1", "webhook_secrets": "whsec_1"}, "webhook_secrets"),
    ],
)
def test_factory_refuses_a_secret_of_another_shape(secret_name: str, secret: dict[str, object], reason: str) -> None:
    # GIVEN a secret missing a field or holding the wrong kind of key
    store(secret_name, secret)

    # WHEN / THEN the configuration error names the field
    with pytest.raises(ConfigurationError, match=reason):
        stripe_provider()


def test_factory_without_secret_name_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no STRIPE_SECRET_NAME in the environment
    monkeypatch.delenv("STRIPE_SECRET_NAME", raising=False)
    stripe_provider.cache_clear()

    # WHEN / THEN
    with pytest.raises(ConfigurationError, match="STRIPE_SECRET_NAME"):
        stripe_provider()
