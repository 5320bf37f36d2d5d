"""Klarna through the domain's steps, with the real connector against the Klarna simulator and the refunds table on
moto: full and partial refunds completed when Klarna answers, partials up to the order's balance and an over-refund
refused before Klarna is called, a refund made outside refundflow counted, and an answer lost after Klarna refunded
found by our reference without a second POST."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.klarna import DEFAULT_PASSWORD, DEFAULT_USERNAME, KlarnaSimulator
from refundflow.connectors.http import HttpClient
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.validation import validate_refund
from refundflow.errors import InsufficientRefundableAmount, OutcomeUnknownError, PolicyViolation
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.klarna.connector import KlarnaRefundProvider
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body, world
from tests.support.servers import serve_wsgi


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[KlarnaSimulator, str]]:
    simulator = KlarnaSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(served: tuple[KlarnaSimulator, str]) -> KlarnaSimulator:
    simulator = served[0]
    simulator.reset_state()
    simulator.faults.clear()
    simulator.requests_seen.clear()
    return simulator


@pytest.fixture
def klarna_world(served: tuple[KlarnaSimulator, str], simulator: KlarnaSimulator) -> Iterator[World]:
    provider = KlarnaRefundProvider(
        username=DEFAULT_USERNAME,
        password=DEFAULT_PASSWORD,
        http=HttpClient(platform="klarna", base_url=served[1], timeout=(5.0, 30.0)),
    )
    with world() as built:
        built.provider = provider  # type: ignore[assignment]
        yield built


def body(order_id: str, amount: int, reference: str, currency: str = "SEK") -> Any:
    return refund_request_body(
        reference=reference,
        payment={"provider": "klarna", "payment_id": order_id},
        amount=amount,
        currency=currency,
        invoice_id=None,
    )


def reserved(env: World, order_id: str, amount: int, reference: str, currency: str = "SEK") -> str:
    """Accept, validate, look the order up at Klarna, approve and reserve."""
    refund_id = env.accept(body(order_id, amount, reference, currency), delivery_id=reference).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    return refund_id


def posts(simulator: KlarnaSimulator) -> int:
    return sum(1 for seen in simulator.requests_seen if seen["method"] == "POST")


@pytest.mark.parametrize("amount", [12_000, 4_500], ids=["full", "partial"])
def test_a_refund_completes_when_klarna_answers(klarna_world: World, simulator: KlarnaSimulator, amount: int) -> None:
    # GIVEN a captured Klarna order of 120.00 SEK and a refund reserved for it
    order_id = simulator.seed_payment(12_000, "SEK")["payment_id"]
    refund_id = reserved(klarna_world, order_id, amount, "RMA-K1")
    # WHEN it is sent
    issue_refund(refund_id, recorder=klarna_world.recorder, provider=klarna_world.provider)
    # THEN Klarna holds one refund of that amount with our reference, and ours is done (no invoice: completed)
    (held,) = simulator.refunds()
    done = klarna_world.repository.get(refund_id)
    assert (held["refunded_amount"], held["reference"]) == (amount, refund_id)
    assert (done.status, done.provider_refund_id, done.amount) == (
        RefundStatus.COMPLETED,
        held["refund_id"],
        Money.of(amount, "SEK"),
    )


def test_partials_go_up_to_the_orders_balance_and_an_over_refund_never_reaches_klarna(
    klarna_world: World, simulator: KlarnaSimulator, served: tuple[KlarnaSimulator, str]
) -> None:
    # GIVEN 120.00 SEK captured, 20.00 refunded at Klarna outside refundflow (the merchant portal)
    order_id = simulator.seed_payment(12_000, "SEK")["payment_id"]
    outside = requests.post(
        f"{served[1]}/ordermanagement/v1/orders/{order_id}/refunds",
        json={"refunded_amount": 2_000, "description": "Refund from the merchant portal"},
        auth=(DEFAULT_USERNAME, DEFAULT_PASSWORD),
        timeout=5,
    )
    assert outside.status_code == 201
    simulator.requests_seen.clear()
    # WHEN 60.00 then 40.00 are refunded through refundflow
    for amount, reference in ((6_000, "RMA-K2"), (4_000, "RMA-K3")):
        refund_id = reserved(klarna_world, order_id, amount, reference)
        issue_refund(refund_id, recorder=klarna_world.recorder, provider=klarna_world.provider)
        assert klarna_world.repository.get(refund_id).status is RefundStatus.COMPLETED
    # THEN nothing is left, and one more öre is refused before Klarna is asked
    balance = klarna_world.repository.get_balance(PaymentProvider.KLARNA, order_id)
    assert balance is not None
    assert balance.remaining == Money.of(0, "SEK")
    sent = posts(simulator)
    with pytest.raises((InsufficientRefundableAmount, PolicyViolation)):
        reserved(klarna_world, order_id, 1, "RMA-K4")
    assert posts(simulator) == sent == 2


def test_a_refund_in_another_currency_than_the_orders_is_refused_at_look_up(
    klarna_world: World, simulator: KlarnaSimulator
) -> None:
    order_id = simulator.seed_payment(12_000, "SEK")["payment_id"]
    with pytest.raises(PolicyViolation) as refused:
        reserved(klarna_world, order_id, 1_000, "RMA-K5", currency="NOK")
    assert refused.value.code == "currency_mismatch"
    assert posts(simulator) == 0


def test_an_answer_lost_after_klarna_refunded_is_found_by_our_reference_not_sent_again(
    klarna_world: World, simulator: KlarnaSimulator
) -> None:
    # GIVEN Klarna makes the refund, then answers 500
    order_id = simulator.seed_payment(12_000, "SEK")["payment_id"]
    refund_id = reserved(klarna_world, order_id, 5_000, "RMA-K6")
    simulator.add_fault(
        FaultRule(method="POST", path=r"^/ordermanagement/v1/orders/[^/]+/refunds$", status=500, when="after")
    )
    with pytest.raises(OutcomeUnknownError):
        issue_refund(refund_id, recorder=klarna_world.recorder, provider=klarna_world.provider)
    assert klarna_world.repository.get(refund_id).status is RefundStatus.REFUND_SUBMITTED
    # WHEN the step is retried
    issue_refund(refund_id, recorder=klarna_world.recorder, provider=klarna_world.provider, now=klarna_world.clock)
    # THEN it was found among the order's refunds by our reference: completed, one refund, one POST
    (held,) = simulator.refunds()
    done = klarna_world.repository.get(refund_id)
    assert (done.status, done.provider_refund_id) == (RefundStatus.COMPLETED, held["refund_id"])
    assert posts(simulator) == 1
