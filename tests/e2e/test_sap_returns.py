"""SAP as a return trigger over HTTP: a refund waiting for its goods is paid once SAP's business event says its
customer return was received (the simulator's Event Mesh webhook subscription posts to /webhooks/sap, intake
verifies its Basic credentials and forwards the news to SAP's books function, which reads the customer return from
API_CUSTOMER_RETURN_SRV and records the step for the refund the return names)."""

from __future__ import annotations

import json

from local.client import TERMINAL
from local.simulators.sap import DEFAULT_WEBHOOK_PASSWORD, RETURN_CHANGED
from refundflow.platforms.sap.inbound import basic_authorization
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


def test_an_sap_event_without_the_subscription_credentials_is_refused_and_not_applied(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN a refund waiting for its goods, and SAP's customer return for it with the goods received
    order = orders.paid(1900, invoice=False, name="sap-forged")
    refund_id = orders.submit(Orders.request(order, reason="wrong_item"))
    assert client.wait_for(refund_id, {"AWAITING_RETURN", *TERMINAL})["status"] == "AWAITING_RETURN"
    number = client.control("sap", "POST", "/customer-returns", json={"refund_id": refund_id}).json()
    # (its own business event not sent: the subscription is paused while the goods receipt is posted)
    client.control("sap", "POST", "/webhook-endpoint", json={"url": None, "secret": None})
    try:
        client.control("sap", "POST", f"/customer-returns/{number['CustomerReturn']}/goods-receipt")
    finally:
        endpoint = {"url": f"{client.api_url}/webhooks/sap", "secret": DEFAULT_WEBHOOK_PASSWORD}
        client.control("sap", "POST", "/webhook-endpoint", json=endpoint)
    body = json.dumps(
        {
            "specversion": "1.0",
            "type": RETURN_CHANGED,
            "source": "/default/sap.s4.beh/0M4N8N0",
            "id": "forged-1",
            "time": "2026-12-06T09:15:02Z",
            "data": {"CustomerReturn": number["CustomerReturn"]},
        }
    )
    # WHEN someone posts its business event with other credentials, or none
    for auth in (basic_authorization("EVENT_MESH_WEBHOOK", "guessed"), ""):
        answer = client.http.post(
            f"{client.api_url}/webhooks/sap",
            data=body,
            headers={"Content-Type": "application/json", **({"Authorization": auth} if auth else {})},
            timeout=client.timeout,
        )
        # THEN it is refused, and the refund still waits with no step from SAP
        assert answer.status_code == 401, answer.text
    refund = client.refund(refund_id)
    assert refund["status"] == "AWAITING_RETURN"
    assert [entry for entry in refund["timeline"] if entry["type"] == "ReturnUpdated"] == []
