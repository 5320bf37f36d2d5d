"""Stripe's side of a refund, end to end: its webhooks (forged, foreign, redelivered), silence (polling),
lost answers after the money moved (R9), and transient and permanent refusals (R10)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders, environment, eventually, stripe_refund_event, stripe_signature

CREATE_REFUND = {"method": "POST", "path": "^/v1/refunds$"}


# ---------------------------------------------------------------------------- webhooks


def test_forged_stripe_events_are_refused_and_change_nothing(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund Stripe holds pending (its webhooks not reaching refundflow)
    order = orders.paid(2600, payment_method="pm_card_pendingRefund", invoice=False, name="forged")
    with client.stripe_webhooks_stopped():
        refund_id = orders.submit(Orders.request(order))
        stripe_refund = client.hold_stripe_refund(order.payment_id)
        pending = client.wait_for(refund_id, {"REFUND_PENDING"})
        # WHEN "it failed" events for it arrive signed with another secret, over a timestamp 301 s old or 400 s
        # ahead (a future one shrinks towards the window while the request travels: far enough that no delay
        # brings it inside), or without a signature
        event = stripe_refund_event(refund_id=refund_id, payment_id=order.payment_id, status="failed", amount=2600)
        event["data"]["object"]["id"] = stripe_refund["id"]
        body = json.dumps(event).encode()
        answers = [
            client.post_stripe_event(event, secret="whsec_not_the_endpoint_secret"),
            client.post_stripe_event(event, signature=stripe_signature(body, timestamp=int(time.time()) - 301)),
            client.post_stripe_event(event, signature=stripe_signature(body, timestamp=int(time.time()) + 400)),
            client.post_raw("/webhooks/stripe", body, {"Content-Type": "application/json"}),
        ]
        # THEN every one is refused as a problem document, and the refund is exactly where it was
        assert [answer.status_code for answer in answers] == [401] * 4, [answer.text for answer in answers]
        assert all(answer.headers["content-type"].startswith("application/problem+json") for answer in answers)
        assert client.refund(refund_id)["timeline"] == pending["timeline"]
        # AND when Stripe really settles the refund, refundflow finds out by polling and completes it
        client.control("stripe", "POST", f"/refunds/{stripe_refund['id']}/status", json={"status": "succeeded"})
        refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert "FAILED" not in [entry["to_status"] for entry in refund["timeline"]]


def test_signed_event_for_a_refund_refundflow_never_made_is_acknowledged_and_ignored(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN a completed refund, and a refund id refundflow never issued
    order = orders.paid(1200, invoice=False, name="foreign")
    refund_id = orders.submit(Orders.request(order))
    before = orders.settle(refund_id)
    unknown_refund_id = f"rf_{uuid.uuid4().hex}"
    # WHEN Stripe reports a failure for a refund carrying that unknown id, and one carrying no id at all
    first = client.post_stripe_event(
        stripe_refund_event(refund_id=unknown_refund_id, payment_id=order.payment_id, status="failed", amount=1200)
    )
    second = client.post_stripe_event(
        stripe_refund_event(refund_id=None, payment_id=order.payment_id, status="failed", amount=1200)
    )
    # THEN both are acknowledged (Stripe must stop retrying) and nothing changes
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.headers["Refundflow-Duplicate-Delivery"] == "false"
    assert client.refund_or_none(unknown_refund_id) is None
    assert client.refund(refund_id)["timeline"] == before["timeline"]


def test_the_same_stripe_event_twice_is_acknowledged_as_a_duplicate(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund Stripe holds pending, then fails (its webhooks not reaching refundflow yet)
    order = orders.paid(2200, payment_method="pm_card_pendingRefund", invoice=False, name="redelivered")
    with client.stripe_webhooks_stopped():
        refund_id = orders.submit(Orders.request(order))
        stripe_refund = client.hold_stripe_refund(order.payment_id)
        client.wait_for(refund_id, {"REFUND_PENDING"})
        failed = client.control(
            "stripe", "POST", f"/refunds/{stripe_refund['id']}/status", json={"status": "failed"}
        ).json()
        # WHEN Stripe's "failed" event is delivered, then delivered again under the same event id
        event = stripe_refund_event(refund_id=refund_id, payment_id=order.payment_id, status="failed", amount=2200)
        event["data"]["object"] = failed
        first = client.post_stripe_event(event)
        second = client.post_stripe_event(event)
        refund = orders.settle(refund_id)
    # THEN the first is applied, the second acknowledged as a duplicate, and the refund failed once
    assert first.status_code == second.status_code == 200
    assert (first.headers["Refundflow-Duplicate-Delivery"], second.headers["Refundflow-Duplicate-Delivery"]) == (
        "false",
        "true",
    )
    assert refund["status"] == "FAILED"
    assert refund["failure"]["platform"] == "stripe"
    assert [entry["to_status"] for entry in refund["timeline"]].count("FAILED") == 1


# ---------------------------------------------------------------------------- silence: polling


def test_pending_refund_is_polled_to_completion_when_no_webhook_comes(client: E2EClient, orders: Orders) -> None:
    # GIVEN Stripe's webhooks do not reach refundflow, and a payment whose refunds start pending
    order = orders.paid(3100, payment_method="pm_card_pendingRefund", name="silent")
    with client.stripe_webhooks_stopped():
        # WHEN a refund is requested
        refund_id = orders.submit(Orders.request(order))
        # THEN it waits pending, then asks Stripe after the outcome wait, and completes
        refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED", refund["failure"]
    statuses = [entry["to_status"] for entry in refund["timeline"]]
    assert "REFUND_PENDING" in statuses
    [stripe_refund] = client.stripe_refunds(order.payment_id)
    polls = client.stripe_requests("GET", f"/v1/refunds/{stripe_refund['id']}")
    assert polls, "refundflow never asked Stripe for the refund's status"
    deliveries = client.control("stripe", "GET", "/deliveries").json()["deliveries"]
    assert not [delivery for delivery in deliveries if stripe_refund["id"] in str(delivery)]
    assert len(client.credit_notes(refund_id)) == 1


# ---------------------------------------------------------------------------- R9: the answer is lost


def test_refund_whose_answer_is_lost_after_a_500_is_paid_exactly_once(client: E2EClient, orders: Orders) -> None:
    # GIVEN Stripe creates refunds but the next three answers to POST /v1/refunds are 500s
    order = orders.paid(2700, name="lost-500")
    with client.faults("stripe", {**CREATE_REFUND, "status": 500, "when": "after", "times": 3}):
        # WHEN a refund is requested
        refund_id = orders.submit(Orders.request(order))
        refund = orders.settle(refund_id, timeout=60)
    # THEN it completes with exactly one Stripe refund, found again by its refund id, never paid twice
    assert refund["status"] == "COMPLETED", refund["failure"]
    stripe_refunds = client.stripe_refunds(order.payment_id)
    assert [stripe_refund["amount"] for stripe_refund in stripe_refunds] == [2700]
    assert stripe_refunds[0]["metadata"]["refund_id"] == refund_id
    assert refund["provider_refund_id"] == stripe_refunds[0]["id"]
    keys = {post["headers"].get("Idempotency-Key") for post in client.stripe_refund_posts(order.payment_id)}
    assert keys == {f"{refund_id}:refund"}
    assert len(client.credit_notes(refund_id)) == 1


def test_refund_whose_answer_times_out_is_paid_exactly_once(client: E2EClient, orders: Orders) -> None:
    # GIVEN a 0.5 s read timeout, and Stripe answering POST /v1/refunds only after 1.5 s (twice)
    order = orders.paid(2900, name="lost-timeout")
    slow = {**CREATE_REFUND, "status": None, "when": "after", "lose_answer": True, "times": 2}
    with environment(CONNECTOR_READ_TIMEOUT_SECONDS="0.5"), client.faults("stripe", slow):
        # WHEN a refund is requested
        refund_id = orders.submit(Orders.request(order))
        refund = orders.settle(refund_id, timeout=60)
    # THEN Stripe made one refund, whatever the client saw, and refundflow booked it once
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert [stripe_refund["amount"] for stripe_refund in client.stripe_refunds(order.payment_id)] == [2900]
    assert len(client.stripe_refund_posts(order.payment_id)) >= 2, "the timeout never happened"
    assert len(client.credit_notes(refund_id)) == 1


# ---------------------------------------------------------------------------- R10: transient and permanent


@pytest.mark.parametrize("status", [503, 429])
def test_refund_goes_through_after_transient_stripe_errors(client: E2EClient, orders: Orders, status: int) -> None:
    # GIVEN Stripe refuses POST /v1/refunds three times with a transient error, without doing anything
    order = orders.paid(1900, name=f"transient-{status}")
    with client.faults("stripe", {**CREATE_REFUND, "status": status, "when": "before", "times": 3}):
        # WHEN a refund is requested
        refund_id = orders.submit(Orders.request(order))
        refund = orders.settle(refund_id, timeout=60)
    # THEN it completes with one Stripe refund, every attempt under the same idempotency key
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert [stripe_refund["amount"] for stripe_refund in client.stripe_refunds(order.payment_id)] == [1900]
    posts = client.stripe_refund_posts(order.payment_id)
    assert len(posts) >= 4
    assert {post["headers"].get("Idempotency-Key") for post in posts} == {f"{refund_id}:refund"}


def test_refund_for_a_payment_stripe_does_not_know_is_rejected_without_retries(
    client: E2EClient, orders: Orders, stack: DevStack
) -> None:
    # GIVEN a request naming a PaymentIntent that does not exist at Stripe
    order = orders.paid(1000, invoice=False, name="unknown-payment")
    request = Orders.request(order, amount=1000)
    missing = f"pi_{uuid.uuid4().hex[:24]}"
    request["payment"]["payment_id"] = missing
    # WHEN it is processed
    refund_id = orders.submit(request)
    refund = orders.settle(refund_id)
    # THEN it is rejected with Stripe's reason, after one look-up and no refund attempt
    assert refund["status"] == "REJECTED"
    assert refund["failure"]["code"] == "resource_missing"
    assert refund["failure"]["platform"] == "stripe"
    assert len(client.stripe_requests("GET", missing)) == 1
    assert not client.stripe_refund_posts(missing)
    assert stack.wait_for_execution(refund_id)["status"] == "SUCCEEDED"


def test_refund_stripe_refuses_for_good_fails_once_and_gives_the_amount_back(client: E2EClient, orders: Orders) -> None:
    # GIVEN Stripe answers POST /v1/refunds with a final 400 (the charge was disputed)
    order = orders.paid(2400, invoice=False, name="disputed")
    disputed: dict[str, Any] = {
        "error": {
            "type": "invalid_request_error",
            "code": "charge_disputed",
            "message": "The charge you're attempting to refund has been charged back.",
        }
    }
    with client.faults("stripe", {**CREATE_REFUND, "status": 400, "body": disputed, "times": 1}):
        # WHEN a refund is requested
        refund_id = orders.submit(Orders.request(order))
        refund = orders.settle(refund_id)
    # THEN it fails with Stripe's code after a single attempt: no retry storm on a 4xx
    assert refund["status"] == "FAILED"
    assert (refund["failure"]["code"], refund["failure"]["platform"]) == ("charge_disputed", "stripe")
    assert len(client.stripe_refund_posts(order.payment_id)) == 1
    assert client.stripe_refunds(order.payment_id) == []
    # AND the reserved amount was released: a new request for "everything left" gets all 24.00 and is paid
    again = orders.submit(Orders.request(order))
    retried = orders.settle(again)
    assert retried["status"] == "COMPLETED", retried["failure"]
    assert retried["amount"] == {"minor_units": 2400, "currency": "EUR"}


# ---------------------------------------------------------------------------- what a failure gives back


def books(stack: DevStack, payment_id: str) -> dict[str, int]:
    """The payment's balance item (``PAYMENT#stripe#<id>`` / ``REFUNDABLE``), read from the table."""
    item = stack.client("dynamodb").get_item(
        TableName=stack.env()["REFUNDS_TABLE_NAME"],
        Key={"pk": {"S": f"PAYMENT#stripe#{payment_id}"}, "sk": {"S": "REFUNDABLE"}},
        ConsistentRead=True,
    )["Item"]
    return {name: int(item[name]["N"]) for name in ("captured", "refunded", "reserved", "remaining")}


