"""PayPal webhook events, parsed into what refundflow acts on (pure: no HTTP, no SDK).

An event is ``{id, event_version, create_time, resource_type, resource_version, event_type, summary, resource,
links}`` (the official ``notifications_webhooks_v1.json`` ``event`` schema). refundflow acts on refund resources
(``resource_type: "refund"``): ``PAYMENT.CAPTURE.REFUNDED`` carries a Payments v2 refund (its ``custom_id`` is our
refund id, its ``up`` link names the capture) and ``PAYMENT.SALE.REFUNDED`` a v1 refund (``invoice_number`` is our
refund id, ``sale_id`` the sale). Other refund events PayPal may add with a refund resource are read the same way;
every other event (captures completed, reversed, disputes...) is acknowledged and left alone. The event only says
that something changed: the platform function reads the refund from PayPal before acting on it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from refundflow.errors import InvalidRequest
from refundflow.money import Money
from refundflow.platforms.paypal.amounts import from_paypal

PLATFORM = "paypal"
REFUND_EVENTS = frozenset({"PAYMENT.CAPTURE.REFUNDED", "PAYMENT.SALE.REFUNDED"})
_CAPTURE_LINK = re.compile(r"/v2/payments/captures/([A-Za-z0-9]+)$")
_V2_STATUSES = {"COMPLETED", "PENDING", "FAILED", "CANCELLED"}


class _Platform(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Link(_Platform):
    href: str
    rel: str
    method: str | None = None


class WebhookEvent(_Platform):
    id: str
    event_type: str
    resource_type: str | None = None
    resource_version: str | None = None
    create_time: str | None = None
    resource: dict[str, Any] = {}


class RefundNews(BaseModel):
    """One refund PayPal told us about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    event_type: str
    api: Literal["v2", "v1"]
    provider_refund_id: str
    status: Literal["COMPLETED", "PENDING", "FAILED", "CANCELLED"]
    amount: Money | None
    payment_id: str | None
    kind: Literal["capture", "sale"]
    refund_id: str | None

    @property
    def locator(self) -> dict[str, str]:
        return {"kind": "sale"} if self.kind == "sale" else {}


def parse_event(body: dict[str, Any]) -> WebhookEvent:
    """Raises:
    InvalidRequest: not a PayPal event (no id or event type)."""
    try:
        return WebhookEvent.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest(
            f"not a PayPal webhook event: {error.errors()[0]['msg']}", code="invalid_payload", platform=PLATFORM
        ) from None


def refund_news(event: WebhookEvent) -> RefundNews | None:
    """The refund an event is about, or None for events refundflow does not act on.

    Raises:
        InvalidRequest: a refund event whose resource has no id or an unknown status.
    """
    if event.resource_type != "refund" and event.event_type not in REFUND_EVENTS:
        return None
    resource = event.resource
    refund_id = resource.get("id")
    if not isinstance(refund_id, str) or not refund_id:
        raise InvalidRequest("PayPal refund event without a refund id", code="invalid_payload", platform=PLATFORM)
    if "sale_id" in resource or "state" in resource:
        return _v1(event, refund_id, resource)
    return _v2(event, refund_id, resource)


def _v2(event: WebhookEvent, refund_id: str, resource: dict[str, Any]) -> RefundNews:
    status = resource.get("status")
    if status not in _V2_STATUSES:
        raise InvalidRequest(f"PayPal refund status {status!r} is unknown", code="invalid_payload", platform=PLATFORM)
    amount = resource.get("amount")
    money = from_paypal(amount.get("value"), amount.get("currency_code")) if isinstance(amount, dict) else None
    capture_id = None
    for raw in resource.get("links") or []:
        link = Link.model_validate(raw) if isinstance(raw, dict) and "href" in raw and "rel" in raw else None
        match = _CAPTURE_LINK.search(link.href) if link is not None and link.rel == "up" else None
        if match is not None:
            capture_id = match.group(1)
    custom_id = resource.get("custom_id")
    return RefundNews(
        event_id=event.id,
        event_type=event.event_type,
        api="v2",
        provider_refund_id=refund_id,
        status=status,
        amount=money,
        payment_id=capture_id,
        kind="capture",
        refund_id=custom_id if isinstance(custom_id, str) and custom_id else None,
    )


def _v1(event: WebhookEvent, refund_id: str, resource: dict[str, Any]) -> RefundNews:
    state = str(resource.get("state", "")).upper()
    if state not in _V2_STATUSES:
        raise InvalidRequest(f"PayPal refund state {state!r} is unknown", code="invalid_payload", platform=PLATFORM)
    amount = resource.get("amount")
    money = from_paypal(amount.get("total"), amount.get("currency")) if isinstance(amount, dict) else None
    sale_id = resource.get("sale_id")
    invoice_number = resource.get("invoice_number")
    return RefundNews(
        event_id=event.id,
        event_type=event.event_type,
        api="v1",
        provider_refund_id=refund_id,
        status=state,  # type: ignore[arg-type]  # checked against _V2_STATUSES above
        amount=money,
        payment_id=sale_id if isinstance(sale_id, str) and sale_id else None,
        kind="sale",
        refund_id=invoice_number if isinstance(invoice_number, str) and invoice_number else None,
    )
