"""Shopify's webhooks at ``POST /webhooks/shopify`` (shopify.dev/docs/apps/build/webhooks/subscribe/https).

Verification secret (``<SecretsPrefix>webhooks/shopify``, read by intake only): ``{"client_secrets": [...],
"shop_domain": "<shop>.myshopify.com"}``: the app's client secret (two while it is rotated) and the one shop whose
deliveries are taken. Intake calls no Shopify API (it holds no access token).

What Shopify sends with every delivery:
- ``X-Shopify-Hmac-SHA256``: base64 HMAC-SHA256 of the raw body keyed with the app's client secret (compared in
  constant time against every configured secret);
- ``X-Shopify-Topic`` (``refunds/create``, ``orders/updated``, ``returns/...``), ``X-Shopify-Shop-Domain`` (must be
  the configured shop: a delivery about another shop is refused), ``X-Shopify-Webhook-Id`` (the same on every
  retry of one delivery: our event id, so a redelivery is applied once) and ``X-Shopify-Triggered-At``.
Shopify signs no timestamp, so there is no freshness window: the refund is read again from the API by Shopify's
own function before anything changes.

``refunds/create`` (the REST-shaped refund: ``id``, ``order_id``, ``note``, ``transactions[]``) becomes a
ProviderEvent naming the order and the refund: one refundflow issued (our id is in its note), or one made in the
Shopify admin, which the payment function records as a refund made outside refundflow. Refund transactions of a
gateway that is one of our own payment platforms (an order paid through Stripe, PayPal, ...) are that provider's
news, not Shopify's, and are left out: the provider's own webhook reports them, so nothing is counted twice.

``returns/*`` (``returns/request``, ``returns/approve``, ``returns/process``, ``returns/close``, ``returns/cancel``,
``returns/decline``...) and ``orders/updated`` are the ticket kit's news: a TicketNews naming the return (or the
order, whose newest return is read), handed to Shopify's ticket function, which reads the return through the API
and applies the merchant's mapping (``mapping.yaml``). Every other topic is acknowledged and forwarded as nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar

from refundflow import catalog
from refundflow.errors import AmountNotRepresentable, AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.ids import is_refund_id
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.observability import logger
from refundflow.platforms.shopify.graphql import PLATFORM, note_for, order_gid, refund_gid
from refundflow.ports import (
    InboundAnswer,
    InboundDelivery,
    InboundPlatform,
    PaymentCapabilities,
    ProviderEvent,
    ProviderRefund,
    ProviderRefundStatus,
    TicketNews,
)

HMAC_HEADER = "x-shopify-hmac-sha256"
TOPIC_HEADER = "x-shopify-topic"
SHOP_HEADER = "x-shopify-shop-domain"
WEBHOOK_ID_HEADER = "x-shopify-webhook-id"
TRIGGERED_AT_HEADER = "x-shopify-triggered-at"
REFUNDS_CREATE = "refunds/create"
RETURNS_TOPICS = "returns/"
ORDERS_UPDATED = "orders/updated"
ANSWER = InboundAnswer(status=200, content_type="application/json", body='{"received": true}')
_STATUSES: Mapping[str, ProviderRefundStatus] = {
    "success": ProviderRefundStatus.SUCCEEDED,
    "pending": ProviderRefundStatus.PENDING,
    "failure": ProviderRefundStatus.FAILED,
    "error": ProviderRefundStatus.FAILED,
}


def signature(body: bytes, client_secret: str) -> str:
    """What Shopify sends in ``X-Shopify-Hmac-SHA256`` for ``body``."""
    return base64.b64encode(hmac.new(client_secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = next((value for key, value in headers.items() if key.lower() == name), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _secrets(secret: Mapping[str, Any]) -> tuple[list[str], str]:
    secrets = secret.get("client_secrets")
    shop = secret.get("shop_domain")
    if not isinstance(secrets, list) or not secrets or not all(isinstance(item, str) and item for item in secrets):
        raise ConfigurationError("the Shopify verification secret needs client_secrets: [text, ...]", platform=PLATFORM)
    if not isinstance(shop, str) or not shop.strip():
        raise ConfigurationError(
            "the Shopify verification secret needs shop_domain: <shop>.myshopify.com", platform=PLATFORM
        )
    return list(secrets), shop.lower()


def verify_signature(headers: Mapping[str, str], body: bytes, client_secrets: list[str]) -> None:
    """Raises: AuthenticationFailed: no signature, or none of the secrets signs the body to it."""
    received = _header(headers, HMAC_HEADER)
    if received is None:
        raise AuthenticationFailed("no X-Shopify-Hmac-SHA256 header", platform=PLATFORM)
    wanted = received.encode("utf-8", "replace")
    results = [hmac.compare_digest(signature(body, item).encode("ascii"), wanted) for item in client_secrets]
    if not any(results):
        raise AuthenticationFailed("the Shopify signature does not match", platform=PLATFORM)


class ShopifyInbound(InboundPlatform):
    """Verifies Shopify deliveries and reduces ``refunds/create`` to refund news."""

    name: ClassVar[str] = PLATFORM

    def __init__(self, capabilities: PaymentCapabilities | None = None) -> None:
        self._capabilities = capabilities

    @property
    def capabilities(self) -> PaymentCapabilities:
        if self._capabilities is None:
            self._capabilities = catalog.payment_capabilities(PLATFORM)
        return self._capabilities

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """Verify the HMAC over the raw body and the shop, then reduce the delivery.

        Raises:
            ConfigurationError: a verification secret of another shape.
            AuthenticationFailed: no or a wrong signature, no shop or another shop than the configured one.
            InvalidRequest: a verified delivery without topic or webhook id, or a refund that is not well formed.
        """
        client_secrets, shop = _secrets(secret)
        verify_signature(headers, raw_body, client_secrets)
        sent_shop = (_header(headers, SHOP_HEADER) or "").lower()
        if not hmac.compare_digest(sent_shop.encode(), shop.encode()):
            raise AuthenticationFailed("the delivery is about another shop", code="shop_mismatch", platform=PLATFORM)
        topic = _header(headers, TOPIC_HEADER)
        webhook_id = _header(headers, WEBHOOK_ID_HEADER)
        if topic is None or webhook_id is None or len(webhook_id) > 255:
            raise InvalidRequest("a Shopify delivery needs X-Shopify-Topic and X-Shopify-Webhook-Id", platform=PLATFORM)
        logger.info("shopify webhook verified", extra={"event_id": webhook_id, "event_type": topic})
        if topic != REFUNDS_CREATE and not _is_return_news(topic):
            return InboundDelivery(events=[], answer=ANSWER)
        body = _object(raw_body)
        if topic != REFUNDS_CREATE:
            news = TicketNews(
                platform=PLATFORM,
                event_id=webhook_id,
                ticket_id=_ticket_id(topic, body),
                occurred_at=_occurred_at(_header(headers, TRIGGERED_AT_HEADER) or body),
                payload=body,
            )
            return InboundDelivery(tickets=[news], answer=ANSWER)
        event = self._refund_event(body, webhook_id, _occurred_at(_header(headers, TRIGGERED_AT_HEADER) or body))
        return InboundDelivery(events=[event] if event is not None else [], answer=ANSWER)

    def _refund_event(self, body: Mapping[str, Any], webhook_id: str, occurred_at: datetime) -> ProviderEvent | None:
        refund_id, order_id = body.get("id"), body.get("order_id")
        if not isinstance(refund_id, int | str) or not isinstance(order_id, int | str):
            raise InvalidRequest("refunds/create without id or order_id", code="invalid_payload", platform=PLATFORM)
        transactions = body.get("transactions")
        if not isinstance(transactions, list):
            raise InvalidRequest("refunds/create without transactions", code="invalid_payload", platform=PLATFORM)
        ours = frozenset(catalog.names("payment")) - {PLATFORM}
        money_lines = [
            item
            for item in transactions
            if isinstance(item, dict)
            and item.get("kind") == "refund"
            and str(item.get("gateway") or "").lower().replace(" ", "_") not in ours
        ]
        if not money_lines:  # a refund that moved no money through Shopify (restock only, or another provider's)
            return None
        profile = self.capabilities.currencies.named("Shopify")
        try:
            amounts = [profile.from_platform(str(item["amount"]), str(item["currency"])) for item in money_lines]
        except (KeyError, AmountNotRepresentable) as error:
            raise InvalidRequest(
                f"refunds/create {refund_id}: {error}", code="invalid_payload", platform=PLATFORM
            ) from error
        total = amounts[0]
        for amount in amounts[1:]:
            total = total + amount
        statuses = [_STATUSES.get(str(item.get("status")), ProviderRefundStatus.PENDING) for item in money_lines]
        status = (
            ProviderRefundStatus.FAILED
            if ProviderRefundStatus.FAILED in statuses
            else ProviderRefundStatus.SUCCEEDED
            if all(item is ProviderRefundStatus.SUCCEEDED for item in statuses)
            else ProviderRefundStatus.PENDING
        )
        note = str(body.get("note") or "")
        named = note.removeprefix(note_for(""))[:35]
        order = order_gid(str(order_id))
        refund = ProviderRefund(
            provider=PaymentProvider.SHOPIFY,
            provider_refund_id=refund_gid(refund_id),
            payment_id=order,
            amount=total,
            status=status,
            refund_id=named if note.startswith(note_for("")) and is_refund_id(named) else None,
        )
        return ProviderEvent(
            provider=PaymentProvider.SHOPIFY,
            event_id=webhook_id,
            event_type=REFUNDS_CREATE,
            occurred_at=occurred_at,
            refunds=[refund],
            payment=PaymentReference(provider=PaymentProvider.SHOPIFY, payment_id=order),
        )


def _is_return_news(topic: str) -> bool:
    return topic.startswith(RETURNS_TOPICS) or topic == ORDERS_UPDATED


def _ticket_id(topic: str, body: Mapping[str, Any]) -> str:
    """The return's number (``returns/*``) or ``order-<number>`` (``orders/updated``) the delivery names.

    Raises: InvalidRequest: no number.
    """
    number = body.get("id")
    if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 10**20:
        return f"order-{number}" if topic == ORDERS_UPDATED else str(number)
    raise InvalidRequest(
        f"{topic} names no {'order' if topic == ORDERS_UPDATED else 'return'}",
        code="invalid_payload",
        platform=PLATFORM,
    )


def _object(raw_body: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequest("a Shopify delivery is a JSON object", platform=PLATFORM) from error
    if not isinstance(body, dict):
        raise InvalidRequest("a Shopify delivery is a JSON object", platform=PLATFORM)
    return body


def _occurred_at(source: str | Mapping[str, Any]) -> datetime:
    stamp = source if isinstance(source, str) else source.get("created_at")
    if isinstance(stamp, str):
        try:
            parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            logger.warning("shopify delivery with an unreadable time", extra={"value": stamp[:64]})
    return datetime.now(UTC)


@cache
def inbound() -> ShopifyInbound:
    return ShopifyInbound()
