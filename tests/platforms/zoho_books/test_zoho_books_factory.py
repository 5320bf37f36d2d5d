"""The Zoho Books factory: lazy, configured from its own settings and the catalog's secret convention, one instance
per process; refunds paid from the clearing account of the payment provider and currency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from refundflow import settings
from refundflow.api import RefundRequestBody
from refundflow.errors import ConfigurationError, RejectedError
from refundflow.models import BooksSystem, PaymentProvider
from refundflow.platforms.zoho_books.connector import ZohoBooks, connector, parse_mapping

EVENTS = Path(__file__).resolve().parents[3] / "events" / "zoho_books"


@pytest.fixture(autouse=True)
def _fresh_factory() -> Iterator[None]:
    settings.load.cache_clear()
    connector.cache_clear()
    yield
    connector.cache_clear()
    settings.load.cache_clear()


def test_factory_builds_one_connector_from_settings_without_reading_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN Zoho Books settings for the EU data centre, and a secret store that must not be touched yet
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    monkeypatch.setenv("ZOHO_BOOKS_API_BASE", "https://www.zohoapis.eu/books/v3")
    monkeypatch.setenv("ZOHO_BOOKS_PAYMENT_ACCOUNT_ID", "900")
    monkeypatch.setenv("ZOHO_BOOKS_CLEARING_ACCOUNTS", "stripe:EUR=901, stripe:*=902, *:USD=903")
    monkeypatch.setenv("ZOHO_BOOKS_TAX_IDS", "11=12")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the secret was read while building the books")

    monkeypatch.setattr("refundflow.adapters.secrets.get_json_secret", fail)

    # WHEN the factory is called twice
    first, second = connector(), connector()

    # THEN it is the same configured connector, and nothing was fetched
    assert isinstance(first, ZohoBooks)
    assert first is second
    assert first._http.base_url == "https://www.zohoapis.eu/books/v3"
    assert first.credit_tax_id({"line_items": [{"tax_id": "11"}]}) == "12"
    assert first.clearing_account(PaymentProvider.STRIPE, "EUR") == "901"
    assert first.clearing_account(PaymentProvider.STRIPE, "GBP") == "902"
    assert first.clearing_account(PaymentProvider.ADYEN, "USD") == "903"
    assert first.clearing_account(PaymentProvider.ADYEN, "EUR") == "900"


def test_without_a_payment_account_an_unmapped_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    with pytest.raises(RejectedError, match="no Zoho Books account"):
        connector().clearing_account(PaymentProvider.STRIPE, "EUR")


@pytest.mark.parametrize("text", ["stripe=090", "stripe:EUR", ":EUR=1", "stripe:=1"])
def test_a_malformed_clearing_account_list_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="ZOHO_BOOKS_CLEARING_ACCOUNTS"):
        parse_mapping(text, "ZOHO_BOOKS_CLEARING_ACCOUNTS", keyed_by_provider=True)


def test_factory_without_a_secrets_prefix_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRETS_PREFIX", raising=False)
    with pytest.raises(ConfigurationError, match="SECRETS_PREFIX"):
        connector()


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda path: path.name)
def test_the_sample_requests_name_a_zoho_books_invoice(path: Path) -> None:
    # GIVEN a sample refund request of events/zoho_books WHEN parsed as the API parses it THEN it books at Zoho Books
    body = RefundRequestBody.model_validate(json.loads(path.read_text()))
    assert body.invoice is not None
    assert body.invoice.system is BooksSystem.ZOHO_BOOKS
