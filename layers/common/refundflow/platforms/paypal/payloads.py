"""PayPal's refund objects as we read them, and their reduction to the ports' models. Pure (pydantic and the
currency profile, no HTTP): the connector and the webhook side share it.

A Payments v2 refund: ``{id, status, status_details: {reason}, amount: {currency_code, value}, custom_id,
invoice_id, links: [{rel: "up", href: ".../v2/payments/captures/<id>"}, ...]}``; a v1 refund: ``{id, state,
amount: {total, currency}, sale_id, invoice_number, ...}``. refundflow puts its refund id in ``custom_id`` (v2) or
``invoice_number`` (v1), so PayPal echoes it back.
"""

from __future__ import annotations

import re
from typing import Any

from refundflow.connectors.capabilities import payment_capabilities
from refundflow.models import PaymentProvider
from refundflow.platforms.paypal.amounts import from_paypal
from refundflow.ports import PaymentCapabilities, ProviderRefund, ProviderRefundStatus

PLATFORM = "paypal"
_CAPTURE_LINK = re.compile(r"/v2/payments/captures/([A-Za-z0-9]+)/?$")
_ORDER_LINK = re.compile(r"/v2/checkout/orders/([A-Za-z0-9]+)/?$")
_STATUSES = {
    "COMPLETED": ProviderRefundStatus.SUCCEEDED,
    "PENDING": ProviderRefundStatus.PENDING,
    "FAILED": ProviderRefundStatus.FAILED,
    "CANCELLED": ProviderRefundStatus.CANCELED,
}
# Refunds that hold money back from the capture or sale (a failed or cancelled one gives it back).
HOLDING = frozenset({"COMPLETED", "PENDING"})


class PayloadError(ValueError):
    """A PayPal object that is not what the API documents."""


def capabilities() -> PaymentCapabilities:
    """PayPal's capabilities, from its catalog entry."""
    return payment_capabilities(PLATFORM, "PayPal")


def status_of(refund: dict[str, Any]) -> str:
    """``COMPLETED`` | ``PENDING`` | ``FAILED`` | ``CANCELLED`` for a v2 (``status``) or v1 (``state``) refund.

    Raises:
        PayloadError: neither, or a value PayPal does not document.
    """
    raw = refund.get("status", refund.get("state"))
    status = raw.upper() if isinstance(raw, str) else ""
    if status not in _STATUSES:
        raise PayloadError(f"refund status {raw!r} is not one PayPal documents")
    return status


def link(resource: dict[str, Any], rel: str, pattern: re.Pattern[str]) -> str | None:
    """The id in the ``rel`` HATEOAS link of ``resource`` matching ``pattern``, if any."""
    for item in resource.get("links") or []:
        if isinstance(item, dict) and item.get("rel") == rel and isinstance(item.get("href"), str):
            match = pattern.search(item["href"])
            if match is not None:
                return match.group(1)
    return None


def capture_of(refund: dict[str, Any]) -> str | None:
    return link(refund, "up", _CAPTURE_LINK)


def order_of(capture: dict[str, Any]) -> str | None:
    """The order a v2 capture belongs to (``supplementary_data.related_ids.order_id``, else its ``up`` link)."""
    related = (capture.get("supplementary_data") or {}).get("related_ids") or {}
    order_id = related.get("order_id") if isinstance(related, dict) else None
    return order_id if isinstance(order_id, str) and order_id else link(capture, "up", _ORDER_LINK)


def money_of(resource: dict[str, Any]) -> tuple[Any, Any]:
    """``(value, currency)`` of a v2 (``amount.value``/``currency_code``) or v1 (``total``/``currency``) object."""
    amount = resource.get("amount")
    if not isinstance(amount, dict):
        raise PayloadError("no amount object")
    if "currency_code" in amount:
        return amount.get("value"), amount.get("currency_code")
    return amount.get("total"), amount.get("currency")


def provider_refund(refund: dict[str, Any], *, payment_id: str | None = None) -> ProviderRefund:
    """A v2 or v1 PayPal refund as our ProviderRefund (the payment is the capture or sale it names, else
    ``payment_id``).

    Raises:
        PayloadError: no id, an unknown status, or no payment.
        AmountNotRepresentable: an amount our money cannot hold exactly.
    """
    refund_id = refund.get("id")
    if not isinstance(refund_id, str) or not refund_id:
        raise PayloadError("refund without an id")
    status = status_of(refund)
    v1 = "state" in refund or "sale_id" in refund
    found = refund.get("sale_id") if v1 else capture_of(refund)
    payment = found if isinstance(found, str) and found else payment_id
    if payment is None:
        raise PayloadError(f"refund {refund_id} names no capture or sale")
    ours = refund.get("invoice_number") if v1 else refund.get("custom_id")
    reason = (refund.get("status_details") or {}).get("reason") if not v1 else refund.get("reason_code")
    return ProviderRefund(
        provider=PaymentProvider.PAYPAL,
        provider_refund_id=refund_id,
        payment_id=payment,
        amount=from_paypal(*money_of(refund)),
        status=_STATUSES[status],
        refund_id=ours if isinstance(ours, str) and ours else None,
        failure_reason=str(reason).lower() if status == "FAILED" and reason else None,
        acquirer_reference=None if v1 else acquirer_reference(refund),
    )


def acquirer_reference(refund: dict[str, Any]) -> str | None:
    """The v2 refund's ``acquirer_reference_number`` once the card network has assigned it (payments v2 spec,
    ``refund.acquirer_reference_number``: 1-36 characters, ``^[a-zA-Z0-9]+$``, "Reference ID issued for the card
    transaction"; developer.paypal.com/docs/checkout/advanced/customize/acquirer-reference-number: "available
    after a few days", listed by ``GET /v2/payments/refunds/{id}`` "if the ARN is available"; card refunds only).
    A value our model cannot hold (under 6 characters) is left out rather than refusing the whole refund."""
    found = refund.get("acquirer_reference_number")
    if isinstance(found, str) and 6 <= len(found) <= 36 and found.isascii() and found.isalnum():
        return found
    return None
