"""Split tenders end to end on the local stack: an order paid with a Stripe card and a PayPal capture is refunded
across them over HTTP. The parent refund runs through the workflow (its platform steps in ``refund-split``), each
leg is a refund of its own on its own platform, and the sandboxes hold exactly what the allocation said; a leg the
platform refuses leaves the parent NEEDS_ATTENTION with the remedies, never silently short."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders

TERMINAL_OR_ATTENTION = {"COMPLETED", "FAILED", "REJECTED", "NEEDS_ATTENTION"}


def split_request(
    stripe_payment: str, paypal: dict[str, Any], customer: str, *, amount: int, invoice_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenders": [
            {"payment": {"provider": "stripe", "payment_id": stripe_payment}, "kind": "card"},
            {"payment": {"provider": "paypal", "payment_id": paypal["payment_id"]}, "kind": "wallet"},
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


def test_an_order_paid_by_card_and_paypal_is_refunded_across_both(
    stack: DevStack, client: E2EClient, orders: Orders
) -> None:
    # GIVEN an order paid 30.00 by a Stripe card and 20.00 through PayPal, and its invoice in Xero
    tag = uuid.uuid4().hex[:8]
    stripe_payment = client.create_payment(3000, "EUR")
    paypal = stack.simulators["paypal"].seed_payment(2000, "EUR")
    invoice = client.create_invoice(f"split {tag}", f"Order split {tag}", Decimal("50.00"), "EUR", paid=True)
    customer = f"split.{tag}@example.com"
    body = split_request(stripe_payment, paypal, customer, amount=2500, invoice_id=str(invoice["InvoiceID"]))
    # (requests that name a payment twice, a rule refundflow does not have, or store credit are refused: nothing
    # stored)
    twice = {**body, "tenders": [body["tenders"][0], body["tenders"][0]]}
    unknown_rule = {**body, "allocation": "cheapest_first"}
    store_credit = {**body, "tenders": [body["tenders"][0], {"kind": "store_credit"}]}
    refused = [client.request_refund(bad) for bad in (twice, unknown_rule, store_credit)]
    assert [(answer.status_code, answer.json()["code"]) for answer in refused] == [
        (400, "validation_failed"),
        (400, "unknown_allocation_rule"),
        (400, "store_credit_not_available"),
    ], [answer.text for answer in refused]
    # WHEN 25.00 is asked back across both tenders, proportionally
    parent_id = orders.submit(body)
    parent = orders.settle(parent_id, TERMINAL_OR_ATTENTION, timeout=90)
    # THEN the parent completed with two legs, 15.00 back to the card and 10.00 to PayPal
    assert parent["status"] == "COMPLETED", (parent["attention_reason"], parent["failure"])
    assert parent["allocation_rule"] == "proportional"
    legs = parent["legs"]
    assert [(leg["payment"]["provider"], leg["amount"]["minor_units"], leg["status"]) for leg in legs] == [
        ("stripe", 1500, "succeeded"),
        ("paypal", 1000, "succeeded"),
    ]
    # AND each leg is a refund of its own, approved by the parent's decision, without the invoice
    for leg in legs:
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
    # AND the parent's invoice got one credit document, for the whole 25.00
    assert parent["credit_document"]["total"] == {"minor_units": 2500, "currency": "EUR"}
    statuses = [entry["to_status"] for entry in parent["timeline"] if entry["to_status"]]
    assert statuses[-4:] == ["REFUND_PENDING", "REFUNDED", "INVOICE_UPDATED", "COMPLETED"], statuses


def test_a_leg_refused_by_its_platform_needs_a_person_whose_remedy_moves_it_to_the_card(
    stack: DevStack, client: E2EClient, orders: Orders
) -> None:
    # GIVEN an order paid 40.00 by card and 20.00 through PayPal, whose capture PayPal will not refund
    tag = uuid.uuid4().hex[:8]
    stripe_payment = client.create_payment(4000, "EUR")
    paypal = stack.simulators["paypal"].seed_payment(2000, "EUR", behaviour="insufficient_funds")
    # WHEN 40.00 is asked back across both, proportionally (26.67 to the card, 13.33 to PayPal)
    body = split_request(stripe_payment, paypal, f"split-fail.{tag}@example.com", amount=4000)
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
    # WHEN an approver moves the failed leg's amount to the card
    token = client.approver_token("lee@shop.example", "team_lead", refund_id=parent_id)
    answer = client.http.post(
        f"{client.api_url}/refunds/{parent_id}/legs/1/remedy",
        json={"action": "move_to_tender", "tender": 0, "note": "PayPal refused: back to the card"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=client.timeout,
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["leg"]) == ("REFUND_PENDING", 2)
    # THEN a third leg refunds 13.33 to the card, and the parent completes with all 40.00 back
    parent = orders.settle(parent_id, TERMINAL_OR_ATTENTION, timeout=90)
    assert parent["status"] == "COMPLETED", (parent["attention_reason"], parent["failure"])
    moved = parent["legs"][2]
    assert (moved["payment"]["payment_id"], moved["amount"]["minor_units"], moved["status"], moved["replaces"]) == (
        stripe_payment,
        1333,
        "succeeded",
        1,
    )
    assert sorted(refund["amount"] for refund in client.stripe_refunds(stripe_payment)) == [1333, 2667]
    # AND the same token cannot choose a second remedy
    again = client.http.post(
        f"{client.api_url}/refunds/{parent_id}/legs/1/remedy",
        json={"action": "retry"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=client.timeout,
    )
    assert again.status_code == 401, again.text
