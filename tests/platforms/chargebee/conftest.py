"""Chargebee's simulator served on a loopback port with a webhook recorder, and a connector pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from local.simulators.chargebee import DEFAULT_API_KEY, ChargebeeSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.chargebee.connector import ChargebeeRefundProvider
from tests.support.servers import DeliveryRecorder, serve_wsgi


class Clock:
    """The simulator's clock for the idempotency window: real time plus what a test adds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


@dataclass
class Served:
    simulator: ChargebeeSimulator
    url: str
    receiver: DeliveryRecorder
    clock: Clock

    @property
    def api_base(self) -> str:
        return f"{self.url}/api/v2"

    def connector(self, api_key: str = DEFAULT_API_KEY) -> ChargebeeRefundProvider:
        return ChargebeeRefundProvider(
            api_key=api_key,
            api_base=self.api_base,
            http=HttpClient(platform="chargebee", base_url=self.api_base, timeout=(5.0, 30.0)),
        )

    def recorded(self) -> list[dict[str, object]]:
        return list(self.simulator.requests_seen)


@pytest.fixture(scope="package")
def served_chargebee() -> Iterator[Served]:
    receiver = DeliveryRecorder()
    clock = Clock()
    with serve_wsgi(receiver) as receiver_url:
        simulator = ChargebeeSimulator(now=clock)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield Served(simulator, url, receiver, clock)


@pytest.fixture
def served(served_chargebee: Served) -> Served:
    """The package's servers, forgotten: no invoice, key, fault, delivery or clock offset of another test."""
    assert served_chargebee.simulator.webhooks.wait_idle()
    requests.post(f"{served_chargebee.url}/_control/reset", timeout=5).raise_for_status()
    served_chargebee.receiver.clear()
    served_chargebee.clock.offset = 0.0
    return served_chargebee
