"""Gorgias's simulator served on a loopback port with a delivery recorder, and a connector pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from local.simulators.gorgias import DEFAULT_API_KEY, DEFAULT_EMAIL, GorgiasSimulator
from refundflow.platforms.gorgias.connector import GorgiasSettings, GorgiasTickets, _build
from tests.support.servers import DeliveryRecorder, serve_wsgi


class Clock:
    """The simulator's clock (its rate limit's leak and its ticket times): moved by the tests, never slept on."""

    def __init__(self) -> None:
        self.value = 1_796_000_000.0

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@dataclass
class Served:
    simulator: GorgiasSimulator
    url: str
    receiver: DeliveryRecorder
    clock: Clock

    def connector(self, email: str = DEFAULT_EMAIL, api_key: str = DEFAULT_API_KEY) -> GorgiasTickets:
        config = GorgiasSettings.model_validate({"GORGIAS_API_BASE": self.url, "GORGIAS_ORDER_FIELD_ID": "5000"})
        tickets = _build(config, "refundflow/gorgias", {"email": email, "api_key": api_key})
        tickets.http.timeout = (5.0, 30.0)
        return tickets


@pytest.fixture(scope="package")
def served_gorgias() -> Iterator[Served]:
    receiver = DeliveryRecorder()
    clock = Clock()
    with serve_wsgi(receiver) as receiver_url:
        simulator = GorgiasSimulator(now=clock)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield Served(simulator, url, receiver, clock)


@pytest.fixture
def served(served_gorgias: Served) -> Served:
    """A fresh account per test: no tickets, no faults, the rate limit's bucket drained."""
    with served_gorgias.simulator.lock:
        served_gorgias.simulator.faults.clear()
        served_gorgias.simulator.requests_seen.clear()
    served_gorgias.simulator.reset_state()
    served_gorgias.simulator.notify_api_updates = False
    served_gorgias.receiver.clear()
    served_gorgias.clock.advance(100)
    return served_gorgias