def stripe_deliveries_done(client: E2EClient) -> bool:
    deliveries = client.control("stripe", "GET", "/deliveries").json()["deliveries"]
    return all(delivery["delivered"] or delivery["attempts"] > 3 for delivery in deliveries)


def test_refund_stripe_reports_failed_gives_its_reservation_back_exactly_once(
    client: E2EClient, orders: Orders, stack: DevStack
) -> None:
    # GIVEN a refund of all 26.00 that Stripe holds pending, its amount reserved on the payment's balance
    order = orders.paid(2600, payment_method="pm_card_pendingRefund", invoice=False, name="failed-later")
    refund_id = orders.submit(Orders.request(order))
    stripe_refund = client.hold_stripe_refund(order.payment_id)
    client.wait_for(refund_id, {"REFUND_PENDING"})
    assert books(stack, order.payment_id) == {"captured": 2600, "refunded": 0, "reserved": 2600, "remaining": 0}
    # WHEN Stripe reports it failed (refund.updated and refund.failed), and the failure arrives once more
    client.control("stripe", "POST", f"/refunds/{stripe_refund['id']}/status", json={"status": "failed"})
    failed = orders.settle(refund_id)
    again = stripe_refund_event(refund_id=refund_id, payment_id=order.payment_id, status="failed", amount=2600)
    again["type"] = "refund.failed"
    again["data"]["object"]["id"] = stripe_refund["id"]
    assert client.post_stripe_event(again).status_code == 200
    eventually(lambda: stripe_deliveries_done(client), what="Stripe's webhooks delivered")
    # THEN the refund failed once, and the balance got the 26.00 back exactly once (not twice: remaining is what
    # was captured, nothing reserved)
    assert failed["status"] == "FAILED", failed
    assert [entry["to_status"] for entry in client.refund(refund_id)["timeline"]].count("FAILED") == 1
    assert books(stack, order.payment_id) == {"captured": 2600, "refunded": 0, "reserved": 0, "remaining": 2600}
    # AND a new request for "everything left" can use it: all 26.00, paid, and the balance is used up
    retried = orders.settle(orders.submit(Orders.request(order)))
    assert retried["status"] == "COMPLETED", retried["failure"]
    assert retried["amount"] == {"minor_units": 2600, "currency": "EUR"}
    assert books(stack, order.payment_id)["remaining"] == 0
    assert [item["status"] for item in client.stripe_refunds(order.payment_id)] == ["succeeded", "failed"]


