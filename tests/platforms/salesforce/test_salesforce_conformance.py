"""Salesforce's connector, callout verification, default mapping and simulator: the shared ticket conformance suite.
Salesforce signs nothing (the External Credential's header carries the org's shared secret, no timestamp), so the
suite's stale-delivery test is skipped and a changed body is still only news."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.salesforce import SalesforceSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import InvalidRequest
from refundflow.platforms.salesforce.connector import SalesforceTickets, SalesforceTokenSource
from refundflow.platforms.salesforce.inbound import SalesforceInbound
from tests.conformance.ticket_suite import TicketHarness, TicketSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi

CLIENT_ID = "3MVG9ConformanceConsumerKey000001"
CLIENT_SECRET = "ConformanceConsumerSecret0000000000001"
WEBHOOK_SECRET = "salesforce-conformance-shared-secret-0123456789"
UNKNOWN_CASE = "5005e000009Zz9z"  # a Case id of the right shape that names no case


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[SalesforceSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = SalesforceSimulator({CLIENT_ID: CLIENT_SECRET}, webhook_secret=WEBHOOK_SECRET)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


def connector(url: str, client_secret: str = CLIENT_SECRET) -> SalesforceTickets:
    http = HttpClient(
        platform="salesforce", base_url=url, default_headers={"Accept": "application/json"}, timeout=(5.0, 30.0)
    )
    tokens = SalesforceTokenSource(http, client_id=CLIENT_ID, client_secret=client_secret)
    return SalesforceTickets(http, tokens)


@pytest.fixture
def harness(servers: tuple[SalesforceSimulator, str, DeliveryRecorder]) -> TicketHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return TicketHarness(
        name="salesforce",
        tickets=connector(url),
        inbound=SalesforceInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=None,
        body_signed=False,
        unknown_ticket_id=UNKNOWN_CASE,
    )


class TestSalesforceConformance(TicketSuite):
    def test_a_delivery_changed_after_signing_is_refused(self, harness: TicketHarness) -> None:
        """The suite's tampering appends a digit to the ticket id; a Salesforce case id then has 19 characters, which
        is no id at all (refused as an invalid request, never read). A change that keeps the body well formed is
        still only news: the case is read from the API."""
        ticket_id, _ = harness.seed_ticket()
        (headers, body), _ = harness.act(ticket_id, "approve")
        with pytest.raises(InvalidRequest):
            harness.inbound.verify(
                headers, body.replace(ticket_id.encode(), (ticket_id + "1").encode(), 1), harness.verification_secret
            )
        changed = body.replace(b'"Approved"', b'"Cancelled"')
        assert changed != body
        verified = harness.inbound.verify(headers, changed, harness.verification_secret)
        assert [news.ticket_id for news in verified.tickets] == [ticket_id]
        assert all(not news.payload.get("approved_by") for news in verified.tickets)
