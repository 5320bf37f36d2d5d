"""WooCommerce's simulator served once per module with a webhook receiver, and the connector pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from local.simulators.woocommerce import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, WooCommerceSimulator
from refundflow.platforms.woocommerce.connector import WooCommerceConnector, WooCommerceSettings, _build
from tests.support.servers import DeliveryRecorder, serve_wsgi


@dataclass
class Served:
    simulator: WooCommerceSimulator
    url: str
    receiver: DeliveryRecorder

    @property
    def api_base(self) -> str:
        return f"{self.url}/wp-json/wc/v3"

    def connector(
        self, consumer_key: str = DEFAULT_CONSUMER_KEY, consumer_secret: str = DEFAULT_CONSUMER_SECRET
    ) -> WooCommerceConnector:
        config = WooCommerceSettings.model_validate({"WOOCOMMERCE_API_BASE": self.api_base})
        built = _build(
            config, "refundflow/woocommerce", {"consumer_key": consumer_key, "consumer_secret": consumer_secret}
        )
        built.http.timeout = (5.0, 30.0)
        return built


@pytest.fixture(scope="module")
def served_store() -> Iterator[Served]:
    receiver = DeliveryRecorder(answer=(200, "application/json", '{"received": true}'))
    with serve_wsgi(receiver) as receiver_url:
        simulator = WooCommerceSimulator()
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield Served(simulator, url, receiver)


@pytest.fixture
def served(served_store: Served) -> Served:
    """A fresh store per test: no orders, no faults, nothing delivered."""
    served_store.simulator.webhooks.wait_idle()
    requests.post(f"{served_store.url}/_control/reset", timeout=5).raise_for_status()
    served_store.receiver.clear()
    return served_store
