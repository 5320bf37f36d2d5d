"""WooCommerce through the domain's steps, with the real connector and inbound against the simulator and the refunds
table on moto: our refund is made once and its order.updated news finds it ours; a refund made in wp-admin is
recorded once as made outside refundflow (the existing external-refund machinery), never refunded again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from refundflow.domain.external import external_refund_id
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.validation import validate_refund
from refundflow.models import RefundOrigin
from refundflow.money import Money
from refundflow.platforms.woocommerce.inbound import WooCommerceInbound
from refundflow.ports import ProviderEvent
from refundflow.status import RefundStatus
from tests.platforms.woocommerce.conftest import Served
from tests.support.fakes import World, refund_request_body, world


@pytest.fixture
def env(served: Served) -> Iterator[World]:
    with world() as built:
        built.provider = served.connector()  # type: ignore[assignment]
        yield built


def refunded(env: World, order_id: str, amount: int) -> str:
    body = refund_request_body(
        reference=f"RMA-{order_id}",
        payment={"provider": "woocommerce", "payment_id": order_id},
        amount=amount,
        invoice_id=None,
    )
    refund_id = env.accept(body).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id


def order_news(served: Served, refunds: int) -> list[ProviderEvent]:
    """The payment news of every delivery received once the order shows ``refunds`` refunds."""
    secret = served.simulator.local_secrets()["verification"]

    def events() -> list[ProviderEvent]:
        found = []
        for headers, body in list(served.receiver.deliveries):
            found += WooCommerceInbound().verify(headers, body, secret).events
        return found

    served.receiver.wait_until(lambda _: any(len(event.refunds) == refunds for event in events()))
    return events()


def test_our_refund_is_made_once_and_its_news_is_found_ours(env: World, served: Served) -> None:
    order_id = served.simulator.seed_payment(6_000, "EUR")["payment_id"]
    refund_id = refunded(env, order_id, 2_000)
    stored = env.repository.get(refund_id)
    assert stored.status is RefundStatus.COMPLETED
    (made,) = served.simulator.refunds()
    assert stored.provider_refund_id == str(made["id"])
    for event in order_news(served, refunds=1):
        env.deliver(event)
    assert env.repository.find(external_refund_id("woocommerce", str(made["id"]))) is None
    assert env.repository.get(refund_id).status is RefundStatus.COMPLETED


def test_a_wp_admin_refund_is_recorded_once_as_made_outside_refundflow(env: World, served: Served) -> None:
    # GIVEN refundflow refunded 20.00 of an order of 60.00, then a shop manager refunded 15.00 in wp-admin
    order_id = served.simulator.seed_payment(6_000, "EUR")["payment_id"]
    refunded(env, order_id, 2_000)
    outside = served.simulator.admin_refund(int(order_id), 1_500)
    # WHEN the order's news arrives (every delivery, twice)
    news = order_news(served, refunds=2)
    for event in [*news, *news]:
        env.deliver(event)
    # THEN one refund of origin external holds the wp-admin refund, read from WooCommerce
    recorded = env.repository.get(external_refund_id("woocommerce", str(outside["id"])))
    assert recorded.origin is RefundOrigin.EXTERNAL
    assert recorded.amount == Money.of(1_500, "EUR")
    # AND the order's refundable balance counts it: 25.00 are left
    balance = env.repository.get_balance(recorded.payment.provider, order_id)
    assert balance is not None
    assert balance.remaining == Money.of(2_500, "EUR")
