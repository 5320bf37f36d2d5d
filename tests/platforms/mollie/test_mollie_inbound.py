"""Mollie's webhooks at intake: next-gen events verified by X-Mollie-Signature (good, forged, another secret, two
secrets while rotating, none configured, a duplicate), and classic unsigned calls bounded to a payment id that is
news only (never a refund, an amount or a status), coalesced per payment, and refused in any other shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from local.simulators.mollie import DEFAULT_API_KEY, DEFAULT_SIGNING_SECRET, MANUAL, MollieSimulator
from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.mollie.inbound import MollieInbound
from refundflow.ports import ProviderRefundStatus
from tests.platforms.mollie import contract

SECRET = {"signing_secrets": [DEFAULT_SIGNING_SECRET]}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def refund_events(succeeded: bool = True) -> tuple[MollieSimulator, list[dict[str, Any]]]:
    """A refund of 25.00 made and decided at the simulator (in process): its next-gen events."""
    simulator = MollieSimulator(settle_after_seconds=None)
    payment = simulator.seed_payment(10_000, "EUR", behaviour=MANUAL)["payment_id"]
    answer = Client(simulator).post(
        f"/v2/payments/{payment}/refunds",
        json={"amount": {"currency": "EUR", "value": "25.00"}, "metadata": {"refund_id": "rf_0123"}},
        headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
    )
    assert answer.status_code == 201
    simulator.settle_refund(answer.json["id"], succeeded)
    return simulator, list(simulator.events)


def signed(
    simulator: MollieSimulator, event: dict[str, Any], secret: str = DEFAULT_SIGNING_SECRET
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(event).encode()
    return {"Content-Type": "application/json", **simulator.sign_webhook(body, secret)}, body


# ------------------------------------------------------------------ next-gen


def test_a_signed_refund_event_verifies_and_carries_the_refund() -> None:
    simulator, (made, decided) = refund_events()
    assert contract.event_errors(made) == []
    assert contract.event_errors(decided) == []
    delivery = MollieInbound().verify(*signed(simulator, decided), SECRET)
    (event,) = delivery.events
    (refund,) = event.refunds
    assert (event.event_id, event.event_type) == (decided["id"], "refund.refunded")
    assert (refund.status, refund.amount, refund.refund_id) == (
        ProviderRefundStatus.SUCCEEDED,
        Money.of(2_500, "EUR"),
        "rf_0123",
    )
    assert event.payment is not None
    assert event.payment.payment_id == refund.payment_id
    assert delivery.answer.status == 200


def test_a_failed_refund_event_says_failed() -> None:
    simulator, (_, decided) = refund_events(succeeded=False)
    (event,) = MollieInbound().verify(*signed(simulator, decided), SECRET).events
    assert event.refunds[0].status is ProviderRefundStatus.FAILED


def test_forged_or_otherwise_signed_events_are_refused() -> None:
    simulator, (_, decided) = refund_events()
    headers, body = signed(simulator, decided)
    with pytest.raises(AuthenticationFailed):
        MollieInbound().verify(headers, body.replace(b'"25.00"', b'"95.00"'), SECRET)
    with pytest.raises(AuthenticationFailed):
        MollieInbound().verify(*signed(simulator, decided, "another-secret"), SECRET)
    with pytest.raises(AuthenticationFailed):
        MollieInbound().verify({**headers, "X-Mollie-Signature": "sha256="}, body, SECRET)
    with pytest.raises(AuthenticationFailed):  # a signed delivery, and intake holds no secret for it
        MollieInbound().verify(headers, body, {"signing_secrets": []})
    with pytest.raises(ConfigurationError):
        MollieInbound().verify(headers, body, {"signing_secrets": "not-a-list"})


def test_while_a_secret_rotates_either_signature_verifies() -> None:
    simulator, (_, decided) = refund_events()
    headers, body = signed(simulator, decided, "new-secret")
    old = simulator.sign_webhook(body, DEFAULT_SIGNING_SECRET)["X-Mollie-Signature"]
    both = {**headers, "X-Mollie-Signature": f"{old}, {headers['X-Mollie-Signature']}"}
    assert MollieInbound().verify(both, body, {"signing_secrets": ["new-secret"]}).events
    assert MollieInbound().verify(headers, body, {"signing_secrets": [DEFAULT_SIGNING_SECRET, "new-secret"]}).events


def test_a_redelivered_event_is_the_same_event() -> None:
    simulator, (_, decided) = refund_events()
    first = MollieInbound().verify(*signed(simulator, decided), SECRET).events[0]
    again = MollieInbound().verify(*signed(simulator, decided), SECRET).events[0]
    assert first.event_id == again.event_id == decided["id"]


def test_payment_events_name_the_payment_and_other_events_are_acknowledged() -> None:
    simulator, (made, _) = refund_events()
    paid = {**made, "type": "payment.paid", "entityId": made["_embedded"]["entity"]["paymentId"], "_embedded": None}
    (event,) = MollieInbound().verify(*signed(simulator, paid), SECRET).events
    assert event.refunds == []
    assert event.payment is not None
    assert event.payment.payment_id == paid["entityId"]
    link = {**made, "type": "payment-link.paid", "entityId": "pl_qng5gbbv8NAZ5gpM5ZYgx", "_embedded": None}
    assert MollieInbound().verify(*signed(simulator, link), SECRET).events == []


def test_a_signed_body_that_is_not_a_refund_event_is_invalid() -> None:
    simulator, (made, _) = refund_events()
    with pytest.raises(InvalidRequest):
        MollieInbound().verify(*signed(simulator, {"resource": "payment", "id": "tr_x"}), SECRET)
    broken = {**made, "_embedded": {"entity": {**made["_embedded"]["entity"], "amount": {"value": 25}}}}
    with pytest.raises(InvalidRequest):
        MollieInbound().verify(*signed(simulator, broken), SECRET)


# ------------------------------------------------------------------ classic (unsigned)


def test_a_classic_call_is_a_payment_to_look_at_and_nothing_more() -> None:
    delivery = MollieInbound(now=lambda: 1_000.0).verify(FORM, b"id=tr_WDqYK6vllg", SECRET)
    (event,) = delivery.events
    assert event.provider is PaymentProvider.MOLLIE
    assert event.payment is not None
    assert event.payment.payment_id == "tr_WDqYK6vllg"
    assert (event.refunds, event.payments) == ([], [])
    assert delivery.answer.status == 200


def test_classic_calls_about_one_payment_are_coalesced_per_window() -> None:
    clock = [1_000.0]
    inbound = MollieInbound(now=lambda: clock[0], coalesce_seconds=5.0)
    first = inbound.verify(FORM, b"id=tr_WDqYK6vllg", SECRET).events[0].event_id
    clock[0] = 1_004.0
    same = inbound.verify(FORM, b"id=tr_WDqYK6vllg", SECRET).events[0].event_id
    other = inbound.verify(FORM, b"id=tr_Other00001", SECRET).events[0].event_id
    clock[0] = 1_005.0
    later = inbound.verify(FORM, b"id=tr_WDqYK6vllg", SECRET).events[0].event_id
    assert first == same
    assert len({first, other, later}) == 3


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"id": "tr_WDqYK6vllg"}',
        b"id=tr_WDqYK6vllg&status=paid",
        b"id=tr_WDqYK6vllg&id=tr_Other00001",
        b"id=",
        b"id=tr_../../v2/refunds",
        b"id=tr_" + b"a" * 200,
        b"\xff\xfe",
    ],
    ids=["empty", "json", "extra-field", "two-ids", "no-id", "path", "too-long", "not-ascii"],
)
def test_anything_else_unsigned_is_refused(body: bytes) -> None:
    with pytest.raises(AuthenticationFailed):
        MollieInbound().verify(FORM, body, SECRET)


def test_classic_calls_about_other_objects_are_acknowledged_as_nothing() -> None:
    assert MollieInbound().verify(FORM, b"id=ord_kEn1PlbGa", SECRET).events == []
