"""The default mapping reads an order's refund request from its meta fields (the order as the connector returns it,
with ``meta`` by key): what it asks for, for how much, on which payment, and which refund it is."""

from __future__ import annotations

from typing import Any

from refundflow.domain.tickets import Intent, ticket_request
from refundflow.money import Money
from refundflow.ports import TicketNews
from tests.conformance.ticket_suite import default_mapping

MAPPING = default_mapping("woocommerce")


def order(**meta: Any) -> dict[str, Any]:
    return {
        "id": 101,
        "number": "4711",
        "currency": "EUR",
        "customer_id": 12,
        "billing": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        "meta": meta,
    }


def read(ticket: dict[str, Any]) -> tuple[Intent | None, Any]:
    news = TicketNews(platform="woocommerce", event_id="order-101-request-x", ticket_id="101")
    return ticket_request(news, ticket, MAPPING)


def test_a_full_request_refunds_the_order_itself_through_woocommerce() -> None:
    intent, request = read(order(_refund_requested="full"))
    assert intent is Intent.REQUESTED
    assert (request.payment.provider.value, request.payment.payment_id) == ("woocommerce", "101")
    assert request.amount is None
    assert (request.order.order_id, request.customer.email, request.source.reference) == (
        "4711",
        "ada@example.com",
        "101",
    )


def test_an_amount_is_read_exactly_in_the_orders_currency() -> None:
    _, request = read(order(_refund_requested="49.90", _refund_reason="wrong_item"))
    assert request.amount == Money.of(4_990, "EUR")
    assert request.reason.value == "wrong_item"


def test_cancel_withdraws_and_an_approvers_role_is_mapped() -> None:
    assert read(order(_refund_requested="cancel", _refund_approved_by="7"))[0] is Intent.CANCELLED
    intent, request = read(
        order(_refund_requested="full", _refund_approved_by="7", _refund_approver_role="shop_manager")
    )
    assert intent is Intent.APPROVED
    assert request.approved_by is not None
    assert request.approved_by.role == "team_lead"


def test_a_later_request_on_the_same_order_is_a_refund_of_its_own() -> None:
    _, first = read(order(_refund_requested="10.00"))
    _, second = read(order(_refund_requested="10.00", _refund_request_no="2"))
    assert (first.source.reference, second.source.reference) == ("101", "101:2")


def test_an_order_without_a_request_asks_nothing() -> None:
    assert read(order(_refund_reason="damaged"))[0] is None
