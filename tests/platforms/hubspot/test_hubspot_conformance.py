"""HubSpot's connector, workflow-webhook verification, default mapping and simulator: the shared ticket conformance
suite (tests/conformance/ticket_suite.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from local.simulators.hubspot import HubSpotSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.hubspot.connector import HubSpotTickets, parse_stage_ids
from refundflow.platforms.hubspot.inbound import HubSpotInbound
from tests.conformance.ticket_suite import Delivery, TicketHarness, TicketSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi

ACCESS_TOKEN = "pat-eu1-conformance-0000-0000-000000000000"
CLIENT_SECRET = "hubspot-conformance-client-secret-0123456789"
SIGNATURE = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"
STAGES = "issued=90000004,completed=4,settled=4,failed=90000005,rejected=90000005"


def restamp_for(url: str) -> Callable[[Delivery, float], Delivery]:
    def restamp(delivery: Delivery, age: float) -> Delivery:
        """The body signed again as HubSpot signs it (v3), ``age`` seconds ago, for the receiver's URL."""
        headers, body = delivery
        stamp = str(int((time.time() - age) * 1000))
        source = b"POST" + url.encode() + body + stamp.encode()
        digest = hmac.new(CLIENT_SECRET.encode(), source, hashlib.sha256).digest()
        kept = {
            key: value for key, value in headers.items() if key.lower() not in {SIGNATURE.lower(), TIMESTAMP.lower()}
        }
        return {**kept, SIGNATURE: base64.b64encode(digest).decode(), TIMESTAMP: stamp}, body

    return restamp


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[HubSpotSimulator, str, DeliveryRecorder, str]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = HubSpotSimulator(access_token=ACCESS_TOKEN, client_secret=CLIENT_SECRET)
        webhook_url = f"{receiver_url}/webhooks/hubspot"
        simulator.send_webhooks_to(webhook_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver, webhook_url


@pytest.fixture
def harness(servers: tuple[HubSpotSimulator, str, DeliveryRecorder, str]) -> TicketHarness:
    simulator, url, receiver, webhook_url = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    http = HttpClient(
        platform="hubspot",
        base_url=url,
        default_headers={"Authorization": f"Bearer {ACCESS_TOKEN}", "Accept": "application/json"},
        timeout=(5.0, 30.0),
    )
    return TicketHarness(
        name="hubspot",
        tickets=HubSpotTickets(http, stage_ids=parse_stage_ids(STAGES)),
        inbound=HubSpotInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=restamp_for(webhook_url),
    )


class TestHubSpotConformance(TicketSuite):
    pass
