"""The default mapping reads an order's refund request from its meta fields (the order as the connector returns it,
with ``meta`` by key): what it asks for, for how much, on which payment, and which refund it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from refundflow.domain.tickets import Intent, ticket_request
from refundflow.errors import InvalidRequest
from refundflow.models import ReturnStatus
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


def test_no_return_status_is_no_return_information() -> None:
    _, request = read(order(_refund_requested="full", _refund_return_at="2026-12-06T14:05:00+01:00"))
    assert request.return_info is None  # a moment without a status says nothing


@pytest.mark.parametrize("status", ["requested", "label_created", "in_transit", "received", "inspected", "closed"])
def test_each_documented_return_status_is_a_step_of_the_return(status: str) -> None:
    _, request = read(order(_refund_requested="full", _refund_return_status=status))
    assert request.return_info is not None
    assert request.return_info.status is ReturnStatus(status)
    assert request.return_info.received_at is None  # absent: the step's moment is the order's modification


def test_the_returns_moment_is_read_with_its_offset() -> None:
    _, request = read(
        order(_refund_requested="full", _refund_return_status="received", _refund_return_at="2026-12-06T14:05:00+01:00")
    )
    assert request.return_info.received_at == datetime(2026, 12, 6, 14, 5, tzinfo=timezone(timedelta(hours=1)))
    assert request.return_info.received_at == datetime(2026, 12, 6, 13, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"_refund_return_status": "arrived"}, "return.status"),
        ({"_refund_return_status": "Received"}, "return.status"),
        ({"_refund_return_status": "received", "_refund_return_at": "2026-12-06T14:05:00"}, "return.received_at"),
        ({"_refund_return_status": "received", "_refund_return_at": "yesterday"}, "return.received_at"),
    ],
)
def test_a_return_value_refundflow_does_not_know_is_refused_naming_the_field(meta: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        read(order(_refund_requested="full", **meta))
    assert refused.value.code == "ticket_not_a_refund_request"
    assert [error["field"] for error in refused.value.errors] == [field]  # type: ignore[attr-defined]


def test_a_return_status_alone_asks_for_nothing() -> None:
    # the request is _refund_requested's: a returns plugin's status on an order nobody asked a refund for is no news
    assert read(order(_refund_return_status="received"))[0] is None
