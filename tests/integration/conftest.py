"""Integration fixtures: the Xero simulator served over HTTP, one server per module, reset per test (the
Stripe tests bring their own)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from local.simulators.xero import XeroSimulator
from tests.support.clocks import FakeClock
from tests.support.servers import serve_wsgi


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeClock, XeroSimulator, str]]:
    """One simulator server per module (starting and stopping one costs half a second); reset per test."""
    clock = FakeClock()
    sim = XeroSimulator(clock=clock)
    with serve_wsgi(sim) as url:
        yield clock, sim, url


@pytest.fixture
def clock(served: tuple[FakeClock, XeroSimulator, str]) -> FakeClock:
    served[0].now = time.time()
    return served[0]


@pytest.fixture
def sim(served: tuple[FakeClock, XeroSimulator, str], clock: FakeClock) -> XeroSimulator:
    assert requests.post(f"{served[2]}/_control/reset", timeout=5).status_code == 200
    return served[1]


@pytest.fixture
def base_url(served: tuple[FakeClock, XeroSimulator, str], sim: XeroSimulator) -> str:
    return served[2]
