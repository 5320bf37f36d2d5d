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
    # WHEN 25.00 is asked back across both tenders, proportionally
    body = split_request(stripe_payment, paypal, customer, amount=2500, invoice_id=str(invoice["InvoiceID"]))
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


def test_a_leg_refused_by_its_platform_leaves_the_parent_needing_a_person_with_remedies(
    stack: DevStack, client: E2EClient, orders: Orders
) -> None:
    # GIVEN an order paid 30.00 by card and 20.00 through PayPal, whose capture PayPal will not refund
    tag = uuid.uuid4().hex[:8]
    stripe_payment = client.create_payment(3000, "EUR")
    paypal = stack.simulators["paypal"].seed_payment(2000, "EUR", behaviour="insufficient_funds")
    # WHEN all 50.00 is asked back across both
    body = split_request(stripe_payment, paypal, f"split-fail.{tag}@example.com", amount=5000)
    parent_id = orders.submit(body)
    parent = orders.settle(parent_id, TERMINAL_OR_ATTENTION, timeout=90)
    # THEN the card leg paid, the PayPal leg failed, and the parent waits for a person: never silently short
    assert parent["status"] == "NEEDS_ATTENTION", parent["failure"]
    assert parent["attention_reason"] == "split_leg_failed:1"
    card, wallet = parent["legs"]
    assert (card["status"], card["amount"]["minor_units"]) == ("succeeded", 3000)
    assert (wallet["status"], wallet["amount"]["minor_units"]) == ("failed", 2000)
    assert client.refund(wallet["refund_id"])["status"] == "FAILED"
    assert [refund["amount"] for refund in client.stripe_refunds(stripe_payment)] == [3000]
    assert paypal_refunds(stack, paypal["payment_id"]) == []
    # AND the remedies are recorded: retry the leg, or store credit (the card has no room left for 20.00)
    [attention] = [entry for entry in parent["timeline"] if entry["to_status"] == "NEEDS_ATTENTION"]
    actions = [remedy["action"] for remedy in attention["details"]["remedies"]]
    assert actions == ["retry", "store_credit"], attention["details"]
