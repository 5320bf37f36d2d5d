"""connector(): ADYEN_API_BASE and Adyen's API secret (``<SecretsPrefix>adyen``) in, one cached provider out; a
rotated key gives a new provider; a secret of another shape is a configuration error (moto Secrets Manager)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from refundflow import settings
from refundflow.errors import ConfigurationError
from refundflow.platforms.adyen.connector import AdyenRefundProvider, connector


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # A fresh prefix per test: Powertools caches secrets by name for the process.
    value = f"refundflow/{uuid.uuid4().hex}/"
    monkeypatch.setenv("SECRETS_PREFIX", value)
    monkeypatch.setenv("ADYEN_API_BASE", "http://127.0.0.1:9/_sandbox/adyen/checkout/v71")
    settings.load.cache_clear()
    connector.cache_clear()
    with mock_aws():
        yield value
    connector.cache_clear()
    settings.load.cache_clear()


def store(name: str, value: object) -> None:
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))


def test_factory_builds_one_provider_from_settings_and_secret(prefix: str) -> None:
    # GIVEN the API secret in its documented shape
    store(f"{prefix}adyen", {"api_key": "AQE_factory", "merchant_account": "FactoryECOM"})
    # WHEN the factory is called twice
    provider = connector()
    # THEN one provider, configured from both, with no HTTP session opened yet
    assert isinstance(provider, AdyenRefundProvider)
    assert connector() is provider
    assert (provider._api_key, provider._merchant_account) == ("AQE_factory", "FactoryECOM")
    assert provider._http is None  # built at first use, not in the constructor
    assert provider.http.base_url == "http://127.0.0.1:9/_sandbox/adyen/checkout/v71"
    assert provider.capabilities.outcome == "webhook_only"


@pytest.mark.parametrize(
    "secret",
    [
        {"api_key": "AQE_x"},
        {"merchant_account": "M"},
        {"api_key": "", "merchant_account": "M"},
        {"api_key": 1, "merchant_account": "M"},
    ],
    ids=["no-account", "no-key", "empty-key", "not-a-string"],
)
def test_a_secret_of_another_shape_is_a_configuration_error(prefix: str, secret: dict[str, object]) -> None:
    store(f"{prefix}adyen", secret)
    with pytest.raises(ConfigurationError, match="api_key and merchant_account"):
        connector()
