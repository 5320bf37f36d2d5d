"""The NetSuite books factory: the host from the secret, the mappings from the settings, a bad secret refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.simulators.netsuite import NetSuiteSimulator
from refundflow import settings
from refundflow.errors import ConfigurationError
from refundflow.models import PaymentProvider
from refundflow.platforms.netsuite.connector import NetSuiteBooks, account_host, connector


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings.load.cache_clear()
    connector.cache_clear()
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    yield
    connector.cache_clear()
    settings.load.cache_clear()


def secret_is(monkeypatch: pytest.MonkeyPatch, value: dict[str, Any]) -> None:
    monkeypatch.setattr("refundflow.adapters.secrets.get_json_secret", lambda name, **_: dict(value))


def test_the_account_id_names_the_host_and_the_settings_map_accounts_and_tax(monkeypatch: pytest.MonkeyPatch) -> None:
    secret_is(monkeypatch, {**NetSuiteSimulator().local_secrets()["api"], "account_id": "1234567_SB1"})
    monkeypatch.setenv("NETSUITE_REFUND_ITEM", "501")
    monkeypatch.setenv("NETSUITE_PAYMENT_ACCOUNT", "1")
    monkeypatch.setenv("NETSUITE_CLEARING_ACCOUNTS", "stripe:EUR=118, stripe:*=119, *:USD=120")
    monkeypatch.setenv("NETSUITE_TAX_CODES", "EUR=12,*=-7")

    books = connector()

    assert isinstance(books, NetSuiteBooks)
    assert books is connector()
    assert books._http.base_url == "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1"
    assert (
        books._tokens.token_url == "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token"
    )
    assert books.clearing_account(PaymentProvider.STRIPE, "EUR") == "118"
    assert books.clearing_account(PaymentProvider.STRIPE, "GBP") == "119"
    assert books.clearing_account(PaymentProvider.ADYEN, "USD") == "120"
    assert books.clearing_account(PaymentProvider.ADYEN, "EUR") == "1"
    assert (books.tax_code("EUR"), books.tax_code("GBP")) == ("12", "-7")
    assert account_host(" TSTDRV_42 ") == "tstdrv-42"


@pytest.mark.parametrize("missing", ["account_id", "client_id", "certificate_id", "private_key"])
def test_a_secret_without_a_field_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    secret = NetSuiteSimulator().local_secrets()["api"]
    secret.pop(missing)
    secret_is(monkeypatch, secret)
    with pytest.raises(ConfigurationError, match=missing):
        connector()


@pytest.mark.parametrize(
    ("env", "value"), [("NETSUITE_CLEARING_ACCOUNTS", "stripe=1"), ("NETSUITE_TAX_CODES", "euro=1")]
)
def test_a_malformed_mapping_names_its_setting(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    secret_is(monkeypatch, NetSuiteSimulator().local_secrets()["api"])
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigurationError, match=env):
        connector()
