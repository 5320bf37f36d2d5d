"""The Xero books factory: lazy, configured from XeroSettings, one instance per process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from refundflow.connectors.xero import XeroBooks, xero_books
from refundflow.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _fresh_factory() -> Iterator[None]:
    xero_books.cache_clear()
    yield
    xero_books.cache_clear()


def test_factory_builds_one_ledger_from_settings_without_reading_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN Xero settings pointing at the local sandbox, and a secret store that must not be touched yet
    monkeypatch.setenv("XERO_SECRET_NAME", "refundflow/xero")
    monkeypatch.setenv("XERO_API_BASE", "http://127.0.0.1:9/_sandbox/xero/api.xro/2.0")
    monkeypatch.setenv("XERO_PAYMENT_ACCOUNT_CODE", "855")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the secret was read while building the books")

    monkeypatch.setattr("refundflow.adapters.secrets.get_json_secret", fail)

    # WHEN the factory is called twice
    first, second = xero_books(), xero_books()

    # THEN it is the same configured books, and nothing was fetched
    assert isinstance(first, XeroBooks)
    assert first is second
    assert first._http.base_url == "http://127.0.0.1:9/_sandbox/xero/api.xro/2.0"
    assert first._payment_account_code == "855"


def test_factory_without_a_secret_name_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no XERO_SECRET_NAME / WHEN the books is built / THEN a ConfigurationError names the variable
    monkeypatch.delenv("XERO_SECRET_NAME", raising=False)
    with pytest.raises(ConfigurationError, match="XERO_SECRET_NAME"):
        xero_books()
