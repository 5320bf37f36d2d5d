"""One trace per refund on the local stack: a refund the workflow completed through Stripe and booked in Xero, paid
out by the Stripe sandbox (its payout report reconciled), the payout credited by a camt.053 bank statement
(reconciled): ``GET /refunds/{id}/trace`` has every hop, ``refundflow refunds trace`` prints it, and the bank line's
and the payout's ends list the refund. A refund completed after that payout names its missing hop."""

from __future__ import annotations

import json
import uuid
from typing import Any

from typer.testing import CliRunner

from local.scenarios import camt053_crediting
from local.stack import DevStack
from refundflow_cli.app import app
from tests.e2e.harness import E2EClient, Orders, eventually


def get(client: E2EClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.http.get(f"{client.api_url}{path}", params=params, timeout=client.timeout)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def cli(stack: DevStack, *arguments: str) -> str:
    result = CliRunner().invoke(app, ["--api-url", stack.api_url, *arguments], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def test_a_refund_traced_from_its_ticket_to_the_bank_line_and_back(
    orders: Orders, client: E2EClient, stack: DevStack
) -> None:
    # GIVEN a refund completed through Stripe and booked in Xero (a partial refund: the balance keeps money to pay out)
    order = orders.paid(100_000, name="trace")
    refund = orders.settle(orders.submit(Orders.request(order, amount=2_900, reference=f"RMA-{uuid.uuid4().hex[:8]}")))
    assert refund["status"] == "COMPLETED", refund
    refund_id = refund["refund_id"]
    # AND the Stripe sandbox paid its balance out: the payout's report reconciled, the refund SETTLED
    answer = client.control("stripe", "POST", "/payouts", json={"currency": "eur"})
    assert answer.status_code == 200, answer.text
    payout = answer.json()
    eventually(lambda: client.refund(refund_id)["status"] == "SETTLED" or None, timeout=90, what=f"{refund_id} SETTLED")
    report = f"settlement/stripe/payouts/{payout['id']}.csv"
    assert stack.wait_for_reconciliation(stack.reconciliations[report])["status"] == "SUCCEEDED"
    # AND a bank statement crediting the payout on its line 2, reconciled
    statement = f"settlement/bank/camt053/trace-{uuid.uuid4().hex[:8]}.xml"
    described = stack.reconcile_settlement(statement, camt053_crediting(payout["id"], payout["amount"]))
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["summary"]["counts"].get("matched") == 1
    # WHEN the refund is traced over HTTP
    trace = get(client, f"/refunds/{refund_id}/trace")
    # THEN every hop is there, in order, with its ids, and the audit chain verifies
    hops = {hop["hop"]: hop for hop in trace["hops"]}
    assert list(hops) == [
        "request",
        "policy",
        "provider_refund",
        "credit_document",
        "settlement_line",
        "payout",
        "bank_line",
    ]
    assert trace["complete"] is True, trace["missing"]
    assert trace["audit"]["intact"] is True
    assert hops["request"]["facts"]["source_reference"] == refund["source"]["reference"]
    assert hops["policy"]["facts"]["rule_id"] == refund["policy"]["rule_id"]
    assert hops["provider_refund"]["facts"]["provider_refund_id"] == refund["provider_refund_id"]
    assert hops["credit_document"]["facts"]["document_id"] == refund["credit_document"]["document_id"]
    assert hops["settlement_line"]["facts"]["file"] == report
    assert hops["settlement_line"]["facts"]["payout_id"] == payout["id"]
    assert hops["payout"]["facts"]["amount"] == {"minor_units": payout["amount"], "currency": "EUR"}
    assert (hops["bank_line"]["facts"]["file"], hops["bank_line"]["facts"]["line_no"]) == (statement, 2)
    assert all(hops[name]["actor"] for name in hops)
    # AND the CLI prints it
    printed = cli(stack, "refunds", "trace", refund_id)
    assert "every hop is there" in printed
    assert payout["id"] in printed
    # AND from the other end, the bank line and the payout list the refund with its trace summary
    from_bank = get(client, "/bank-lines/trace", file=statement, line=2)
    assert from_bank["payout"]["payout_id"] == payout["id"]
    listed = {item["refund_id"]: item for item in from_bank["payout"]["refunds"]}
    assert listed[refund_id]["complete"] is True
    assert listed[refund_id]["source"]["reference"] == refund["source"]["reference"]
    # (the statement's first line credited no payout: 404; a line number that is none: 422)
    for line, status in ((1, 404), (0, 422)):
        answer = client.http.get(
            f"{client.api_url}/bank-lines/trace", params={"file": statement, "line": line}, timeout=client.timeout
        )
        assert answer.status_code == status, answer.text
    from_payout = json.loads(cli(stack, "refunds", "trace", "--payout", payout["id"], "--json"))
    assert refund_id in {item["refund_id"] for item in from_payout["refunds"]}
    assert refund_id in cli(stack, "refunds", "trace", "--bank-line", f"{statement}:2")
    # WHEN a refund completes after that payout THEN its trace names the hop it waits for: not_yet_settled
    later_order = orders.paid(100_000, invoice=False, name="trace-later")
    later = orders.settle(orders.submit(Orders.request(later_order, amount=2_000)))
    assert later["status"] == "COMPLETED", later
    waiting = get(client, f"/refunds/{later['refund_id']}/trace")
    assert waiting["complete"] is False
    assert waiting["missing"][:1] == ["credit_document: no_invoice"]
    assert "settlement_line: not_yet_settled" in waiting["missing"]
