"""Shopify through the domain's steps, with the real connector and inbound against the Shopify simulator and the
refunds table on moto: full and partial refunds of a Shopify Payments order, an over-refund refused before Shopify
is called, an answer lost after the refund was made (found by our note, never made twice), a pending refund polled
until Shopify settles it, and a refund a person made in the Shopify admin recorded as a refund made outside
refundflow (once, whatever the redeliveries), while the refunds/create news of our own refund records nothing new."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from refundflow.domain.external import external_refund_id
from refundflow.domain.inbound import apply_news, forward_delivery
from refundflow.domain.payments import issue_refund, look_up_payment, poll_refund, reserve_amount
from refundflow.domain.validation import validate_refund
from refundflow.errors import InsufficientRefundableAmount, OutcomeUnknownError
from refundflow.models import PaymentProvider, RefundOrigin
from refundflow.money import Money
from refundflow.platforms.shopify.connector import ShopifyRefundProvider
from refundflow.platforms.shopify.inbound import ShopifyInbound
from refundflow.ports import NewsForwarder, ProviderEvent
from refundflow.status import RefundStatus
from tests.platforms.shopify.conftest import Served
from tests.support.fakes import World, refund_request_body, world

S = RefundStatus


@pytest.fixture
def env(sandbox: Served, connector: ShopifyRefundProvider) -> Iterator[World]:
    with world() as built:
        built.provider = connector  # type: ignore[assignment]
        yield built


def body(payment_id: str, amount: int | None, reference: str) -> Any:
    return refund_request_body(
        reference=reference, payment={"provider": "shopify", "payment_id": payment_id}, amount=amount, invoice_id=None
    )


def submitted(env: World, payment_id: str, amount: int | None, reference: str) -> str:
    """Accept, validate, look up, approve, reserve and send."""
    refund_id = env.accept(body(payment_id, amount, reference), delivery_id=f"dlv-{reference}").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id


class InProcessForwarder(NewsForwarder):
    def __init__(self, env: World) -> None:
        self.env = env

    def forward(self, platform: str, event: Any) -> dict[str, Any]:
        assert platform == "shopify"
        assert isinstance(event, ProviderEvent)
        apply_news(event, recorder=self.env.recorder, provider=self.env.provider, callbacks=self.env.callbacks)
        return {}


def deliver_news(env: World, sandbox: Served, count: int) -> None:
    """What intake does with the first ``count`` deliveries: verify, then forward each new event."""
    simulator, _, receiver = sandbox
    receiver.wait_until(lambda deliveries: len(deliveries) >= count)
    secret = simulator.local_secrets()["verification"]
    for headers, raw in list(receiver.deliveries)[:count]:
        delivery = ShopifyInbound().verify(headers, raw, secret)
        forward_delivery(delivery, platform="shopify", recorder=env.recorder, forwarder=InProcessForwarder(env))


def test_a_full_and_partial_refunds_complete_and_one_too_many_is_refused(env: World, sandbox: Served) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(10_000, "EUR")["payment_id"]
    first = submitted(env, payment_id, 3_000, "RMA-S1")
    second = submitted(env, payment_id, 5_000, "RMA-S2")
    assert [env.repository.get(refund_id).status for refund_id in (first, second)] == [S.COMPLETED, S.COMPLETED]
    assert sorted(refund["totalRefundedSet"]["presentmentMoney"]["amount"] for refund in simulator.refunds()) == [
        "30.00",
        "50.00",
    ]
    # 20.00 is left: 25.00 is refused before anything reaches Shopify
    over = env.accept(body(payment_id, 2_500, "RMA-S3"), delivery_id="dlv-RMA-S3").refund.refund_id
    validate_refund(over, recorder=env.recorder)
    look_up_payment(over, recorder=env.recorder, provider=env.provider)
    env.approve(over)
    with pytest.raises(InsufficientRefundableAmount):
        reserve_amount(over, recorder=env.recorder)
    assert len(simulator.refunds()) == 2


def test_an_answer_lost_after_the_refund_is_found_by_our_note(env: World, sandbox: Served) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(4_500, "EUR")["payment_id"]
    simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        submitted(env, payment_id, None, "RMA-LOST")
    (waiting,) = env.repository.list_by_status(S.REFUND_SUBMITTED)
    issue_refund(waiting.refund_id, recorder=env.recorder, provider=env.provider, now=env.clock)
    (held,) = simulator.refunds()
    done = env.repository.get(waiting.refund_id)
    assert (done.status, done.provider_refund_id) == (S.COMPLETED, held["id"])
    assert held["note"] == f"refundflow {waiting.refund_id}"


def test_a_pending_refund_is_polled_until_shopify_settles_it(env: World, sandbox: Served) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(4_500, "EUR", refund_status="PENDING")["payment_id"]
    refund_id = submitted(env, payment_id, None, "RMA-PEND")
    refund = env.repository.get(refund_id)
    assert refund.status is S.REFUND_PENDING
    assert refund.provider_refund_id is not None
    poll_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.repository.get(refund_id).status is S.REFUND_PENDING
    simulator.settle_refund(refund.provider_refund_id, True)
    poll_refund(refund_id, recorder=env.recorder, provider=env.provider)
    assert env.repository.get(refund_id).status is S.COMPLETED


def test_a_refund_made_in_the_shopify_admin_is_recorded_once_as_external(env: World, sandbox: Served) -> None:
    # GIVEN a Shopify Payments order of 100.00 and a refund of 30.00 a person made in the Shopify admin
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(10_000, "EUR")["payment_id"]
    look = submitted(env, payment_id, 1_000, "RMA-OURS")  # ours: 10.00, its refunds/create is delivery 1
    made = simulator.admin_refund(payment_id, 3_000)  # delivery 2
    # WHEN both refunds/create deliveries are verified and applied, twice
    deliver_news(env, sandbox, 2)
    deliver_news(env, sandbox, 2)
    # THEN the admin's refund is a refund of origin external, once, and ours is still ours alone
    recorded = env.repository.get(external_refund_id("shopify", made["id"]))
    assert recorded.origin is RefundOrigin.EXTERNAL
    assert recorded.amount == Money.of(3_000, "EUR")
    assert recorded.provider_refund_id == made["id"]
    assert env.repository.get(look).status is S.COMPLETED
    externals = [
        refund
        for refund in env.repository.refunds_for_payment(PaymentProvider.SHOPIFY, payment_id)
        if refund.origin is RefundOrigin.EXTERNAL
    ]
    assert len(externals) == 1
    # AND what refundflow may still refund of the order counts it
    balance = env.repository.get_balance(PaymentProvider.SHOPIFY, payment_id)
    assert balance is not None
    assert balance.remaining == Money.of(6_000, "EUR")
