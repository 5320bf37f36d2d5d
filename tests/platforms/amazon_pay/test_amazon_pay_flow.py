"""Amazon Pay through the domain's steps, with the real connector and IPN verifier against the simulator and the
refunds table on moto: an asynchronous success and a late failure told by IPNs that name the refund only (the
function reads it from the API), a duplicate IPN ignored, and an unknown outcome resolved by the same key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.simulators.amazon_pay import MANUAL
from local.simulators.base import FaultRule
from refundflow.domain.inbound import apply_news, forward_delivery
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.validation import validate_refund
from refundflow.errors import OutcomeUnknownError
from refundflow.money import Money
from refundflow.platforms.amazon_pay.inbound import AmazonPayInbound
from refundflow.platforms.amazon_pay.sns import CertificateCache
from refundflow.ports import NewsForwarder, ProviderEvent
from refundflow.status import RefundStatus
from tests.platforms.amazon_pay.conftest import Served
from tests.support.fakes import World, refund_request_body, world

S = RefundStatus


@pytest.fixture
def amazon_world(fresh: Served) -> Iterator[World]:
    with world() as built:
        built.provider = fresh.connector()  # type: ignore[assignment]
        yield built


class InProcessForwarder(NewsForwarder):
    """Amazon Pay's function, called in process (the stack invokes it by Lambda)."""

    def __init__(self, env: World) -> None:
        self.env = env
        self.applied: list[str] = []

    def forward(self, platform: str, event: ProviderEvent) -> None:
        assert platform == "amazon_pay"
        apply_news(event, recorder=self.env.recorder, provider=self.env.provider, callbacks=self.env.callbacks)
        self.applied.append(event.event_id)


def submitted(env: World, fresh: Served, amount: int, **seed: object) -> tuple[str, str]:
    """A captured charge of 42.00 EUR and a refund of ``amount`` sent for it: (refund id, charge id)."""
    charge_id = str(fresh.simulator.seed_payment(4_200, "EUR", **seed)["payment_id"])  # type: ignore[arg-type]
    body = refund_request_body(
        reference="RMA-AP1", payment={"provider": "amazon_pay", "payment_id": charge_id}, amount=amount, invoice_id=None
    )
    refund_id = env.accept(body).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id, charge_id


def deliver(env: World, fresh: Served, forwarder: InProcessForwarder, count: int) -> list[bool]:
    """What intake does with the first ``count`` IPNs: verify each, forward each new event; True: a duplicate."""
    fresh.receiver.wait_until(lambda deliveries: len(deliveries) >= count)
    secret = fresh.simulator.local_secrets()["verification"]
    inbound = AmazonPayInbound(certificates=CertificateCache())
    return [
        forward_delivery(
            inbound.verify(headers, body, secret), platform="amazon_pay", recorder=env.recorder, forwarder=forwarder
        )
        for headers, body in fresh.receiver.deliveries[:count]
    ]


@pytest.mark.parametrize(("succeeded", "ends"), [(True, S.COMPLETED), (False, S.FAILED)], ids=["success", "late-fail"])
def test_the_outcome_told_by_an_ipn_is_read_from_amazon_pay_and_applied(
    amazon_world: World, fresh: Served, succeeded: bool, ends: RefundStatus
) -> None:
    # GIVEN a refund Amazon Pay holds as RefundInitiated
    refund_id, charge_id = submitted(amazon_world, fresh, 1_500, behaviour=MANUAL)
    refund = amazon_world.repository.get(refund_id)
    assert refund.status is S.REFUND_PENDING
    (held,) = fresh.simulator.refunds()
    assert (refund.provider_refund_id, held["chargeId"]) == (held["refundId"], charge_id)
    # WHEN Amazon Pay decides it and its IPN (the refund's id only) reaches intake and the function
    fresh.simulator.settle_refund(held["refundId"], succeeded)
    forwarder = InProcessForwarder(amazon_world)
    assert deliver(amazon_world, fresh, forwarder, 1) == [False]
    # THEN the refund ends as Amazon Pay says, for the amount asked; a failure released what it held
    done = amazon_world.repository.get(refund_id)
    assert (done.status, done.amount) == (ends, Money.of(1_500, "EUR"))
    if not succeeded:
        assert done.failure is not None
        assert done.failure.code == "AmazonRejected"
    # AND the same IPN delivered again changes nothing
    assert deliver(amazon_world, fresh, forwarder, 1) == [True]
    assert len(forwarder.applied) == 1


def test_an_unknown_outcome_is_resent_under_the_same_key_and_makes_one_refund(
    amazon_world: World, fresh: Served
) -> None:
    # GIVEN Amazon Pay makes the refund but answers 500
    fresh.simulator.add_fault(FaultRule(method="POST", path=r"/v2/refunds$", status=500, when="after"))
    with pytest.raises(OutcomeUnknownError):
        submitted(amazon_world, fresh, 4_200)
    refund_id = amazon_world.repository.list_by_status(S.REFUND_SUBMITTED)[0].refund_id
    # WHEN the step is retried (no refund search at Amazon Pay; its keys are kept indefinitely)
    issue_refund(refund_id, recorder=amazon_world.recorder, provider=amazon_world.provider, now=amazon_world.clock)
    # THEN one refund at Amazon Pay, and ours names it
    (held,) = fresh.simulator.refunds()
    assert amazon_world.repository.get(refund_id).provider_refund_id == held["refundId"]
