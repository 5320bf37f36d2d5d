"""Zoho CRM's connector, webhook verification, default mapping and simulator: the shared ticket conformance suite.
Zoho signs nothing (a custom token header authenticates the sender, no timestamp), so the suite's stale-delivery
test is skipped and a changed body is still only news."""

from __future__ import annotations

import pytest

from local.simulators.zoho_crm import ZohoCrmSimulator
from refundflow.platforms.zoho_crm.inbound import ZohoCrmInbound
from tests.conformance.ticket_suite import TicketHarness, TicketSuite
from tests.platforms.zoho_crm.conftest import records
from tests.support.servers import DeliveryRecorder


@pytest.fixture
def harness(served: tuple[ZohoCrmSimulator, str, DeliveryRecorder]) -> TicketHarness:
    simulator, url, receiver = served
    return TicketHarness(
        name="zoho_crm",
        tickets=records(url, simulator.local_secrets()["api"]),
        inbound=ZohoCrmInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=None,
        body_signed=False,
        unknown_ticket_id="110000000000000999",
    )


class TestZohoCrmConformance(TicketSuite):
    pass
