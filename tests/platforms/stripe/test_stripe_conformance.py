"""Stripe's connector and inbound verification against its simulator: the shared payment conformance suite."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterator

import pytest
import requests

from local.simulators.stripe import PENDING_THEN_SUCCEED, StripeSimulator
from refundflow.platforms.stripe.connector import StripeRefundProvider
from refundflow.platforms.stripe.inbound import StripeInbound
from tests.conformance.payment_suite import Delivery, PaymentHarness, PaymentSuite
from tests.support.servers import DeliveryRecorder, serve_wsgi

API_KEY = "sk_test_conformance"
WEBHOOK_SECRET = "whsec_conformance_0123456789"


def restamp(delivery: Delivery, age: float) -> Delivery:
    """The body signed again as Stripe documents it, ``age`` seconds ago."""
    headers, body = delivery
    stamp = int(time.time() - age)
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    kept = {key: value for key, value in headers.items() if key.lower() != "stripe-signature"}
    return {**kept, "Stripe-Signature": f"t={stamp},v1={digest}"}, body


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[StripeSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = StripeSimulator(
            [API_KEY],
            webhook_url=receiver_url,
            webhook_secret=WEBHOOK_SECRET,
            pending_refund_settle_seconds=None,
            refund_fail_after_seconds=None,
        )
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def harness(servers: tuple[StripeSimulator, str, DeliveryRecorder]) -> PaymentHarness:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=10)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.clear()
    connector = StripeRefundProvider(api_key=API_KEY, api_base=url, timeout=(5.0, 30.0), max_network_retries=0)
    return PaymentHarness(
        name="stripe",
        connector=connector,
        sandbox=simulator,
        inbound=StripeInbound(),
        receiver=receiver,
        async_seed={"behaviour": PENDING_THEN_SUCCEED},
        restamp=restamp,
    )


class TestStripeConformance(PaymentSuite):
    pass


def test_the_simulator_holds_seeded_amounts_in_stripes_unit(harness: PaymentHarness) -> None:
    # GIVEN amounts in ISO minor units where Stripe's unit differs (MGA whole ariary, ISK hundredths)
    mga = harness.sandbox.seed_payment(150_000, "MGA")
    isk = harness.sandbox.seed_payment(500, "ISK")
    # THEN Stripe's objects hold them in Stripe's unit, and a fraction of an ariary cannot be seeded
    objects = requests.get(f"{harness.connector._api_base}/_control/objects", timeout=5).json()
    amounts = {intent["id"]: intent["amount"] for intent in objects["payment_intents"]}
    assert (amounts[mga["payment_id"]], amounts[isk["payment_id"]]) == (1_500, 50_000)
    with pytest.raises(ValueError, match=re.escape("whole ariary")):
        harness.sandbox.seed_payment(150_050, "MGA")


def test_send_webhooks_to_delivers_events_signed_with_the_local_verification_secret() -> None:
    # GIVEN a simulator told where to send its events (as the local stack does for every inbound platform)
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as receiver_url:
        simulator = StripeSimulator([API_KEY], webhook_secret=WEBHOOK_SECRET, pending_refund_settle_seconds=None)
        simulator.send_webhooks_to(f"{receiver_url}/webhooks/stripe")
        with serve_wsgi(simulator) as url:
            payment = simulator.seed_payment(10_000, "EUR")
            connector = StripeRefundProvider(api_key=API_KEY, api_base=url, timeout=(5.0, 30.0), max_network_retries=0)
            harness = PaymentHarness(
                name="stripe", connector=connector, sandbox=simulator, inbound=StripeInbound(), receiver=receiver
            )
            made = connector.create_refund(harness.request(harness.pay(5_000), 1_000))
            # THEN its events arrive there and verify with the secret intake is given
            harness.wait_for_news(made.provider_refund_id, made.status)
            assert payment["payment_id"].startswith("pi_")
            simulator.webhooks.wait_idle(timeout=10)
