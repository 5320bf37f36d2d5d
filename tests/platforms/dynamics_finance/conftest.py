"""Dynamics 365 Finance's connector wired to its simulator on a loopback port (one server per module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.dynamics_finance import DynamicsFinanceSimulator
from refundflow.connectors.entra import EntraTokenSource
from refundflow.connectors.http import HttpClient
from refundflow.platforms.dynamics_finance.connector import DynamicsFinanceBooks
from tests.conformance.books_suite import BooksHarness
from tests.support.servers import serve_wsgi

TIMEOUT = (1.0, 1.5)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[DynamicsFinanceSimulator, str]]:
    simulator = DynamicsFinanceSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


def make_books(simulator: DynamicsFinanceSimulator, url: str, **options: object) -> DynamicsFinanceBooks:
    secret = simulator.local_secrets()["api"]
    tokens = EntraTokenSource(
        platform="dynamics_finance",
        title="Dynamics 365 Finance",
        scope=f"{options.pop('resource', secret['resource'])}/.default",
        login_base=f"{url}/login",
        tenant_id=secret["tenant_id"],
        client_id=secret["client_id"],
        client_secret=str(options.pop("client_secret", secret["client_secret"])),
        http=HttpClient(platform="dynamics_finance", base_url=f"{url}/login", timeout=TIMEOUT),
    )
    return DynamicsFinanceBooks(
        tokens=tokens,
        company=str(options.pop("company", secret["company"])),
        api_base=url,
        http=HttpClient(platform="dynamics_finance", base_url=url, timeout=TIMEOUT),
        **{"clearing_account": "110180", **options},  # type: ignore[arg-type]
    )


@pytest.fixture
def simulator(served: tuple[DynamicsFinanceSimulator, str]) -> DynamicsFinanceSimulator:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    return simulator


@pytest.fixture
def url(served: tuple[DynamicsFinanceSimulator, str]) -> str:
    return served[1]


@pytest.fixture
def books(simulator: DynamicsFinanceSimulator, url: str) -> DynamicsFinanceBooks:
    return make_books(simulator, url)


@pytest.fixture
def harness(simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks) -> BooksHarness:
    return BooksHarness(name="dynamics_finance", connector=books, sandbox=simulator, currency="USD")
