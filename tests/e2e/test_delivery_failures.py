"""A carrier reports a failed delivery over HTTP (POST /triggers/delivery-failures): the refund is asked for with
reason delivery_failed and paid once per shipment; only a carrier's own secret may report one, and what a
carrier may not send is refused with nothing stored."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders, PaidOrder

TERMINAL_PAID = {"COMPLETED", "SETTLED"}


def report(order: PaidOrder, *, status: str = "returned_to_sender", tracking: str | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {
        "shipment": {
            "carrier": "postnl",
            "tracking_number": tracking or f"3S{uuid.uuid4().hex[:12].upper()}",
            "status": status,
            "occurred_at": datetime.now(UTC).isoformat(),
        },
        "payment": {"provider": "stripe", "payment_id": order.payment_id},
        "customer": {"email": order.customer, "name": "Robin Example"},
        "order": {"order_id": f"ORD-{uuid.uuid4().hex[:12]}"},
    }
    if order.invoice_id:
        body["invoice"] = {"system": "xero", "invoice_id": order.invoice_id}
    body.update(extra)
    return body


def test_a_returned_parcel_is_refunded_once_whatever_the_carrier_reports_next(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN a paid order whose parcel came back to the sender
    order = orders.paid(4200, name="parcel")
    first = report(order, status="failed")
    # WHEN the carrier reports the failed delivery
    response = client.report_delivery_failure(first)
    # THEN a refund is asked for with reason delivery_failed, and the packaged policy pays it in full
    assert response.status_code == 202, response.text
    refund_id = response.json()["refund_id"]
    assert response.json()["duplicate"] is False
    refund = orders.settle(refund_id)
    assert refund["status"] in TERMINAL_PAID, refund
    assert refund["reason"] == "delivery_failed"
    assert refund["amount"] == {"minor_units": 4200, "currency": "EUR"}
    assert client.stripe_charge_refunded(order.payment_id)[0] == 4200
    # WHEN the same shipment is reported again as returned to sender (another delivery id, another status)
    again = json.loads(json.dumps(first))
    again["shipment"]["status"] = "returned_to_sender"
    second = client.report_delivery_failure(again)
    # THEN it is the same refund, nothing new started, and Stripe was asked once
    assert second.status_code == 202, second.text
    assert second.json() == {**response.json(), "status": second.json()["status"], "duplicate": True}
    assert len(client.stripe_refund_posts(order.payment_id)) == 1


def test_only_a_carriers_secret_may_report_and_a_refund_source_cannot(
    client: E2EClient, orders: Orders, stack: DevStack
) -> None:
    order = orders.paid(1500, invoice=False, name="forged")
    body = json.dumps(report(order))
    # GIVEN a delivery failure signed with a refund-request source's secret (the returns portal's)
    headers = client.signed_headers(body, source="returns-portal")
    # WHEN it is posted to the carriers' endpoint
    response = client.post_raw("/triggers/delivery-failures", body, headers)
    # THEN it is unauthenticated and nothing moved
    assert response.status_code == 401, response.text
    assert client.stripe_refund_posts(order.payment_id) == []
    # AND a carrier's signature does not open the refund-request door either
    request = json.dumps(Orders.request(order, system="parcel-carrier"))
    carrier_signed = client.post_raw("/refund-requests", request, _carrier_headers(client, request))
    assert carrier_signed.status_code == 401, carrier_signed.text


def _carrier_headers(client: E2EClient, body: str) -> dict[str, str]:
    delivery_id = f"msg_{uuid.uuid4().hex}"
    at = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": client.carriers["parcel-carrier"].sign(delivery_id, at, body),
    }


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            {
                "shipment": {
                    "carrier": "postnl",
                    "tracking_number": "T1",
                    "status": "delivered",
                    "occurred_at": "2026-12-01T10:00:00Z",
                }
            },
            "validation_failed",
        ),
        ({"note": "the customer's card is 4111 1111 1111 1111"}, "card_data_refused"),
        ({"amount": {"minor_units": 0, "currency": "EUR"}}, "validation_failed"),
        (
            {
                "shipment": {
                    "carrier": "postnl",
                    "tracking_number": "T" * 81,
                    "status": "lost",
                    "occurred_at": "2026-12-01T10:00:00Z",
                }
            },
            "validation_failed",
        ),
    ],
    ids=["delivered-is-no-failure", "card-number-anywhere", "zero-amount", "tracking-number-too-long"],
)
def test_what_a_carrier_may_not_send_is_refused_with_nothing_stored(
    client: E2EClient, orders: Orders, change: dict[str, Any], code: str
) -> None:
    order = orders.paid(900, invoice=False, name="refused")
    # GIVEN a signed report with one thing wrong
    response = client.report_delivery_failure({**report(order), **change})
    # THEN it is a 400 naming the problem, and no refund was asked for
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code, response.json()
    assert client.stripe_refund_posts(order.payment_id) == []
