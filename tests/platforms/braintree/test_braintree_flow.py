"""Braintree through the domain's steps, with the real connector and inbound against the Braintree simulator and
the refunds table on moto: a full and several partial refunds, a void of an unsettled transaction, an over-refund
refused, a bank-account refund settled or declined later by webhook, a card refund failing after it completed, and
an answer lost after the refund was made (found by our order id, never made twice)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.simulators.braintree import US_BANK_ACCOUNT
from refundflow.domain.inbound import apply_news, forward_delivery
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.validation import validate_refund
from refundflow.errors import InsufficientRefundableAmount, OutcomeUnknownError
from refundflow.money import Money
from refundflow.platforms.braintree.connector import BraintreeRefundProvider
from refundflow.platforms.braintree.inbound import BraintreeInbound
from refundflow.ports import NewsForwarder, ProviderEvent
from refundflow.status import RefundStatus
from tests.platforms.braintree.conftest import Served
from tests.support.fakes import World, refund_request_body, world

S = RefundStatus


@pytest.fixture
def env(sandbox: Served, connector: BraintreeRefundProvider) -> Iterator[World]:
    with world() as built:
        built.provider = connector  # type: ignore[assignment]
        yield built


def body(payment_id: str, amount: int | None, reference: str) -> Any:
    return refund_request_body(
        reference=reference, payment={"provider": "braintree", "payment_id": payment_id}, amount=amount, invoice_id=None
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

    def forward(self, platform: str, event: ProviderEvent) -> None:
        assert platform == "braintree"
        apply_news(event, recorder=self.env.recorder, provider=self.env.provider, callbacks=self.env.callbacks)


def deliver_news(env: World, sandbox: Served, count: int) -> None:
    """What intake does with the first ``count`` deliveries: verify, then forward each new event."""
    simulator, _, receiver = sandbox
    receiver.wait_until(lambda deliveries: len(deliveries) >= count)
    secret = simulator.local_secrets()["verification"]
    for headers, raw in list(receiver.deliveries)[:count]:
        delivery = BraintreeInbound().verify(headers, raw, secret)
        forward_delivery(delivery, platform="braintree", recorder=env.recorder, forwarder=InProcessForwarder(env))


def test_a_full_and_several_partial_refunds_complete_and_the_last_one_too_many_is_refused(
    env: World, sandbox: Served
) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(10_000, "EUR")["payment_id"]
    first = submitted(env, payment_id, 3_000, "RMA-B1")
    second = submitted(env, payment_id, 5_000, "RMA-B2")
    assert [env.repository.get(refund_id).status for refund_id in (first, second)] == [S.COMPLETED, S.COMPLETED]
    assert sorted(refund["amount"]["value"] for refund in simulator.refunds()) == ["30.00", "50.00"]
    # 20.00 is left: 25.00 is refused before anything reaches Braintree
    over = env.accept(body(payment_id, 2_500, "RMA-B3"), delivery_id="dlv-RMA-B3").refund.refund_id
    validate_refund(over, recorder=env.recorder)
    look_up_payment(over, recorder=env.recorder, provider=env.provider)
    env.approve(over)
    with pytest.raises(InsufficientRefundableAmount):
        reserve_amount(over, recorder=env.recorder)
    assert len(simulator.refunds()) == 2
    whole = simulator.seed_payment(4_500, "EUR")["payment_id"]
    assert env.repository.get(submitted(env, whole, None, "RMA-B4")).amount == Money.of(4_500, "EUR")


def test_an_unsettled_transaction_is_voided_and_the_audit_says_so(env: World, sandbox: Served) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(4_500, "EUR", settled=False)["payment_id"]
    refund_id = submitted(env, payment_id, None, "RMA-V1")
    assert env.repository.get(refund_id).status is S.COMPLETED
    assert simulator.transaction(payment_id)["status"] == "VOIDED"
    entries = [entry for entry in env.repository.timeline(refund_id) if entry.details.get("method") == "void"]
    assert entries


@pytest.mark.parametrize(("succeeded", "final"), [(True, S.COMPLETED), (False, S.FAILED)])
def test_a_bank_account_refund_waits_for_settlement_news(
    env: World, sandbox: Served, succeeded: bool, final: RefundStatus
) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(4_500, "EUR", instrument=US_BANK_ACCOUNT)["payment_id"]
    refund_id = submitted(env, payment_id, None, "RMA-ACH")
    refund = env.repository.get(refund_id)
    assert refund.status is S.REFUND_PENDING
    assert refund.provider_refund_id is not None
    simulator.settle_refund(refund.provider_refund_id, succeeded)
    deliver_news(env, sandbox, 1)
    assert env.repository.get(refund_id).status is final
    deliver_news(env, sandbox, 1)  # the same delivery again changes nothing
    assert env.repository.get(refund_id).status is final


def test_a_card_refund_failing_after_it_completed_needs_a_person(env: World, sandbox: Served) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(4_500, "EUR")["payment_id"]
    refund_id = submitted(env, payment_id, None, "RMA-LATE")
    refund = env.repository.get(refund_id)
    assert refund.status is S.COMPLETED
    assert refund.provider_refund_id is not None
    simulator.settle_refund(refund.provider_refund_id, False)  # refund_failed
    deliver_news(env, sandbox, 1)
    after = env.repository.get(refund_id)
    assert (after.status, after.attention_reason) == (S.NEEDS_ATTENTION, "provider_reversed_refund")


def test_an_answer_lost_after_the_refund_is_found_by_our_order_id(env: World, sandbox: Served) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(4_500, "EUR")["payment_id"]
    simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        submitted(env, payment_id, None, "RMA-LOST")
    (waiting,) = env.repository.list_by_status(S.REFUND_SUBMITTED)
    issue_refund(waiting.refund_id, recorder=env.recorder, provider=env.provider, now=env.clock)
    (held,) = simulator.refunds()
    done = env.repository.get(waiting.refund_id)
    assert (done.status, done.provider_refund_id) == (S.COMPLETED, held["legacyId"])


def test_a_void_whose_answer_was_lost_is_found_and_never_sent_again(env: World, sandbox: Served) -> None:
    simulator = sandbox[0]
    payment_id = simulator.seed_payment(4_500, "EUR", settled=False)["payment_id"]
    simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        submitted(env, payment_id, None, "RMA-VOID-LOST")
    (waiting,) = env.repository.list_by_status(S.REFUND_SUBMITTED)
    issue_refund(waiting.refund_id, recorder=env.recorder, provider=env.provider, now=env.clock)
    assert env.repository.get(waiting.refund_id).status is S.COMPLETED
    reversals = [seen for seen in simulator.requests_seen if "reverseTransaction" in seen["body"]]
    assert len(reversals) == 1
