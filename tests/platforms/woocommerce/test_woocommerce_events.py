"""The sample events in events/woocommerce/ are what the kit reads: the order bodies verify once signed and make the
news they should, the ping is answered without work, the request and the function input validate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

from refundflow.models import RefundRequestBody
from refundflow.platforms.woocommerce.inbound import WooCommerceInbound
from refundflow.ports import TicketNews

EVENTS = Path(__file__).resolve().parents[3] / "events" / "woocommerce"
SECRET = {"webhook_secrets": ["sample-secret-0123456789"], "store_urls": ["https://shop.example.com/"]}


def signed(name: str) -> tuple[dict[str, str], bytes]:
    body = (EVENTS / name).read_bytes()
    signature = hmac.new(b"sample-secret-0123456789", body, hashlib.sha256).digest()
    return {
        "X-WC-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": "order.updated",
    }, body


def test_an_order_with_a_refund_request_is_news_for_the_ticket_function_only() -> None:
    delivery = WooCommerceInbound().verify(*signed("woocommerce_order_updated_refund_requested.json"), SECRET)
    (news,) = delivery.tickets
    assert (news.ticket_id, news.payload["meta"]["_refund_requested"]) == ("101", "49.90")
    assert delivery.events == []


def test_an_order_with_refunds_is_payment_news_naming_each_refund() -> None:
    delivery = WooCommerceInbound().verify(*signed("woocommerce_order_updated_with_refunds.json"), SECRET)
    (event,) = delivery.events
    assert sorted(refund.amount.minor_units for refund in event.refunds) == [500, 2_500]


def test_the_ping_sample_is_answered_without_news() -> None:
    body = (EVENTS / "woocommerce_webhook_ping.form").read_bytes()
    delivery = WooCommerceInbound().verify({"Content-Type": "application/x-www-form-urlencoded"}, body, SECRET)
    assert (delivery.answer.status, delivery.events, delivery.tickets) == (200, [], [])


def test_the_request_and_the_function_input_validate() -> None:
    request = RefundRequestBody.model_validate(
        json.loads((EVENTS / "woocommerce_refund_request_full.json").read_text())
    )
    assert (request.payment.provider.value, request.amount) == ("woocommerce", None)
    task = json.loads((EVENTS / "woocommerce_apply_ticket_news.json").read_text())
    assert task["operation"] == "apply_ticket_news"
    assert TicketNews.model_validate(task["event"]).ticket_id == "101"
