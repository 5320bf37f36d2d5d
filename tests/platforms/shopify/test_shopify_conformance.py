"""Shopify's connector and inbound verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

import pytest

from refundflow.platforms.shopify.connector import ShopifyRefundProvider
from refundflow.platforms.shopify.inbound import ShopifyInbound
from tests.conformance.payment_suite import PaymentHarness, PaymentSuite
from tests.platforms.shopify.conftest import Served


@pytest.fixture
def harness(sandbox: Served, connector: ShopifyRefundProvider) -> PaymentHarness:
    simulator, _, receiver = sandbox
    return PaymentHarness(
        name="shopify",
        connector=connector,
        sandbox=simulator,
        inbound=ShopifyInbound(),
        receiver=receiver,
        # Shopify Payments refunds of the sandbox are decided at once; a pending one is polled (no webhook says it).
        async_seed={},
        restamp=None,  # Shopify signs no time: a replay is applied once, by X-Shopify-Webhook-Id
        batch=None,  # one event per delivery
    )


class TestShopifyConformance(PaymentSuite):
    pass
