"""A Stripe payout settles our refunds on the local stack: the Stripe sandbox pays its balance out and sends
``payout.paid`` (signed) to ``/webhooks/stripe``; Stripe's function reads the payout and its balance transactions,
writes ``settlement/stripe/payouts/<po>.csv`` once, and the file's "Object Created" starts the reconciliation state
machine, which settles the refunds the payout paid (``COMPLETED -> SETTLED``)."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import requests

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders, eventually


def completed(orders: Orders, minor_units: int, name: str) -> dict[str, Any]:
    """A partial refund of a 1,000.00 EUR payment: the balance keeps something to pay out even after the suite's
    earlier full refunds (each costs the balance its payment's fee)."""
    order = orders.paid(100_000, invoice=False, name=name)
    refund = orders.settle(orders.submit(Orders.request(order, amount=minor_units)))
    assert refund["status"] == "COMPLETED", refund
    return refund


def test_a_paid_payout_settles_the_refunds_it_paid_once(orders: Orders, client: E2EClient, stack: DevStack) -> None:
    # GIVEN two refunds the workflow completed through Stripe
    refunds = [completed(orders, 2_300, "payout-a"), completed(orders, 1_700, "payout-b")]
    # WHEN Stripe pays the balance out (payout.created, payout.paid, payout.reconciliation_completed, signed)
    answer = client.control("stripe", "POST", "/payouts", json={"currency": "eur"})
    assert answer.status_code == 200, answer.text
    payout = answer.json()
    key = f"settlement/stripe/payouts/{payout['id']}.csv"
    # THEN both refunds become SETTLED, each with the payout's balance transaction on its timeline
    for refund in refunds:

        def settled_refund(refund_id: str = refund["refund_id"]) -> dict[str, Any] | None:
            found: dict[str, Any] = client.refund(refund_id)
            return found if found["status"] == "SETTLED" else None

        settled = eventually(settled_refund, timeout=90, what=f"{refund['refund_id']} SETTLED by {payout['id']}")
        entry = settled["timeline"][-1]
        assert entry["to_status"] == "SETTLED"
        assert entry["details"]["reference"] == refund["provider_refund_id"]
        assert settled["audit"]["intact"] is True
    # AND the report was reconciled by a run that found the payout's lines adding up
    described = stack.wait_for_reconciliation(stack.reconciliations[key])
    assert described["status"] == "SUCCEEDED", described
    summary = json.loads(described["output"])["summary"]
    assert summary["counts"].get("matched", 0) >= 2
    assert "payout_amount_differs" not in summary["counts"]
    # WHEN Stripe sends news of the same payout again under another event id (a payout.updated, say)
    paid = next(event for event in stack.simulators["stripe"].events if event["type"] == "payout.paid")
    again = copy.deepcopy(paid)
    again.update(id=f"evt_{uuid.uuid4().hex[:24]}", type="payout.updated")
    body = json.dumps(again).encode()
    secret = stack.simulators["stripe"].local_secrets()["verification"]["webhook_secrets"][0]
    response = requests.post(
        f"{client.api_url}/webhooks/stripe",
        data=body,
        headers={"Content-Type": "application/json", **stack.simulators["stripe"].sign_webhook(body, secret)},
        timeout=30,
    )
    # THEN it is acknowledged and nothing runs again
    assert response.status_code == 200, response.text
    executions = stack.client("stepfunctions").list_executions(
        stateMachineArn=stack.stack.arn("ReconciliationStateMachine")
    )["executions"]
    started_for_payout = [
        execution
        for execution in executions
        if key
        in json.dumps(
            stack.client("stepfunctions").describe_execution(executionArn=execution["executionArn"]).get("input", "")
        )
    ]
    assert len(started_for_payout) == 1
