"""Amazon Pay's connector and IPN verifier wired to its simulator, served on loopback ports for the module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from local.simulators.amazon_pay import AmazonPaySimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.amazon_pay.connector import AmazonPayRefundProvider
from refundflow.platforms.amazon_pay.inbound import AmazonPayInbound
from refundflow.platforms.amazon_pay.signing import load_private_key
from refundflow.platforms.amazon_pay.sns import CertificateCache
from tests.support.servers import DeliveryRecorder, serve_wsgi


@dataclass
class Served:
    simulator: AmazonPaySimulator
    url: str
    receiver: DeliveryRecorder

    def connector(self, *, read_timeout: float = 1.5) -> AmazonPayRefundProvider:
        secret = self.simulator.local_secrets()["api"]
        return AmazonPayRefundProvider(
            public_key_id=secret["public_key_id"],
            private_key=load_private_key(secret["private_key"]),
            region="na",
            http=HttpClient(platform="amazon_pay", base_url=f"{self.url}/sandbox/v2", timeout=(1.0, read_timeout)),
        )

    def inbound(self) -> AmazonPayInbound:
        return AmazonPayInbound(certificates=CertificateCache())


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = AmazonPaySimulator(webhook_url=receiver_url, settle_after_seconds=None)
        with serve_wsgi(simulator) as url:
            simulator.public_url = url
            yield Served(simulator, url, receiver)


@pytest.fixture
def fresh(served: Served) -> Served:
    served.simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{served.url}/_control/reset", timeout=5).raise_for_status()
    served.receiver.clear()
    return served
