"""Mollie's connector and inbound verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.mollie import DEFAULT_API_KEY, MANUAL, MollieSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.mollie.connector import MollieRefundProvider
from refundflow.platforms.mollie.inbound import MollieInbound
from tests.conformance.payment_suite import PaymentHarness, PaymentSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[MollieSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = MollieSimulator(settle_after_seconds=None)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def harness(servers: tuple[MollieSimulator, str, DeliveryRecorder]) -> PaymentHarness:
    simulator, url, receiver = servers
    assert simulator.webhooks.wait_idle()
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    connector = MollieRefundProvider(
        api_key=DEFAULT_API_KEY, http=HttpClient(platform="mollie", base_url=url, timeout=(5.0, 30.0))
    )
    return PaymentHarness(
        name="mollie",
        connector=connector,
        sandbox=simulator,
        inbound=MollieInbound(),
        receiver=receiver,
        async_seed={"behaviour": MANUAL},
        restamp=None,  # Mollie's signature carries no time: a replay is a duplicate by its event id
    )


class TestMollieConformance(PaymentSuite):
    pass
