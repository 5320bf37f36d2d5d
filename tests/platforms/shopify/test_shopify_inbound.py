"""Shopify's webhook verification (X-Shopify-Hmac-SHA256 over the raw body, the configured shop, the webhook id)
and what a verified delivery carries: refunds/create as refund news, naming our refund by its note; a refund of a
gateway that is another of our providers left to that provider; other topics acknowledged with nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.simulators.shopify import DEFAULT_CLIENT_SECRET, DEFAULT_SHOP
from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.ids import derive_refund_id
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.shopify.inbound import ShopifyInbound, signature
from refundflow.ports import ProviderRefundStatus

SECRET = {"client_secrets": [DEFAULT_CLIENT_SECRET], "shop_domain": DEFAULT_SHOP}
OURS = derive_refund_id("shopify-test", "ours")


def refund_payload(
    *, gateway: str = "shopify_payments", note: str | None = None, status: str = "success"
) -> dict[str, Any]:
    return {
        "id": 890088186047892319,
        "order_id": 820982911946154508,
        "created_at": "2026-12-04T10:15:00-05:00",
        "note": note,
        "transactions": [
            {"id": 1, "kind": "refund", "gateway": gateway, "status": status, "amount": "41.94", "currency": "EUR"},
            {"id": 2, "kind": "refund", "gateway": gateway, "status": status, "amount": "3.06", "currency": "EUR"},
        ],
    }


def delivery(
    payload: Any, *, topic: str = "refunds/create", secret: str = DEFAULT_CLIENT_SECRET, **headers: str
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    sent = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature(body, secret),
        "X-Shopify-Shop-Domain": DEFAULT_SHOP,
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Triggered-At": "2026-12-04T15:15:00.123Z",
    }
    sent.update(headers)
    return sent, body


def test_a_refund_made_in_the_admin_is_news_naming_the_order_and_no_refund_of_ours() -> None:
    headers, body = delivery(refund_payload(note="Customer called"))
    (event,) = ShopifyInbound().verify(headers, body, SECRET).events
    (refund,) = event.refunds
    assert (event.event_id, event.event_type) == ("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "refunds/create")
    assert event.payment is not None
    assert event.payment.payment_id == "gid://shopify/Order/820982911946154508"
    assert refund.provider_refund_id == "gid://shopify/Refund/890088186047892319"
    assert (refund.amount, refund.status, refund.refund_id) == (
        Money.of(4_500, "EUR"),
        ProviderRefundStatus.SUCCEEDED,
        None,
    )
    assert refund.provider is PaymentProvider.SHOPIFY


def test_our_refund_is_named_by_the_note_we_wrote() -> None:
    headers, body = delivery(refund_payload(note=f"refundflow {OURS}", status="pending"))
    (event,) = ShopifyInbound().verify(headers, body, SECRET).events
    assert (event.refunds[0].refund_id, event.refunds[0].status) == (OURS, ProviderRefundStatus.PENDING)


def test_the_second_secret_verifies_while_the_first_is_rotated_out() -> None:
    headers, body = delivery(refund_payload(), secret="shpss_the_new_client_secret_000000001")
    rotating = {**SECRET, "client_secrets": [DEFAULT_CLIENT_SECRET, "shpss_the_new_client_secret_000000001"]}
    assert len(ShopifyInbound().verify(headers, body, rotating).events) == 1
    with pytest.raises(AuthenticationFailed):
        ShopifyInbound().verify(headers, body, SECRET)


@pytest.mark.parametrize(
    "change",
    [
        {"X-Shopify-Hmac-Sha256": ""},
        {"X-Shopify-Hmac-Sha256": "bm90IHRoZSBzaWduYXR1cmU="},
        {"X-Shopify-Shop-Domain": "another-shop.myshopify.com"},
        {"X-Shopify-Shop-Domain": ""},
    ],
)
def test_a_delivery_without_our_signature_or_about_another_shop_is_refused(change: dict[str, str]) -> None:
    headers, body = delivery(refund_payload())
    headers.update(change)
    with pytest.raises(AuthenticationFailed):
        ShopifyInbound().verify({key: value for key, value in headers.items() if value}, body, SECRET)


def test_a_changed_body_is_refused() -> None:
    headers, body = delivery(refund_payload())
    with pytest.raises(AuthenticationFailed):
        ShopifyInbound().verify(headers, body.replace(b"41.94", b"91.94"), SECRET)


def test_a_verified_delivery_without_webhook_id_is_refused() -> None:
    headers, body = delivery(refund_payload())
    del headers["X-Shopify-Webhook-Id"]
    with pytest.raises(InvalidRequest):
        ShopifyInbound().verify(headers, body, SECRET)


def test_headers_are_read_whatever_their_case() -> None:
    headers, body = delivery(refund_payload())
    lowered = {key.lower(): value for key, value in headers.items()}
    assert len(ShopifyInbound().verify(lowered, body, SECRET).events) == 1


def test_a_refund_through_another_of_our_providers_is_left_to_that_provider() -> None:
    headers, body = delivery(refund_payload(gateway="paypal"))
    assert ShopifyInbound().verify(headers, body, SECRET).events == []


@pytest.mark.parametrize("topic", ["app/uninstalled", "products/update", "orders/create"])
def test_other_topics_are_acknowledged_with_nothing_to_apply(topic: str) -> None:
    headers, body = delivery({"id": 1}, topic=topic)
    verified = ShopifyInbound().verify(headers, body, SECRET)
    assert (verified.events, verified.answer.status) == ([], 200)


def test_a_verified_refund_without_its_fields_is_invalid() -> None:
    headers, body = delivery({"id": 5, "transactions": []})
    with pytest.raises(InvalidRequest):
        ShopifyInbound().verify(headers, body, SECRET)


EVENTS = Path(__file__).resolve().parents[3] / "events" / "shopify"


@pytest.mark.parametrize(
    ("name", "topic", "refund_id"),
    [
        ("shopify_refunds_create_admin.json", "refunds/create", None),
        ("shopify_refunds_create_ours.json", "refunds/create", "rf_0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
    ],
)
def test_the_sample_refund_deliveries_verify(name: str, topic: str, refund_id: str | None) -> None:
    headers, body = delivery(json.loads((EVENTS / name).read_text()), topic=topic)
    (event,) = ShopifyInbound().verify(headers, body, SECRET).events
    assert event.refunds[0].refund_id == refund_id


@pytest.mark.parametrize(
    ("name", "topic", "ticket_id"),
    [
        ("shopify_returns_process.json", "returns/process", "945000960"),
        ("shopify_returns_request.json", "returns/request", "945000961"),
    ],
)
def test_the_sample_return_deliveries_are_ticket_news(name: str, topic: str, ticket_id: str) -> None:
    headers, body = delivery(json.loads((EVENTS / name).read_text()), topic=topic)
    verified = ShopifyInbound().verify(headers, body, SECRET)
    assert verified.events == []
    assert [(news.platform, news.ticket_id) for news in verified.tickets] == [("shopify", ticket_id)]


def test_orders_updated_names_the_order() -> None:
    headers, body = delivery({"id": 820982911946154508, "name": "#1042"}, topic="orders/updated")
    (news,) = ShopifyInbound().verify(headers, body, SECRET).tickets
    assert news.ticket_id == "order-820982911946154508"
