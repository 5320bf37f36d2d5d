"""Braintree's connector and inbound verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

import pytest

from local.simulators.braintree import US_BANK_ACCOUNT
from refundflow.platforms.braintree.connector import BraintreeRefundProvider
from refundflow.platforms.braintree.inbound import BraintreeInbound
from tests.conformance.payment_suite import PaymentHarness, PaymentSuite
from tests.platforms.braintree.conftest import Served


@pytest.fixture
def harness(sandbox: Served, connector: BraintreeRefundProvider) -> PaymentHarness:
    simulator, _, receiver = sandbox
    return PaymentHarness(
        name="braintree",
        connector=connector,
        sandbox=simulator,
        inbound=BraintreeInbound(),
        receiver=receiver,
        # Refunds to a bank account stay open until settlement decides them (and a webhook says so).
        async_seed={"instrument": US_BANK_ACCOUNT},
        restamp=None,  # Braintree signs no separate time: a replay is applied once, by its event id
        batch=None,  # one notification per delivery
    )


class TestBraintreeConformance(PaymentSuite):
    pass
