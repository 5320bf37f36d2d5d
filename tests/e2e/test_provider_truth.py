"""The provider is the truth, end to end over HTTP (issue 6, items 3, 4 and 8): a validly signed webhook that
lies changes nothing, an older event after a newer one does not move a refund back, a payment refunded at
Stripe by someone else is neither refunded nor booked again, an amount Stripe cannot represent is refused
before anything is reserved, and a Stripe outage during the payment look-up is waited out."""

from __future__ import annotations

import uuid
from typing import Any

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders, PaidOrder, stripe_refund_event


def statuses(refund: dict[str, Any]) -> list[str]:
    return [entry["to_status"] for entry in refund["timeline"] if entry["type"].startswith("StatusChanged")]


def entry_types(refund: dict[str, Any]) -> list[str]:
    return [entry["type"] for entry in refund["timeline"]]


def refund_event_for(client: E2EClient, refund_id: str, order: PaidOrder, status: str, **fields: Any) -> dict[str, Any]:
    """A signed-able ``refund.updated`` event about the refund Stripe really holds for ``refund_id``."""
    [stripe_refund] = [
        r for r in client.stripe_refunds(order.payment_id) if r["metadata"].get("refund_id") == refund_id
    ]
    event = stripe_refund_event(refund_id=refund_id, payment_id=order.payment_id, status=status)
    event["data"]["object"] = {**stripe_refund, "status": status, **fields}
    return event


def refund_at_stripe(client: E2EClient, order: PaidOrder, amount: int) -> dict[str, Any]:
    """Someone refunds the payment in Stripe's dashboard (outside refundflow: no refund_id metadata)."""
    response = client.stripe("POST", "/v1/refunds", data={"payment_intent": order.payment_id, "amount": amount})
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def test_a_signed_refund_failed_that_stripe_never_sent_changes_nothing(client: E2EClient, orders: Orders) -> None:
    # GIVEN a completed refund of 40.00 (all of the payment), booked once
    order = orders.paid(4000, name="lying-webhook")
    refund_id = orders.submit(Orders.request(order))
    before = orders.settle(refund_id)
    assert before["status"] == "COMPLETED", before["failure"]
    # WHEN a validly signed "refund.failed" for it arrives, which Stripe never sent (the refund succeeded)
    event = refund_event_for(client, refund_id, order, "failed", failure_reason="lost_or_stolen_card")
    event["type"] = "refund.failed"
    answer = client.post_stripe_event(event)
    # THEN it is acknowledged, refundflow read the refund from Stripe, and the refund is exactly as it was
    assert answer.status_code == 200, answer.text
    assert client.stripe_requests("GET", f"/v1/refunds/{before['provider_refund_id']}")
    after = client.refund(refund_id)
    assert after["status"] == "COMPLETED"
    assert after["timeline"] == before["timeline"]
    # AND a next request for the same payment is not "completed" on the back of it: nothing is refundable
    again = orders.submit(Orders.request(order))
    second = orders.settle(again)
    assert (second["status"], second["failure"]["code"]) == ("REJECTED", "nothing_refundable")
    assert [r["amount"] for r in client.stripe_refunds(order.payment_id)] == [4000]
    assert len(client.credit_notes(refund_id)) == 1
    assert client.credit_notes(again) == []


