"""Split tenders end to end on the local stack: an order paid with a Stripe card, a PayPal capture and store credit
is refunded across them over HTTP. The parent refund runs through the workflow (its platform steps in
``refund-split``), each payment leg is a refund of its own on its own platform, the store-credit leg is credited to
refundflow's ledger, and the sandboxes hold exactly what the allocation said; the credit note, the customer's message
and the trace list every leg, and a leg Stripe reverses later reopens the parent for a person. A leg the platform
refuses leaves the parent NEEDS_ATTENTION with the remedies, never silently short, until a person chooses one (store
credit here)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from typer.testing import CliRunner

from local.stack import DevStack
from refundflow_cli.app import app
from tests.e2e.harness import E2EClient, Orders, eventually

TERMINAL_OR_ATTENTION = {"COMPLETED", "FAILED", "REJECTED", "NEEDS_ATTENTION"}


def split_request(
    stripe_payment: str,
    paypal: dict[str, Any],
    customer: str,
    *,
    amount: int,
    invoice_id: str | None = None,
    store_credit_paid: int | None = None,
) -> dict[str, Any]:
    store_credit = [
        {"kind": "store_credit", "paid": {"minor_units": store_credit_paid, "currency": "EUR"}}
        for _ in range(1 if store_credit_paid else 0)
    ]
    body: dict[str, Any] = {
        "tenders": [
            {"payment": {"provider": "stripe", "payment_id": stripe_payment}, "kind": "card"},
            {"payment": {"provider": "paypal", "payment_id": paypal["payment_id"]}, "kind": "wallet"},
            *store_credit,
        ],
        "allocation": "proportional",
        "amount": {"minor_units": amount, "currency": "EUR"},
        "reason": "damaged",
        "customer": {"email": customer, "name": "Robin Example"},
        "source": {"system": "returns-portal", "reference": f"RMA-split-{uuid.uuid4().hex[:10]}"},
        "order": {"order_id": f"ORD-{uuid.uuid4().hex[:12]}"},
    }
    if invoice_id:
        body["invoice"] = {"system": "xero", "invoice_id": invoice_id}
    return body


def paypal_refunds(stack: DevStack, capture_id: str) -> list[dict[str, Any]]:
    return [refund for refund in stack.simulators["paypal"].refunds() if capture_id in str(refund)]


def store_credit_shown(stack: DevStack, customer: str) -> dict[str, Any]:
    """``refundflow store-credit show CUSTOMER --json`` against the local stack."""
    result = CliRunner().invoke(
        app, ["--api-url", stack.api_url, "store-credit", "show", customer, "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)["store_credit"]
    return shown


def test_an_order_paid_by_card_paypal_and_store_credit_is_refunded_across_all_three(
    stack: DevStack, client: E2EClient, orders: Orders, sent_emails: Any
) -> None:
    # GIVEN an order paid 30.00 by a Stripe card, 20.00 through PayPal and 10.00 with store credit, invoiced in Xero
    tag = uuid.uuid4().hex[:8]
    stripe_payment = client.create_payment(3000, "EUR")
    paypal = stack.simulators["paypal"].seed_payment(2000, "EUR")
    invoice = client.create_invoice(f"split {tag}", f"Order split {tag}", Decimal("60.00"), "EUR", paid=True)
    customer = f"split.{tag}@example.com"
    body = split_request(
        stripe_payment, paypal, customer, amount=3000, invoice_id=str(invoice["InvoiceID"]), store_credit_paid=1000
    )
    # (requests that name a payment twice, a rule refundflow does not have, or store credit without what the order
    # paid with it are refused: nothing stored)
    twice = {**body, "tenders": [body["tenders"][0], body["tenders"][0]]}
    unknown_rule = {**body, "allocation": "cheapest_first"}
    store_credit = {**body, "tenders": [body["tenders"][0], {"kind": "store_credit"}]}
    refused = [client.request_refund(bad) for bad in (twice, unknown_rule, store_credit)]
    assert [(answer.status_code, answer.json()["code"]) for answer in refused] == [
        (400, "validation_failed"),
        (400, "unknown_allocation_rule"),
        (400, "validation_failed"),
    ], [answer.text for answer in refused]
    # WHEN 30.00 is asked back across the three tenders, proportionally
    parent_id = orders.submit(body)
    parent = orders.settle(parent_id, TERMINAL_OR_ATTENTION, timeout=90)
    # THEN the parent completed with three legs: 15.00 to the card, 10.00 to PayPal, 5.00 as store credit
    assert parent["status"] == "COMPLETED", (parent["attention_reason"], parent["failure"])
    assert parent["allocation_rule"] == "proportional"
    legs = parent["legs"]
    assert [
        ((leg["payment"] or {}).get("provider"), leg["kind"], leg["amount"]["minor_units"], leg["status"])
        for leg in legs
    ] == [
        ("stripe", "card", 1500, "succeeded"),
        ("paypal", "wallet", 1000, "succeeded"),
        (None, "store_credit", 500, "succeeded"),
    ]
    card_leg, paypal_leg, credit_leg = legs
    assert credit_leg["refund_id"] is None
    # AND the customer's store credit holds the 5.00, credited once by the refund step (refundflow store-credit show)
    shown = store_credit_shown(stack, customer)
    assert shown["balances"] == [{"minor_units": 500, "currency": "EUR"}]
    assert [(entry["entry_id"], entry["refund_id"]) for entry in shown["entries"]] == [(f"{parent_id}#leg2", parent_id)]
    # AND each payment leg is a refund of its own, approved by the parent's decision, without the invoice
    for leg in (card_leg, paypal_leg):
        child = client.refund(leg["refund_id"])
        assert child["status"] == "COMPLETED", child["failure"]
        assert child["parent_refund_id"] == parent_id
        assert child["policy"]["rule_id"] == "split_tender_parent"
        assert child["invoice"] is None
        assert child["provider_refund_id"] == leg["provider_refund_id"]
    # AND each sandbox holds exactly one refund, of the allocated amount
    stripe_refunds = client.stripe_refunds(stripe_payment)
    assert [refund["amount"] for refund in stripe_refunds] == [1500]
    held = paypal_refunds(stack, paypal["payment_id"])
    assert [refund["amount"]["value"] for refund in held] == ["10.00"], held
    # AND the parent's invoice got one credit note in Xero, for the whole 30.00, naming every leg; the card and
    # PayPal legs paid out as their own payments, the store credit left on the note as credit
    assert parent["credit_document"]["total"] == {"minor_units": 3000, "currency": "EUR"}
    [note] = client.credit_notes(parent_id)
    assert note["Total"] == 30.0
    for words in (
        f"leg 1 stripe 15.00 EUR {card_leg['provider_refund_id']}",
        f"leg 2 paypal 10.00 EUR {paypal_leg['provider_refund_id']}",
        "leg 3 store credit 5.00 EUR",
    ):
        assert words in note["Reference"], note["Reference"]
    xero = stack.simulators["xero"]
    paid_out = [
        payment
        for payment in xero.all_payments()
        if payment.get("CreditNote", {}).get("CreditNoteID") == note["CreditNoteID"]
    ]
    assert sorted(payment["Amount"] for payment in paid_out) == [10.0, 15.0], paid_out
    statuses = [entry["to_status"] for entry in parent["timeline"] if entry["to_status"]]
    assert statuses[-4:] == ["REFUND_PENDING", "REFUNDED", "INVOICE_UPDATED", "COMPLETED"], statuses
    assert "StoreCreditCredited" in [entry["type"] for entry in parent["timeline"]]
    # AND the customer got one message naming every leg, in plain words
    [mail] = eventually(
        lambda: [mail for mail in sent_emails(to=customer) if mail["data"].get("refund_id") == parent_id] or None,
        what="the customer's e-mail",
    )
    assert mail["data"]["amount"] == "30.00 EUR"
    for words in ("15.00 EUR back to your card", "PayPal", "10.00 EUR", "5.00 EUR as store credit"):
        assert words in mail["data"]["legs"], mail["data"]
    # AND the parent's trace lists its legs: the payment legs' own money hops, the store credit issued in refundflow
    trace = client.http.get(f"{client.api_url}/refunds/{parent_id}/trace", timeout=client.timeout)
    assert trace.status_code == 200, trace.text
    assert [(leg["index"], leg["kind"], leg["refund_id"]) for leg in trace.json()["legs"]] == [
        (0, "card", card_leg["refund_id"]),
        (1, "wallet", paypal_leg["refund_id"]),
        (2, "store_credit", None),
    ]
    # WHEN the card leg's ARN comes days later (the Stripe sandbox assigns it: refund.updated)
    assigned = client.control(
        "stripe", "POST", f"/refunds/{card_leg['provider_refund_id']}/acquirer-reference", json={}
    )
    arn = assigned.json()["destination_details"]["card"]["reference"]
    # THEN the customer gets one follow-up for that leg from the parent (a leg's own events never reach them)
    [follow_up] = eventually(
        lambda: (
            [
                mail
                for mail in sent_emails(to=customer)
                if mail["data"].get("refund_id") == parent_id and mail["template"].endswith("refund-acquirer-reference")
            ]
            or None
        ),
        what="the follow-up for the card leg's ARN",
    )
    assert (follow_up["data"]["acquirer_reference"], follow_up["data"]["amount"]) == (arn, "15.00 EUR")
    assert client.refund(parent_id)["legs"][0]["acquirer_reference"] == arn
    # WHEN, days later, Stripe reports the card leg's refund failed after all (the money went back to the merchant)
    client.control(
        "stripe",
        "POST",
        f"/refunds/{card_leg['provider_refund_id']}/status",
        json={"status": "failed", "failure_reason": "expired_or_canceled_card"},
    )
    # THEN the parent does not stay COMPLETED: a person chooses a remedy for the card leg (the refund.failed webhook
    # reached the leg through Stripe's function, which moved the parent)
    reopened = orders.settle(parent_id, {"NEEDS_ATTENTION"}, timeout=30)
    assert reopened["attention_reason"] == "split_leg_failed:0"
    assert [(leg["status"], leg.get("failure")) for leg in reopened["legs"]] == [
        ("failed", "provider_reversed_refund"),
        ("succeeded", None),
        ("succeeded", None),
    ]
    assert reopened["legs"][0]["remedies"][0] == "retry: send 15.00 EUR to leg 1's card stripe again"
    assert client.refund(card_leg["refund_id"])["attention_reason"] == "provider_reversed_refund"


def test_a_leg_refused_by_its_platform_needs_a_person_whose_remedy_credits_it_as_store_credit(
    stack: DevStack, client: E2EClient, orders: Orders
) -> None:
    # GIVEN an order paid 40.00 by card and 20.00 through PayPal, whose capture PayPal will not refund
    tag = uuid.uuid4().hex[:8]
    stripe_payment = client.create_payment(4000, "EUR")
    paypal = stack.simulators["paypal"].seed_payment(2000, "EUR", behaviour="insufficient_funds")
    # WHEN 40.00 is asked back across both, proportionally (26.67 to the card, 13.33 to PayPal)
    customer = f"split-fail.{tag}@example.com"
    body = split_request(stripe_payment, paypal, customer, amount=4000)
    parent_id = orders.submit(body)
    parent = orders.settle(parent_id, TERMINAL_OR_ATTENTION, timeout=90)
    # THEN the card leg paid, the PayPal leg failed, and the parent waits for a person: never silently short
    assert parent["status"] == "NEEDS_ATTENTION", parent["failure"]
    assert parent["attention_reason"] == "split_leg_failed:1"
    card, wallet = parent["legs"]
    assert (card["status"], card["amount"]["minor_units"]) == ("succeeded", 2667)
    assert (wallet["status"], wallet["amount"]["minor_units"]) == ("failed", 1333)
    assert client.refund(wallet["refund_id"])["status"] == "FAILED"
    assert [refund["amount"] for refund in client.stripe_refunds(stripe_payment)] == [2667]
    assert paypal_refunds(stack, paypal["payment_id"]) == []
    # AND the remedies are recorded: retry the leg, move it to the card (13.33 left there), or store credit
    [attention] = [entry for entry in parent["timeline"] if entry["to_status"] == "NEEDS_ATTENTION"]
    remedies = [(remedy["action"], remedy.get("tender")) for remedy in attention["details"]["remedies"]]
    assert remedies == [("retry", 1), ("move_to_tender", 0), ("store_credit", None)], attention["details"]
    # (and in words on the failed leg, for the ticket's note)
    assert wallet["remedies"][-1] == "store_credit: credit 13.33 EUR to the customer's store credit", wallet
    # WHEN an approver credits the failed leg's amount to the customer's store credit
    token = client.approver_token("lee@shop.example", "team_lead", refund_id=parent_id)
    answer = client.http.post(
        f"{client.api_url}/refunds/{parent_id}/legs/1/remedy",
        json={"action": "store_credit", "note": "PayPal refused: store credit instead"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=client.timeout,
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["leg"]) == ("REFUND_PENDING", 2)
    # THEN a third leg credits 13.33 to the customer's store credit, and the parent completes with all 40.00 back
    parent = orders.settle(parent_id, TERMINAL_OR_ATTENTION, timeout=90)
    assert parent["status"] == "COMPLETED", (parent["attention_reason"], parent["failure"])
    moved = parent["legs"][2]
    assert (moved["kind"], moved["payment"], moved["amount"]["minor_units"], moved["status"], moved["replaces"]) == (
        "store_credit",
        None,
        1333,
        "succeeded",
        1,
    )
    shown = store_credit_shown(stack, customer)
    assert shown["balances"] == [{"minor_units": 1333, "currency": "EUR"}]
    assert [entry["entry_id"] for entry in shown["entries"]] == [f"{parent_id}#leg2"]
    assert [refund["amount"] for refund in client.stripe_refunds(stripe_payment)] == [2667]
    # AND the same token cannot choose a second remedy
    again = client.http.post(
        f"{client.api_url}/refunds/{parent_id}/legs/1/remedy",
        json={"action": "retry"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=client.timeout,
    )
    assert again.status_code == 401, again.text
