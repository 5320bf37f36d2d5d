"""SAP as a return trigger over HTTP: a refund waiting for its goods is paid once SAP's business event says its
customer return was received (the simulator's Event Mesh webhook subscription posts to /webhooks/sap, intake
verifies its Basic credentials and forwards the news to SAP's books function, which reads the customer return from
API_CUSTOMER_RETURN_SRV and records the step for the refund the return names)."""

from __future__ import annotations

from local.client import TERMINAL
from tests.e2e.harness import E2EClient, Orders


def test_a_waiting_refund_is_paid_when_sap_reports_its_customer_return_received(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN a refund waiting for its goods (the local policy makes a wrong item wait for its return)
    order = orders.paid(3100, invoice=False, name="sap-return")
    refund_id = orders.submit(Orders.request(order, reason="wrong_item"))
    waiting = client.wait_for(refund_id, {"AWAITING_RETURN", *TERMINAL})
    assert waiting["status"] == "AWAITING_RETURN", waiting
    # AND the merchant's returns process created SAP's customer return with our refund id as its customer reference
    number = client.control("sap", "POST", "/customer-returns", json={"refund_id": refund_id}).json()["CustomerReturn"]
    assert client.refund(refund_id)["status"] == "AWAITING_RETURN"
    assert client.stripe_refund_posts(order.payment_id) == []
    # WHEN the warehouse posts the goods receipt in SAP (its business event goes to our webhook)
    client.control("sap", "POST", f"/customer-returns/{number}/goods-receipt")
    # THEN the refund is approved and paid, once, and its return shows SAP's step
    paid = orders.settle(refund_id)
    assert paid["status"] in {"COMPLETED", "SETTLED"}, paid
    assert paid["return"]["status"] == "received"
    assert [step["source"] for step in paid["return"]["steps"] if step["status"] == "received"] == ["sap"]
    updates = [entry for entry in paid["timeline"] if entry["type"] == "ReturnUpdated"]
    assert [(entry["actor"], entry["details"]["status"]) for entry in updates] == [("returns:sap", "received")]
    assert client.stripe_charge_refunded(order.payment_id)[0] == 3100
    assert len(client.stripe_refund_posts(order.payment_id)) == 1
