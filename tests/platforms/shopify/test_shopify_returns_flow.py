"""A Shopify return through the ticket kit's domain, with the real connector and inbound against the simulator and
the refunds table on moto: the return requested asks for the refund, which the policy parks until the goods are
back (AWAITING_RETURN); the return processed in Shopify (every line received) records the received step and
resumes the refund, once whatever Shopify redelivers; an order paid through the merchant's Stripe gateway names
Stripe's payment, never Shopify's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
import yaml

from refundflow.domain.payments import look_up_payment
from refundflow.domain.policy_step import evaluate_policy
from refundflow.domain.tickets import TicketMapping, apply_ticket_news, load_mapping, ticket_request
from refundflow.domain.validation import validate_refund
from refundflow.domain.waiting import RETURN_REPORTED, WaitFor, register_wait
from refundflow.models import ReturnStatus
from refundflow.money import Money
from refundflow.platforms.shopify.connector import ShopifyConnector
from refundflow.platforms.shopify.inbound import ShopifyInbound
from refundflow.policy import ActivePolicy, PolicySourceSettings, load_policy
from refundflow.ports import TicketNews
from refundflow.status import RefundStatus
from tests.platforms.shopify.conftest import Served
from tests.support.fakes import TIMING, World, world

S = RefundStatus
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WAITING_POLICY = """
version: "shopify-waits.1"
currencies: [EUR]
roles: [agent]
rules:
  - id: return_not_received
    description: Changed-mind refunds are paid once the goods are back
    when: refund.reason == "changed_mind" && !return_info.received
    outcome: wait_for_return
    reason_code: return_not_received
default:
  description: Everything else is approved
  outcome: approve
"""


@pytest.fixture
def env(sandbox: Served, connector: ShopifyConnector) -> Iterator[World]:
    with world() as built:
        built.provider = connector  # type: ignore[assignment]
        yield built


@pytest.fixture(scope="module")
def mapping() -> TicketMapping:
    text = resources.files("refundflow.platforms.shopify").joinpath("mapping.yaml").read_text()
    return load_mapping(yaml.safe_load(text), source="shopify default")


def policy() -> ActivePolicy:
    return ActivePolicy(
        source_settings=PolicySourceSettings.model_validate({"POLICY_PARAMETER_NAME": None}),
        packaged=lambda: load_policy(WAITING_POLICY, source="test"),
    )


def delivered(served: Served, count: int) -> list[TicketNews]:
    """Shopify's deliveries so far, verified by intake as Shopify sent them."""
    simulator, _, receiver = served
    receiver.wait_until(lambda deliveries: len(deliveries) >= count)
    secret = simulator.local_secrets()["verification"]
    return [
        news
        for headers, raw in list(receiver.deliveries)
        for news in ShopifyInbound().verify(headers, raw, secret).tickets
    ]


def apply(env: World, connector: ShopifyConnector, news: TicketNews, mapping: TicketMapping) -> Any:
    return apply_ticket_news(
        news,
        tickets=connector,
        mapping=mapping,
        recorder=env.recorder,
        starter=env.starter,
        callbacks=env.callbacks,
        policy=policy().select().policy,
        timing=TIMING,
    )


def seed(served: Served, provider: str = "shopify", payment_id: str | None = None) -> str:
    return served[0].seed_ticket(
        {
            "payment_provider": provider,
            "payment_id": payment_id,
            "amount": "45.00",
            "currency": "EUR",
            "reason": "changed_mind",
            "order_id": "#1042",
            "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace",
        }
    )


def test_a_requested_return_waits_for_its_goods_and_the_processed_return_lets_it_go_on(
    env: World, sandbox: Served, connector: ShopifyConnector, mapping: TicketMapping
) -> None:
    # GIVEN a Shopify Payments order of 45.00 whose customer asked to return it (changed mind)
    simulator = sandbox[0]
    ticket = seed(sandbox)
    simulator.agent_action(ticket, "request")
    [requested] = delivered(sandbox, 1)
    # WHEN the return's news is applied THEN one refund of the order is asked for, its return requested
    asked = apply(env, connector, requested, mapping)
    assert asked.outcome == "accepted"
    refund = env.repository.get(asked.refund_id)
    assert (refund.payment.provider.value, refund.payment.payment_id) == (
        "shopify",
        simulator.returns[f"gid://shopify/Return/{ticket}"]["orderId"],
    )
    assert refund.requested_amount == Money.of(4_500, "EUR")
    assert refund.return_info is not None
    assert refund.return_info.status is ReturnStatus.REQUESTED  # the request's own return: the first step
    # AND the policy parks it until the goods are back
    validate_refund(asked.refund_id, recorder=env.recorder)
    look_up_payment(asked.refund_id, recorder=env.recorder, provider=env.provider)
    decided = evaluate_policy(asked.refund_id, recorder=env.recorder, policy=policy(), now=lambda: NOW)
    assert decided.status is S.AWAITING_RETURN
    assert (
        register_wait(asked.refund_id, WaitFor.RETURN, "token-1", repository=env.repository, callbacks=env.callbacks)
        is False
    )
    # WHEN the merchant processes the return in Shopify (every line back) and Shopify delivers it twice
    simulator.process_return(ticket)
    processed = delivered(sandbox, 2)[1]
    first, again = apply(env, connector, processed, mapping), apply(env, connector, processed, mapping)
    # THEN the received step is recorded once, the waiting workflow is told once, and the refund is approved
    assert (first.refund_id, again.refund_id) == (asked.refund_id, asked.refund_id)
    assert again.duplicate is True
    assert [step.status for step in env.repository.return_steps(asked.refund_id)] == [ReturnStatus.RECEIVED]
    assert [output["outcome"] for _, output in env.callbacks.succeeded] == [RETURN_REPORTED]
    assert (
        evaluate_policy(asked.refund_id, recorder=env.recorder, policy=policy(), now=lambda: NOW).status is S.APPROVED
    )


def test_a_processed_return_of_an_order_paid_through_stripe_names_stripes_payment(
    sandbox: Served, connector: ShopifyConnector, mapping: TicketMapping
) -> None:
    # GIVEN an order paid through the merchant's Stripe gateway, its return processed
    simulator = sandbox[0]
    ticket = seed(sandbox, provider="stripe", payment_id="ch_3QxShopifyStripe01")
    simulator.process_return(ticket)
    [news] = delivered(sandbox, 1)
    # WHEN it is read under the default mapping
    intent, request = ticket_request(news, connector.read_ticket(news.ticket_id), mapping)
    # THEN the request names Stripe's charge (Stripe refunds it, Shopify never does) and the goods are back
    assert intent is not None
    assert intent.value == "approved"
    assert (request.payment.provider.value, request.payment.payment_id) == ("stripe", "ch_3QxShopifyStripe01")
    assert request.return_info is not None
    assert request.return_info.status is ReturnStatus.RECEIVED
    assert request.amount == Money.of(4_500, "EUR")
    assert request.order.order_id == "#1042"


def test_a_declined_return_withdraws_the_request(
    sandbox: Served, connector: ShopifyConnector, mapping: TicketMapping
) -> None:
    simulator = sandbox[0]
    ticket = seed(sandbox)
    simulator.agent_action(ticket, "withdraw")
    [news] = delivered(sandbox, 1)
    intent, _ = ticket_request(news, connector.read_ticket(news.ticket_id), mapping)
    assert intent is not None
    assert intent.value == "cancelled"
