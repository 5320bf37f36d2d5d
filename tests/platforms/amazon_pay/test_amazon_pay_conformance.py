"""Amazon Pay's connector and IPN verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

import pytest

from local.simulators.amazon_pay import MANUAL
from tests.conformance.payment_suite import PaymentHarness, PaymentSuite
from tests.platforms.amazon_pay.conftest import Served


@pytest.fixture
def harness(fresh: Served) -> PaymentHarness:
    # Amazon Pay's IPN is an SNS message whose Timestamp is kept on every redelivery: no restamp (no age limit);
    # one IPN per message: no batch.
    return PaymentHarness(
        name="amazon_pay",
        connector=fresh.connector(),
        sandbox=fresh.simulator,
        inbound=fresh.inbound(),
        receiver=fresh.receiver,
        async_seed={"behaviour": MANUAL},
    )


class TestAmazonPayConformance(PaymentSuite):
    pass
