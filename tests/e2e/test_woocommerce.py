"""WooCommerce through the local stack's intake: the ping a new webhook sends is answered 200 (nothing stored, no
function invoked), a delivery from another store or under another secret is refused, and a shop manager's request
that arrives twice (WooCommerce sends the order on every save) makes one refund; a return status refundflow does not
know is refused 400 with nothing stored and a note on the order, and ``received`` lets the waiting refund go on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import requests

from local.scenarios import ScenarioContext, ticket_refund_id, wait_for_notes, wait_until_stored
from local.simulators.woocommerce import WooCommerceSimulator
from local.stack import DevStack
from refundflow import catalog
from tests.e2e.harness import E2EClient


def woocommerce(stack: DevStack) -> WooCommerceSimulator:
    simulator = stack.simulators["woocommerce"]
    assert isinstance(simulator, WooCommerceSimulator)
    return simulator


def test_the_ping_of_a_new_webhook_is_answered_200_and_does_nothing(stack: DevStack) -> None:
    ticket_function = catalog.platform("woocommerce").logical_id("ticket")
    before = stack.functions.invocations[ticket_function]
    answer = requests.post(
        f"{stack.api_url}/webhooks/woocommerce",
        data="webhook_id=7",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "WooCommerce/10.3.0 Hookshot"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert stack.functions.invocations[ticket_function] == before


def test_an_order_signed_for_another_store_is_refused(stack: DevStack) -> None:
    simulator = woocommerce(stack)
    order_id = simulator.seed_payment(3_000, "EUR")["payment_id"]
    body = json.dumps(simulator._order_view(simulator.orders[int(order_id)])).encode()
    signature = base64.b64encode(hmac.new(simulator.webhook_secret.encode(), body, hashlib.sha256).digest()).decode()
    answer = requests.post(
        f"{stack.api_url}/webhooks/woocommerce",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-WC-Webhook-Signature": signature,
            "X-WC-Webhook-Source": "https://another-shop.example.com/",
            "X-WC-Webhook-Topic": "order.updated",
        },
        timeout=10,
    )
    assert answer.status_code == 401, answer.text


def test_a_card_number_in_a_delivery_naming_no_real_order_is_a_400_not_a_retry(stack: DevStack) -> None:
    # GIVEN a signed delivery (anyone holding the secret, or a bug) naming an order the store does not have, with a
    # card number in a refund meta field
    simulator = woocommerce(stack)
    body = json.dumps(
        {"id": 987654, "status": "processing", "meta_data": [{"key": "_refund_reason", "value": "4242 4242 4242 4242"}]}
    ).encode()
    signature = base64.b64encode(hmac.new(simulator.webhook_secret.encode(), body, hashlib.sha256).digest()).decode()
    # WHEN it is posted
    answer = requests.post(
        f"{stack.api_url}/webhooks/woocommerce",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-WC-Webhook-Signature": signature,
            "X-WC-Webhook-Source": simulator.store_url,
            "X-WC-Webhook-Topic": "order.updated",
        },
        timeout=30,
    )
    # THEN the card data is refused with a 400 naming the field (no order to write a note to: nobody to tell), not
    # a 5xx that WooCommerce would deliver again until it disabled the webhook
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "card_data_refused"
    assert "4242" not in answer.text


def test_a_request_delivered_twice_refunds_the_order_once(stack: DevStack, client: E2EClient) -> None:
    # GIVEN a paid order of 50.00 and a shop manager's request for 20.00 in it
    simulator = woocommerce(stack)
    order_id = simulator.seed_payment(5_000, "EUR")["payment_id"]
    refund_id = ticket_refund_id("woocommerce", order_id)
    simulator.request_refund(order_id, "20.00")
    wait_until_stored(ScenarioContext(client, "woocommerce", simulator), refund_id)
    # WHEN the same order is saved again with the same request (its order.updated comes again)
    simulator.request_refund(order_id, "20.00")
    refund = client.wait_for(refund_id, {"COMPLETED", "FAILED", "REJECTED"}, timeout=90)
    # THEN one refund of 20.00 went through WooCommerce
    assert refund["status"] == "COMPLETED", refund
    made = [item for item in simulator.refunds() if refund_id in json.dumps(item)]
    assert [item["amount"] for item in made] == ["20.00"]


def test_an_unknown_return_status_is_refused_400_and_received_lets_the_waiting_refund_go_on(
    stack: DevStack, client: E2EClient
) -> None:
    # GIVEN a return by choice asked for in an order: the packaged policy holds it until the goods are back
    simulator = woocommerce(stack)
    context = ScenarioContext(client, "woocommerce", simulator)
    order_id = simulator.seed_ticket(
        {"amount": "20.00", "currency": "EUR", "reason": "product_return", "customer_email": "ret.e2e@example.com"}
    )
    refund_id = ticket_refund_id("woocommerce", order_id)
    simulator.agent_action(order_id, "request")
    wait_until_stored(context, refund_id)
    waiting = client.wait_for(refund_id, {"PENDING_APPROVAL", "AWAITING_RETURN", "COMPLETED", "FAILED"}, timeout=60)
    assert waiting["status"] == "PENDING_APPROVAL", waiting
    # WHEN a returns plugin writes a status refundflow does not know
    assert simulator.webhooks.wait_idle(timeout=30)
    before = len(simulator.webhooks.deliveries)
    simulator.report_return(order_id, "arrived")
    assert simulator.webhooks.wait_idle(timeout=30)
    # THEN intake answered WooCommerce 400, nothing was stored, and the order has a private note naming the field
    # (refundflow's own write-back may save the order meanwhile: its order.updated carries the same request)
    assert 400 in [delivery.last_status for delivery in simulator.webhooks.deliveries[before:]]
    refused = client.refund(refund_id)
    assert (refused["status"], (refused.get("return") or {}).get("steps", [])) == ("PENDING_APPROVAL", [])
    view = wait_for_notes(context, order_id, lambda notes: any("return.status" in note for note in notes))
    assert any("Refund request not taken" in note and "return.status" in note for note in view["notes"]), view
    # WHEN the plugin then reports the goods received THEN the refund goes on and completes through WooCommerce
    simulator.report_return(order_id, "received")
    refund = client.wait_for(refund_id, {"COMPLETED", "FAILED", "REJECTED"}, timeout=90)
    assert refund["status"] == "COMPLETED", refund
    assert [(step["status"], step["source"]) for step in refund["return"]["steps"]] == [("received", "woocommerce")]
