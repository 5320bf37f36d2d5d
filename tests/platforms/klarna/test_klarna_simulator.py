"""The Klarna simulator holds to what Klarna documents: Basic auth per merchant, the RefundObject and nothing else,
Klarna's error shape, keys that answer the first result for 24 hours whatever the body, refunds made when answered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.klarna import DEFAULT_PASSWORD, DEFAULT_USERNAME, KEY_TTL_SECONDS, KlarnaSimulator
from local.stack import build_simulator
from refundflow import catalog
from tests.support.servers import serve_wsgi


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()
OTHER = ("PK00002_othermerchant", "another-merchants-secret")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[KlarnaSimulator, str]]:
    simulator = KlarnaSimulator({DEFAULT_USERNAME: DEFAULT_PASSWORD, OTHER[0]: OTHER[1]}, now=CLOCK)
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def sim(server: tuple[KlarnaSimulator, str]) -> KlarnaSimulator:
    server[0].reset_state()
    return server[0]


def call(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
    auth: tuple[str, str] = (DEFAULT_USERNAME, DEFAULT_PASSWORD),
) -> requests.Response:
    headers = {"Content-Type": "application/json", **({"Klarna-Idempotency-Key": key} if key else {})}
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return requests.request(method, f"{url}{path}", data=data, headers=headers, auth=auth, timeout=5)


def refunds_path(order_id: str) -> str:
    return f"/ordermanagement/v1/orders/{order_id}/refunds"


def test_a_refund_is_201_with_its_id_and_location_and_no_body(server: tuple[KlarnaSimulator, str], sim: Any) -> None:
    order_id = sim.seed_payment(5_000, "EUR")["payment_id"]
    answer = call(server[1], "POST", refunds_path(order_id), {"refunded_amount": 1_200, "reference": "rf_x"})
    assert (answer.status_code, answer.content) == (201, b"")
    refund_id = answer.headers["Refund-Id"]
    assert answer.headers["Location"].endswith(f"{refunds_path(order_id)}/{refund_id}")
    read = call(server[1], "GET", f"{refunds_path(order_id)}/{refund_id}").json()
    assert (read["refunded_amount"], read["reference"]) == (1_200, "rf_x")
    order = call(server[1], "GET", f"/ordermanagement/v1/orders/{order_id}").json()
    assert (order["captured_amount"], order["refunded_amount"], order["purchase_currency"]) == (5_000, 1_200, "EUR")


@pytest.mark.parametrize(
    "body",
    [
        {"reference": "rf_no_amount"},
        {"refunded_amount": "1200"},
        {"refunded_amount": True},
        {"refunded_amount": -1},
        {"refunded_amount": 200_000_001},
        {"refunded_amount": 100, "reference": "r" * 256},
        {"refunded_amount": 100, "description": 7},
        {"refunded_amount": 100, "currency": "EUR"},
        {"refunded_amount": 100, "order_lines": [{}] * 1001},
        [100],
        b"{not json",
    ],
    ids=[
        "no-amount", "string-amount", "bool-amount", "negative", "above-max", "long-reference",
        "description-not-text", "unknown-field", "too-many-lines", "not-an-object", "not-json",
    ],
)  # fmt: skip
def test_a_body_that_is_not_a_refund_object_is_422_in_klarnas_shape(
    server: tuple[KlarnaSimulator, str], sim: KlarnaSimulator, body: Any
) -> None:
    order_id = sim.seed_payment(5_000, "EUR")["payment_id"]
    answer = call(server[1], "POST", refunds_path(order_id), body)
    assert answer.status_code == 422
    assert answer.json()["error_code"] == "UNPROCESSABLE_ENTITY"
    assert answer.json()["error_messages"]
    assert answer.json()["correlation_id"]
    assert sim.refunds() == []


def test_credentials_are_checked_and_orders_belong_to_their_merchant(
    server: tuple[KlarnaSimulator, str], sim: KlarnaSimulator
) -> None:
    order_id = sim.seed_payment(5_000, "EUR")["payment_id"]
    assert call(server[1], "GET", f"/ordermanagement/v1/orders/{order_id}", auth=("", "")).status_code == 401
    bad = call(server[1], "GET", f"/ordermanagement/v1/orders/{order_id}", auth=(DEFAULT_USERNAME, "wrong"))
    assert bad.status_code == 401
    elsewhere = call(server[1], "POST", refunds_path(order_id), {"refunded_amount": 100}, auth=OTHER)
    assert (elsewhere.status_code, elsewhere.json()["error_code"]) == (404, "NO_SUCH_ORDER")
    assert sim.refunds() == []


def test_a_key_answers_its_first_result_whatever_the_body_for_24_hours(
    server: tuple[KlarnaSimulator, str], sim: KlarnaSimulator
) -> None:
    order_id = sim.seed_payment(5_000, "EUR")["payment_id"]
    first = call(server[1], "POST", refunds_path(order_id), {"refunded_amount": 1_000}, key="k-1")
    # the same key with another body: Klarna disregards the body, only the key matters
    again = call(server[1], "POST", refunds_path(order_id), {"refunded_amount": 3_000}, key="k-1")
    assert again.headers["Refund-Id"] == first.headers["Refund-Id"]
    assert len(sim.refunds()) == 1
    # another merchant's same key is its own
    theirs = sim.seed_payment(5_000, "EUR", merchant=OTHER[0])["payment_id"]
    other = call(server[1], "POST", refunds_path(theirs), {"refunded_amount": 500}, key="k-1", auth=OTHER)
    assert other.status_code == 201
    assert other.headers["Refund-Id"] != first.headers["Refund-Id"]
    # after 24 hours the key is forgotten: the same request refunds again
    CLOCK.now += KEY_TTL_SECONDS
    late = call(server[1], "POST", refunds_path(order_id), {"refunded_amount": 1_000}, key="k-1")
    assert late.headers["Refund-Id"] != first.headers["Refund-Id"]
    assert [refund["refunded_amount"] for refund in sim.refunds()] == [1_000, 500, 1_000]


def test_a_refused_refund_keeps_its_answer_under_the_key(
    server: tuple[KlarnaSimulator, str], sim: KlarnaSimulator
) -> None:
    order_id = sim.seed_payment(1_000, "EUR")["payment_id"]
    over = call(server[1], "POST", refunds_path(order_id), {"refunded_amount": 1_001}, key="k-over")
    assert (over.status_code, over.json()["error_code"]) == (403, "REFUND_NOT_ALLOWED")
    assert call(server[1], "POST", refunds_path(order_id), {"refunded_amount": 1}, key="k-over").status_code == 403
    assert call(server[1], "POST", refunds_path(order_id), {"refunded_amount": 1}, key="k-new").status_code == 201


def test_klarna_holds_no_refund_open_and_takes_its_currencies_only(sim: KlarnaSimulator) -> None:
    with pytest.raises(ValueError, match="nothing to decide"):
        sim.settle_refund("any", True)
    with pytest.raises(ValueError, match="not a Klarna transaction currency"):
        sim.seed_payment(1_000, "JPY")
    api = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
    assert sim.local_secrets() == {"api": api, "verification": {}}


def test_faults_answer_in_klarnas_error_shape(server: tuple[KlarnaSimulator, str], sim: KlarnaSimulator) -> None:
    order_id = sim.seed_payment(1_000, "EUR")["payment_id"]
    sim.inject_fault("get_payment", "transient")
    answer = call(server[1], "GET", f"/ordermanagement/v1/orders/{order_id}")
    assert (answer.status_code, answer.json()["error_code"]) == (429, "TOO_MANY_REQUESTS")
    with pytest.raises(ValueError, match="unknown operation"):
        sim.inject_fault("verify_webhook", "transient")


def test_the_stack_builds_it_from_the_catalog_with_the_secrets_the_catalog_names() -> None:
    entry = catalog.platform("klarna")
    simulator = build_simulator(entry, "http://127.0.0.1:1/_sandbox/klarna")
    assert isinstance(simulator, KlarnaSimulator)
    assert simulator.public_url == "http://127.0.0.1:1/_sandbox/klarna"
    assert sorted(simulator.local_secrets()["api"]) == sorted(entry.secrets.api)
    assert entry.inbound is None
    assert entry.secrets.verification == []
