"""A shop's return as the ticket kit's "ticket": read through the GraphQL Admin API for the merchant's mapping, and
refund news written back onto its order (an order note line and a ``refundflow:<state>`` tag).

What Shopify documents and this module relies on (shopify.dev/docs/api/admin-graphql, the pinned version):
- ``return(id:)``: ``status`` (ReturnStatus: REQUESTED, OPEN, CLOSED, DECLINED, CANCELED), ``closedAt``,
  ``returnLineItems`` (``quantity``, ``processedQuantity``, ``unprocessedQuantity``, ``returnReason``, the line item
  and its price) and ``order`` (``name``, ``email``, ``note``, ``tags``, ``transactions`` with ``gateway`` and
  ``authorizationCode``); ``order(id:)`` with its ``returns``;
- since 2025-07 a return is *processed* (``returnProcess``) when the merchant confirms which items came back:
  every line processed (``unprocessedQuantity`` 0) is our ``received``; CLOSED is ``closed``; DECLINED and CANCELED
  withdraw the request (changelog "Returns Processing APIs replaces Return Refund APIs", 2025-07-01);
- ``orderUpdate(input: {id, note})`` and ``tagsAdd`` / ``tagsRemove(id:, tags:)`` with ``userErrors``.

What the mapping reads besides Shopify's own objects (``ticket.refundflow``): ``return_number`` (the refund's
reference: the same refund whichever delivery names the return), ``return_status`` (requested,
received, closed, cancelled), ``received_at``, ``reason`` in refundflow's words, ``amount`` (the returned lines at
their price after discounts) and ``payment``: never both. The order's money was taken by Shopify Payments (a
gateway of ``SHOPIFY_REFUND_GATEWAYS``): Shopify refunds it (provider ``shopify``, the order's id). It was taken by
a gateway that is one of our payment platforms (``stripe``, ``paypal``, ...): that provider refunds it, with the
gateway's own payment id (the transaction's ``authorizationCode``); any other mix names no payment and the
request is refused with a note on the order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from refundflow import catalog
from refundflow.errors import InvalidRequest, NotFound, RejectedError
from refundflow.platforms.shopify.graphql import PLATFORM
from refundflow.ports import TicketPlatform, TicketUpdate

# The ticket ids intake hands over: a return's number (returns/*), or "order-<number>" (orders/updated). Numbers
# only: ASCII digits, so nothing else ever reaches a request.
RETURN_TICKET = re.compile(r"^[0-9]{1,20}$")
ORDER_TICKET = re.compile(r"^order-([0-9]{1,20})$")
LABEL_PREFIX = "refundflow:"

_LINE_PRICE = "discountedUnitPriceAfterAllDiscountsSet { presentmentMoney { amount currencyCode } }"
_ORDER_FIELDS = """
  id name email note tags presentmentCurrencyCode
  customer { displayName }
  transactions(first: 100) { id kind status gateway authorizationCode }
