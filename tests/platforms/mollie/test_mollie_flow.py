"""Mollie through the domain's steps, with the real connector and inbound against the Mollie simulator and the
refunds table on moto: a classic (unsigned) call is only news, so a forged one changes nothing and a true one
completes the refund from what Mollie's API says; a call about a payment with no open refund of ours costs no API
call; a signed refund.failed fails the refund. (An answer lost after Mollie made the refund, found by our id before
any resend, is in test_mollie_connector.py and the conformance suite.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.simulators.mollie import DEFAULT_API_KEY, DEFAULT_SIGNING_SECRET, MANUAL, MollieSimulator
from refundflow.connectors.http import HttpClient
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.validation import validate_refund
from refundflow.platforms.mollie.connector import MollieRefundProvider
from refundflow.platforms.mollie.inbound import MollieInbound
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body, world
from tests.support.servers import DeliveryRecorder, serve_wsgi

SECRET = {"signing_secrets": [DEFAULT_SIGNING_SECRET]}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[MollieSimulator, str, DeliveryRecorder]]:
    receiver = DeliveryRecorder()
    simulator = MollieSimulator(settle_after_seconds=None)
    with serve_wsgi(receiver) as hook, serve_wsgi(simulator) as url:
        simulator.send_webhooks_to(hook)
        yield simulator, url, receiver


@pytest.fixture
def simulator(served: tuple[MollieSimulator, str, DeliveryRecorder]) -> MollieSimulator:
    assert served[0].webhooks.wait_idle()
    requests.post(f"{served[1]}/_control/reset", timeout=5).raise_for_status()
    served[2].deliveries.clear()
    return served[0]


@pytest.fixture
def env(served: tuple[MollieSimulator, str, DeliveryRecorder], simulator: MollieSimulator) -> Iterator[World]:
    provider = MollieRefundProvider(
        api_key=DEFAULT_API_KEY, http=HttpClient(platform="mollie", base_url=served[1], timeout=(5.0, 30.0))
    )
    with world() as built:
        built.provider = provider  # type: ignore[assignment]
        yield built


def submitted(env: World, payment_id: str, amount: int) -> str:
    """Accept, validate, look up, approve, reserve and send: the refund is pending at Mollie."""
    body = refund_request_body(
        reference=f"RMA-{payment_id}",
        payment={"provider": "mollie", "payment_id": payment_id},
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


def classic(env: World, payment_id: str, at: float) -> bool:
    """What intake makes of a classic call about ``payment_id`` at ``at``, delivered; True when a duplicate."""
    (event,) = MollieInbound(now=lambda: at).verify(FORM, f"id={payment_id}".encode(), SECRET).events
    assert event.refunds == []
    return env.deliver(event)


def test_a_classic_call_is_news_only_and_the_truth_is_read_from_mollie(env: World, simulator: MollieSimulator) -> None:
    # GIVEN a refund of 15.00 pending at Mollie
    payment = simulator.seed_payment(4_200, "EUR", behaviour=MANUAL)["payment_id"]
    refund_id = submitted(env, payment, 1_500)
    assert env.repository.get(refund_id).status is RefundStatus.REFUND_PENDING
    # WHEN anyone posts a classic call about that payment (it carries no status: nothing to forge but the id)
    reads = len(simulator.requests_seen)
    assert classic(env, payment, at=1_000.0) is False
    # THEN Mollie was asked, said pending, and nothing moved
    assert len(simulator.requests_seen) > reads
    assert env.repository.get(refund_id).status is RefundStatus.REFUND_PENDING
    # WHEN Mollie refunds it and calls again
    (held,) = simulator.refunds()
    simulator.settle_refund(held["id"], True)
    assert classic(env, payment, at=1_010.0) is False
    # THEN the refund is completed from what Mollie's API says, for the amount asked
    done = env.repository.get(refund_id)
    assert done.status is RefundStatus.COMPLETED
    assert done.provider_refund_id == held["id"]
    assert classic(env, payment, at=1_011.0) is True  # the same window: one piece of news
    # AND a call about a payment with no open refund of ours (or none at all) costs no API call
    before = len(simulator.requests_seen)
    classic(env, payment, at=1_020.0)
    classic(env, "tr_madeUp00001", at=1_020.0)
    assert len(simulator.requests_seen) == before


def test_a_signed_refund_failed_event_fails_the_refund(
    env: World, simulator: MollieSimulator, served: tuple[MollieSimulator, str, DeliveryRecorder]
) -> None:
    payment = simulator.seed_payment(4_200, "EUR", behaviour=MANUAL)["payment_id"]
    refund_id = submitted(env, payment, 4_200)
    simulator.settle_refund(simulator.refunds()[0]["id"], False)
    served[2].wait_until(lambda deliveries: any(b"refund.failed" in body for _, body in deliveries))
    for headers, body in list(served[2].deliveries):
        for event in MollieInbound().verify(headers, body, SECRET).events:
            env.deliver(event)
    assert env.repository.get(refund_id).status is RefundStatus.FAILED
