"""Shopify's returns as the ticket kit's tickets, against its simulator: the shared ticket conformance suite, where
it applies to a shop. A return names no approver (Shopify records no person's approval on it), so the two checks of
an approver's role are not Shopify's; everything else runs as for every help desk."""

from __future__ import annotations

import pytest

from refundflow.platforms.shopify.connector import ShopifyConnector
from refundflow.platforms.shopify.inbound import ShopifyInbound
from tests.conformance.ticket_suite import TicketHarness, TicketSuite
from tests.platforms.shopify.conftest import Served

NO_APPROVER = "a Shopify return names no approver: the shop's confirmation that the goods are back claims no role"


@pytest.fixture
def harness(sandbox: Served, connector: ShopifyConnector) -> TicketHarness:
    simulator, _, receiver = sandbox
    return TicketHarness(
        name="shopify",
        tickets=connector,
        inbound=ShopifyInbound(),
        sandbox=simulator,
        receiver=receiver,
        restamp=None,  # Shopify signs no time
        unknown_ticket_id="987654321",
        payment_provider="stripe",  # an order paid through the merchant's Stripe gateway: Stripe refunds it
    )


class TestShopifyTicketConformance(TicketSuite):
    def test_an_approval_by_a_team_lead_asks_for_the_seeded_refund(self, harness: TicketHarness) -> None:
        pytest.skip(NO_APPROVER)

    def test_an_approval_by_an_agent_claims_the_agent_role(self, harness: TicketHarness) -> None:
        pytest.skip(NO_APPROVER)
