"""The Business Central factory: built from its own settings and its API secret, refused with a clear message when
the secret lacks a key or a clearing account mapping is malformed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from refundflow import settings
from refundflow.errors import ConfigurationError, RejectedError
from refundflow.models import PaymentProvider
from refundflow.platforms.dynamics.connector import BusinessCentralBooks, connector, parse_clearing_accounts

SECRET = {
    "tenant_id": "5f1c7e2a-0b3d-4c8e-9a1f-2d3c4b5a6e7f",
    "client_id": "8a2b4c6d-1e3f-4a5b-8c7d-9e0f1a2b3c4d",
    "client_secret": "s3cret",
    "environment": "sandbox",
    "company_id": "a3f0c1d2-4b5e-4f60-8172-93a4b5c6d7e8",
}


@pytest.fixture(autouse=True)
def _fresh_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings.load.cache_clear()
    connector.cache_clear()
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    yield
    connector.cache_clear()
    settings.load.cache_clear()


def _secret(monkeypatch: pytest.MonkeyPatch, value: dict[str, Any]) -> None:
    monkeypatch.setattr("refundflow.adapters.secrets.get_json_secret", lambda name, **kwargs: dict(value))


def test_factory_builds_the_company_path_and_clearing_accounts_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMICS_API_BASE", "http://127.0.0.1:9/_sandbox/dynamics/v2.0")
    monkeypatch.setenv("DYNAMICS_CLEARING_ACCOUNTS", "stripe:EUR=2920, stripe:*=2921, *:USD=2930")
    _secret(monkeypatch, SECRET)
    books = connector()
    assert isinstance(books, BusinessCentralBooks)
    assert books is connector()
    assert books._company == f"/{SECRET['tenant_id']}/sandbox/api/v2.0/companies({SECRET['company_id']})"
    assert books.clearing_account(PaymentProvider.STRIPE, "EUR") == "2920"
    assert books.clearing_account(PaymentProvider.STRIPE, "GBP") == "2921"
    assert books.clearing_account(PaymentProvider.ADYEN, "USD") == "2930"
    # AND with no default clearing account, a refund no mapping covers is refused in words
    with pytest.raises(RejectedError, match="no clearing account is configured for adyen refunds in EUR"):
        books.clearing_account(PaymentProvider.ADYEN, "EUR")


def test_a_secret_without_a_company_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _secret(monkeypatch, {key: value for key, value in SECRET.items() if key != "company_id"})
    with pytest.raises(ConfigurationError, match="company_id"):
        connector()


@pytest.mark.parametrize("text", ["stripe=X", "stripe:EUR", ":EUR=X", "stripe:=X"])
def test_a_malformed_clearing_account_list_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="DYNAMICS_CLEARING_ACCOUNTS"):
        parse_clearing_accounts(text)
