"""Dynamics 365 Customer Service's connector, flow verification, default mapping and simulator: the shared ticket
conformance suite. Power Automate signs nothing (the flow's HTTP action sends a shared secret header, no time), so
the suite's stale-delivery test is skipped and a changed body is still only news."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.dynamics_cs import DynamicsCaseSimulator
from refundflow.connectors.entra import EntraTokenSource
from refundflow.connectors.http import HttpClient
from refundflow.platforms.dynamics_cs.connector import DynamicsCases, scope_of
from refundflow.platforms.dynamics_cs.inbound import DynamicsCaseInbound
from tests.conformance.ticket_suite import TicketHarness, TicketSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi

FLOW_SECRET = "dynamics-cs-conformance-flow-secret-0123456789"
UNKNOWN_CASE = "00000000-0000-4000-8000-00000000dead"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[DynamicsCaseSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = DynamicsCaseSimulator(webhook_secret=FLOW_SECRET)
        simulator.send_webhooks_to(receiver_url)
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


def connector(simulator: DynamicsCaseSimulator, url: str, *, client_secret: str | None = None) -> DynamicsCases:
    api_base = f"{url}/api/data/v9.2"
    tokens = EntraTokenSource(
        platform="dynamics_cs",
        title="Dynamics 365 Customer Service",
        scope=scope_of(api_base),
        login_base=f"{url}/login",
        tenant_id=simulator.tenant_id,
        client_id=simulator.client_id,
        client_secret=client_secret or simulator.client_secret,
        http=HttpClient(platform="dynamics_cs", base_url=f"{url}/login", timeout=(5.0, 30.0)),
    )
    return DynamicsCases(HttpClient(platform="dynamics_cs", base_url=api_base, timeout=(5.0, 30.0)), tokens)


@pytest.fixture
def harness(servers: tuple[DynamicsCaseSimulator, str, DeliveryRecorder]) -> TicketHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    return TicketHarness(
        name="dynamics_cs",
        tickets=connector(simulator, url),
        inbound=DynamicsCaseInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=None,
        body_signed=False,
        unknown_ticket_id=UNKNOWN_CASE,
    )


class TestDynamicsCaseConformance(TicketSuite):
    pass
