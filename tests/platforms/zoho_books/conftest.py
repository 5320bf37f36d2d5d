"""One Zoho Books simulator served per module, and a connector wired to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.zoho_books import ZohoBooksSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.zoho_books.connector import ZohoBooks, ZohoTokenSource
from tests.conformance.books_suite import BooksHarness
from tests.support.servers import serve_wsgi


class SecretStore:
    """The function's view of its secret (Zoho's refresh tokens do not rotate: it is only read)."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = dict(value)
        self.fresh_reads = 0

    def load(self, force: bool) -> dict[str, Any]:
        self.fresh_reads += force
        return dict(self.value)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ZohoBooksSimulator, str]]:
    simulator = ZohoBooksSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def store(served: tuple[ZohoBooksSimulator, str]) -> SecretStore:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    return SecretStore(simulator.local_secrets()["api"])


def build_books(url: str, store: SecretStore, **options: Any) -> ZohoBooks:
    timeout = (1.0, 1.5)
    tokens = ZohoTokenSource(
        accounts_base=f"{url}/accounts",
        load_secret=store.load,
        http=HttpClient(platform="zoho_books", base_url=f"{url}/accounts", timeout=timeout),
    )
    options.setdefault("payment_account_id", "460000000000358")
    return ZohoBooks(
        tokens=tokens,
        api_base=f"{url}/books/v3",
        http=HttpClient(platform="zoho_books", base_url=f"{url}/books/v3", timeout=timeout),
        **options,
    )


@pytest.fixture
def harness(served: tuple[ZohoBooksSimulator, str], store: SecretStore) -> BooksHarness:
    simulator, url = served
    return BooksHarness(name="zoho_books", connector=build_books(url, store), sandbox=simulator)
