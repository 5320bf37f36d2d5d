"""The Intercom simulator served over real HTTP, and the connector pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.simulators.intercom import DEFAULT_ACCESS_TOKEN, IntercomSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.intercom.connector import API_VERSION, IntercomConversations
from tests.support.servers import serve_wsgi


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[IntercomSimulator, str]]:
    simulator = IntercomSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(served: tuple[IntercomSimulator, str]) -> IntercomSimulator:
    simulator, _ = served
    simulator.reset_state()
    with simulator.lock:
        simulator.faults.clear()
        simulator.requests_seen.clear()
    return simulator


def connector_for(url: str, *, token: str = DEFAULT_ACCESS_TOKEN, admin_id: str | None = None) -> IntercomConversations:
    http = HttpClient(
        platform="intercom",
        base_url=url,
        default_headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Intercom-Version": API_VERSION,
        },
        timeout=(5.0, 30.0),
    )
    return IntercomConversations(http, admin_id=admin_id)


@pytest.fixture
def intercom(served: tuple[IntercomSimulator, str], simulator: IntercomSimulator) -> IntercomConversations:
    return connector_for(served[1])
