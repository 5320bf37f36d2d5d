"""Adyen through the domain's steps, with the real connector and inbound against the Adyen simulator and the
refunds table on moto: full and partial refunds completed by the REFUND notification, a late REFUND_FAILED,
an over-refund refused by notification, an unknown outcome resolved by a resend under the same key, and a
refund whose outcome never comes (outcome_not_reported)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.adyen import DEFAULT_HMAC_KEY, AdyenSimulator
from refundflow.connectors.http import HttpClient
from refundflow.domain.inbound import apply_news, forward_delivery
from refundflow.domain.payments import issue_refund, look_up_payment, poll_refund, reserve_amount
from refundflow.domain.validation import validate_refund
from refundflow.errors import OutcomeUnknownError, PaymentNotKnown
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.adyen.connector import AdyenRefundProvider
from refundflow.platforms.adyen.inbound import AdyenInbound
from refundflow.ports import NewsForwarder, ProviderEvent
from refundflow.status import RefundStatus
from tests.platforms.adyen.receiver import Receiver
from tests.support.fakes import World, refund_request_body, world
from tests.support.servers import serve_wsgi

SECRET = {"hmac_keys": [DEFAULT_HMAC_KEY]}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AdyenSimulator, str, Receiver]]:
    endpoint = Receiver()
    simulator = AdyenSimulator(settle_after_seconds=None)
    with serve_wsgi(endpoint) as hook, serve_wsgi(simulator) as url:
        simulator.send_webhooks_to(f"{hook}/webhooks/adyen")
        yield simulator, url, endpoint


@pytest.fixture
def simulator(served: tuple[AdyenSimulator, str, Receiver]) -> AdyenSimulator:
    simulator, url, endpoint = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    endpoint.clear()
    simulator.settle_after_seconds = None
    return simulator


@pytest.fixture
def adyen_world(served: tuple[AdyenSimulator, str, Receiver], simulator: AdyenSimulator) -> Iterator[World]:
    base = f"{served[1]}/checkout/v71"
    provider = AdyenRefundProvider(
        api_key="AQE_test_refundflow_simulator_key",
        merchant_account="RefundflowECOM",
        api_base=base,
        http=HttpClient(platform="adyen", base_url=base, timeout=(5.0, 30.0)),
    )
    with world() as built:
        built.provider = provider  # type: ignore[assignment]
        yield built


def adyen_body(psp: str, amount: int, reference: str) -> Any:
    return refund_request_body(
        reference=reference,
        payment={"provider": "adyen", "payment_id": psp},
        amount=amount,
        invoice_id=None,
    )


def submitted(env: World, psp: str, amount: int, reference: str = "RMA-A1") -> str:
    """Accept, validate, look up, approve, reserve and send: the refund waits for Adyen's notification."""
    refund_id = env.accept(adyen_body(psp, amount, reference)).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id


class InProcessForwarder(NewsForwarder):
    """The platform function, called in process (the stack invokes it by Lambda)."""

    def __init__(self, env: World) -> None:
        self.env = env

    def forward(self, platform: str, event: ProviderEvent) -> None:
        assert platform == "adyen"
        apply_news(event, recorder=self.env.recorder, provider=self.env.provider, callbacks=self.env.callbacks)


def deliver_news(env: World, endpoint: Receiver, count: int) -> None:
    """What intake does with the first ``count`` deliveries Adyen sent: verify, then forward each new event
    (a delivery seen before is a duplicate and changes nothing)."""
    endpoint.wait_for(count)
    for body in endpoint.bodies[:count]:
        delivery = AdyenInbound().verify({}, body, SECRET)
        forward_delivery(delivery, platform="adyen", recorder=env.recorder, forwarder=InProcessForwarder(env))


def paid(env: World, simulator: AdyenSimulator, endpoint: Receiver, minor_units: int = 4_200) -> str:
    """A payment captured at Adyen, whose AUTHORISATION (immediate capture) refundflow has applied."""
    psp = str(simulator.seed_payment(minor_units, "EUR")["payment_id"])
    deliver_news(env, endpoint, len(endpoint.bodies) + 1)
    return psp


@pytest.mark.parametrize("amount", [4_200, 1_500], ids=["full", "partial"])
def test_a_refund_completes_when_adyen_reports_it(
    adyen_world: World, simulator: AdyenSimulator, served: tuple[AdyenSimulator, str, Receiver], amount: int
) -> None:
    # GIVEN a captured payment of 42.00 EUR and a refund sent for it
    psp = paid(adyen_world, simulator, served[2])
    refund_id = submitted(adyen_world, psp, amount)
    refund = adyen_world.repository.get(refund_id)
    assert refund.status is RefundStatus.REFUND_PENDING
    (held,) = simulator.refunds()
    assert held["reference"] == refund_id
    assert refund.provider_refund_id == held["pspReference"]
    # WHEN Adyen processes it and its notification is applied
    simulator.settle_refund(held["pspReference"], True)
    deliver_news(adyen_world, served[2], 2)
    # THEN the refund is done, for the amount asked
    done = adyen_world.repository.get(refund_id)
    assert done.status is RefundStatus.COMPLETED
    assert done.amount == Money(minor_units=amount, currency="EUR")


