"""The SAP books factory: lazy, configured from SAP's own settings and the catalog's secret convention, one instance
per process; the cash refund's payment method chosen per payment provider and currency."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from refundflow import settings
from refundflow.errors import ConfigurationError
from refundflow.models import PaymentProvider
from refundflow.platforms.sap.connector import SapBooks, connector, parse_payment_methods


@pytest.fixture(autouse=True)
def _fresh_factory() -> Iterator[None]:
    settings.load.cache_clear()
    connector.cache_clear()
    yield
    connector.cache_clear()
    settings.load.cache_clear()


def test_factory_builds_one_books_from_settings_without_reading_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SAP settings pointing at the local sandbox, and a secret store that must not be touched yet
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    monkeypatch.setenv("SAP_API_BASE", "http://127.0.0.1:9/_sandbox/sap/sap/opu/odata/sap")
    monkeypatch.setenv("SAP_PENDING_POLICY", "record")
    monkeypatch.setenv("SAP_PAYMENT_METHODS", "stripe:EUR=S, stripe:*=T, *:USD=U")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the secret was read while building the books")

    monkeypatch.setattr("refundflow.adapters.secrets.get_json_secret", fail)
    # WHEN the factory is called twice
    first, second = connector(), connector()
    # THEN it is the same configured books, and nothing was fetched
    assert isinstance(first, SapBooks)
    assert first is second
    assert first._session.http.base_url == "http://127.0.0.1:9/_sandbox/sap/sap/opu/odata/sap"
    assert first._pending_policy == "record"
    # AND the payment method is chosen per provider and currency, most specific first
    assert first.payment_method(PaymentProvider.STRIPE, "EUR") == "S"
    assert first.payment_method(PaymentProvider.STRIPE, "GBP") == "T"
    assert first.payment_method(PaymentProvider.ADYEN, "USD") == "U"
    assert first.payment_method(PaymentProvider.ADYEN, "EUR") is None


@pytest.mark.parametrize("text", ["stripe=S", "stripe:EUR", ":EUR=S", "stripe:=S"])
def test_a_malformed_payment_method_list_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="SAP_PAYMENT_METHODS"):
        parse_payment_methods(text)


def test_an_unknown_pending_policy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    monkeypatch.setenv("SAP_PENDING_POLICY", "sometimes")
    with pytest.raises(ConfigurationError):
        connector()


def test_factory_books_by_customer_return_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    monkeypatch.setenv("SAP_CREDIT_DOCUMENT", "customer_return")
    monkeypatch.setenv("SAP_CUSTOMER_RETURN_TYPE", "RE2")
    books = connector()
    assert (books._credit_document, books._customer_return_type) == ("customer_return", "RE2")


@pytest.mark.parametrize(("env", "value"), [("SAP_CREDIT_DOCUMENT", "invoice"), ("SAP_CUSTOMER_RETURN_TYPE", "cbar!")])
def test_an_unknown_credit_document_or_return_type_is_refused(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigurationError):
        connector()
