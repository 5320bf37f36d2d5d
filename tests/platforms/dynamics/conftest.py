"""Business Central's connector wired to its simulator on a loopback port (one server per module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.dynamics import BusinessCentralSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.dynamics.connector import BusinessCentralBooks, BusinessCentralTokens
from tests.conformance.books_suite import BooksHarness
from tests.support.servers import serve_wsgi

TIMEOUT = (1.0, 1.5)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[BusinessCentralSimulator, str]]:
    simulator = BusinessCentralSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


def make_books(simulator: BusinessCentralSimulator, url: str, **options: object) -> BusinessCentralBooks:
    secret = simulator.local_secrets()["api"]
    tokens = BusinessCentralTokens(
        login_base=f"{url}/login",
        tenant_id=secret["tenant_id"],
        client_id=secret["client_id"],
        client_secret=str(options.pop("client_secret", secret["client_secret"])),
        http=HttpClient(platform="dynamics", base_url=f"{url}/login", timeout=TIMEOUT),
    )
    return BusinessCentralBooks(
        tokens=tokens,
        tenant_id=secret["tenant_id"],
        environment=secret["environment"],
        company_id=secret["company_id"],
        api_base=f"{url}/v2.0",
        http=HttpClient(platform="dynamics", base_url=f"{url}/v2.0", timeout=TIMEOUT),
        **{"clearing_account": "2910", **options},  # type: ignore[arg-type]
    )


@pytest.fixture
def simulator(served: tuple[BusinessCentralSimulator, str]) -> BusinessCentralSimulator:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    return simulator


@pytest.fixture
def books(simulator: BusinessCentralSimulator, served: tuple[BusinessCentralSimulator, str]) -> BusinessCentralBooks:
    return make_books(simulator, served[1])


@pytest.fixture
def harness(simulator: BusinessCentralSimulator, books: BusinessCentralBooks) -> BooksHarness:
    # The company's local currency: a paid invoice's cash refund is booked in it only (journal lines carry none).
    return BooksHarness(name="dynamics", connector=books, sandbox=simulator, currency="EUR")