"""
RETURN = f"""
query RefundflowReturn($id: ID!) {{
  return(id: $id) {{
    id name status createdAt closedAt
    returnLineItems(first: 50) {{
      nodes {{
        ... on ReturnLineItem {{
          id quantity processedQuantity unprocessedQuantity returnReason
          fulfillmentLineItem {{ lineItem {{ sku name {_LINE_PRICE} }} }}
        }}
      }}
    }}
    order {{ {_ORDER_FIELDS} }}
  }}
}}
"""
ORDER_RETURNS = f"""
query RefundflowOrderReturns($id: ID!) {{
  order(id: $id) {{ {_ORDER_FIELDS} returns(first: 10) {{ nodes {{ id createdAt }} }} }}
}}
"""
ORDER_UPDATE = """
mutation RefundflowOrderNote($input: OrderInput!) {
  orderUpdate(input: $input) { order { id } userErrors { field message } }
}
"""
TAGS_ADD = """
mutation RefundflowTagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } }
}
"""
TAGS_REMOVE = """
mutation RefundflowTagsRemove($id: ID!, $tags: [String!]!) {
  tagsRemove(id: $id, tags: $tags) { node { id } userErrors { field message } }
}
"""
RETURN_DOCUMENTS = {
    "RefundflowReturn": RETURN,
    "RefundflowOrderReturns": ORDER_RETURNS,
    "RefundflowOrderNote": ORDER_UPDATE,
    "RefundflowTagsAdd": TAGS_ADD,
    "RefundflowTagsRemove": TAGS_REMOVE,
}

# Shopify's ReturnReason in refundflow's words (a reason nobody maps is a plain product return).
REASONS: Mapping[str, str] = {
    "DEFECTIVE": "damaged",
    "WRONG_ITEM": "wrong_item",
    "NOT_AS_DESCRIBED": "not_as_described",
    "UNWANTED": "changed_mind",
    "STYLE": "changed_mind",
    "COLOR": "changed_mind",
    "SIZE_TOO_SMALL": "product_return",
    "SIZE_TOO_LARGE": "product_return",
}


def return_status(found: Mapping[str, Any]) -> str | None:
    """The return's step in refundflow's lifecycle (None: none it knows)."""
    status = found.get("status")
    if status in ("CANCELED", "DECLINED"):
        return "cancelled"
    if status == "CLOSED":
        return "closed"
    lines = [line for line in (found.get("returnLineItems") or {}).get("nodes") or [] if isinstance(line, dict)]
    processed = sum(int(line.get("processedQuantity") or 0) for line in lines)
    if lines and processed > 0 and all(int(line.get("unprocessedQuantity") or 0) == 0 for line in lines):
        return "received"
    if status in ("REQUESTED", "OPEN"):
        return "requested"
    return None


def returned_value(found: Mapping[str, Any]) -> tuple[str, str] | None:
    """The returned lines at their price after discounts, as a decimal string and currency (None: no price)."""
    total = Decimal(0)
    currency: str | None = None
    for line in (found.get("returnLineItems") or {}).get("nodes") or []:
        price = (
            ((line.get("fulfillmentLineItem") or {}).get("lineItem") or {}).get(
                "discountedUnitPriceAfterAllDiscountsSet"
            )
            or {}
        ).get("presentmentMoney")
        if not isinstance(price, dict):
            continue
        total += Decimal(str(price["amount"])) * int(line.get("quantity") or 0)
        currency = str(price["currencyCode"])
    return (str(total), currency) if currency is not None else None


def payment_of(order: Mapping[str, Any], refund_gateways: frozenset[str]) -> dict[str, str] | None:
    """Who refunds the order's money: Shopify, or the one provider of ours whose gateway took it (never both)."""
    taken = [
        item
        for item in order.get("transactions") or []
        if isinstance(item, dict) and item.get("kind") in ("SALE", "CAPTURE") and item.get("status") == "SUCCESS"
    ]
    gateways = {str(item.get("gateway") or "") for item in taken}
    if not taken:
        return None
    if gateways <= refund_gateways:
        return {"provider": PLATFORM, "payment_id": str(order["id"])}
    ours = set(catalog.names("payment")) - {PLATFORM}
    if len(gateways) == 1 and len(taken) == 1:
        gateway = next(iter(gateways)).lower().replace(" ", "_")
        code = taken[0].get("authorizationCode")
        if gateway in ours and isinstance(code, str) and code:
            return {"provider": gateway, "payment_id": code}
    return None


