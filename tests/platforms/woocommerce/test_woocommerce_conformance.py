"""WooCommerce against its simulator: the payment conformance suite (the order refunded through its gateway) and the
ticket conformance suite (the order as the ticket of its refund request), both on one connector."""

from __future__ import annotations

import pytest

from refundflow.platforms.woocommerce.inbound import WooCommerceInbound
from tests.conformance.payment_suite import PaymentHarness, PaymentSuite
from tests.conformance.ticket_suite import TicketHarness, TicketSuite
from tests.platforms.woocommerce.conftest import Served


class TestWooCommercePaymentConformance(PaymentSuite):
    @pytest.fixture
    def harness(self, served: Served) -> PaymentHarness:
        return PaymentHarness(
            name="woocommerce",
            connector=served.connector(),
            sandbox=served.simulator,
            inbound=WooCommerceInbound(),
            receiver=served.receiver,
            restamp=None,  # WooCommerce signs no time
            batch=None,  # one order per delivery
        )


class TestWooCommerceTicketConformance(TicketSuite):
    @pytest.fixture
    def harness(self, served: Served) -> TicketHarness:
        return TicketHarness(
            name="woocommerce",
            tickets=served.connector(),
            inbound=WooCommerceInbound(),
            sandbox=served.simulator,
            receiver=served.receiver,
            restamp=None,
            unknown_ticket_id="987654321",
            payment_provider="woocommerce",
        )
