"""The QuickBooks books factory (settings, secret convention, clearing accounts) and its sample events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from refundflow import settings
from refundflow.api import RefundRequestBody
from refundflow.errors import ConfigurationError
from refundflow.models import BooksSystem, PaymentProvider
from refundflow.platforms.quickbooks.connector import QuickBooksBooks, connector, parse_clearing_accounts

EVENTS = Path(__file__).resolve().parents[3] / "events" / "quickbooks"


@pytest.fixture(autouse=True)
def _fresh_factory() -> Iterator[None]:
    settings.load.cache_clear()
    connector.cache_clear()
    yield
    connector.cache_clear()
    settings.load.cache_clear()


def test_factory_builds_one_books_from_settings_without_reading_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN QuickBooks settings, and a secret store that must not be touched yet
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    monkeypatch.setenv("QUICKBOOKS_API_BASE", "http://127.0.0.1:9/_sandbox/quickbooks")
    monkeypatch.setenv("QUICKBOOKS_REFUND_ACCOUNT", "35")
    monkeypatch.setenv("QUICKBOOKS_CLEARING_ACCOUNTS", "stripe:EUR=91, stripe:*=92, *:USD=93")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the secret was read while building the books")

    monkeypatch.setattr("refundflow.adapters.secrets.get_json_secret", fail)

    # WHEN the factory is called twice
    first, second = connector(), connector()

    # THEN it is one configured books, and the account is chosen per provider and currency, most specific first
    assert isinstance(first, QuickBooksBooks)
    assert first is second
    assert first._http.base_url == "http://127.0.0.1:9/_sandbox/quickbooks"
    assert first.clearing_account(PaymentProvider.STRIPE, "EUR") == "91"
    assert first.clearing_account(PaymentProvider.STRIPE, "GBP") == "92"
    assert first.clearing_account(PaymentProvider.ADYEN, "USD") == "93"
    assert first.clearing_account(PaymentProvider.ADYEN, "EUR") == "35"


@pytest.mark.parametrize("text", ["stripe=35", "stripe:EUR", ":EUR=1", "stripe:=1"])
def test_a_malformed_clearing_account_list_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="QUICKBOOKS_CLEARING_ACCOUNTS"):
        parse_clearing_accounts(text)


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda path: path.name)
def test_the_sample_events_are_refund_requests_for_a_quickbooks_invoice(path: Path) -> None:
    body = RefundRequestBody.model_validate(json.loads(path.read_text()))
    assert body.invoice is not None
    assert body.invoice.system is BooksSystem.QUICKBOOKS