class ShopifyReturns(TicketPlatform):
    """The ticket part of Shopify's connector; ``_post`` and ``refund_gateways`` come from the refund provider."""

    name: ClassVar[str] = PLATFORM
    refund_gateways: frozenset[str]

    def _post(self, document: str, variables: Mapping[str, Any], *, write: bool) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - ShopifyConnector's

    def _return(self, ticket_id: str) -> dict[str, Any]:
        """The return a ticket id names (an order's newest return for an order's ticket id).

        Raises: NotFound, TransientError, RejectedError, InvalidRequest (not a Shopify ticket id: never sent).
        """
        order_number = ORDER_TICKET.match(ticket_id)
        if not RETURN_TICKET.match(ticket_id) and order_number is None:
            raise InvalidRequest("not a Shopify return or order number", code="invalid_ticket_id", platform=PLATFORM)
        return_id = f"gid://shopify/Return/{ticket_id}"
        if order_number is not None:
            order_id = f"gid://shopify/Order/{order_number.group(1)}"
            order = self._post(ORDER_RETURNS, {"id": order_id}, write=False).get("order")
            if not isinstance(order, dict):
                raise NotFound(f"Shopify has no order {ticket_id}", code="ticket_not_found", platform=PLATFORM)
            nodes = [item for item in (order.get("returns") or {}).get("nodes") or [] if isinstance(item, dict)]
            if not nodes:  # an order without a return asks for nothing (orders/updated fires for every order)
                return {"id": None, "status": None, "order": order}
            return_id = str(max(nodes, key=lambda item: str(item.get("createdAt") or ""))["id"])
        found = self._post(RETURN, {"id": return_id}, write=False).get("return")
        if not isinstance(found, dict) or not isinstance(found.get("order"), dict):
            raise NotFound(f"Shopify has no return {ticket_id}", code="ticket_not_found", platform=PLATFORM)
        return found

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """``{"return": <Return>, "order": <its Order>, "refundflow": <what the mapping reads, derived>}``.

        Raises:
            NotFound: no such return (or an order without one).
            TransientError: throttled or unavailable (``retry_after_seconds`` from the cost extension).
            RejectedError: credentials, permissions; InvalidRequest: not a Shopify id.
        """
        found = self._return(ticket_id)
        order = found.pop("order")
        if found.get("id") is None:
            return {"return": None, "order": order, "refundflow": {"return_status": None, "payment": None}}
        value = returned_value(found)
        reasons = [line.get("returnReason") for line in (found.get("returnLineItems") or {}).get("nodes") or []]
        derived = {
            "return_number": str(found["id"]).rsplit("/", 1)[-1],
            "return_status": return_status(found),
            "received_at": found.get("closedAt"),
            "reason": next((REASONS[item] for item in reasons if item in REASONS), "product_return"),
            "amount": value[0] if value else None,
            "currency": value[1] if value else order.get("presentmentCurrencyCode"),
            "payment": payment_of(order, self.refund_gateways),
        }
        return {"return": found, "order": order, "refundflow": derived}

    def has_update(self, ticket_id: str, marker: str) -> bool:
        """Whether the order's note carries ``marker`` (a write-back whose answer was lost).

        Raises: NotFound, TransientError, RejectedError, InvalidRequest.
        """
        return marker in str(self._return(ticket_id)["order"].get("note") or "")

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        """A line on the order's note (staff-only, never sent to the customer) with the marker, then the refund
        state as the tag ``refundflow:<label>`` in place of the earlier one (a note-only update keeps it).

        Raises:
            NotFound: the return is gone. TransientError: throttled (retry after the bucket refills).
            OutcomeUnknownError: the note may have been written (``has_update`` tells).
            RejectedError: Shopify refused the write (userErrors).
        """
        order = self._return(ticket_id)["order"]
        note = str(order.get("note") or "")
        if update.marker not in note:
            written = f"{note}\n\n{update.text}".strip() if note else update.text
            _user_errors(
                self._post(ORDER_UPDATE, {"input": {"id": order["id"], "note": written}}, write=True), "orderUpdate"
            )
        if update.label is None:
            return
        label = f"{LABEL_PREFIX}{update.label}"
        stale = [tag for tag in order.get("tags") or [] if str(tag).startswith(LABEL_PREFIX) and tag != label]
        if stale:
            _user_errors(self._post(TAGS_REMOVE, {"id": order["id"], "tags": stale}, write=True), "tagsRemove")
        if label not in (order.get("tags") or []):
            _user_errors(self._post(TAGS_ADD, {"id": order["id"], "tags": [label]}, write=True), "tagsAdd")


def _user_errors(data: Mapping[str, Any], field: str) -> None:
    """Raises: RejectedError with Shopify's first userError."""
    payload = data.get(field)
    errors = payload.get("userErrors") if isinstance(payload, dict) else None
    if errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        raise RejectedError(
            f"Shopify refused {field}: {str(first.get('message') or 'refused')[:200]}",
            code="shopify_user_error",
            platform=PLATFORM,
        )