@pytest.mark.parametrize("late", ["REFUND_FAILED", "REFUNDED_REVERSED"])
def test_a_late_failure_of_a_completed_refund_needs_a_person(
    adyen_world: World, simulator: AdyenSimulator, served: tuple[AdyenSimulator, str, Receiver], late: str
) -> None:
    # GIVEN a refund Adyen reported done (the refund is COMPLETED: no invoice)
    psp = paid(adyen_world, simulator, served[2])
    refund_id = submitted(adyen_world, psp, 4_200)
    (held,) = simulator.refunds()
    simulator.settle_refund(held["pspReference"], True)
    deliver_news(adyen_world, served[2], 2)
    assert adyen_world.repository.get(refund_id).status is RefundStatus.COMPLETED
    # WHEN Adyen later reports it failed or came back
    simulator.decide(held["pspReference"], late, True)
    deliver_news(adyen_world, served[2], 3)
    # THEN a person is asked to look (the money came back to the merchant, the customer was told it was sent)
    after = adyen_world.repository.get(refund_id)
    assert (after.status, after.attention_reason) == (RefundStatus.NEEDS_ATTENTION, "provider_reversed_refund")


def test_an_over_refund_is_refused_in_the_notification(
    adyen_world: World, simulator: AdyenSimulator, served: tuple[AdyenSimulator, str, Receiver]
) -> None:
    # GIVEN 30.00 already refunded outside refundflow on a 42.00 payment (Adyen knows, we do not)
    psp = paid(adyen_world, simulator, served[2])
    outside = requests.post(
        f"{served[1]}/checkout/v71/payments/{psp}/refunds",
        json={"merchantAccount": "RefundflowECOM", "amount": {"currency": "EUR", "value": 3_000}},
        headers={"X-API-Key": "AQE_test_refundflow_simulator_key"},
        timeout=5,
    ).json()["pspReference"]
    simulator.settle_refund(outside, True)
    # WHEN refundflow refunds 20.00 and Adyen processes it
    refund_id = submitted(adyen_world, psp, 2_000)
    ours = next(held for held in simulator.refunds() if held["reference"] == refund_id)
    simulator.settle_refund(ours["pspReference"], False)
    deliver_news(adyen_world, served[2], 3)
    # THEN the refund failed with Adyen's reason
    failed = adyen_world.repository.get(refund_id)
    assert failed.status is RefundStatus.FAILED


def test_an_unknown_outcome_is_resent_under_the_same_key(
    adyen_world: World, simulator: AdyenSimulator, served: tuple[AdyenSimulator, str, Receiver]
) -> None:
    # GIVEN Adyen makes the refund but its answer comes after the client gave up
    psp = paid(adyen_world, simulator, served[2])
    simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        submitted(adyen_world, psp, 4_200)
    refund_id = adyen_world.repository.list_by_status(RefundStatus.REFUND_SUBMITTED)[0].refund_id
    # WHEN the step is retried (Adyen cannot be searched: the key is still remembered, so it is resent)
    issue_refund(refund_id, recorder=adyen_world.recorder, provider=adyen_world.provider, now=adyen_world.clock)
    # THEN one refund at Adyen, and ours names it
    (held,) = simulator.refunds()
    assert adyen_world.repository.get(refund_id).provider_refund_id == held["pspReference"]


def test_an_outcome_never_reported_needs_a_person(
    adyen_world: World, simulator: AdyenSimulator, served: tuple[AdyenSimulator, str, Receiver]
) -> None:
    psp = paid(adyen_world, simulator, served[2])
    refund_id = submitted(adyen_world, psp, 4_200)
    poll_refund(refund_id, recorder=adyen_world.recorder, provider=adyen_world.provider)
    refund = adyen_world.repository.get(refund_id)
    assert refund.status is RefundStatus.NEEDS_ATTENTION
    assert refund.attention_reason == "outcome_not_reported"


def test_a_payment_adyen_has_not_reported_is_not_refunded_until_its_capture_arrives(
    adyen_world: World, simulator: AdyenSimulator, served: tuple[AdyenSimulator, str, Receiver]
) -> None:
    # GIVEN a payment authorised, captured later (its AUTHORISATION says nothing about a capture)
    psp = str(simulator.seed_payment(4_200, "EUR", settled=False)["payment_id"])
    deliver_news(adyen_world, served[2], 1)
    refund_id = adyen_world.accept(adyen_body(psp, 1_000, "RMA-A9")).refund.refund_id
    validate_refund(refund_id, recorder=adyen_world.recorder)
    # WHEN it is looked up / THEN Adyen has not reported a capture: nothing is refundable yet
    with pytest.raises(PaymentNotKnown):
        look_up_payment(refund_id, recorder=adyen_world.recorder, provider=adyen_world.provider)
    # WHEN the CAPTURE notification is applied / THEN the look-up finds 42.00 captured
    simulator.capture_payment(psp)
    deliver_news(adyen_world, served[2], 2)
    look_up_payment(refund_id, recorder=adyen_world.recorder, provider=adyen_world.provider)
    balance = adyen_world.repository.get_balance(PaymentProvider.ADYEN, psp)
    assert balance is not None
    assert balance.captured == Money(minor_units=4_200, currency="EUR")
