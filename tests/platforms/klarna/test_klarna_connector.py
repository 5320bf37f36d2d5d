"""KlarnaRefundProvider against the Klarna simulator over real HTTP: the requests it sends, several partials and an
over-refund, the error set, answers lost after Klarna refunded, and the order read as Klarna documents it."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from local.simulators.base import FaultRule
from local.simulators.klarna import DEFAULT_PASSWORD, DEFAULT_USERNAME, KlarnaSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import (
    AlreadyDoneError,
    AmountNotRepresentable,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.klarna.connector import KlarnaRefundProvider, klarna_key
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.support.servers import serve_wsgi

EVENTS = Path(__file__).resolve().parents[3] / "events" / "klarna"
REFUNDS = r"^/ordermanagement/v1/orders/[^/]+/refunds$"
ORDER = r"^/ordermanagement/v1/orders/[^/]+$"

# Klarna's RefundObject as its Order Management reference documents it (no official spec file is in the shared
# contracts): every refund request the connector sends must be one.
REFUND_OBJECT = {
    "type": "object",
    "required": ["refunded_amount"],
    "additionalProperties": False,
    "properties": {
        "refunded_amount": {"type": "integer", "minimum": 0, "maximum": 200_000_000},
        "description": {"type": "string", "maxLength": 255},
        "reference": {"type": "string", "maxLength": 255},
        "order_lines": {"type": "array", "maxItems": 1000, "items": {"type": "object"}},
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[KlarnaSimulator, str]]:
    simulator = KlarnaSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(server: tuple[KlarnaSimulator, str]) -> Iterator[KlarnaSimulator]:
    simulator = server[0]
    simulator.reset_state()
    simulator.faults.clear()
    simulator.requests_seen.clear()
    simulator.processing_gate = None
    yield simulator
    # THEN (every test) each refund request sent was a RefundObject as Klarna documents it
    for seen in simulator.requests_seen:
        if seen["method"] == "POST":
            jsonschema.validate(json.loads(seen["body"]), REFUND_OBJECT)


def make_provider(url: str, password: str = DEFAULT_PASSWORD, read_timeout: float = 30.0) -> KlarnaRefundProvider:
    http = HttpClient(platform="klarna", base_url=url, timeout=(2.0, read_timeout))
    return KlarnaRefundProvider(username=DEFAULT_USERNAME, password=password, http=http)


@pytest.fixture
def provider(server: tuple[KlarnaSimulator, str], simulator: KlarnaSimulator) -> KlarnaRefundProvider:
    return make_provider(server[1])


def order(simulator: KlarnaSimulator, minor: int = 10_000, currency: str = "EUR", **seed: Any) -> PaymentReference:
    seeded = simulator.seed_payment(minor, currency, **seed)
    return PaymentReference(provider=PaymentProvider.KLARNA, payment_id=seeded["payment_id"])


def request(payment: PaymentReference, amount: Money, refund_id: str | None = None) -> ProviderRefundRequest:
    refund_id = refund_id or f"rf_{uuid.uuid4().hex}"
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=amount,
        reason=RefundReason.PRODUCT_RETURN,
        idempotency_key=f"{refund_id}:refund",
    )


def posts(simulator: KlarnaSimulator) -> list[dict[str, Any]]:
    return [seen for seen in simulator.requests_seen if seen["method"] == "POST"]


# ---------------------------------------------------------------- what is sent


def test_a_refund_is_posted_on_the_order_with_basic_auth_a_uuid_key_and_our_reference(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    # GIVEN a captured order of 100.00 SEK
    payment = order(simulator, 10_000, "SEK")
    ask = request(payment, Money.of(2_550, "SEK"))
    # WHEN 25.50 SEK is refunded
    made = provider.create_refund(ask)
    # THEN Klarna got minor units, our refund id as the reference, a UUIDv5 of our key, Basic credentials
    (sent,) = posts(simulator)
    assert sent["path"] == f"/ordermanagement/v1/orders/{payment.payment_id}/refunds"
    assert json.loads(sent["body"]) == {
        "refunded_amount": 2_550,
        "description": "Refund for your returned items",
        "reference": ask.refund_id,
    }
    key = sent["headers"]["Klarna-Idempotency-Key"]
    assert uuid.UUID(key).version == 5
    assert key == klarna_key(ask.idempotency_key) != klarna_key(f"{ask.refund_id}:other")
    expected = base64.b64encode(f"{DEFAULT_USERNAME}:{DEFAULT_PASSWORD}".encode()).decode()
    assert sent["headers"]["Authorization"] == f"Basic {expected}"
    # AND the refund is made (Klarna's 201), with Klarna's id, exactly the amount asked
    (held,) = simulator.refunds()
    assert (made.provider_refund_id, made.status, made.amount, made.refund_id) == (
        held["refund_id"],
        ProviderRefundStatus.SUCCEEDED,
        Money.of(2_550, "SEK"),
        ask.refund_id,
    )


def test_several_partials_add_up_and_an_over_refund_is_refused_without_a_refund(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    # GIVEN 30.00 then 45.00 refunded of a 100.00 EUR order
    payment = order(simulator)
    provider.create_refund(request(payment, Money.of(3_000, "EUR")))
    provider.create_refund(request(payment, Money.of(4_500, "EUR")))
    seen = provider.get_payment(payment)
    assert (seen.captured, seen.refunded) == (Money.of(10_000, "EUR"), Money.of(7_500, "EUR"))
    # WHEN 25.01 is asked (one cent more than is left)
    with pytest.raises(RejectedError) as refused:
        provider.create_refund(request(payment, Money.of(2_501, "EUR")))
    # THEN it is refused as an over-refund (Klarna's REFUND_NOT_ALLOWED, named from the order), nothing moved
    assert refused.value.code == "amount_exceeds_refundable"
    assert "REFUND_NOT_ALLOWED" in refused.value.message
    assert [refund["refunded_amount"] for refund in simulator.refunds()] == [3_000, 4_500]
    # AND exactly what is left still refunds
    assert provider.create_refund(request(payment, Money.of(2_500, "EUR"))).amount == Money.of(2_500, "EUR")
    assert provider.get_payment(payment).refunded == Money.of(10_000, "EUR")


def test_a_fully_refunded_order_is_already_done(provider: KlarnaRefundProvider, simulator: KlarnaSimulator) -> None:
    payment = order(simulator, 5_000)
    provider.create_refund(request(payment, Money.of(5_000, "EUR")))
    with pytest.raises(AlreadyDoneError) as done:
        provider.create_refund(request(payment, Money.of(100, "EUR")))
    assert done.value.code == "already_refunded"
    assert len(simulator.refunds()) == 1


def test_an_order_with_nothing_captured_is_refused_at_look_up_and_at_refund(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    # GIVEN an order only authorised (goods not shipped, nothing captured)
    payment = order(simulator, settled=False)
    # WHEN it is read or refunded THEN both refuse it as not captured
    with pytest.raises(RejectedError) as looked_up:
        provider.get_payment(payment)
    with pytest.raises(RejectedError) as refunded:
        provider.create_refund(request(payment, Money.of(1_000, "EUR")))
    assert looked_up.value.code == refunded.value.code == "payment_not_captured"
    assert "Order has no captures" in refunded.value.message
    assert simulator.refunds() == []


def test_a_cancelled_order_is_refused_with_klarnas_reason(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    payment = order(simulator)
    simulator.cancel_order(payment.payment_id)
    with pytest.raises(RejectedError) as refused:
        provider.create_refund(request(payment, Money.of(1_000, "EUR")))
    assert refused.value.code == "refund_not_allowed"


def test_an_unknown_order_is_missing_and_bad_credentials_are_refused(
    server: tuple[KlarnaSimulator, str], provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    nowhere = PaymentReference(provider=PaymentProvider.KLARNA, payment_id=str(uuid.uuid4()))
    with pytest.raises(NotFound):
        provider.get_payment(nowhere)
    with pytest.raises(RejectedError) as missing:
        provider.create_refund(request(nowhere, Money.of(1_000, "EUR")))
    assert missing.value.code == "resource_missing"
    with pytest.raises(RejectedError) as denied:
        make_provider(server[1], password="not-the-password").create_refund(
            request(order(simulator), Money.of(1_000, "EUR"))
        )
    assert denied.value.code == "provider_authentication_failed"
    assert simulator.refunds() == []


# ---------------------------------------------------------------- errors in the small set


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, TransientError, "rate_limited"),
        (409, TransientError, "conflict"),
        (500, OutcomeUnknownError, "outcome_unknown"),
        (503, OutcomeUnknownError, "outcome_unknown"),
        (413, RejectedError, "klarna_request_too_large"),
        (422, RejectedError, "klarna_unprocessable_entity"),
    ],
)
def test_refund_errors_map_to_the_small_set(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator, status: int, kind: type[Exception], code: str
) -> None:
    payment = order(simulator)
    codes = {409: "CONFLICT", 413: "REQUEST_TOO_LARGE", 422: "UNPROCESSABLE_ENTITY"}
    body = {"error_code": codes[status], "error_messages": ["x"], "correlation_id": "c-1"} if status in codes else None
    simulator.add_fault(FaultRule(method="POST", path=REFUNDS, status=status, body=body, headers={"Retry-After": "7"}))
    with pytest.raises(kind) as raised:
        provider.create_refund(request(payment, Money.of(1_000, "EUR")))
    assert getattr(raised.value, "code", None) == code
    if status == 429:
        assert isinstance(raised.value, TransientError)
        assert raised.value.retry_after_seconds == 7.0


def test_a_read_that_fails_on_klarnas_side_is_transient_never_unknown(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    payment = order(simulator)
    simulator.add_fault(FaultRule(method="GET", path=ORDER, status=503))
    with pytest.raises(TransientError):
        provider.get_payment(payment)
    assert provider.get_payment(payment).captured == Money.of(10_000, "EUR")


def test_a_repeat_while_the_first_is_processed_is_a_conflict_then_the_one_refund(
    server: tuple[KlarnaSimulator, str], provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    # GIVEN a refund request Klarna is still processing
    payment = order(simulator)
    ask = request(payment, Money.of(1_000, "EUR"))
    simulator.processing_gate = threading.Event()
    first: list[Any] = []
    worker = threading.Thread(
        target=lambda: first.append(make_provider(server[1], read_timeout=10.0).create_refund(ask))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not simulator._in_flight and time.monotonic() < deadline:
        time.sleep(0.005)
    # WHEN the same key is sent again meanwhile THEN Klarna's 409 is transient
    try:
        with pytest.raises(TransientError) as conflict:
            provider.create_refund(ask)
    finally:
        simulator.processing_gate.set()
        worker.join(timeout=10)
    assert conflict.value.code == "conflict"
    # AND a retry afterwards answers the one refund made
    assert provider.create_refund(ask).provider_refund_id == first[0].provider_refund_id
    assert len(simulator.refunds()) == 1


# ---------------------------------------------------------------- answers lost after Klarna refunded


def test_a_server_error_after_the_refund_is_unknown_then_found_by_our_reference_and_resent_safely(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    # GIVEN Klarna makes the refund, then answers 500
    payment = order(simulator)
    ask = request(payment, Money.of(4_000, "EUR"))
    simulator.add_fault(FaultRule(method="POST", path=REFUNDS, status=500, when="after"))
    with pytest.raises(OutcomeUnknownError):
        provider.create_refund(ask)
    # WHEN it is looked up by our reference THEN it is the refund made
    found = provider.find_refund(ask.refund_id, payment)
    assert found is not None
    assert (found.amount, found.refund_id, found.status) == (Money.of(4_000, "EUR"), ask.refund_id, "succeeded")
    # AND a resend under the same key within its 24 hours answers that refund, never a second one
    assert provider.create_refund(ask).provider_refund_id == found.provider_refund_id
    assert len(simulator.refunds()) == 1
    assert provider.find_refund(f"rf_{uuid.uuid4().hex}", payment) is None


def test_a_201_without_the_refund_id_is_unknown(provider: KlarnaRefundProvider, simulator: KlarnaSimulator) -> None:
    payment = order(simulator)
    ask = request(payment, Money.of(1_000, "EUR"))
    simulator.add_fault(FaultRule(method="POST", path=REFUNDS, status=201, body={}, when="after"))
    with pytest.raises(OutcomeUnknownError):
        provider.create_refund(ask)
    assert provider.find_refund(ask.refund_id, payment) is not None


def test_the_refund_id_is_read_from_location_when_refund_id_is_missing(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    payment = order(simulator)
    location = f"https://api.playground.klarna.com/ordermanagement/v1/orders/{payment.payment_id}/refunds/r-42"
    simulator.add_fault(FaultRule(method="POST", path=REFUNDS, status=201, body="", headers={"Location": location}))
    assert provider.create_refund(request(payment, Money.of(1_000, "EUR"))).provider_refund_id == "r-42"


# ---------------------------------------------------------------- reading back


def test_a_refund_reads_back_and_the_orders_currency_is_read_once(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    payment = order(simulator, 9_900, "NOK")
    made = provider.create_refund(request(payment, Money.of(990, "NOK")))
    first = provider.get_refund(made.provider_refund_id, payment)
    second = provider.get_refund(made.provider_refund_id, payment)
    assert first == second
    assert (first.amount, first.status) == (Money.of(990, "NOK"), ProviderRefundStatus.SUCCEEDED)
    order_reads = [seen for seen in simulator.requests_seen if seen["method"] == "GET" and seen["path"].count("/") == 4]
    assert len(order_reads) == 1
    with pytest.raises(NotFound):
        provider.get_refund(str(uuid.uuid4()), payment)


def test_the_documented_order_shape_is_read_as_captured_and_refunded(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    # GIVEN Klarna answering the order as its reference shows it (the sample in events/klarna)
    sample = json.loads((EVENTS / "klarna_order_part_refunded.json").read_text())
    simulator.add_fault(FaultRule(method="GET", path=ORDER, status=200, body=sample, times=2))
    payment = PaymentReference(provider=PaymentProvider.KLARNA, payment_id=sample["order_id"])
    # WHEN it is read THEN the figures are exact, and our refund is found by its reference
    seen = provider.get_payment(payment)
    assert (seen.captured, seen.refunded, seen.status) == (Money.of(12_000, "SEK"), Money.of(4_500, "SEK"), "CAPTURED")
    found = provider.find_refund("rf_2f9a6c3be1d04d7f8a5b9c0d1e2f3a4b", payment)
    assert found is not None
    assert found.provider_refund_id == "b2cb4f2e-2781-4359-80ad-555735ebb8d8"


def test_a_currency_klarna_does_not_take_is_never_sent(
    provider: KlarnaRefundProvider, simulator: KlarnaSimulator
) -> None:
    payment = order(simulator)
    for money in (Money.of(1_000, "JPY"), Money.of(1_000, "KWD"), Money.of(200_000_001, "EUR")):
        with pytest.raises(AmountNotRepresentable):
            provider.create_refund(request(payment, money))
    assert posts(simulator) == []
