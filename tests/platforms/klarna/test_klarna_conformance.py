"""Klarna's connector against its simulator: the shared payment conformance suite (Klarna sends no webhooks, so the
suite's webhook checks are skipped for it, as its catalog entry says)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.klarna import KlarnaSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.klarna.connector import KlarnaRefundProvider
from tests.conformance.payment_suite import PaymentHarness, PaymentSuite
from tests.support.servers import serve_wsgi


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[KlarnaSimulator, str]]:
    simulator = KlarnaSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def harness(server: tuple[KlarnaSimulator, str]) -> PaymentHarness:
    simulator, url = server
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    secrets = simulator.local_secrets()["api"]
    connector = KlarnaRefundProvider(
        username=secrets["username"],
        password=secrets["password"],
        http=HttpClient(platform="klarna", base_url=url, timeout=(5.0, 30.0)),
    )
    return PaymentHarness(name="klarna", connector=connector, sandbox=simulator)


class TestKlarnaConformance(PaymentSuite):
    pass
