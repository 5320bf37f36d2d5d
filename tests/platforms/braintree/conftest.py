"""Braintree's simulator served once per module, a webhook receiver, and the connector pointed at them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.braintree import DEFAULT_PRIVATE_KEY, DEFAULT_PUBLIC_KEY, BraintreeSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.braintree.connector import BraintreeRefundProvider
from tests.support.servers import DeliveryRecorder, serve_wsgi

Served = tuple[BraintreeSimulator, str, DeliveryRecorder]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    receiver = DeliveryRecorder(answer=(200, "text/plain", "OK"))
    with serve_wsgi(receiver) as receiver_url:
        simulator = BraintreeSimulator()
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def sandbox(served: Served) -> Served:
    simulator, url, receiver = served
    simulator.webhooks.wait_idle()
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return served


@pytest.fixture
def connector(sandbox: Served) -> BraintreeRefundProvider:
    _, url, _ = sandbox
    endpoint = f"{url}/graphql"
    return BraintreeRefundProvider(
        public_key=DEFAULT_PUBLIC_KEY,
        private_key=DEFAULT_PRIVATE_KEY,
        api_base=endpoint,
        http=HttpClient(platform="braintree", base_url=endpoint, timeout=(5.0, 30.0)),
    )