def test_an_older_event_arriving_after_a_newer_one_does_not_move_the_refund_back(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN a refund that Stripe holds pending, its webhooks not reaching refundflow
    order = orders.paid(2300, payment_method="pm_card_pendingRefund", invoice=False, name="out-of-order")
    with client.stripe_webhooks_stopped():
        refund_id = orders.submit(Orders.request(order))
        held = client.hold_stripe_refund(order.payment_id)
        client.wait_for(refund_id, {"REFUND_PENDING"})
        pending = refund_event_for(client, refund_id, order, "pending")
        # WHEN Stripe settles it and its newer "succeeded" arrives first
        client.control("stripe", "POST", f"/refunds/{held['id']}/status", json={"status": "succeeded"})
        newer = client.post_stripe_event(refund_event_for(client, refund_id, order, "succeeded"))
        done = orders.settle(refund_id)
        # AND the older "pending" and an older "failed" (a previous state, redelivered days later) arrive after it
        late = [
            client.post_stripe_event(pending),
            client.post_stripe_event(refund_event_for(client, refund_id, order, "failed")),
        ]
    # THEN every delivery is acknowledged and the refund stays COMPLETED, its timeline untouched by the late ones
    assert [answer.status_code for answer in (newer, *late)] == [200, 200, 200]
    assert done["status"] == "COMPLETED", done["failure"]
    after = client.refund(refund_id)
    assert after["timeline"] == done["timeline"]
    assert "FAILED" not in statuses(after)
    assert client.stripe_charge_refunded(order.payment_id) == (2300, 2300)


def test_a_payment_refunded_at_stripe_by_someone_else_is_rejected_and_never_booked(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN refundflow refunded 10.00 of a 40.00 payment, then someone refunded the other 30.00 in Stripe
    order = orders.paid(4000, name="refunded-outside")
    first = orders.submit(Orders.request(order, amount=1000))
    assert orders.settle(first)["status"] == "COMPLETED"
    refund_at_stripe(client, order, 3000)
    # WHEN requests for "everything left" and for 20.00 arrive
    rest, some = orders.submit(Orders.request(order)), orders.submit(Orders.request(order, amount=2000))
    finals = [orders.settle(rest), orders.settle(some)]
    # THEN both are rejected as nothing_refundable, before any reservation: no Stripe refund, no credit note
    assert [(refund["status"], refund["failure"]["code"]) for refund in finals] == [
        ("REJECTED", "nothing_refundable")
    ] * 2
    assert all("AmountReserved" not in entry_types(refund) for refund in finals)
    assert sorted(r["amount"] for r in client.stripe_refunds(order.payment_id)) == [1000, 3000]
    keys = {post["headers"].get("Idempotency-Key") for post in client.stripe_refund_posts(order.payment_id)}
    assert keys == {f"{first}:refund", None}  # ours, and the dashboard's (no key)
    assert client.credit_notes(rest) == client.credit_notes(some) == []


def test_an_amount_stripe_cannot_represent_is_rejected_before_anything_is_reserved(
    client: E2EClient, orders: Orders, stack: DevStack
) -> None:
    # GIVEN a captured 10.000 KWD payment
    payment_id = client.create_payment(10_000, "KWD")
    request = Orders.request(PaidOrder(payment_id, None, 10_000, f"kwd.{uuid.uuid4().hex[:8]}@example.com"))
    # WHEN 3.333 KWD is asked for (Stripe takes KWD in steps of 0.010)
    request["amount"] = {"minor_units": 3333, "currency": "KWD"}
    refund = orders.settle(orders.submit(request))
    # THEN it is rejected with a reason naming the currency and Stripe's rule
    assert refund["status"] == "REJECTED"
    assert refund["failure"]["code"] == "amount_not_representable"
    assert "KWD" in refund["failure"]["message"]
    assert "Stripe" in refund["failure"]["message"]
    # AND nothing was reserved or asked of Stripe: no balance opened, no look-up, no refund
    assert "AmountReserved" not in entry_types(refund)
    table = stack.env()["REFUNDS_TABLE_NAME"]
    balance = stack.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": f"PAYMENT#stripe#{payment_id}"}, "sk": {"S": "REFUNDABLE"}}
    )
    assert "Item" not in balance
    assert client.stripe_requests("GET", payment_id) == []
    assert client.stripe_refunds(payment_id) == []


def test_a_stripe_outage_during_the_payment_look_up_is_waited_out(client: E2EClient, orders: Orders) -> None:
    # GIVEN Stripe answers the payment look-up with 503 more times than one run of the steps retries
    order = orders.paid(1800, name="lookup-outage")
    outage = {"method": "GET", "path": f"^/v1/payment_intents/{order.payment_id}", "status": 503, "times": 12}
    with client.faults("stripe", outage):
        # WHEN a refund is requested
        refund_id = orders.submit(Orders.request(order))
        refund = orders.settle(refund_id, timeout=150)
    # THEN it waited, looked the payment up again once Stripe was back, and completed: paid and booked once
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert entry_types(refund).count("PaymentLookupFailed") >= 1
    assert [r["amount"] for r in client.stripe_refunds(order.payment_id)] == [1800]
    assert len(client.credit_notes(refund_id)) == 1


def test_a_webhook_while_stripe_cannot_be_read_answers_503_and_applies_on_redelivery(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN a refund Stripe holds pending, then settles, its webhooks not reaching refundflow
    order = orders.paid(2100, payment_method="pm_card_pendingRefund", invoice=False, name="unreadable")
    with client.stripe_webhooks_stopped():
        refund_id = orders.submit(Orders.request(order))
        held = client.hold_stripe_refund(order.payment_id)
        pending = client.wait_for(refund_id, {"REFUND_PENDING"})
        client.control("stripe", "POST", f"/refunds/{held['id']}/status", json={"status": "succeeded"})
        event = refund_event_for(client, refund_id, order, "succeeded")
        # WHEN its "succeeded" event arrives while Stripe answers every read of the refund with 503
        unreadable = {"method": "GET", "path": f"^/v1/refunds/{held['id']}", "status": 503, "times": -1}
        with client.faults("stripe", unreadable):
            first = client.post_stripe_event(event)
            # THEN the delivery is answered 503 (Stripe delivers it again) and nothing was applied
            assert first.status_code == 503, first.text
            assert first.headers["content-type"].startswith("application/problem+json")
            assert client.refund(refund_id)["status"] == "REFUND_PENDING"
            assert "REFUNDED" not in statuses(client.refund(refund_id))
        # AND Stripe's redelivery of the same event, once the refund can be read, is applied
        again = client.post_stripe_event(event)
        refund = orders.settle(refund_id)
    assert (again.status_code, again.headers["Refundflow-Duplicate-Delivery"]) == (200, "false")
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert pending["status"] == "REFUND_PENDING"
