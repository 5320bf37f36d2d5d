"""The return's lifecycle over HTTP (POST /triggers/return-updates, issue 12): steps in any order and more than
once, also before the request; only the request's own source may report them; and a refund that waits for its
goods is paid when they arrive, or rejected when they never do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from local.client import TERMINAL
from tests.e2e.harness import E2EClient, Orders, environment, eventually, would_be_refund_id


def step(request: dict[str, Any], status: str, at: datetime, **extra: Any) -> dict[str, Any]:
    source = request["source"]
    return {
        "source": {"system": source["system"], "reference": source["reference"]},
        "status": status,
        "occurred_at": at.isoformat(),
        **extra,
    }


def accepted(client: E2EClient, update: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = client.report_return_update(update, **kwargs)
    assert response.status_code == 202, response.text
    document: dict[str, Any] = response.json()
    return document


def test_steps_out_of_order_and_redelivered_and_before_the_request(client: E2EClient, orders: Orders) -> None:
    order = orders.paid(2600, invoice=False, name="lifecycle")
    own_return: dict[str, Any] = {"return": {"status": "requested"}}
    request = Orders.request(order, reason="damaged", **own_return)
    refund_id = would_be_refund_id(request)
    day = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    # GIVEN the returns system reports the label before the shop sends the refund request
    early = accepted(client, step(request, "label_created", day))
    assert early == {"refund_id": refund_id, "return_status": "label_created", "duplicate": False}
    assert orders.submit(request) == refund_id
    # WHEN the receipt arrives, then the (earlier) in-transit step late, then the receipt again
    received = step(request, "received", day + timedelta(days=2))
    assert accepted(client, received, delivery_id="msg_received")["return_status"] == "received"
    late = accepted(client, step(request, "in_transit", day + timedelta(days=1), tracking_reference="3SLATE1"))
    again = accepted(client, received, delivery_id="msg_received")
    other_id = accepted(client, received)
    # THEN the late step is kept without winding the status back, and the redeliveries wrote nothing
    assert (late["return_status"], late["duplicate"]) == ("received", False)
    assert (again["duplicate"], other_id["duplicate"]) == (True, True)
    refund = client.refund(refund_id)
    assert refund["return"]["status"] == "received"
    statuses = [entry["status"] for entry in refund["return"]["steps"]]
    assert sorted(statuses) == sorted(["requested", "label_created", "in_transit", "received"])
    assert statuses.index("label_created") < statuses.index("in_transit") < statuses.index("received")
    # AND each step has one audit entry, the label's marked as reported before the request (the entries of steps
    # that came while the workflow was making the refund are written with it, so their order follows that moment)
    updates = [entry["details"] for entry in refund["timeline"] if entry["type"] == "ReturnUpdated"]
    assert sorted((entry["status"], entry.get("before_request", False)) for entry in updates) == [
        ("in_transit", False),
        ("label_created", True),
        ("received", False),
    ]
    assert refund["audit"]["intact"] is True


def test_forged_foreign_and_card_bearing_updates_are_refused_with_nothing_stored(
    client: E2EClient, orders: Orders
) -> None:
    order = orders.paid(1100, invoice=False, name="refused-return")
    request = Orders.request(order, reason="damaged")
    refund_id = orders.submit(request)
    update = step(request, "received", datetime.now(UTC) - timedelta(hours=1))
    body = json.dumps(update)
    # A forged signature: 401
    forged = client.signed_headers(body)
    forged["webhook-signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    assert client.post_raw("/triggers/return-updates", body, forged).status_code == 401
    # A carrier's secret does not open this door either: 401
    carrier = client.signed_headers(body, source="returns-portal")
    carrier["webhook-signature"] = client.carriers["parcel-carrier"].sign(
        carrier["webhook-id"], datetime.fromtimestamp(int(carrier["webhook-timestamp"]), UTC), body
    )
    assert client.post_raw("/triggers/return-updates", body, carrier).status_code == 401
    # Another source's valid signature for the portal's request: 403 source_mismatch
    foreign = client.report_return_update(update, source="helpdesk")
    assert foreign.status_code == 403, foreign.text
    assert foreign.json()["code"] == "source_mismatch"
    # A card number in an inspected line: 400 card_data_refused
    card = step(request, "inspected", datetime.now(UTC), lines=[{"sku": "4111111111111111", "quantity": 1}])
    card["lines"][0]["outcome"] = "resellable"
    refused = client.report_return_update(card)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "card_data_refused"
    # AND nothing of them was stored
    refund = client.refund(refund_id)
    assert refund["return"] is None
    assert not [entry for entry in refund["timeline"] if entry["type"] == "ReturnUpdated"]


def test_a_refund_waits_for_its_goods_and_is_paid_when_they_are_back(client: E2EClient, orders: Orders) -> None:
    # GIVEN the local policy makes a wrong item's refund wait for its return (wrong_item_waits_for_return)
    order = orders.paid(2400, invoice=False, name="waits")
    request = Orders.request(order, reason="wrong_item")
    refund_id = orders.submit(request)
    waiting = client.wait_for(refund_id, {"AWAITING_RETURN", *TERMINAL})
    assert waiting["status"] == "AWAITING_RETURN", waiting
    assert (waiting["policy"]["outcome"], waiting["policy"]["reason_code"]) == (
        "wait_for_return",
        "return_not_received",
    )
    # WHEN the parcel is only in transit THEN it is decided again and still waits; nothing is paid
    accepted(client, step(request, "in_transit", datetime.now(UTC) - timedelta(hours=2)))
    client.wait_for_entry(refund_id, "PolicyStillAwaitingReturn")
    assert client.refund(refund_id)["status"] == "AWAITING_RETURN"
    assert client.stripe_refund_posts(order.payment_id) == []
    # WHEN the goods are received THEN the refund is approved and paid, once
    accepted(client, step(request, "received", datetime.now(UTC) - timedelta(minutes=5)))
    paid = orders.settle(refund_id)
    assert paid["status"] in {"COMPLETED", "SETTLED"}, paid
    assert paid["return"]["status"] == "received"
    assert client.stripe_charge_refunded(order.payment_id)[0] == 2400
    assert len(client.stripe_refund_posts(order.payment_id)) == 1


def test_a_return_that_never_comes_rejects_the_refund(client: E2EClient, orders: Orders) -> None:
    # GIVEN refunds wait 3 s for their return
    order = orders.paid(1800, invoice=False, name="never-back")
    with environment(RETURN_WAIT_SECONDS="3"):
        refund_id = orders.submit(Orders.request(order, reason="wrong_item"))
    # WHEN nothing is reported THEN it is rejected as return_not_received, and nothing moved
    refund = orders.settle(refund_id, timeout=45)
    assert refund["status"] == "REJECTED", refund
    assert refund["failure"]["code"] == "return_not_received"
    assert any(entry["to_status"] == "AWAITING_RETURN" for entry in refund["timeline"])
    assert client.stripe_refund_posts(order.payment_id) == []


def test_a_refund_waiting_for_an_agent_is_paid_by_rule_when_its_goods_are_received(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN a product return whose goods are not back: the packaged policy asks an agent (return_not_received)
    order = orders.paid(3300, invoice=False, name="approval-then-return")
    request = Orders.request(order, reason="product_return")
    refund_id = orders.submit(request)
    pending = orders.settle(refund_id, {"PENDING_APPROVAL"})
    assert pending["policy"]["rule_id"] == "return_not_received", pending["policy"]
    # WHEN the returns system reports the parcel in transit THEN it is decided again and still waits for the agent
    accepted(client, step(request, "in_transit", datetime.now(UTC) - timedelta(days=1)))

    def decided_again() -> bool:
        timeline = client.refund(refund_id)["timeline"]
        return any(entry["type"] == "PolicyStillPendingApproval" for entry in timeline)

    assert eventually(decided_again, timeout=60, what="decided again on in_transit")
    assert client.refund(refund_id)["status"] == "PENDING_APPROVAL"
    # WHEN the goods are received THEN the policy approves it by rule and the money moves, nobody asked
    accepted(client, step(request, "received", datetime.now(UTC) - timedelta(hours=1)))
    refund = orders.settle(refund_id, TERMINAL, timeout=90)
    assert refund["status"] == "COMPLETED", refund
    assert refund.get("approval") is None
    changes = [entry["type"] for entry in refund["timeline"] if entry["type"].startswith("StatusChanged:")]
    assert changes.count("StatusChanged:PENDING_APPROVAL") == 1
    assert changes.index("StatusChanged:PENDING_APPROVAL") < changes.index("StatusChanged:APPROVED")
    assert len(client.stripe_refunds(order.payment_id)) == 1
