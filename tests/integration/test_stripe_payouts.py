"""Stripe's payouts, end to end below the stack: the simulator pays the balance out, its signed webhook names the
payout, Stripe's connector reads the payout and its balance transactions (paged), the report lands once in the
settlement drop (moto S3) and the reconciliation engine settles our refunds from it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
import stripe

from local.simulators.base import FaultRule
from local.simulators.stripe import StripeSimulator
from refundflow.adapters.s3 import S3Files
from refundflow.domain.books import update_invoice
from refundflow.domain.payments import issue_refund
from refundflow.errors import NotFound, RejectedError, TransientError
from refundflow.platforms.stripe.connector import StripeRefundProvider
from refundflow.platforms.stripe.inbound import StripeInbound
from refundflow.ports import PayoutStatus
from refundflow.reconciliation.apply import Run
from refundflow.reconciliation.engine import MatchClass
from refundflow.reconciliation.payouts import apply_payout_news, payout_report_key
from refundflow.reconciliation.providers import parse_stripe
from refundflow.reconciliation.records import LineKind
from refundflow.reconciliation.run import reconcile
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body, world
from tests.support.servers import serve_wsgi

API_KEY = "sk_test_refundflow_payouts"
WEBHOOK_SECRET = "whsec_payouts_0123456789"
BUCKET = "refundflow-settlement-test"


class Receiver:
    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        self.deliveries.append((dict(request.headers), request.get_data()))
        return Response("{}", mimetype="application/json")(environ, start_response)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[StripeSimulator, str, Receiver]]:
    receiver = Receiver()
    with serve_wsgi(receiver) as receiver_url:
        simulator = StripeSimulator([API_KEY], webhook_url=receiver_url, webhook_secret=WEBHOOK_SECRET)
        simulator.pending_refund_settle_seconds = None
        simulator.refund_fail_after_seconds = None
        with serve_wsgi(simulator) as url:
            yield simulator, url, receiver


@pytest.fixture
def sandbox(servers: tuple[StripeSimulator, str, Receiver]) -> tuple[StripeSimulator, str, Receiver]:
    simulator, url, receiver = servers
    simulator.webhooks.wait_idle(timeout=5)
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver.deliveries.clear()
    return servers


@pytest.fixture
def env(sandbox: tuple[StripeSimulator, str, Receiver]) -> Iterator[World]:
    with world() as found:
        # Our refunds are paid through Stripe's real connector against the simulator.
        found.provider = provider(sandbox[1])  # type: ignore[assignment]
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield found


def provider(url: str, page_size: int = 2) -> StripeRefundProvider:
    # Two balance transactions a page: every report here spans several pages.
    return StripeRefundProvider(api_key=API_KEY, api_base=url, max_network_retries=0, list_page_size=page_size)


def pay(url: str, amount: int, method: str = "pm_card_visa") -> str:
    client = stripe.StripeClient(API_KEY, base_addresses={"api": url}, max_network_retries=0)
    intent = client.v1.payment_intents.create(
        {"amount": amount, "currency": "eur", "payment_method": method, "confirm": True}
    )
    return str(intent.id)


def completed(env: World, payment_id: str, reference: str, amount: int) -> str:
    refund_id = env.reserved(
        refund_request_body(reference=reference, payment_id=payment_id, amount=amount), delivery_id=f"dlv-{reference}"
    )
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    assert env.repository.get(refund_id).status is RefundStatus.COMPLETED
    return refund_id


def payout_news(receiver: Receiver, event_type: str) -> Any:
    """The simulator's signed webhook of that type, verified and reduced as intake does."""
    for headers, body in receiver.deliveries:
        if json.loads(body)["type"] == event_type:
            delivery = StripeInbound().verify(headers, body, {"webhook_secrets": [WEBHOOK_SECRET]})
            return delivery.events[0]
    raise AssertionError(f"no {event_type} delivered: {[json.loads(b)['type'] for _, b in receiver.deliveries]}")


def apply(env: World, reader: StripeRefundProvider, news: Any) -> dict[str, Any] | None:
    return apply_payout_news(
        news,
        platform="stripe",
        reader=reader,
        files=S3Files(boto3.client("s3", region_name="us-east-1")),
        bucket=BUCKET,
        repository=env.repository,
        recorder=env.recorder,
        publisher=env.publisher,
    )


