"""ServiceNow's connector, REST message verification, default mapping and simulator: the shared ticket conformance
suite. ServiceNow signs nothing (a shared secret in the REST message's header authenticates the sender, no
timestamp), so the suite's stale-delivery test is skipped and a changed body is only news; a record's id is a
32-hex sys_id, so the suite's tampering (one more digit) makes a delivery that names no record at all: refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.servicenow import ServiceNowSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import InvalidRequest
from refundflow.platforms.servicenow.connector import ServiceNowTickets, ServiceNowTokens
from refundflow.platforms.servicenow.inbound import ServiceNowInbound
from tests.conformance.ticket_suite import TicketHarness, TicketSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi

CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "ServiceNowConformanceClientSecret"
WEBHOOK_SECRET = "servicenow-conformance-shared-secret-0123456789"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ServiceNowSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = ServiceNowSimulator(clients={CLIENT_ID: CLIENT_SECRET}, webhook_secret=WEBHOOK_SECRET)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


def connector(url: str) -> ServiceNowTickets:
    tokens = ServiceNowTokens(
        HttpClient(platform="servicenow", base_url=url, timeout=(5.0, 30.0)),
        grant="client_credentials",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    http = HttpClient(
        platform="servicenow", base_url=url, default_headers={"Accept": "application/json"}, timeout=(5.0, 30.0)
    )
    return ServiceNowTickets(http, tokens=tokens)


@pytest.fixture
def harness(servers: tuple[ServiceNowSimulator, str, DeliveryRecorder]) -> TicketHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return TicketHarness(
        name="servicenow",
        tickets=connector(url),
        inbound=ServiceNowInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=None,
        body_signed=False,
        unknown_ticket_id="0" * 32,
    )


class TestServiceNowConformance(TicketSuite):
    def test_a_delivery_changed_after_signing_is_refused(self, harness: TicketHarness) -> None:
        """The body is not signed: a changed sys_id of the right shape is still only news (the record is read from
        the API); the suite's change (one more digit) names no record, and is refused outright."""
        ticket_id, _ = harness.seed_ticket()
        (headers, body), _ = harness.act(ticket_id, "approve")
        with pytest.raises(InvalidRequest):
            harness.inbound.verify(
                headers,
                body.replace(ticket_id.encode(), (ticket_id + "1").encode(), 1),
                {**harness.verification_secret},
            )
        other_id = ("f" if ticket_id[0] != "f" else "e") + ticket_id[1:]
        verified = harness.inbound.verify(
            headers, body.replace(ticket_id.encode(), other_id.encode()), {**harness.verification_secret}
        )
        assert [item.ticket_id for item in verified.tickets] == [other_id]
        assert all(not item.payload.get("approved_by") for item in verified.tickets)
