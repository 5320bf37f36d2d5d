"""What Shopify's connector reads of a return for the mapping: the step it has reached, its value, its reason in
refundflow's words, and who refunds the money (Shopify, or the order's own provider of ours, never both); an order's
ticket id reads its newest return, and an order without one asks for nothing."""

from __future__ import annotations

from typing import Any

import pytest

from refundflow.errors import InvalidRequest
from refundflow.platforms.shopify.connector import ShopifyConnector
from refundflow.platforms.shopify.returns import payment_of, return_status, returned_value
from tests.platforms.shopify.conftest import Served

SHOPIFY_PAYMENTS = frozenset({"shopify_payments"})


def sale(gateway: str, code: str | None = "ch_1") -> dict[str, Any]:
    return {"kind": "SALE", "status": "SUCCESS", "gateway": gateway, "authorizationCode": code}


def line(quantity: int, processed: int, price: str | None = "20.00") -> dict[str, Any]:
    money = None if price is None else {"presentmentMoney": {"amount": price, "currencyCode": "EUR"}}
    return {
        "quantity": quantity,
        "processedQuantity": processed,
        "unprocessedQuantity": quantity - processed,
        "fulfillmentLineItem": {"lineItem": {"discountedUnitPriceAfterAllDiscountsSet": money}},
    }


@pytest.mark.parametrize(
    ("status", "lines", "step"),
    [
        ("REQUESTED", [line(1, 0)], "requested"),
        ("OPEN", [line(2, 1)], "requested"),  # a partial receipt is not the return
        ("OPEN", [line(2, 2), line(1, 1)], "received"),
        ("CLOSED", [line(1, 0)], "closed"),
        ("DECLINED", [line(1, 0)], "cancelled"),
        ("CANCELED", [line(1, 1)], "cancelled"),
    ],
)
def test_the_returns_step(status: str, lines: list[dict[str, Any]], step: str) -> None:
    assert return_status({"status": status, "returnLineItems": {"nodes": lines}}) == step


def test_the_returned_value_is_the_lines_at_their_price_and_none_without_a_price() -> None:
    assert returned_value({"returnLineItems": {"nodes": [line(2, 0, "19.95"), line(1, 0, "5.10")]}}) == (
        "45.00",
        "EUR",
    )
    assert returned_value({"returnLineItems": {"nodes": [line(1, 0, None)]}}) is None


def test_shopify_refunds_what_shopify_payments_took() -> None:
    order = {"id": "gid://shopify/Order/7", "transactions": [sale("shopify_payments")]}
    assert payment_of(order, SHOPIFY_PAYMENTS) == {"provider": "shopify", "payment_id": "gid://shopify/Order/7"}


def test_our_own_provider_refunds_what_its_gateway_took() -> None:
    order = {"id": "gid://shopify/Order/7", "transactions": [sale("paypal", "5TY05013RG002845M")]}
    assert payment_of(order, SHOPIFY_PAYMENTS) == {"provider": "paypal", "payment_id": "5TY05013RG002845M"}


@pytest.mark.parametrize(
    "transactions",
    [
        [sale("shopify_payments"), sale("stripe")],  # two payers: neither refunds it alone
        [sale("manual")],  # a gateway that is none of ours
        [sale("stripe", None)],  # our gateway without its payment id
        [],  # nothing taken
    ],
)
def test_no_single_payer_names_no_payment(transactions: list[dict[str, Any]]) -> None:
    assert payment_of({"id": "gid://shopify/Order/7", "transactions": transactions}, SHOPIFY_PAYMENTS) is None


def test_an_orders_ticket_reads_its_newest_return(sandbox: Served, connector: ShopifyConnector) -> None:
    simulator = sandbox[0]
    ticket = simulator.seed_ticket({"payment_provider": "shopify", "amount": "12.00", "reason": "wrong_item"})
    order_number = simulator.returns[f"gid://shopify/Return/{ticket}"]["orderId"].rsplit("/", 1)[1]
    read = connector.read_ticket(f"order-{order_number}")
    assert read["refundflow"]["return_number"] == ticket
    assert (read["refundflow"]["reason"], read["refundflow"]["amount"]) == ("wrong_item", "12.00")


def test_an_order_without_a_return_asks_for_nothing(sandbox: Served, connector: ShopifyConnector) -> None:
    order_number = sandbox[0].seed_payment(1_000, "EUR")["payment_id"].rsplit("/", 1)[1]
    read = connector.read_ticket(f"order-{order_number}")
    assert (read["return"], read["refundflow"]["return_status"]) == (None, None)


@pytest.mark.parametrize("ticket_id", ["gid://shopify/Return/1", "order-", "order-1/../2", "-5"])
def test_an_id_that_is_not_shopifys_never_reaches_shopify(
    sandbox: Served, connector: ShopifyConnector, ticket_id: str
) -> None:
    before = len(sandbox[0].requests_seen)
    with pytest.raises(InvalidRequest):
        connector.read_ticket(ticket_id)
    assert len(sandbox[0].requests_seen) == before