def test_stripe_event_signed_in_the_future_is_refused_and_changes_nothing(
    client: E2EClient, orders: Orders, stack: DevStack
) -> None:
    # GIVEN a refund Stripe holds pending (its own webhooks not reaching refundflow)
    order = orders.paid(1900, payment_method="pm_card_pendingRefund", invoice=False, name="future-signed")
    with client.stripe_webhooks_stopped():
        refund_id = orders.submit(Orders.request(order))
        stripe_refund = client.hold_stripe_refund(order.payment_id)
        pending = client.wait_for(refund_id, {"REFUND_PENDING"})
        balance = books(stack, order.payment_id)
        # WHEN a genuine-looking "it failed" event arrives, signed with the endpoint's own secret but dated
        # ten minutes ahead (a captured signature kept for later, or a skewed signer)
        event = stripe_refund_event(refund_id=refund_id, payment_id=order.payment_id, status="failed", amount=1900)
        event["data"]["object"]["id"] = stripe_refund["id"]
        body = json.dumps(event).encode()
        answer = client.post_stripe_event(event, signature=stripe_signature(body, timestamp=int(time.time()) + 600))
        # THEN it is refused as unauthenticated, with a problem document, before anything is read or changed
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "future" in answer.json()["detail"]
        assert client.refund(refund_id)["timeline"] == pending["timeline"]
        assert books(stack, order.payment_id) == balance
        # AND the same event signed now is accepted (the refusal was the date, not the event)
        client.control("stripe", "POST", f"/refunds/{stripe_refund['id']}/status", json={"status": "failed"})
        accepted = client.post_stripe_event(event)
        assert accepted.status_code == 200, accepted.text
        refund = orders.settle(refund_id)
    assert refund["status"] == "FAILED", refund
