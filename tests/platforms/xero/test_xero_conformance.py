"""Xero's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.xero import XeroSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.xero.connector import XeroBooks, XeroTokenSource
from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.support.servers import serve_wsgi


class SecretStore:
    """The function's view of its rotated-in-place secret."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = dict(value)

    def load(self, force: bool) -> dict[str, Any]:
        return dict(self.value)

    def save(self, value: dict[str, Any]) -> None:
        self.value = dict(value)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[XeroSimulator, str]]:
    simulator = XeroSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def harness(served: tuple[XeroSimulator, str]) -> BooksHarness:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    timeout = (1.0, 1.5)
    store = SecretStore(simulator.local_secrets()["api"])
    tokens = XeroTokenSource(
        identity_base=f"{url}/identity",
        load_secret=store.load,
        save_secret=store.save,
        http=HttpClient(platform="xero", base_url=f"{url}/identity", timeout=timeout),
    )
    books = XeroBooks(
        tokens=tokens,
        api_base=f"{url}/api.xro/2.0",
        http=HttpClient(platform="xero", base_url=f"{url}/api.xro/2.0", timeout=timeout),
    )
    return BooksHarness(name="xero", connector=books, sandbox=simulator)


class TestXeroBooksConformance(BooksSuite):
    pass
