"""The WooCommerce simulator is as strict as a store: Basic credentials checked, WordPress REST error bodies,
fields of the wrong type or unknown refused, the remaining refundable amount enforced, webhooks signed as
WC_Webhook::deliver signs them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
import requests

from local.simulators.woocommerce import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, DEFAULT_WEBHOOK_SECRET
from tests.platforms.woocommerce.conftest import Served

AUTH = (DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET)


def call(served: Served, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    return requests.request(method, f"{served.api_base}/{path}", timeout=5, **kwargs)


def a_paid_order(served: Served, minor: int = 10_000) -> str:
    return str(served.simulator.seed_payment(minor, "EUR")["payment_id"])


def test_no_credentials_and_wrong_credentials_are_wordpress_401s(served: Served) -> None:
    order_id = a_paid_order(served)
    anonymous = call(served, "GET", f"orders/{order_id}", auth=None)
    wrong = call(served, "GET", f"orders/{order_id}", auth=(DEFAULT_CONSUMER_KEY, "cs_wrong"))
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "woocommerce_rest_cannot_view")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "woocommerce_rest_authentication_error")
    assert wrong.json()["data"] == {"status": 401}


def test_an_unknown_order_is_a_404_in_wordpress_shape(served: Served) -> None:
    answer = call(served, "GET", "orders/999999")
    assert answer.status_code == 404
    assert answer.json() == {
        "code": "woocommerce_rest_shop_order_invalid_id",
        "message": "Invalid ID.",
        "data": {"status": 404},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"amount": 10}, "amount"),
        ({"amount": "1.00", "api_refund": "yes"}, "api_refund"),
        ({"amount": "1.00", "idempotency_key": "k"}, "idempotency_key"),
    ],
)
def test_a_refund_field_of_the_wrong_type_or_unknown_is_refused(
    served: Served, body: dict[str, Any], param: str
) -> None:
    answer = call(served, "POST", f"orders/{a_paid_order(served)}/refunds", json=body)
    assert answer.status_code == 400
    assert answer.json()["code"] == "rest_invalid_param"
    assert param in answer.json()["data"]["params"]
    assert served.simulator.refunds() == []


def test_a_negative_amount_is_400_and_more_than_is_left_is_500_as_woocommerce_answers(served: Served) -> None:
    order_id = a_paid_order(served, 5_000)
    negative = call(served, "POST", f"orders/{order_id}/refunds", json={"amount": "-1.00"})
    assert (negative.status_code, negative.json()["code"]) == (400, "woocommerce_rest_invalid_order_refund")
    assert call(served, "POST", f"orders/{order_id}/refunds", json={"amount": "30.00"}).status_code == 201
    over = call(served, "POST", f"orders/{order_id}/refunds", json={"amount": "20.01"})
    assert (over.status_code, over.json()["code"]) == (500, "woocommerce_rest_cannot_create_order_refund")
    assert over.json()["message"] == "Invalid refund amount."
    rest = call(served, "POST", f"orders/{order_id}/refunds", json={"amount": "20.00"})
    assert rest.status_code == 201
    assert call(served, "GET", f"orders/{order_id}").json()["status"] == "refunded"


def test_refunds_list_in_pages_newest_first(served: Served) -> None:
    order_id = a_paid_order(served)
    made = [call(served, "POST", f"orders/{order_id}/refunds", json={"amount": "1.00"}).json()["id"] for _ in range(3)]
    first = call(served, "GET", f"orders/{order_id}/refunds", params={"per_page": 2, "page": 1})
    second = call(served, "GET", f"orders/{order_id}/refunds", params={"per_page": 2, "page": 2})
    assert [item["id"] for item in first.json() + second.json()] == sorted(made, reverse=True)
    assert (first.headers["X-WP-Total"], first.headers["X-WP-TotalPages"]) == ("3", "2")
    assert call(served, "GET", f"orders/{order_id}/refunds", params={"per_page": 101}).status_code == 400


def test_a_note_needs_its_text_and_private_notes_stay_private(served: Served) -> None:
    order_id = a_paid_order(served)
    missing = call(served, "POST", f"orders/{order_id}/notes", json={"customer_note": False})
    assert (missing.status_code, missing.json()["code"]) == (400, "rest_missing_callback_param")
    call(served, "POST", f"orders/{order_id}/notes", json={"note": "internal", "customer_note": False})
    call(served, "POST", f"orders/{order_id}/notes", json={"note": "to the customer", "customer_note": True})
    internal = call(served, "GET", f"orders/{order_id}/notes", params={"type": "internal"}).json()
    assert [note["note"] for note in internal] == ["internal"]


def test_a_refund_sends_order_updated_signed_like_woocommerce(served: Served) -> None:
    order_id = a_paid_order(served)
    served.receiver.clear()
    call(served, "POST", f"orders/{order_id}/refunds", json={"amount": "5.00"})
    served.receiver.wait_until(lambda deliveries: bool(deliveries))
    headers, body = served.receiver.deliveries[0]
    lowered = {key.lower(): value for key, value in headers.items()}
    expected = base64.b64encode(hmac.new(DEFAULT_WEBHOOK_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert lowered["x-wc-webhook-signature"] == expected
    assert (lowered["x-wc-webhook-topic"], lowered["x-wc-webhook-source"]) == (
        "order.updated",
        "https://shop.example.com/",
    )
    assert len(lowered["x-wc-webhook-delivery-id"]) == 32
    assert b'"total":"-5.00"' in body


def test_the_ping_is_an_unsigned_form(served: Served) -> None:
    assert served.simulator.ping() == 200
    served.receiver.wait_until(lambda deliveries: any(body == b"webhook_id=1" for _, body in deliveries))
    headers, _ = next(item for item in served.receiver.deliveries if item[1] == b"webhook_id=1")
    assert {key.lower(): value for key, value in headers.items()}["content-type"] == "application/x-www-form-urlencoded"


def meta_of(order: dict[str, Any]) -> dict[str, Any]:
    return {entry["key"]: entry["value"] for entry in order["meta_data"]}


def test_a_reported_return_is_on_the_order_and_sent_as_order_updated(served: Served) -> None:
    # GIVEN a paid order WHEN a returns plugin reports its goods received (the control route of report_return)
    order_id = a_paid_order(served)
    answer = requests.post(
        f"{served.url}/_control/orders/{order_id}/return",
        json={"status": "received", "at": "2026-12-06T14:05:00+01:00"},
        timeout=5,
    )
    assert answer.status_code == 200
    # THEN the order shows both meta fields through the API, and its order.updated carries them
    shown = meta_of(call(served, "GET", f"orders/{order_id}").json())
    assert (shown["_refund_return_status"], shown["_refund_return_at"]) == ("received", "2026-12-06T14:05:00+01:00")
    served.receiver.wait_until(lambda deliveries: bool(deliveries))
    _, body = served.receiver.deliveries[-1]
    assert b'"key":"_refund_return_status","value":"received"' in body


def test_a_return_status_put_through_the_rest_api_replaces_the_previous_one(served: Served) -> None:
    # the README's example: PUT /orders/{id} with meta_data, as a plugin or a script does it
    order_id = a_paid_order(served)
    served.simulator.report_return(order_id, "in_transit")
    put = call(
        served, "PUT", f"orders/{order_id}", json={"meta_data": [{"key": "_refund_return_status", "value": "received"}]}
    )
    assert put.status_code == 200
    statuses = [entry["value"] for entry in put.json()["meta_data"] if entry["key"] == "_refund_return_status"]
    assert statuses == ["received"]  # one value per key (update_meta_data without an id), not a second entry
    served.receiver.wait_until(lambda deliveries: len(deliveries) >= 2)


def test_the_return_control_route_refuses_an_unknown_order_and_a_missing_status(served: Served) -> None:
    order_id = a_paid_order(served)
    unknown = requests.post(f"{served.url}/_control/orders/999/return", json={"status": "received"}, timeout=5)
    missing = requests.post(f"{served.url}/_control/orders/{order_id}/return", json={"at": "x"}, timeout=5)
    assert (unknown.status_code, missing.status_code) == (404, 400)
    assert "_refund_return_status" not in meta_of(call(served, "GET", f"orders/{order_id}").json())
