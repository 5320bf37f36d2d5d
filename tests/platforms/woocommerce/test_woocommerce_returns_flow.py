"""A WooCommerce order's return through the ticket kit's domain, with the real connector and inbound against the
simulator and the refunds table on moto. WooCommerce core has no returns: a returns plugin (or the shop manager)
sets the order meta field ``_refund_return_status``. The request in the order is parked by the policy until the goods
are back (AWAITING_RETURN); ``received`` records the step and resumes the refund once, whatever WooCommerce
redelivers; a status refundflow does not know is refused with nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from refundflow.domain.payments import look_up_payment
from refundflow.domain.policy_step import evaluate_policy
from refundflow.domain.tickets import TicketMapping, apply_ticket_news
from refundflow.domain.validation import validate_refund
from refundflow.domain.waiting import RETURN_REPORTED, WaitFor, register_wait
from refundflow.errors import InvalidRequest
from refundflow.models import ReturnStatus
from refundflow.money import Money
from refundflow.platforms.woocommerce.connector import WooCommerceConnector
from refundflow.platforms.woocommerce.inbound import WooCommerceInbound
from refundflow.policy import ActivePolicy, PolicySourceSettings, load_policy
from refundflow.ports import TicketNews
from refundflow.status import RefundStatus
from tests.conformance.ticket_suite import default_mapping
from tests.platforms.woocommerce.conftest import Served
from tests.support.fakes import TIMING, World, world

S = RefundStatus
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
MAPPING = default_mapping("woocommerce")
WAITING_POLICY = """
version: "woocommerce-waits.1"
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
def connector(served: Served) -> WooCommerceConnector:
    return served.connector()


@pytest.fixture
def env(connector: WooCommerceConnector) -> Iterator[World]:
    with world() as built:
        built.provider = connector  # type: ignore[assignment]
        yield built


def policy() -> ActivePolicy:
    return ActivePolicy(
        source_settings=PolicySourceSettings.model_validate({"POLICY_PARAMETER_NAME": None}),
        packaged=lambda: load_policy(WAITING_POLICY, source="test"),
    )


def delivered(served: Served, count: int) -> list[TicketNews]:
    """WooCommerce's order.updated deliveries so far (at least ``count``), verified as intake verifies them."""
    served.receiver.wait_until(lambda deliveries: len(deliveries) >= count)
    secret = served.simulator.local_secrets()["verification"]
    return [
        news
        for headers, raw in list(served.receiver.deliveries)
        for news in WooCommerceInbound().verify(headers, raw, secret).tickets
    ]


def apply(env: World, connector: WooCommerceConnector, news: TicketNews, mapping: TicketMapping = MAPPING) -> Any:
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


def parked(env: World, served: Served, connector: WooCommerceConnector) -> tuple[str, str]:
    """An order of 90.00 whose shop manager asked to refund 45.00 (changed mind), parked until the goods are back.
    Returns the order id and the refund id."""
    order_id = served.simulator.seed_ticket(
        {"amount": "45.00", "currency": "EUR", "reason": "changed_mind", "order_id": "4711"}
    )
    served.simulator.agent_action(order_id, "request")
    [requested] = delivered(served, 1)
    asked = apply(env, connector, requested)
    assert asked.outcome == "accepted"
    validate_refund(asked.refund_id, recorder=env.recorder)
    look_up_payment(asked.refund_id, recorder=env.recorder, provider=env.provider)
    decided = evaluate_policy(asked.refund_id, recorder=env.recorder, policy=policy(), now=lambda: NOW)
    assert decided.status is S.AWAITING_RETURN
    assert (
        register_wait(asked.refund_id, WaitFor.RETURN, "token-1", repository=env.repository, callbacks=env.callbacks)
        is False
    )
    served.receiver.clear()
    return order_id, asked.refund_id


def test_a_waiting_refund_goes_on_once_when_the_order_says_its_goods_are_received(
    env: World, served: Served, connector: WooCommerceConnector
) -> None:
    # GIVEN a request in an order, parked by the policy until the goods are back (no return reported yet)
    order_id, refund_id = parked(env, served, connector)
    refund = env.repository.get(refund_id)
    assert (refund.payment.provider.value, refund.payment.payment_id) == ("woocommerce", order_id)
    assert refund.requested_amount == Money.of(4_500, "EUR")
    assert refund.return_info is None
    # WHEN the returns plugin sets _refund_return_status=received and WooCommerce delivers that order twice
    served.simulator.report_return(order_id, "received")
    [received] = delivered(served, 1)
    first, again = apply(env, connector, received), apply(env, connector, received)
    # THEN the received step is recorded once, the waiting workflow is resumed once
    assert (first.refund_id, again.refund_id) == (refund_id, refund_id)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert [step.status for step in env.repository.return_steps(refund_id)] == [ReturnStatus.RECEIVED]
    assert [step.source for step in env.repository.return_steps(refund_id)] == ["woocommerce"]
    assert [output["outcome"] for _, output in env.callbacks.succeeded] == [RETURN_REPORTED]
    # AND the policy, deciding again, approves the refund
    assert evaluate_policy(refund_id, recorder=env.recorder, policy=policy(), now=lambda: NOW).status is S.APPROVED


def test_the_steps_moment_is_the_orders_return_at_and_a_step_short_of_received_keeps_it_waiting(
    env: World, served: Served, connector: WooCommerceConnector
) -> None:
    order_id, refund_id = parked(env, served, connector)
    # WHEN the parcel is reported in transit at a stated moment
    served.simulator.report_return(order_id, "in_transit", at="2026-12-05T09:30:00+01:00")
    [news] = delivered(served, 1)
    assert apply(env, connector, news).duplicate is False
    # THEN the step carries that moment (not the delivery's), and the refund still waits for its goods
    [step] = env.repository.return_steps(refund_id)
    assert (step.status, step.occurred_at) == (ReturnStatus.IN_TRANSIT, datetime(2026, 12, 5, 8, 30, tzinfo=UTC))
    assert evaluate_policy(refund_id, recorder=env.recorder, policy=policy(), now=lambda: NOW).status is (
        S.AWAITING_RETURN
    )


def test_a_return_status_refundflow_does_not_know_is_refused_and_nothing_is_stored(
    env: World, served: Served, connector: WooCommerceConnector
) -> None:
    order_id, refund_id = parked(env, served, connector)
    before = env.repository.get(refund_id)
    # WHEN a plugin writes its own word for the goods being back
    served.simulator.report_return(order_id, "arrived")
    [news] = delivered(served, 1)
    # THEN the delivery is refused (the ticket function answers it 4xx and notes why on the order), naming the field
    with pytest.raises(InvalidRequest) as refused:
        apply(env, connector, news)
    assert refused.value.code == "ticket_not_a_refund_request"
    assert [error["field"] for error in refused.value.errors] == ["return.status"]  # type: ignore[attr-defined]
    # AND nothing is stored: no step, the refund untouched and still waiting, the workflow not resumed
    assert env.repository.return_steps(refund_id) == []
    after = env.repository.get(refund_id)
    assert (after.status, after.audit_seq) == (S.AWAITING_RETURN, before.audit_seq)
    assert env.callbacks.succeeded == []
