"""WooCommerce webhooks (topic ``order.updated``), verified by intake with the verification secret only.

What WooCommerce does (github.com/woocommerce/woocommerce, plugins/woocommerce/includes/class-wc-webhook.php,
``deliver``, ``generate_signature``, ``get_new_delivery_id``, ``deliver_ping``; woocommerce.github.io/
woocommerce-rest-api-docs "Webhooks"):

- the body is the resource as the REST API shows it (an order: ``GET /wc/v3/orders/{id}`` for API version v3),
  JSON; ``X-WC-Webhook-Signature`` is base64(HMAC-SHA256(secret, raw body)) (the algorithm can be changed by the
  ``woocommerce_webhook_hash_algorithm`` filter: we accept SHA-256 only). Other headers: ``X-WC-Webhook-Source``
  (the store's ``home_url('/')``), ``-Topic``, ``-Resource``, ``-Event``, ``-ID`` (the webhook) and
  ``-Delivery-ID``. Nothing carries a time, so nothing can be stale: a replayed order is news that is read again;
- ``X-WC-Webhook-Delivery-ID`` is ``wp_hash(webhook id . current second)``: two deliveries of one webhook in the
  same second share it, and it is not signed. So it is not our delivery id: the news ids are derived from the
  signed order (below), which a replay keeps and a real change does not;
- ``WC_Webhook::deliver`` resends nothing: it counts consecutive failures and disables the webhook after more
  than 5 (``woocommerce_max_webhook_delivery_failures``; the "Using Webhooks" docs call them retries);
- a webhook saved with no secret signs with its API user's consumer secret (docs, "Using Webhooks"): intake must
  never hold API credentials, so the README asks for a secret of the merchant's own, and a secret shorter than 24
  characters is not used;
- when a webhook is saved active, WooCommerce posts a ping: the form body ``webhook_id=<id>``, unsigned, with none
  of the X-WC-Webhook headers, and expects 200 (anything else is shown as an error in wp-admin). The ping is
  answered 200 and does nothing.

Verification secret ``{"webhook_secrets": [...], "store_urls": ["https://shop.example.com/"]}``: the webhook's
secret (two while rotating) and the store(s) whose ``X-WC-Webhook-Source`` is accepted.

One delivery may carry two kinds of news:

- help-desk news for ``<stack>-ticket-woocommerce`` when the order has a meta field whose key names a refund
  (``_refund_requested`` by default; refundflow's own ``_refundflow_*`` fields excepted): id = the order and a hash
  of those fields, so refundflow's own write-backs (a state meta field) and other changes to the order make no new
  news, and each change of the request does;
- payment news for ``<stack>-refund-woocommerce`` when the order has refunds: each as a refund of the order
  (``total`` negated), id = the order and a hash of its refunds, so each new refund (ours, or one made in wp-admin,
  which refundflow records as made outside) is news once. The refunds are read again through the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.money import Money, MoneyError
from refundflow.ports import (
    InboundAnswer,
    InboundDelivery,
    InboundPlatform,
    ProviderEvent,
    ProviderRefund,
    ProviderRefundStatus,
    TicketNews,
)

PLATFORM = "woocommerce"
SIGNATURE_HEADER = "x-wc-webhook-signature"
SOURCE_HEADER = "x-wc-webhook-source"
TOPIC_HEADER = "x-wc-webhook-topic"
PING = re.compile(rb"webhook_id=[0-9]{1,20}")
ORDER_ID = re.compile(r"[0-9]{1,20}")
OWN_META_PREFIX = "_refundflow_"
ORDER_TOPICS = frozenset({"order.created", "order.updated"})
MAX_SECRETS = 4
MIN_SECRET_LENGTH = 24


class WooCommerceInbound(InboundPlatform):
    name = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """Raises: AuthenticationFailed (no, a wrong or an unsupported signature; another store);
        InvalidRequest (a signed body that is not an order)."""
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        sent = lowered.get(SIGNATURE_HEADER, "")
        if not sent:
            if PING.fullmatch(raw_body.strip()) and not any(key.startswith("x-wc-webhook-") for key in lowered):
                return InboundDelivery(answer=InboundAnswer(body='{"received": true}'))
            raise AuthenticationFailed("the X-WC-Webhook-Signature header is missing", code="signature_missing")
        if not any(hmac.compare_digest(sent.encode(), _signature(key, raw_body)) for key in _secrets(secret)):
            raise AuthenticationFailed("the X-WC-Webhook-Signature does not match", code="signature_invalid")
        source = lowered.get(SOURCE_HEADER, "")
        if _store(source) not in {_store(url) for url in _strings(secret, "store_urls")}:
            raise AuthenticationFailed(f"deliveries from {source[:100]!r} are not accepted", code="source_mismatch")
        try:
            body = json.loads(raw_body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidRequest("the WooCommerce delivery is not UTF-8 JSON", code="invalid_json") from error
        if not isinstance(body, dict):
            raise InvalidRequest("the WooCommerce delivery must be a JSON object", code="invalid_json")
        topic = lowered.get(TOPIC_HEADER, "")
        if topic not in ORDER_TOPICS or not isinstance(body.get("meta_data"), list):
            # another topic on the same URL, or a deleted order (its body is {"id": ...}): nothing to do
            return InboundDelivery(answer=InboundAnswer(body='{"received": true}'))
        return _order_news(body)


def _order_news(order: dict[str, Any]) -> InboundDelivery:
    order_id = str(order.get("id", ""))
    if not ORDER_ID.fullmatch(order_id):
        raise InvalidRequest("the WooCommerce delivery names no order id", code="invalid_delivery")
    occurred_at = _when(order.get("date_modified_gmt"))
    tickets: list[TicketNews] = []
    request_fields = {
        str(entry.get("key")): entry.get("value")
        for entry in order["meta_data"]
        if isinstance(entry, dict)
        and "refund" in str(entry.get("key", "")).lower()
        and not str(entry.get("key", "")).startswith(OWN_META_PREFIX)
    }
    if request_fields:
        digest = _digest(sorted(request_fields.items(), key=lambda item: item[0]))
        tickets.append(
            TicketNews(
                platform=PLATFORM,
                event_id=f"order-{order_id}-request-{digest}",
                ticket_id=order_id,
                occurred_at=occurred_at,
                payload={"id": order.get("id"), "status": order.get("status"), "meta": request_fields},
            )
        )
    events: list[ProviderEvent] = []
    refunds = _refunds(order, order_id)
    if refunds:
        events.append(
            ProviderEvent(
                provider=PaymentProvider.WOOCOMMERCE,
                event_id=f"order-{order_id}-refunds-"
                + _digest([(refund.provider_refund_id, str(refund.amount)) for refund in refunds]),
                event_type="order.updated",
                occurred_at=occurred_at or datetime.now(UTC),
                refunds=refunds,
                payment=PaymentReference(provider=PaymentProvider.WOOCOMMERCE, payment_id=order_id),
            )
        )
    return InboundDelivery(events=events, tickets=tickets, answer=InboundAnswer(body='{"received": true}'))


def _refunds(order: dict[str, Any], order_id: str) -> list[ProviderRefund]:
    """The order's refunds (``[{id, reason, total: "-25.00"}]``); news: each is read again through the API."""
    currency = str(order.get("currency", ""))
    found: list[ProviderRefund] = []
    for item in order.get("refunds") or []:
        if not isinstance(item, dict) or not ORDER_ID.fullmatch(str(item.get("id", ""))):
            raise InvalidRequest("an order refund without an id", code="invalid_delivery")
        try:
            amount = Money.from_major_units(abs(Decimal(str(item.get("total")))), currency)
        except (InvalidOperation, MoneyError, ValueError) as error:
            raise InvalidRequest(f"order refund {item.get('id')}: not an amount in {currency!r}") from error
        found.append(
            ProviderRefund(
                provider=PaymentProvider.WOOCOMMERCE,
                provider_refund_id=str(item["id"]),
                payment_id=order_id,
                amount=amount,
                status=ProviderRefundStatus.SUCCEEDED,
            )
        )
    return sorted(found, key=lambda refund: int(refund.provider_refund_id))


def _signature(secret: str, body: bytes) -> bytes:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())


def _secrets(secret: Mapping[str, Any]) -> list[str]:
    values = [value for value in _strings(secret, "webhook_secrets") if len(value) >= MIN_SECRET_LENGTH]
    if not values or len(values) > MAX_SECRETS:
        raise AuthenticationFailed("no WooCommerce webhook secret is configured", code="signature_invalid")
    return values


def _strings(secret: Mapping[str, Any], key: str) -> list[str]:
    values = secret.get(key)
    return [value for value in values if isinstance(value, str) and value] if isinstance(values, list) else []


def _store(url: str) -> str:
    """A store URL as compared: scheme and host in lower case, no trailing slash."""
    text = url.strip().rstrip("/")
    scheme, _, rest = text.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}" if rest else ""


def _digest(items: Any) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _when(value: Any) -> datetime | None:
    """``date_modified_gmt`` (``2026-12-06T21:40:12``, UTC without an offset)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None


def inbound() -> WooCommerceInbound:
    return WooCommerceInbound()
