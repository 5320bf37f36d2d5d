"""Chargebee's connector and inbound verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

import pytest

from refundflow.platforms.chargebee.inbound import ChargebeeInbound
from tests.conformance.payment_suite import PaymentHarness, PaymentSuite
from tests.platforms.chargebee.conftest import Served


@pytest.fixture
def harness(served: Served) -> PaymentHarness:
    return PaymentHarness(
        name="chargebee",
        connector=served.connector(),
        sandbox=served.simulator,
        inbound=ChargebeeInbound(),
        receiver=served.receiver,
        async_seed={"behaviour": "async"},
        restamp=None,  # Chargebee sends no time we could bound: a replay is forwarded once, by its event id
        batch=None,  # one event per delivery
        body_signed=False,  # Basic credentials on the URL; the body is news, read again from the API
    )


class TestChargebeeConformance(PaymentSuite):
    pass
