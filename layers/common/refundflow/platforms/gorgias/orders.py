"""Which order (and so which payment) a Gorgias ticket is about, from its customer's integration data.

What Gorgias documents (developers.gorgias.com "The Customer object"): ``integrations`` holds the data each
integration (Shopify, Recharge, HTTP...) collected for the customer, keyed by integration id, "raw data collected
from the integrations"; its example is a Shopify integration's ``{"orders": [...]}`` with Shopify's own order objects
(``id``, ``name``, ``currency``, ``total_price``...). Left open by the docs, so read defensively here: the integration's
type (``__integration_type__`` when Gorgias adds it, else the shape: ``orders`` for Shopify, ``charges`` for Stripe),
whether a Shopify order carries its ``transactions``, and the shape of a Stripe integration's data (taken to be
Stripe's own charge objects).

Refundflow refunds through the merchant's payment platform, not through Shopify (Shopify is no payment platform
of refundflow's catalog yet), so an order yields a payment only where its money is at a platform we refund with:

- a Shopify order paid through the ``stripe`` gateway (the merchant's own Stripe account): the successful ``sale``
  or ``capture`` transaction's ``authorization`` (Stripe's charge or payment intent id; ``receipt.charge.id`` /
  ``receipt.id`` when the authorization is not one), provider ``stripe``. Shopify Payments money is at Shopify's
  own Stripe account and cannot be refunded with the merchant's key: no payment;
- a Stripe integration's charge: its ``payment_intent`` (else its ``id``), provider ``stripe``, no order platform.

The ticket names its order in the order field (by Shopify ``name`` such as ``#1001``, or id); without one, a
customer with exactly one order is taken to mean that order, and one with several means none (never a guess
about whose money goes back).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

STRIPE_ID = re.compile(r"(ch|py|pi)_[A-Za-z0-9_]{3,250}")
PAID_KINDS = frozenset({"sale", "capture"})


def customer_orders(customer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every order and charge in the customer's integration data, newest first, in one shape: ``{"platform",
    "order_id", "name", "currency", "total", "created_at", "payment": {"provider", "payment_id"} | None}``."""
    found: list[dict[str, Any]] = []
    integrations = customer.get("integrations")
    if not isinstance(integrations, Mapping):
        return found
    for data in integrations.values():
        if not isinstance(data, Mapping):
            continue
        kind = str(data.get("__integration_type__") or "").lower()
        if kind == "shopify" or (not kind and isinstance(data.get("orders"), list)):
            found += [_shopify(order) for order in data.get("orders") or [] if isinstance(order, Mapping)]
        elif kind == "stripe" or (not kind and isinstance(data.get("charges"), list)):
            found += [_stripe(charge) for charge in data.get("charges") or [] if isinstance(charge, Mapping)]
    found.sort(key=lambda order: str(order.get("created_at") or ""), reverse=True)
    return found


def ticket_order(orders: list[dict[str, Any]], named: Any) -> dict[str, Any] | None:
    """The order the ticket names (by name, ``#``-less name or id), or the only one; None otherwise."""
    wanted = str(named).strip() if named not in (None, "") else ""
    if wanted:
        for order in orders:
            names = {str(order.get("order_id")), str(order.get("name")), str(order.get("name") or "").lstrip("#")}
            if wanted in names or wanted.lstrip("#") in names:
                return order
        return None
    return orders[0] if len(orders) == 1 else None


def _shopify(order: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "platform": "shopify",
        "order_id": _text(order.get("id")),
        "name": _text(order.get("name")),
        "currency": _text(order.get("currency")),
        "total": _text(order.get("total_price")),
        "created_at": _text(order.get("created_at")),
        "payment": _shopify_payment(order),
    }


def _shopify_payment(order: Mapping[str, Any]) -> dict[str, str] | None:
    for transaction in order.get("transactions") or []:
        if not isinstance(transaction, Mapping):
            continue
        if transaction.get("kind") not in PAID_KINDS or transaction.get("status") != "success":
            continue
        if str(transaction.get("gateway") or "").lower() != "stripe":
            continue
        receipt: Mapping[str, Any] = transaction["receipt"] if isinstance(transaction.get("receipt"), Mapping) else {}
        charge: Mapping[str, Any] = receipt["charge"] if isinstance(receipt.get("charge"), Mapping) else {}
        for candidate in (transaction.get("authorization"), charge.get("id"), receipt.get("id")):
            if isinstance(candidate, str) and STRIPE_ID.fullmatch(candidate):
                return {"provider": "stripe", "payment_id": candidate}
    return None


def _stripe(charge: Mapping[str, Any]) -> dict[str, Any]:
    payment_id = next(
        (
            value
            for value in (charge.get("payment_intent"), charge.get("id"))
            if isinstance(value, str) and STRIPE_ID.fullmatch(value)
        ),
        None,
    )
    succeeded = charge.get("status") in (None, "succeeded") and charge.get("paid", True) is not False
    currency = _text(charge.get("currency"))
    return {
        "platform": None,
        "order_id": _text(charge.get("id")),
        "name": None,  # a charge's description is free text, no reference
        "currency": currency.upper() if currency else None,
        "total": None,
        "created_at": _text(charge.get("created")),
        "payment": {"provider": "stripe", "payment_id": payment_id} if payment_id and succeeded else None,
    }


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    return str(value).strip() or None
