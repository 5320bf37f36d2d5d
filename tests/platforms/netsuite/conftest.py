"""NetSuite's connector wired to its simulator on a loopback port (one server per module, state reset per test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from local.simulators.netsuite import CLEARING_ACCOUNT, REFUND_ITEM, NetSuiteSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.netsuite.auth import NetSuiteTokenSource
from refundflow.platforms.netsuite.connector import RECORD_PATH, NetSuiteBooks
from tests.conformance.books_suite import BooksHarness
from tests.support.servers import serve_wsgi

TIMEOUT = (1.0, 1.5)


@dataclass
class Wired:
    simulator: NetSuiteSimulator
    url: str
    books: NetSuiteBooks
    tokens: NetSuiteTokenSource


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[NetSuiteSimulator, str]]:
    simulator = NetSuiteSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


def wire(simulator: NetSuiteSimulator, url: str, **books: object) -> Wired:
    secret = simulator.local_secrets()["api"]
    tokens = NetSuiteTokenSource(
        api_base=url,
        client_id=secret["client_id"],
        certificate_id=secret["certificate_id"],
        private_key=secret["private_key"],
        http=HttpClient(platform="netsuite", base_url=url, timeout=TIMEOUT),
    )
    options: dict[str, object] = {
        "refund_item": REFUND_ITEM,
        "payment_account": "1",
        "clearing_accounts": {"stripe:EUR": CLEARING_ACCOUNT},
        **books,
    }
    connector = NetSuiteBooks(
        tokens=tokens,
        api_base=url,
        http=HttpClient(platform="netsuite", base_url=f"{url}{RECORD_PATH}", timeout=TIMEOUT),
        **options,  # type: ignore[arg-type]
    )
    return Wired(simulator=simulator, url=url, books=connector, tokens=tokens)


@pytest.fixture
def wired(served: tuple[NetSuiteSimulator, str]) -> Wired:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    simulator.closed_before = None
    return wire(simulator, url)


@pytest.fixture
def harness(wired: Wired) -> BooksHarness:
    return BooksHarness(name="netsuite", connector=wired.books, sandbox=wired.simulator)
