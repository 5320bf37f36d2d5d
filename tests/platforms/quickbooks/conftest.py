"""QuickBooks Online's connector wired to its simulator, served on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from local.simulators.quickbooks import QuickBooksSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.quickbooks.connector import QuickBooksBooks, QuickBooksTokenSource
from tests.support.servers import serve_wsgi


class SecretStore:
    """The function's view of its rotated-in-place secret."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = dict(value)
        self.saved: list[dict[str, Any]] = []
        self.newer: dict[str, Any] | None = None  # what a fresh read finds (another process stored it)

    def load(self, force: bool) -> dict[str, Any]:
        return dict(self.newer if force and self.newer is not None else self.value)

    def save(self, value: dict[str, Any]) -> None:
        self.value = dict(value)
        self.saved.append(dict(value))


@dataclass
class Wired:
    simulator: QuickBooksSimulator
    url: str
    store: SecretStore
    tokens: QuickBooksTokenSource
    books: QuickBooksBooks


@pytest.fixture(scope="package")
def served() -> Iterator[tuple[QuickBooksSimulator, str]]:
    simulator = QuickBooksSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


def wire(simulator: QuickBooksSimulator, url: str, **options: Any) -> Wired:
    timeout = (1.0, 1.2)
    store = SecretStore(simulator.local_secrets()["api"])
    token_url = f"{url}/oauth2/v1/tokens/bearer"
    tokens = QuickBooksTokenSource(
        token_url=token_url,
        load_secret=store.load,
        save_secret=store.save,
        http=HttpClient(platform="quickbooks", base_url=token_url, timeout=timeout),
    )
    books = QuickBooksBooks(
        tokens=tokens,
        api_base=url,
        http=HttpClient(platform="quickbooks", base_url=url, timeout=timeout),
        **{"clearing_accounts": {"stripe:*": "92"}, "refund_account": "35", **options},
    )
    return Wired(simulator, url, store, tokens, books)


@pytest.fixture
def wired(served: tuple[QuickBooksSimulator, str]) -> Wired:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    return wire(simulator, url)
