"""Adyen's connector and inbound verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from local.simulators.adyen import DEFAULT_API_KEY, DEFAULT_MERCHANT_ACCOUNT, AdyenSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.adyen.connector import AdyenRefundProvider
from refundflow.platforms.adyen.inbound import AdyenInbound
from tests.conformance.payment_suite import Delivery, PaymentHarness, PaymentSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi


def batch(deliveries: list[Delivery]) -> Delivery:
    """Several of Adyen's deliveries as the one NotificationRequest Adyen may send instead (items signed each)."""
    items = [item for _, body in deliveries for item in json.loads(body)["notificationItems"]]
    return deliveries[0][0], json.dumps({"live": "false", "notificationItems": items}).encode()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[AdyenSimulator, str, DeliveryRecorder]]:
    # Adyen counts a delivery as accepted only on "[accepted]".
    receiver = DeliveryRecorder(answer=(200, "text/plain", "[accepted]"))
    with serve_wsgi(receiver) as receiver_url:
        simulator = AdyenSimulator(settle_after_seconds=None)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def harness(servers: tuple[AdyenSimulator, str, DeliveryRecorder]) -> PaymentHarness:
    simulator, url, receiver = servers
    assert simulator.wait_delivered()
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    base = f"{url}/checkout/v71"
    connector = AdyenRefundProvider(
        api_key=DEFAULT_API_KEY,
        merchant_account=DEFAULT_MERCHANT_ACCOUNT,
        api_base=base,
        http=HttpClient(platform="adyen", base_url=base, timeout=(5.0, 30.0)),
    )
    return PaymentHarness(
        name="adyen",
        connector=connector,
        sandbox=simulator,
        inbound=AdyenInbound(),
        receiver=receiver,
        restamp=None,  # Adyen signs no time: a replay is applied once, by its event id
        batch=batch,
    )


class TestAdyenConformance(PaymentSuite):
    pass
