"""connector(): KLARNA_API_BASE and Klarna's API secret (``<SecretsPrefix>klarna``) in, one cached provider out; a
rotated password gives a new provider; a secret of another shape is a configuration error (moto Secrets Manager)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from refundflow import settings
from refundflow.api import RefundRequestBody
from refundflow.errors import ConfigurationError
from refundflow.platforms.klarna.connector import KlarnaRefundProvider, connector

EVENTS = Path(__file__).resolve().parents[3] / "events" / "klarna"


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # A fresh prefix per test: Powertools caches secrets by name for the process.
    value = f"refundflow/{uuid.uuid4().hex}/"
    monkeypatch.setenv("SECRETS_PREFIX", value)
    monkeypatch.setenv("KLARNA_API_BASE", "http://127.0.0.1:9/_sandbox/klarna")
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
    store(f"{prefix}klarna", {"username": "PK_factory", "password": "s3cret"})
    # WHEN the factory is called twice
    provider = connector()
    # THEN one provider, configured from both, with no HTTP session opened yet
    assert isinstance(provider, KlarnaRefundProvider)
    assert connector() is provider
    assert provider._credentials == ("PK_factory", "s3cret")
    assert provider._http is None  # built at first use, not in the constructor
    assert provider.http.base_url == "http://127.0.0.1:9/_sandbox/klarna"
    assert provider.capabilities.find_by_reference is True


@pytest.mark.parametrize(
    "secret",
    [{"username": "PK_x"}, {"password": "p"}, {"username": "", "password": "p"}, {"username": 1, "password": "p"}],
    ids=["no-password", "no-username", "empty-username", "not-a-string"],
)
def test_a_secret_of_another_shape_is_a_configuration_error(prefix: str, secret: dict[str, object]) -> None:
    store(f"{prefix}klarna", secret)
    with pytest.raises(ConfigurationError, match="username and password"):
        connector()


def test_the_sample_refund_request_is_a_klarna_refund_once_the_return_is_received() -> None:
    # GIVEN the sample trigger: the returns portal asks once the customer's return is confirmed received
    sample = EVENTS / "klarna_refund_request_return_received.json"
    body = RefundRequestBody.model_validate(json.loads(sample.read_text()))
    # THEN it names a Klarna order, in a Klarna currency, with the return received
    assert body.payment.provider.value == "klarna"
    assert body.amount is not None
    assert body.amount.currency == "SEK"
    assert body.return_info is not None
    assert body.return_info.status.value == "received"
