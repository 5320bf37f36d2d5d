"""Square's connector and inbound verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.square import MANUAL, SquareSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.square.connector import SquareRefundProvider
from refundflow.platforms.square.inbound import SquareInbound
from tests.conformance.payment_suite import PaymentHarness, PaymentSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[SquareSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = SquareSimulator(webhook_url=receiver_url, settle_after_seconds=None)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def harness(servers: tuple[SquareSimulator, str, DeliveryRecorder]) -> PaymentHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    connector = SquareRefundProvider(
        access_token=simulator.local_secrets()["api"]["access_token"],
        http=HttpClient(platform="square", base_url=url, timeout=(5.0, 30.0)),
    )
    return PaymentHarness(
        name="square",
        connector=connector,
        sandbox=simulator,
        inbound=SquareInbound(),
        receiver=receiver,
        async_seed={"behaviour": MANUAL},
    )


class TestSquareConformance(PaymentSuite):
    pass
