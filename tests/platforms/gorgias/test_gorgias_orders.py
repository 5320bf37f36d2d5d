"""Which order, and so which payment, a Gorgias ticket is about (platforms/gorgias/orders.py): only money at a
platform refundflow refunds with, never a guess between several orders."""

from __future__ import annotations

from typing import Any

import pytest

from refundflow.platforms.gorgias.orders import customer_orders, ticket_order


def shopify(order_id: int, name: str, *transactions: dict[str, Any], typed: bool = True) -> dict[str, Any]:
    order = {
        "id": order_id,
        "name": name,
        "currency": "EUR",
        "created_at": f"2026-11-{order_id % 28 + 1:02d}T10:00:00Z",
    }
    data: dict[str, Any] = {"orders": [{**order, "transactions": list(transactions)}]}
    return {"__integration_type__": "shopify", **data} if typed else data


def sale(gateway: str = "stripe", **fields: Any) -> dict[str, Any]:
    return {"kind": "sale", "status": "success", "gateway": gateway, **fields}


def test_a_stripe_gateway_sale_names_its_charge_by_authorization() -> None:
    [order] = customer_orders({"integrations": {"6": shopify(11, "#1001", sale(authorization="ch_3Pq00000000001"))}})
    assert order["payment"] == {"provider": "stripe", "payment_id": "ch_3Pq00000000001"}
    assert (order["platform"], order["order_id"], order["name"]) == ("shopify", "11", "#1001")


def test_the_receipts_charge_id_is_used_when_the_authorization_is_no_stripe_id() -> None:
    transaction = sale(authorization="auth-123", receipt={"charge": {"id": "ch_3Pq00000000002"}})
    [order] = customer_orders({"integrations": {"6": shopify(12, "#1002", transaction, typed=False)}})
    assert order["payment"] == {"provider": "stripe", "payment_id": "ch_3Pq00000000002"}


@pytest.mark.parametrize(
    "transaction",
    [
        sale("shopify_payments", authorization="ch_3Pq00000000003"),  # Shopify's own Stripe account
        sale(authorization="ch_3Pq00000000004", status="failure"),
        {**sale(authorization="ch_3Pq00000000005"), "kind": "refund"},
        sale(authorization="not-a-stripe-id"),
    ],
)
def test_money_not_at_the_merchants_stripe_gives_no_payment(transaction: dict[str, Any]) -> None:
    [order] = customer_orders({"integrations": {"6": shopify(13, "#1003", transaction)}})
    assert order["payment"] is None


def test_a_stripe_integrations_charge_names_its_payment_intent() -> None:
    charge = {
        "id": "ch_3Pq00000000006",
        "payment_intent": "pi_3Pq00000000006",
        "currency": "usd",
        "status": "succeeded",
    }
    [order] = customer_orders({"integrations": {"9": {"charges": [charge]}}})
    assert order["payment"] == {"provider": "stripe", "payment_id": "pi_3Pq00000000006"}
    assert (order["platform"], order["currency"]) == (None, "USD")


def test_a_failed_stripe_charge_gives_no_payment() -> None:
    charge = {"id": "ch_3Pq00000000007", "status": "failed", "paid": False}
    assert (
        customer_orders({"integrations": {"9": {"__integration_type__": "stripe", "charges": [charge]}}})[0]["payment"]
        is None
    )


def test_the_ticket_names_its_order_by_name_with_or_without_hash_or_by_id() -> None:
    orders = customer_orders({"integrations": {"6": shopify(21, "#2001"), "7": shopify(22, "#2002")}})
    assert ticket_order(orders, "#2002")["order_id"] == "22"  # type: ignore[index]
    assert ticket_order(orders, "2001")["order_id"] == "21"  # type: ignore[index]
    assert ticket_order(orders, 22)["name"] == "#2002"  # type: ignore[index]
    assert ticket_order(orders, "#9999") is None


def test_without_a_named_order_only_a_single_order_is_taken() -> None:
    one = customer_orders({"integrations": {"6": shopify(31, "#3001")}})
    two = customer_orders({"integrations": {"6": shopify(31, "#3001"), "7": shopify(32, "#3002")}})
    assert ticket_order(one, None) == one[0]
    assert ticket_order(two, "") is None


@pytest.mark.parametrize(
    "customer", [{}, {"integrations": None}, {"integrations": {"6": "text"}}, {"integrations": []}]
)
def test_a_customer_without_integration_data_has_no_orders(customer: dict[str, Any]) -> None:
    assert customer_orders(customer) == []
