"""Hostile inputs over HTTP, as an attacker or a careless integrator sends them: card data in any field
(PCI DSS), bytes that are not UTF-8 JSON, deep nesting, duplicate keys, date-times without an offset,
oversized delivery ids, and body problems on the approval route. Each is a 4xx problem document, and
nothing is stored."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.stack import SOURCE_SIGNING_SECRETS, DevStack
from tests.e2e.harness import E2EClient, Orders, PaidOrder, would_be_refund_id
from tests.e2e.test_approvals import AGENT_AMOUNT, pending
from tests.e2e.test_intake import assert_nothing_stored, assert_problem
from tests.support.api_events import standard_webhook_headers

CARD = "4242 4242 4242 4242"
RETURNS_PORTAL = "returns-portal"


@pytest.fixture
def order(orders: Orders) -> PaidOrder:
    return orders.paid(3000, invoice=False, name="hostile")


def post_bytes(client: E2EClient, body: bytes, *, delivery_id: str | None = None, signed: bool = True) -> Any:
    headers = {"content-type": "application/json"}
    if signed:
        headers |= standard_webhook_headers(body, SOURCE_SIGNING_SECRETS[RETURNS_PORTAL][0], delivery_id=delivery_id)
    return client.post_raw("/refund-requests", body, headers)


def set_at(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target: Any = document
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    target[parts[-1]] = value
    return document


# ---------------------------------------------------------------- card data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("note", "4242 4242 4242 4242 123"),
        ("note", "4242424242424242 123"),
        ("note", "paid by card 4242 4242 4242 4242 12/28 cvv 123"),
        ("note", "4242_4242_4242_4242"),
        ("source.reference", "4242424242424242"),
        ("order.order_id", "4242-4242-4242-4242"),
        ("customer.customer_id", "4242424242424242"),
        ("source.ticket_id", "4242424242424242"),
        ("approved_by.id", "4242424242424242"),
        ("order.items.0.sku", "4242424242424242"),
        ("lines.0.description", f"Walnut desk, card {CARD}"),
    ],
)
def test_card_data_in_any_field_is_refused_and_never_stored(
    client: E2EClient, stack: DevStack, order: PaidOrder, field: str, value: str
) -> None:
    # GIVEN a refund request carrying card data in one field
    request = Orders.request(order, amount=3000)
    request["order"]["items"] = [{"sku": "DESK-1", "quantity": 1}]
    request["lines"] = [{"description": "Walnut desk", "amount": {"minor_units": 3000, "currency": "EUR"}}]
    request["approved_by"] = {"id": "lee@shop.example", "role": "agent"}
    set_at(request, field, value)
    # WHEN it is posted, correctly signed
    response = client.request_refund(request)
    # THEN it is refused naming the field, the number is not echoed, and nothing is stored
    problem = assert_problem(response, 400, "card_data_refused")
    assert field in [error["field"] for error in problem["errors"]], problem
    assert not re.search(r"4242.?4242", response.text)
    assert_nothing_stored(client, stack, request)


def test_card_data_in_an_approval_note_is_refused_and_the_refund_still_waits(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund waiting for an agent
    refund_id, payment_id = pending(orders, client, AGENT_AMOUNT, "hostile-note")
    # WHEN an approver's note carries a card number and its code
    token = client.approver_token("avery.agent", "agent")
    answer = client.decide(refund_id, token, "approve", "card 5555 5555 5555 4444 cvv 123")
    # THEN it is a 400 naming the note, the decision is not recorded, the token is not spent
    problem = assert_problem(answer, 400, "card_data_refused")
    assert [error["field"] for error in problem["errors"]] == ["note"]
    assert "5555" not in answer.text
    assert client.refund(refund_id)["status"] == "PENDING_APPROVAL"
    assert client.stripe_refunds(payment_id) == []
    assert client.decide(refund_id, token, "reject", "test clean-up").status_code == 200


# ---------------------------------------------------------------- bad bytes


def test_invalid_utf8_without_a_signature_is_a_401_problem(client: E2EClient) -> None:
    # GIVEN bytes that are not UTF-8, unsigned WHEN posted THEN 401 (the signature comes first), not a 500
    assert_problem(post_bytes(client, b'{"note": "\xff\xfe\xfd"}', signed=False), 401)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_a_signed_body_in_another_encoding_is_refused_and_pays_nothing(
    client: E2EClient, stack: DevStack, order: PaidOrder, encoding: str
) -> None:
    # GIVEN a valid refund request, signed, but encoded as UTF-16/32 or with a byte order mark
    request = Orders.request(order)
    # WHEN it is posted THEN it is refused as not UTF-8 JSON, and nothing is stored
    assert_problem(post_bytes(client, json.dumps(request).encode(encoding)), 400, "invalid_encoding")
    assert_nothing_stored(client, stack, request)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda text: text[:-1] + ', "reason": "goodwill"}', "duplicate_key"),
        (
            lambda text: text.replace('"reason": "damaged"', '"reason": "damaged", "note": "\\ud800"'),
            "invalid_encoding",
        ),
        (lambda text: text[:-1] + ', "note": ' + "[" * 2_000 + "]" * 2_000 + "}", "json_too_deep"),
        (
            lambda text: text.replace('"reason"', '"amount": {"minor_units": 1e400, "currency": "EUR"}, "reason"'),
            "number_out_of_range",
        ),
        (
            lambda text: text.replace('"reason"', '"amount": {"minor_units": NaN, "currency": "EUR"}, "reason"'),
            "invalid_json",
        ),
    ],
)
def test_json_that_rfc_8259_does_not_allow_is_refused(
    client: E2EClient, stack: DevStack, order: PaidOrder, mutate: Any, code: str
) -> None:
    # GIVEN a signed request with duplicate keys, a lone surrogate, 2,000 levels of nesting, 1e400 or NaN
    request = Orders.request(order)
    body = mutate(json.dumps(request)).encode()
    # WHEN it is posted THEN a 400 saying which, and nothing stored
    assert_problem(post_bytes(client, body), 400, code)
    assert_nothing_stored(client, stack, request)


@pytest.mark.parametrize("path", ["order.delivered_at", "return.received_at"])
def test_a_date_time_without_an_offset_is_refused_at_the_door(
    client: E2EClient, stack: DevStack, order: PaidOrder, path: str
) -> None:
    # GIVEN a request whose delivery or return date has no UTC offset
    request = Orders.request(order)
    request["return"] = {"status": "received"}
    set_at(request, path, "2026-11-20T10:00:00")
    # WHEN it is posted THEN it is refused naming the field (not failed later, after money could move)
    problem = assert_problem(client.request_refund(request), 400, "validation_failed")
    assert [error["field"] for error in problem["errors"]] == [path]
    assert_nothing_stored(client, stack, request)


@pytest.mark.parametrize("delivery_id", ["m" * 5_000, "msg with spaces"])
def test_an_oversized_or_unprintable_delivery_id_is_a_400_not_a_503(
    client: E2EClient, stack: DevStack, order: PaidOrder, delivery_id: str
) -> None:
    # GIVEN a correctly signed delivery whose webhook-id is 5,000 characters long, or has spaces
    request = Orders.request(order)
    response = post_bytes(client, json.dumps(request).encode(), delivery_id=delivery_id)
    # THEN it is refused as such (no Retry-After: retrying cannot help), and nothing is stored
    assert_problem(response, 400, "invalid_delivery_id")
    assert "Retry-After" not in response.headers
    assert_nothing_stored(client, stack, request)
    assert would_be_refund_id(request)


# ---------------------------------------------------------------- one shape for body problems


def test_body_problems_are_400_on_every_route_and_422_is_for_parameters(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund waiting for an agent and an agent's token
    refund_id, _ = pending(orders, client, AGENT_AMOUNT, "hostile-shapes")
    token = client.approver_token("avery.agent", "agent")
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    # WHEN the approval body has an unknown field, or is not JSON
    unknown = client.post_raw(f"/refunds/{refund_id}/approval", b'{"decision": "approve", "approved": true}', headers)
    broken = client.post_raw(f"/refunds/{refund_id}/approval", b'{"decision": ', headers)
    # THEN both are 400 problem documents, as on POST /refund-requests
    assert_problem(unknown, 400, "validation_failed")
    assert_problem(broken, 400, "invalid_json")
    # AND a refund id that is not one (a path parameter) is a 422
    assert_problem(client.post_raw("/refunds/nope/approval", b'{"decision": "approve"}', headers), 422)
    assert client.decide(refund_id, token, "reject", "test clean-up").status_code == 200
