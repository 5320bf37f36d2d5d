"""The Dynamics 365 Finance factory: built from its own settings and its API secret (the token's scope is the
environment's), refused with a clear message when the secret lacks a key or a clearing account list is malformed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from refundflow import settings
from refundflow.errors import ConfigurationError
from refundflow.models import PaymentProvider
from refundflow.platforms.dynamics_finance.connector import DynamicsFinanceBooks, connector, parse_clearing_accounts

SECRET = {
    "tenant_id": "7c2e4a10-3b5d-4f6e-8a9b-0c1d2e3f4a5b",
    "client_id": "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",
    "client_secret": "s3cret",
    "resource": "https://contoso-test.sandbox.operations.dynamics.com/",
    "company": "USMF",
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


def test_factory_builds_the_legal_entity_scope_and_clearing_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMICS_FINANCE_CLEARING_ACCOUNTS", "stripe:USD=110180, *:EUR=110190")
    monkeypatch.setenv("DYNAMICS_FINANCE_PENDING_POLICY", "record")
    _secret(monkeypatch, SECRET)
    books = connector()
    assert isinstance(books, DynamicsFinanceBooks)
    assert books is connector()
    assert books._company == "usmf"
    assert books._tokens.scope == "https://contoso-test.sandbox.operations.dynamics.com/.default"
    assert books._pending_policy == "record"
    assert books.clearing_account(PaymentProvider.STRIPE, "USD") == "110180"
    assert books.clearing_account(PaymentProvider.ADYEN, "EUR") == "110190"


@pytest.mark.parametrize("key", ["company", "resource"])
def test_a_secret_without_a_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    _secret(monkeypatch, {name: value for name, value in SECRET.items() if name != key})
    with pytest.raises(ConfigurationError, match=key):
        connector()


def test_a_resource_that_is_not_an_https_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _secret(monkeypatch, {**SECRET, "resource": "contoso.operations.dynamics.com"})
    with pytest.raises(ConfigurationError, match="https://"):
        connector()


@pytest.mark.parametrize("text", ["stripe=X", "stripe:USD", ":USD=X", "stripe:=X"])
def test_a_malformed_clearing_account_list_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="DYNAMICS_FINANCE_CLEARING_ACCOUNTS"):
        parse_clearing_accounts(text)
