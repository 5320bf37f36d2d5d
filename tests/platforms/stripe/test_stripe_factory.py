"""connector(): Stripe's settings and its API secret (``<SecretsPrefix>stripe``) in, one cached provider out; the
webhook verification secret (``<SecretsPrefix>webhooks/stripe``) is the intake's, never the connector's
(moto Secrets Manager)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from refundflow import settings
from refundflow.adapters.secrets import platform_secret_name
from refundflow.errors import ConfigurationError
from refundflow.platforms.stripe.connector import StripeRefundProvider, connector


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # A fresh prefix per test: Powertools caches secrets by name for the process.
    value = f"refundflow/{uuid.uuid4().hex}/"
    monkeypatch.setenv("SECRETS_PREFIX", value)
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9/_sandbox/stripe")
    settings.load.cache_clear()
    connector.cache_clear()
    with mock_aws():
        yield value
    connector.cache_clear()
    settings.load.cache_clear()


def store(name: str, value: object) -> None:
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))


def test_secret_names_follow_the_catalog_convention(prefix: str) -> None:
    # GIVEN a deployment's prefix WHEN the names are asked THEN API and verification secrets are apart
    assert platform_secret_name("stripe") == f"{prefix}stripe"
    assert platform_secret_name("stripe", verification=True) == f"{prefix}webhooks/stripe"


def test_factory_builds_one_provider_from_settings_and_secret(prefix: str) -> None:
    # GIVEN the API secret in its documented shape (no webhook secrets in it)
    store(f"{prefix}stripe", {"api_key": "sk_test_factory"})

    # WHEN the factory is called twice
    provider = connector()

    # THEN it is one provider, configured from both, with no SDK client built yet
    assert isinstance(provider, StripeRefundProvider)
    assert connector() is provider
    assert provider._api_base == "http://127.0.0.1:9/_sandbox/stripe"
    assert provider._client is None
    assert provider.capabilities.find_by_reference


def test_a_rotated_api_key_builds_a_new_provider(prefix: str) -> None:
    # GIVEN a provider built from one key
    store(f"{prefix}stripe", {"api_key": "sk_test_one"})
    first = connector()

    # WHEN the secret gets a new key (read again once the cache is bypassed)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=f"{prefix}stripe", SecretString=json.dumps({"api_key": "sk_test_two"})
    )
    from aws_lambda_powertools.utilities import parameters

    parameters.get_secret(f"{prefix}stripe", transform="json", force_fetch=True)

    # THEN the next call builds a provider with the new key
    second = connector()
    assert second is not first
    assert second._api_key == "sk_test_two"


@pytest.mark.parametrize(
    "secret",
    [{}, {"api_key": "pk_test_publishable"}, {"api_key": 42}, {"webhook_secrets": ["whsec_1"]}],
)
def test_factory_refuses_a_secret_of_another_shape(prefix: str, secret: dict[str, object]) -> None:
    # GIVEN a secret missing the key or holding the wrong kind of key
    store(f"{prefix}stripe", secret)

    # WHEN / THEN the configuration error names the field
    with pytest.raises(ConfigurationError, match="api_key"):
        connector()


def test_factory_without_a_secrets_prefix_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no SECRETS_PREFIX in the environment
    monkeypatch.delenv("SECRETS_PREFIX", raising=False)
    settings.load.cache_clear()
    connector.cache_clear()

    # WHEN / THEN
    with pytest.raises(ConfigurationError, match="SECRETS_PREFIX"):
        connector()
    settings.load.cache_clear()
