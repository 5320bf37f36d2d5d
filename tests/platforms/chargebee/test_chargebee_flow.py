"""Chargebee through the domain's steps, with the real connector and inbound against the simulator and the refunds
table on moto: an in-progress refund completed by its (Basic-authenticated) news, which is re-read from the API
before anything changes, duplicates changing nothing; a lost answer left to a person once Chargebee's 30 minutes
are over (the resend within them is the conformance suite's)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from local.simulators.chargebee import DEFAULT_WEBHOOK_AUTH
from refundflow.domain.inbound import apply_news, forward_delivery
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.validation import validate_refund
from refundflow.errors import OutcomeUnknownError
from refundflow.models import PaymentProvider
from refundflow.platforms.chargebee.inbound import ChargebeeInbound
from refundflow.ports import NewsForwarder, ProviderEvent
from refundflow.status import RefundStatus
from tests.platforms.chargebee.conftest import Served
from tests.support.fakes import World, refund_request_body, world

SECRET = {"basic_auth": [DEFAULT_WEBHOOK_AUTH]}


@pytest.fixture
def env(served: Served) -> Iterator[World]:
    with world() as built:
        built.provider = served.connector()  # type: ignore[assignment]
        yield built


class InProcessForwarder(NewsForwarder):
    """The platform function, called in process (the stack invokes it by Lambda)."""

    def __init__(self, env: World) -> None:
        self.env = env
        self.applied: list[str] = []

    def forward(self, platform: str, event: ProviderEvent) -> None:
        assert platform == "chargebee"
        self.applied.append(event.event_id)
        apply_news(event, recorder=self.env.recorder, provider=self.env.provider, callbacks=self.env.callbacks)


def submitted(env: World, invoice_id: str, amount: int) -> str:
    body: Any = refund_request_body(
        reference=f"RMA-{invoice_id}",
        payment={"provider": "chargebee", "payment_id": invoice_id, "locator": {"kind": "invoice"}},
        amount=amount,
        invoice_id=None,
    )
    refund_id = env.accept(body).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider, now=env.clock)
    return refund_id


def deliver(env: World, served: Served, forwarder: InProcessForwarder, count: int) -> list[bool]:
    """What intake does with the first ``count`` deliveries: verify, forward each new event; True = duplicate."""
    served.receiver.wait_until(lambda deliveries: len(deliveries) >= count)
    return [
        forward_delivery(
            ChargebeeInbound().verify(headers, raw, SECRET),
            platform="chargebee",
            recorder=env.recorder,
            forwarder=forwarder,
        )
        for headers, raw in served.receiver.deliveries[:count]
    ]


def test_an_in_progress_refund_completes_by_its_news_read_again_from_the_api(env: World, served: Served) -> None:
    # GIVEN a refund Chargebee holds in progress, and its refund_initiated news
    invoice_id = served.simulator.seed_payment(6_000, "EUR", behaviour="async")["payment_id"]
    refund_id = submitted(env, invoice_id, 2_000)
    assert env.repository.get(refund_id).status is RefundStatus.REFUND_PENDING
    forwarder = InProcessForwarder(env)
    # WHEN the first news arrives while the transaction is still in progress THEN nothing changes (it was re-read)
    assert deliver(env, served, forwarder, 1) == [False]
    assert env.repository.get(refund_id).status is RefundStatus.REFUND_PENDING
    # WHEN Chargebee then succeeds and says so
    (held,) = served.simulator.refunds()
    served.simulator.settle_refund(held["id"], True)
    outcome = deliver(env, served, forwarder, 3)
    # THEN the refund is COMPLETED, and each event was applied once (the first delivery is now a duplicate)
    assert env.repository.get(refund_id).status is RefundStatus.COMPLETED
    assert outcome[0] is True
    assert len(forwarder.applied) == len(set(forwarder.applied)) == 3


def test_authenticated_news_with_a_changed_body_is_not_believed(env: World, served: Served) -> None:
    # GIVEN a refund in progress at Chargebee
    invoice_id = served.simulator.seed_payment(6_000, "EUR", behaviour="async")["payment_id"]
    refund_id = submitted(env, invoice_id, 6_000)
    served.receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    headers, raw = served.receiver.deliveries[0]
    # WHEN someone holding the webhook's credentials posts it changed to say the refund succeeded
    forged = raw.replace(b'"in_progress"', b'"success"').replace(b'"refund_initiated"', b'"payment_refunded"')
    forged = forged.replace(b'"ev_', b'"ev_x', 1)
    forward_delivery(
        ChargebeeInbound().verify(headers, forged, SECRET),
        platform="chargebee",
        recorder=env.recorder,
        forwarder=InProcessForwarder(env),
    )
    # THEN the refund is still pending: the platform function read the transaction from Chargebee
    assert env.repository.get(refund_id).status is RefundStatus.REFUND_PENDING


def test_a_lost_answer_after_the_keys_30_minutes_is_left_to_a_person(env: World, served: Served) -> None:
    invoice_id = served.simulator.seed_payment(6_000, "EUR")["payment_id"]
    served.simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        submitted(env, invoice_id, 6_000)
    refund_id = env.repository.list_by_status(RefundStatus.REFUND_SUBMITTED)[0].refund_id
    # WHEN the step is retried after Chargebee forgot the key
    env.clock.set(env.clock.current + timedelta(minutes=31))
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider, now=env.clock)
    # THEN nothing is sent again: a person is asked, and Chargebee holds the one refund
    assert env.repository.get(refund_id).status is RefundStatus.NEEDS_ATTENTION
    assert len(served.simulator.refunds()) == 1
    assert len([seen for seen in served.recorded() if seen["method"] == "POST"]) == 1


def test_a_paid_refund_that_chargebee_turns_late_failure_needs_a_person_and_is_refundable_again(
    env: World, served: Served
) -> None:
    # GIVEN a refund Chargebee paid at once (COMPLETED here), 2,000 of 6,000 refunded
    invoice_id = served.simulator.seed_payment(6_000, "EUR")["payment_id"]
    refund_id = submitted(env, invoice_id, 2_000)
    assert env.repository.get(refund_id).status is RefundStatus.COMPLETED
    forwarder = InProcessForwarder(env)
    served.receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    before = len(served.receiver.deliveries)
    # WHEN days later the gateway reverses it: Chargebee marks the transaction late_failure and says so
    (held,) = served.simulator.refunds()
    served.simulator.settle_refund(held["id"], False)
    deliver(env, served, forwarder, before + 1)
    # THEN the refund, found by the transaction id its news names and read again from the API, needs a person,
    # and the 2,000 can be refunded again
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.attention_reason) == (RefundStatus.NEEDS_ATTENTION, "provider_reversed_refund")
    balance = env.repository.get_balance(PaymentProvider.CHARGEBEE, invoice_id)
    assert balance is not None
    assert (balance.refunded.minor_units, balance.remaining.minor_units) == (0, 6_000)
