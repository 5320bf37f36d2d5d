"""Shopify's simulator served once per module, a webhook receiver, and the connector pointed at them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.shopify import DEFAULT_ACCESS_TOKEN, ShopifySimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.shopify.connector import ShopifyConnector
from tests.support.servers import DeliveryRecorder, serve_wsgi

Served = tuple[ShopifySimulator, str, DeliveryRecorder]
API_VERSION = "2026-10"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    receiver = DeliveryRecorder(answer=(200, "application/json", "{}"))
    with serve_wsgi(receiver) as receiver_url:
        simulator = ShopifySimulator()
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


def provider(
    url: str, *, token: str = DEFAULT_ACCESS_TOKEN, gateways: frozenset[str] | None = None
) -> ShopifyConnector:
    endpoint = f"{url}/admin/api/{API_VERSION}/graphql.json"
    return ShopifyConnector(
        access_token=token,
        api_base=url,
        api_version=API_VERSION,
        refund_gateways=gateways or frozenset({"shopify_payments"}),
        http=HttpClient(platform="shopify", base_url=endpoint, timeout=(5.0, 30.0)),
    )


@pytest.fixture
def connector(sandbox: Served) -> ShopifyConnector:
    _, url, _ = sandbox
    return provider(url)
