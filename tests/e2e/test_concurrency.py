"""Many deliveries at once: a flood of the same delivery (R1) and a race for one capture (R4)."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders


def _all_at_once(count: int, call: Any) -> list[Any]:
    """Run ``call(i)`` on ``count`` threads released together."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait(timeout=30)
        return call(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_fifty_identical_deliveries_at_once_make_one_refund(client: E2EClient, orders: Orders, stack: DevStack) -> None:
    # GIVEN one signed delivery (same webhook-id, timestamp, signature and body)
    order = orders.paid(4200, name="flood")
    body = json.dumps(Orders.request(order))
    headers = client.signed_headers(body, f"msg_{uuid.uuid4().hex}")
    # WHEN it arrives 50 times at the same moment
    answers = _all_at_once(50, lambda _: client.post_raw("/refund-requests", body, headers))
    # THEN every delivery is acknowledged with the same refund id, and exactly one was new
    assert Counter(answer.status_code for answer in answers) == {202: 50}, [a.text for a in answers]
    refund_ids = {answer.json()["refund_id"] for answer in answers}
    assert len(refund_ids) == 1
    refund_id = refund_ids.pop()
    assert [answer.json()["duplicate"] for answer in answers].count(False) == 1
    # AND one refund went through: one Stripe refund, one credit note, one workflow execution
    refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert [stripe_refund["amount"] for stripe_refund in client.stripe_refunds(order.payment_id)] == [4200]
    assert len(client.credit_notes(refund_id)) == 1
    executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.workflow_arn())["executions"]
    assert [execution["name"] for execution in executions].count(refund_id) == 1
    requested = [entry for entry in refund["timeline"] if entry["type"] == "RefundRequested"]
    assert len(requested) == 1


def test_ten_concurrent_thirty_percent_refunds_of_one_capture_accept_three(client: E2EClient, orders: Orders) -> None:
    # GIVEN a capture of 100.00 EUR
    order = orders.paid(10_000, name="race")
    # WHEN ten different refund requests of 30.00 each (own reference, own customer) arrive at once
    requests = [
        Orders.request(order, amount=3000, customer=f"race.{index}.{uuid.uuid4().hex[:8]}@example.com")
        for index in range(10)
    ]
    answers = _all_at_once(10, lambda index: client.request_refund(requests[index]))
    assert [answer.status_code for answer in answers] == [202] * 10, [answer.text for answer in answers]
    refund_ids = [answer.json()["refund_id"] for answer in answers]
    assert len(set(refund_ids)) == 10
    # THEN exactly three complete and seven are rejected for want of a refundable amount
    finals: dict[str, dict[str, Any]] = {refund_id: orders.settle(refund_id, timeout=90) for refund_id in refund_ids}
    outcomes = Counter(refund["status"] for refund in finals.values())
    assert outcomes == {"COMPLETED": 3, "REJECTED": 7}, {
        refund_id: (refund["status"], refund["failure"]) for refund_id, refund in finals.items()
    }
    for refund in finals.values():
        if refund["status"] == "REJECTED":
            assert refund["failure"]["code"] in {"insufficient_refundable_amount", "exceeds_refundable_amount"}
    # AND Stripe refunded 90.00 of the 100.00 captured, in three refunds of 30.00
    assert sorted(refund["amount"] for refund in client.stripe_refunds(order.payment_id)) == [3000, 3000, 3000]
    captured, refunded = client.stripe_charge_refunded(order.payment_id)
    assert (captured, refunded) == (10_000, 9_000)
    # AND a rejected request paid nothing: no Stripe refund names it
    paid_for = {refund["metadata"]["refund_id"] for refund in client.stripe_refunds(order.payment_id)}
    assert paid_for == {refund_id for refund_id, refund in finals.items() if refund["status"] == "COMPLETED"}
