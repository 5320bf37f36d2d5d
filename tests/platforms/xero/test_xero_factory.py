"""The Xero books factory: lazy, configured from Xero's own settings and the catalog's secret convention, one
instance per process; cash refunds paid from the clearing account of the payment provider and currency."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from refundflow import settings
from refundflow.errors import ConfigurationError
from refundflow.models import PaymentProvider
from refundflow.platforms.xero.connector import XeroBooks, connector, parse_clearing_accounts


@pytest.fixture(autouse=True)
def _fresh_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings.load.cache_clear()
    connector.cache_clear()
    yield
    connector.cache_clear()
    settings.load.cache_clear()


def test_factory_builds_one_ledger_from_settings_without_reading_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN Xero settings pointing at the local sandbox, and a secret store that must not be touched yet
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    monkeypatch.setenv("XERO_API_BASE", "http://127.0.0.1:9/_sandbox/xero/api.xro/2.0")
    monkeypatch.setenv("XERO_PAYMENT_ACCOUNT_CODE", "855")
    monkeypatch.setenv("XERO_CLEARING_ACCOUNTS", "stripe:EUR=091, stripe:*=092, *:USD=093")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the secret was read while building the books")

    monkeypatch.setattr("refundflow.adapters.secrets.get_json_secret", fail)

    # WHEN the factory is called twice
    first, second = connector(), connector()

    # THEN it is the same configured books, and nothing was fetched
    assert isinstance(first, XeroBooks)
    assert first is second
    assert first._http.base_url == "http://127.0.0.1:9/_sandbox/xero/api.xro/2.0"
    # AND the clearing account is chosen per provider and currency, most specific first
    assert first.clearing_account(PaymentProvider.STRIPE, "EUR") == "091"
    assert first.clearing_account(PaymentProvider.STRIPE, "GBP") == "092"
    assert first.clearing_account(PaymentProvider.ADYEN, "USD") == "093"
    assert first.clearing_account(PaymentProvider.ADYEN, "EUR") == "855"


@pytest.mark.parametrize("text", ["stripe=090", "stripe:EUR", ":EUR=1", "stripe:=1"])
def test_a_malformed_clearing_account_list_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="XERO_CLEARING_ACCOUNTS"):
        parse_clearing_accounts(text)


def test_factory_without_a_secrets_prefix_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no SECRETS_PREFIX / WHEN the books is built / THEN it is refused
    monkeypatch.delenv("SECRETS_PREFIX", raising=False)
    with pytest.raises(ConfigurationError, match="SECRETS_PREFIX"):
        connector()
