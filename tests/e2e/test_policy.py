"""The refund policy, end to end: what it rejects, what it holds for a person (R15), what it deducts."""

from __future__ import annotations

import uuid

from tests.e2e.harness import E2EClient, Orders

WAITING_OR_FINAL = {"PENDING_APPROVAL", "COMPLETED", "REJECTED", "FAILED"}


def test_change_of_mind_on_a_final_sale_item_is_rejected_and_nothing_paid(client: E2EClient, orders: Orders) -> None:
    # GIVEN an order with a final-sale item, refunded because the customer changed their mind
    order = orders.paid(2000, name="final-sale")
    request = Orders.request(order, reason="changed_mind")
    request["order"]["items"] = [{"sku": "SALE-1", "quantity": 1, "final_sale": True}]
    request["return"] = {"status": "received", "received_at": "2026-01-02T10:00:00Z"}
    # WHEN it is requested
    refund_id = orders.submit(request)
    refund = orders.settle(refund_id)
    # THEN the policy rejects it with its reason, and neither Stripe nor Xero hear of it
    assert refund["status"] == "REJECTED"
    assert refund["failure"]["code"] == "final_sale"
    assert refund["policy"]["rule_id"] == "final_sale_items"
    assert client.stripe_refunds(order.payment_id) == []
    assert client.credit_notes(refund_id) == []


def test_damaged_final_sale_item_is_still_refunded(client: E2EClient, orders: Orders) -> None:
    # GIVEN the same kind of order, but the item arrived damaged
    order = orders.paid(2000, name="final-sale-damaged")
    request = Orders.request(order, reason="damaged")
    request["order"]["items"] = [{"sku": "SALE-2", "quantity": 1, "final_sale": True}]
    # WHEN it is requested
    refund = orders.settle(orders.submit(request))
    # THEN it is refunded automatically
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert refund["policy"]["rule_id"] == "auto_approve"


def test_product_return_before_the_goods_are_back_waits_for_an_agent(client: E2EClient, orders: Orders) -> None:
    # GIVEN a small product return whose parcel is still on its way
    order = orders.paid(1500, name="in-transit")
    request = Orders.request(order, reason="product_return")
    request["return"] = {"status": "in_transit", "tracking_reference": "TRK-123"}
    # WHEN it is requested
    refund_id = orders.submit(request)
    refund = client.wait_for(refund_id, WAITING_OR_FINAL)
    # THEN it is held for an agent (small as it is), nothing paid
    assert refund["status"] == "PENDING_APPROVAL"
    assert (refund["policy"]["required_role"], refund["policy"]["reason_code"]) == ("agent", "return_not_received")
    assert client.stripe_refunds(order.payment_id) == []
    # AND an agent may decide early: then it is paid
    approved = client.decide(refund_id, client.approver_token("avery.agent", "agent"), "approve", "parcel scanned")
    assert approved.status_code == 200, approved.text
    assert orders.settle(refund_id)["status"] == "COMPLETED"
    assert len(client.stripe_refunds(order.payment_id)) == 1


def test_product_return_with_the_goods_back_is_refunded_automatically(client: E2EClient, orders: Orders) -> None:
    # GIVEN a small product return that has arrived at the warehouse
    order = orders.paid(1500, name="received")
    request = Orders.request(order, reason="product_return")
    request["return"] = {"status": "received", "received_at": "2026-01-02T10:00:00Z"}
    # WHEN it is requested THEN it needs nobody
    refund = orders.settle(orders.submit(request))
    assert refund["status"] == "COMPLETED", refund["failure"]


def test_fourth_refund_of_one_customer_in_thirty_days_needs_a_team_lead(client: E2EClient, orders: Orders) -> None:
    # GIVEN a customer whose three small refunds went through automatically
    customer = f"frequent.{uuid.uuid4().hex[:10]}@example.com"
    for index in range(3):
        order = orders.paid(1000 + index, invoice=False, name=f"velocity-{index}")
        refund = orders.settle(orders.submit(Orders.request(order, customer=customer)))
        assert refund["status"] == "COMPLETED", refund["failure"]
    # WHEN the same customer asks for a fourth small refund
    order = orders.paid(1000, invoice=False, name="velocity-3")
    refund_id = orders.submit(Orders.request(order, customer=customer))
    refund = client.wait_for(refund_id, WAITING_OR_FINAL)
    # THEN it is held for a team lead
    assert refund["status"] == "PENDING_APPROVAL"
    assert (refund["policy"]["required_role"], refund["policy"]["reason_code"]) == (
        "team_lead",
        "customer_refund_velocity",
    )
    assert client.stripe_refunds(order.payment_id) == []
    client.decide(refund_id, client.approver_token("lee.lead", "team_lead"), "reject", "test clean-up")


def test_goodwill_refund_is_capped_to_half_and_paid_only_that(client: E2EClient, orders: Orders) -> None:
    # GIVEN a goodwill refund of 60.00 asked for, which the policy caps at half
    order = orders.paid(6000, name="goodwill")
    refund_id = orders.submit(Orders.request(order, amount=6000, reason="goodwill"))
    refund = client.wait_for(refund_id, WAITING_OR_FINAL)
    assert refund["status"] == "PENDING_APPROVAL"
    assert refund["amount"] == {"minor_units": 3000, "currency": "EUR"}
    # WHEN a team lead approves it
    approved = client.decide(refund_id, client.approver_token("lee.lead", "team_lead"), "approve")
    assert approved.status_code == 200, approved.text
    # THEN 30.00 is refunded and booked, not the 60.00 asked for
    refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert [stripe_refund["amount"] for stripe_refund in client.stripe_refunds(order.payment_id)] == [3000]
    assert refund["credit_document"]["total"] == {"minor_units": 3000, "currency": "EUR"}
