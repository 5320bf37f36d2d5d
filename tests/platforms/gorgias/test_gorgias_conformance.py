"""Gorgias's connector, HTTP integration verification, default mapping and simulator: the shared ticket
conformance suite (the integration signs nothing and no time: no restamp, the body is not signed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.gorgias import GorgiasSimulator
from refundflow.platforms.gorgias.connector import GorgiasSettings, GorgiasTickets, _build
from refundflow.platforms.gorgias.inbound import GorgiasInbound
from tests.conformance.ticket_suite import TicketHarness, TicketSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi

EMAIL = "conformance@example-shop.com"
API_KEY = "gorgias-conformance-api-key-0123456789"
TOKEN = "gorgias-conformance-integration-token-0123456789"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[GorgiasSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = GorgiasSimulator(email=EMAIL, api_key=API_KEY, webhook_url=receiver_url, token=TOKEN)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


def connector(url: str) -> GorgiasTickets:
    config = GorgiasSettings.model_validate({"GORGIAS_API_BASE": url, "GORGIAS_ORDER_FIELD_ID": "5000"})
    tickets = _build(config, "refundflow/gorgias", {"email": EMAIL, "api_key": API_KEY})
    tickets.http.timeout = (5.0, 30.0)
    return tickets


@pytest.fixture
def harness(servers: tuple[GorgiasSimulator, str, DeliveryRecorder]) -> TicketHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return TicketHarness(
        name="gorgias",
        tickets=connector(url),
        inbound=GorgiasInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=None,
        body_signed=False,
    )


class TestGorgiasConformance(TicketSuite):
    pass