def test_a_paid_payout_settles_our_refunds_once(sandbox: tuple[StripeSimulator, str, Receiver], env: World) -> None:
    simulator, url, receiver = sandbox
    # GIVEN two payments, two refunds of ours (one later fails at the card network), then a payout
    first, second = pay(url, 10_000), pay(url, 4_000)
    kept = completed(env, first, "RMA-P1", 2_500)
    reversed_ = completed(env, second, "RMA-P2", 1_000)
    simulator.set_refund_status(
        env.repository.get(reversed_).provider_refund_id or "", "failed", "expired_or_canceled_card"
    )
    payout = simulator.pay_out("eur")
    simulator.webhooks.wait_idle(timeout=5)
    # WHEN payout.paid is delivered, then payout.reconciliation_completed, then payout.paid again
    reader = provider(url)
    answers = [
        apply(env, reader, payout_news(receiver, kind))
        for kind in ("payout.paid", "payout.reconciliation_completed", "payout.paid")
    ]
    # THEN the report was written once, under the payout's key
    key = payout_report_key("stripe", payout["id"])
    assert [answer["written"] for answer in answers if answer] == [True, False, False]
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    lines = list(parse_stripe(io.StringIO(body)))
    kinds = sorted(line.kind.value for line in lines)
    assert kinds == ["charge", "charge", "payout", "refund", "refund", "refund_failure"]
    # ... every balance transaction of the payout (several pages), nets adding up to the payout
    assert sum(line.net for line in lines if line.kind is not LineKind.PAYOUT) == payout["amount"]
    assert [line.net for line in lines if line.kind is LineKind.PAYOUT] == [-payout["amount"]]
    # AND reconciling it (what the state machine runs on that file) settles the kept refund and flags the reversal
    result = reconcile(
        lines,
        Run(file=key, correlation_id="t", source="stripe"),
        repository=env.repository,
        recorder=env.recorder,
        publisher=env.publisher,
        expected=[],
    )
    assert env.repository.get(kept).status is RefundStatus.SETTLED
    assert env.repository.get(reversed_).status is RefundStatus.NEEDS_ATTENTION
    assert result.summary.counts.get(MatchClass.LATE_FAILURE.value) == 1
    assert MatchClass.PAYOUT_AMOUNT_DIFFERS.value not in result.summary.counts


def test_a_failed_payout_is_a_mismatch_for_ops_once_and_writes_no_report(
    sandbox: tuple[StripeSimulator, str, Receiver], env: World
) -> None:
    simulator, url, receiver = sandbox
    pay(url, 5_000)
    payout = simulator.pay_out("eur", outcome="failed", failure_code="account_closed")
    simulator.webhooks.wait_idle(timeout=5)
    reader = provider(url)
    news = payout_news(receiver, "payout.failed")
    assert news.payout_id == payout["id"]
    first, again = apply(env, reader, news), apply(env, reader, news)
    assert first == {"payout_id": payout["id"], "status": "failed", "outcome": "recorded"}
    assert again is not None
    assert again["outcome"] == "already_done"
    mismatches = [event for event in env.publisher.events if event.detail_type == "ReconciliationMismatch"]
    assert len(mismatches) == 1
    assert mismatches[0].model_dump()["match_class"] == "payout_not_found"
    assert "account_closed" in json.dumps(mismatches[0].model_dump(mode="json"))
    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    assert listed.get("KeyCount", 0) == 0


def test_news_of_a_payout_stripe_does_not_know_is_taken_and_writes_nothing(
    sandbox: tuple[StripeSimulator, str, Receiver], env: World
) -> None:
    # GIVEN a verified payout.paid naming a payout this Stripe account does not have (another account's, or forged)
    simulator, url, receiver = sandbox
    pay(url, 5_000)
    simulator.pay_out("eur")
    simulator.webhooks.wait_idle(timeout=5)
    news = payout_news(receiver, "payout.paid").model_copy(update={"payout_id": "po_NotThisAccounts1"})
    # WHEN it is applied THEN it is taken as refuted news: no report, no mismatch, no retry asked for
    assert apply(env, provider(url), news) == {"payout_id": "po_NotThisAccounts1", "status": "unknown"}
    assert boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert not [event for event in env.publisher.events if event.detail_type == "ReconciliationMismatch"]


def test_a_payout_still_in_transit_waits_for_more_news(sandbox: tuple[StripeSimulator, str, Receiver]) -> None:
    simulator, url, _ = sandbox
    pay(url, 5_000)
    payout = simulator.pay_out("eur")
    with simulator.lock:
        simulator.payouts[payout["id"]].update(status="in_transit", reconciliation_status="in_progress")
    assert provider(url).get_payout(payout["id"]).status is PayoutStatus.PENDING


def test_unknown_payouts_and_parameters_are_refused_as_stripe_does(
    sandbox: tuple[StripeSimulator, str, Receiver],
) -> None:
    _, url, _ = sandbox
    with pytest.raises(NotFound):
        provider(url).get_payout("po_unknown")
    answer = requests.get(
        f"{url}/v1/balance_transactions", params={"payout": "po_unknown"}, auth=(API_KEY, ""), timeout=5
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "resource_missing"
    answer = requests.get(f"{url}/v1/balance_transactions", params={"automatic": "1"}, auth=(API_KEY, ""), timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "parameter_unknown"
    assert requests.get(f"{url}/v1/payouts/po_x", timeout=5).status_code == 401
    with pytest.raises(RejectedError):
        StripeRefundProvider(api_key="sk_test_wrong", api_base=url, max_network_retries=0).get_payout("po_x")


def test_a_rate_limited_page_is_transient_with_its_retry_after(
    sandbox: tuple[StripeSimulator, str, Receiver],
) -> None:
    simulator, url, _ = sandbox
    pay(url, 5_000)
    payout = simulator.pay_out("eur")
    reader = provider(url)
    settled = reader.get_payout(payout["id"])
    simulator.add_fault(
        FaultRule(method="GET", path=r"^/v1/balance_transactions$", status=429, headers={"Retry-After": "7"})
    )
    with pytest.raises(TransientError) as raised:
        reader.write_payout_report(settled, io.StringIO())
    assert raised.value.retry_after_seconds == 7.0
