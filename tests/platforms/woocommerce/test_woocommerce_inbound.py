"""WooCommerce's webhook verification: the signature over the raw body, the store it comes from, the unsigned ping,
and news ids derived from the signed order (X-WC-Webhook-Delivery-ID is shared by deliveries in the same second)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed
from refundflow.platforms.woocommerce.inbound import WooCommerceInbound
from tests.platforms.woocommerce.conftest import Served

SECRET = "woo-secret-current-0123456789"
OLD_SECRET = "woo-secret-previous-0123456789"
STORE = "https://shop.example.com/"
VERIFICATION = {"webhook_secrets": [SECRET, OLD_SECRET], "store_urls": [STORE]}


def signed(order: dict[str, Any], secret: str = SECRET, source: str = STORE) -> tuple[dict[str, str], bytes]:
    body = json.dumps(order).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Signature": signature,
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Delivery-ID": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",  # the same second: the same id
    }, body


def an_order(meta: list[dict[str, Any]] | None = None, refunds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": 4711,
        "status": "processing",
        "currency": "EUR",
        "total": "100.00",
        "date_modified_gmt": "2026-12-06T21:40:12",
        "meta_data": meta or [],
        "refunds": refunds or [],
    }


REQUEST = [{"id": 1, "key": "_refund_requested", "value": "full"}]


def test_the_creation_ping_is_answered_and_does_nothing() -> None:
    delivery = WooCommerceInbound().verify(
        {"Content-Type": "application/x-www-form-urlencoded"}, b"webhook_id=12", VERIFICATION
    )
    assert delivery.answer.status == 200
    assert (delivery.events, delivery.tickets) == ([], [])


def test_a_ping_shaped_body_with_webhook_headers_is_not_a_ping() -> None:
    with pytest.raises(AuthenticationFailed):
        WooCommerceInbound().verify({"X-WC-Webhook-Topic": "order.updated"}, b"webhook_id=12", VERIFICATION)


def test_the_simulators_ping_is_what_woocommerce_sends(served: Served) -> None:
    served.simulator.ping()
    served.receiver.wait_until(lambda deliveries: any(body == b"webhook_id=1" for _, body in deliveries))
    headers, body = next(item for item in served.receiver.deliveries if item[1] == b"webhook_id=1")
    assert not any(key.lower().startswith("x-wc-webhook") for key in headers)
    assert WooCommerceInbound().verify(headers, body, VERIFICATION).tickets == []


def test_the_previous_secret_still_verifies_while_rotating() -> None:
    headers, body = signed(an_order(REQUEST), secret=OLD_SECRET)
    assert [news.ticket_id for news in WooCommerceInbound().verify(headers, body, VERIFICATION).tickets] == ["4711"]


def test_another_store_is_refused_even_with_our_secret() -> None:
    headers, body = signed(an_order(REQUEST), source="https://evil.example.com/")
    with pytest.raises(AuthenticationFailed) as refused:
        WooCommerceInbound().verify(headers, body, VERIFICATION)
    assert refused.value.code == "source_mismatch"


def test_an_order_without_a_refund_field_or_refunds_is_no_news() -> None:
    headers, body = signed(an_order([{"id": 2, "key": "_billing_vat", "value": "DE123"}]))
    delivery = WooCommerceInbound().verify(headers, body, VERIFICATION)
    assert (delivery.events, delivery.tickets) == ([], [])


def test_two_changes_in_one_second_are_two_pieces_of_news_a_replay_is_one() -> None:
    # GIVEN two deliveries with the same X-WC-Webhook-Delivery-ID (same webhook, same second)
    first = WooCommerceInbound().verify(*signed(an_order(REQUEST)), VERIFICATION)
    changed = [{"id": 1, "key": "_refund_requested", "value": "cancel"}]
    second = WooCommerceInbound().verify(*signed(an_order(changed)), VERIFICATION)
    replay = WooCommerceInbound().verify(*signed(an_order(REQUEST)), VERIFICATION)
    # THEN the changed request is new news, the replay is not
    assert first.tickets[0].event_id != second.tickets[0].event_id
    assert first.tickets[0].event_id == replay.tickets[0].event_id


def test_a_change_of_the_return_status_alone_is_new_news_its_redelivery_is_not() -> None:
    # GIVEN the request, then a returns plugin moving the return along in the same second (same Delivery-ID)
    def with_return(status: str) -> list[dict[str, Any]]:
        return [*REQUEST, {"id": 3, "key": "_refund_return_status", "value": status}]

    in_transit = WooCommerceInbound().verify(*signed(an_order(with_return("in_transit"))), VERIFICATION)
    received = WooCommerceInbound().verify(*signed(an_order(with_return("received"))), VERIFICATION)
    again = WooCommerceInbound().verify(*signed(an_order(with_return("received"))), VERIFICATION)
    # THEN only the return's status changed, and that is new news carrying it; the redelivery is the same news
    ids = [delivery.tickets[0].event_id for delivery in (in_transit, received, again)]
    assert ids[0] != ids[1]
    assert ids[1] == ids[2]
    assert received.tickets[0].payload["meta"]["_refund_return_status"] == "received"


def test_refundflows_own_write_back_makes_no_new_request_news() -> None:
    before = WooCommerceInbound().verify(*signed(an_order(REQUEST)), VERIFICATION)
    written = [*REQUEST, {"id": 9, "key": "_refundflow_refund_status", "value": "issued"}]
    after = WooCommerceInbound().verify(*signed(an_order(written)), VERIFICATION)
    assert after.tickets[0].event_id == before.tickets[0].event_id


def test_an_orders_refunds_are_payment_news_each_new_refund_once() -> None:
    one = [{"id": 90, "reason": "", "total": "-25.00"}]
    two = [{"id": 91, "reason": "wp-admin", "total": "-5.50"}, *one]
    first = WooCommerceInbound().verify(*signed(an_order(refunds=one)), VERIFICATION)
    second = WooCommerceInbound().verify(*signed(an_order(refunds=two)), VERIFICATION)
    (event,) = second.events
    assert event.payment is not None
    assert event.payment.payment_id == "4711"
    assert [(refund.provider_refund_id, refund.amount.minor_units) for refund in event.refunds] == [
        ("90", 2_500),
        ("91", 550),
    ]
    assert all(refund.refund_id is None for refund in event.refunds)  # news: read again through the API
    assert first.events[0].event_id != event.event_id
    assert second.tickets == []


def test_another_topic_on_the_same_url_is_acknowledged_and_ignored() -> None:
    headers, body = signed({"id": 4711})
    headers["X-WC-Webhook-Topic"] = "order.deleted"
    delivery = WooCommerceInbound().verify(headers, body, VERIFICATION)
    assert (delivery.events, delivery.tickets, delivery.answer.status) == ([], [], 200)


def test_a_short_secret_is_never_used() -> None:
    short = "too-short-secret"
    headers, body = signed(an_order(REQUEST), secret=short)
    with pytest.raises(AuthenticationFailed):
        WooCommerceInbound().verify(headers, body, {"webhook_secrets": [short], "store_urls": [STORE]})
