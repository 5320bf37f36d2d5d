"""Freshdesk's connector, webhook verification, default mapping and simulator: the shared ticket conformance suite.
Freshdesk signs nothing (a shared secret in the admin's custom header authenticates the sender, no timestamp), so the
suite's stale-delivery test is skipped and a changed body is still only news."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests

from local.simulators.freshdesk import FreshdeskSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.freshdesk.connector import FreshdeskTickets
from refundflow.platforms.freshdesk.inbound import FreshdeskInbound
from tests.conformance.ticket_suite import TicketHarness, TicketSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi

API_KEY = "FreshdeskConformanceKey01"
WEBHOOK_SECRET = "freshdesk-conformance-shared-secret-0123456789"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FreshdeskSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = FreshdeskSimulator((API_KEY,), webhook_secret=WEBHOOK_SECRET)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


def connector(url: str, api_key: str = API_KEY) -> FreshdeskTickets:
    credentials = base64.b64encode(f"{api_key}:X".encode()).decode()
    http = HttpClient(
        platform="freshdesk",
        base_url=url,
        default_headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
        timeout=(5.0, 30.0),
    )
    return FreshdeskTickets(http)


@pytest.fixture
def harness(servers: tuple[FreshdeskSimulator, str, DeliveryRecorder]) -> TicketHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return TicketHarness(
        name="freshdesk",
        tickets=connector(url),
        inbound=FreshdeskInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=None,
        body_signed=False,
        unknown_ticket_id="987654321",
    )


class TestFreshdeskConformance(TicketSuite):
    pass
