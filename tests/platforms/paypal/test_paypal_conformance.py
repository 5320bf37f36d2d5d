"""PayPal's connector and inbound verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from local.simulators.paypal import MANUAL, PayPalSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.paypal.connector import PayPalRefundProvider
from refundflow.platforms.paypal.inbound import PayPalInbound
from refundflow.platforms.paypal.webhooks import CertificateCache
from tests.conformance.payment_suite import Delivery, PaymentHarness, PaymentSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi

WEBHOOK_ID = "5GP028458E2496506"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PayPalSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = PayPalSimulator(webhook_url=receiver_url, webhook_id=WEBHOOK_ID, settle_after_seconds=None)
        with serve_wsgi(simulator) as url:
            simulator.public_url = url
            yield simulator, url, receiver


@pytest.fixture
def harness(servers: tuple[PayPalSimulator, str, DeliveryRecorder]) -> PaymentHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    secrets = simulator.local_secrets()["api"]
    connector = PayPalRefundProvider(
        client_id=secrets["client_id"],
        client_secret=secrets["client_secret"],
        http=HttpClient(platform="paypal", base_url=url, timeout=(5.0, 30.0)),
    )

    def restamp(delivery: Delivery, age: float) -> Delivery:
        """The body signed again as PayPal signs it, its transmission ``age`` seconds ago."""
        headers, body = delivery
        kept = {key: value for key, value in headers.items() if not key.lower().startswith("paypal-")}
        return {**kept, **simulator.sign_webhook(body, WEBHOOK_ID, at=time.time() - age)}, body

    return PaymentHarness(
        name="paypal",
        connector=connector,
        sandbox=simulator,
        inbound=PayPalInbound(certificates=CertificateCache()),
        receiver=receiver,
        async_seed={"behaviour": MANUAL},
        restamp=restamp,
    )


class TestPayPalConformance(PaymentSuite):
    pass
