"""Intercom's connector, notification verification, default mapping and simulator: the shared ticket conformance
suite (tests/conformance/ticket_suite.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
import requests

from local.simulators.base import TicketSandbox
from local.simulators.intercom import IntercomSimulator
from refundflow.platforms.intercom.inbound import IntercomInbound
from tests.conformance.ticket_suite import Delivery, TicketHarness, TicketSuite
from tests.platforms.intercom.conftest import connector_for
from tests.support.servers import DeliveryRecorder, serve_wsgi

CLIENT_SECRET = "intercom-conformance-client-secret-0123456789"


def restamp(delivery: Delivery, age: float) -> Delivery:
    """The notification as if Intercom had created it ``age`` seconds ago: its signed ``created_at`` moved and the
    body signed again as Intercom documents it (HMAC-SHA1 of the raw body, hex, ``sha1=``)."""
    headers, body = delivery
    document = json.loads(body)
    document["created_at"] = int(time.time() - age)
    raw = json.dumps(document).encode()
    signature = "sha1=" + hmac.new(CLIENT_SECRET.encode(), raw, hashlib.sha1).hexdigest()
    kept = {key: value for key, value in headers.items() if key.lower() != "x-hub-signature"}
    return {**kept, "X-Hub-Signature": signature}, raw


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[IntercomSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = IntercomSimulator(client_secret=CLIENT_SECRET)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def harness(servers: tuple[IntercomSimulator, str, DeliveryRecorder]) -> TicketHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    tickets = connector_for(url)
    tickets.http.timeout = (5.0, 30.0)
    return TicketHarness(
        name="intercom",
        tickets=tickets,
        inbound=IntercomInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=restamp,
        unknown_ticket_id="987654321",
    )


class TestIntercomConformance(TicketSuite):
    pass


def test_the_simulator_is_a_ticket_sandbox() -> None:
    assert isinstance(IntercomSimulator(), TicketSandbox)
