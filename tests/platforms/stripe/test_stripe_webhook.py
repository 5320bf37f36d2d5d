"""Stripe webhook verification and event parsing (R6, R7, R8) through its InboundPlatform: no network, a fixed
clock, the verification secret passed in per call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.stripe.inbound import StripeInbound
from refundflow.ports import ProviderEvent, ProviderRefundStatus

NOW = 1_800_000_000
SECRET = "whsec_current_0123456789abcdef"
OLD_SECRET = "whsec_previous_fedcba9876543210"


def sign(body: bytes, secret: str = SECRET, timestamp: int = NOW) -> str:
    """Stripe's documented scheme, computed independently of the code under test."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Receiver:
    """Stripe's InboundPlatform with the verification secret a deployment would pass in."""

    def __init__(self, secrets: list[str], tolerance: int) -> None:
        self.inbound = StripeInbound(tolerance_seconds=tolerance, now=lambda: float(NOW))
        self.secret = {"webhook_secrets": secrets}

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        delivery = self.inbound.verify(headers, body, self.secret)
        assert len(delivery.events) == 1
        assert delivery.answer.status == 200
        return delivery.events[0]


def provider(secrets: list[str] | None = None, tolerance: int = 300) -> Receiver:
    return Receiver(secrets or [SECRET], tolerance)


def refund_object(**overrides: Any) -> dict[str, Any]:
    refund = {
        "id": "re_123",
        "object": "refund",
        "amount": 1250,
        "currency": "eur",
        "status": "pending",
        "charge": "ch_123",
        "payment_intent": "pi_123",
        "metadata": {"refund_id": "rf_0123456789abcdef0123456789abcdef"},
        "failure_reason": None,
        "reason": "requested_by_customer",
        "created": NOW - 5,
        "balance_transaction": "txn_1",
    }
    refund.update(overrides)
    return refund


def event_body(event_type: str, obj: dict[str, Any], **extra: Any) -> bytes:
    event = {
        "id": "evt_123",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": NOW - 2,
        "data": {"object": obj, **extra},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_1", "idempotency_key": "rf_x:refund"},
        "type": event_type,
    }
    return json.dumps(event).encode()


BODY = event_body("refund.updated", refund_object(status="succeeded"), previous_attributes={"status": "pending"})


# ---------------------------------------------------------------- verification


def test_parse_webhook_accepts_a_correctly_signed_event() -> None:
    # GIVEN a refund.updated event signed with the endpoint's secret just now
    headers = {"Stripe-Signature": sign(BODY)}

    # WHEN it is parsed
    event = provider().parse_webhook(headers, BODY)

    # THEN it is reduced to the refund it carries
    assert event.provider is PaymentProvider.STRIPE
    assert (event.event_id, event.event_type) == ("evt_123", "refund.updated")
    assert event.occurred_at == datetime.fromtimestamp(NOW - 2, tz=UTC)
    assert event.payment is not None
    assert event.payment.payment_id == "pi_123"
    [refund] = event.refunds
    assert refund.provider_refund_id == "re_123"
    assert refund.amount == Money.of(1250, "EUR")
    assert refund.status is ProviderRefundStatus.SUCCEEDED
    assert refund.refund_id == "rf_0123456789abcdef0123456789abcdef"


def test_parse_webhook_finds_the_signature_header_whatever_its_case() -> None:
    # GIVEN the header name as an HTTP/2 proxy or API Gateway lower-cases it
    headers = {"stripe-signature": sign(BODY)}

    # WHEN / THEN it is found and verified
    assert provider().parse_webhook(headers, BODY).event_id == "evt_123"


def test_parse_webhook_rejects_a_body_with_one_flipped_byte() -> None:
    # GIVEN a valid signature for the original body, and a body with one bit changed
    tampered = bytearray(BODY)
    tampered[BODY.index(b"1250")] ^= 0x01

    # WHEN / THEN the signature no longer matches
    with pytest.raises(AuthenticationFailed, match="no Stripe-Signature v1 signature matches"):
        provider().parse_webhook({"Stripe-Signature": sign(BODY)}, bytes(tampered))


def test_parse_webhook_rejects_a_signature_made_with_another_secret() -> None:
    # GIVEN a delivery signed with a secret this endpoint does not have
    headers = {"Stripe-Signature": sign(BODY, secret="whsec_attacker_guess")}

    # WHEN / THEN
    with pytest.raises(AuthenticationFailed, match="matches"):
        provider().parse_webhook(headers, BODY)


def test_parse_webhook_rejects_a_delivery_without_signature_header() -> None:
    # GIVEN a body with no Stripe-Signature at all
    # WHEN / THEN the reason says so
    with pytest.raises(AuthenticationFailed, match="missing Stripe-Signature header"):
        provider().parse_webhook({"Content-Type": "application/json"}, BODY)


def test_parse_webhook_rejects_an_empty_body_under_a_real_signature() -> None:
    # GIVEN a signature taken from a genuine delivery, replayed with an empty body
    headers = {"Stripe-Signature": sign(BODY)}

    # WHEN / THEN
    with pytest.raises(AuthenticationFailed, match="matches"):
        provider().parse_webhook(headers, b"")


def test_parse_webhook_rejects_the_right_digest_in_base64_instead_of_hex() -> None:
    # GIVEN the correct HMAC, but base64-encoded as other platforms do
    digest = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).digest()
    headers = {"Stripe-Signature": f"t={NOW},v1={base64.b64encode(digest).decode()}"}

    # WHEN / THEN only Stripe's lowercase hex form counts
    with pytest.raises(AuthenticationFailed, match="matches"):
        provider().parse_webhook(headers, BODY)


def test_parse_webhook_rejects_the_right_digest_in_upper_case_hex() -> None:
    # GIVEN the correct digest with its hex digits upper-cased
    digest = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest().upper()

    # WHEN / THEN
    with pytest.raises(AuthenticationFailed, match="matches"):
        provider().parse_webhook({"Stripe-Signature": f"t={NOW},v1={digest}"}, BODY)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("v1=abc", "exactly one numeric t="),
        (f"t=abc,v1={'0' * 64}", "exactly one numeric t="),
        (f"t={NOW},t={NOW},v1={'0' * 64}", "exactly one numeric t="),
        (f"t={NOW}", "no v1 signature"),
        (f"t={NOW},v0={'0' * 64}", "no v1 signature"),
        ("garbage", "malformed Stripe-Signature element"),
        ("   ", "missing Stripe-Signature header"),
    ],
)
def test_parse_webhook_rejects_a_malformed_signature_header_with_its_reason(header: str, reason: str) -> None:
    # GIVEN a header that is not t=…,v1=…
    # WHEN / THEN the failure names what is wrong
    with pytest.raises(AuthenticationFailed, match=reason):
        provider().parse_webhook({"Stripe-Signature": header}, BODY)


def test_parse_webhook_rejects_a_signature_301_seconds_old() -> None:
    # GIVEN a genuine signature made 301 s ago (R7: a replay)
    headers = {"Stripe-Signature": sign(BODY, timestamp=NOW - 301)}

    # WHEN / THEN
    with pytest.raises(AuthenticationFailed, match="301s old"):
        provider().parse_webhook(headers, BODY)


def test_parse_webhook_rejects_a_signature_301_seconds_in_the_future() -> None:
    # GIVEN a genuine signature dated 301 s ahead (R7: the official SDK would accept it)
    headers = {"Stripe-Signature": sign(BODY, timestamp=NOW + 301)}

    # WHEN / THEN
    with pytest.raises(AuthenticationFailed, match="301s in the future"):
        provider().parse_webhook(headers, BODY)


@pytest.mark.parametrize("offset", [-300, 300])
def test_parse_webhook_accepts_a_signature_exactly_at_the_tolerance(offset: int) -> None:
    # GIVEN a signature 300 s off, in either direction
    headers = {"Stripe-Signature": sign(BODY, timestamp=NOW + offset)}

    # WHEN / THEN the tolerance is inclusive
    assert provider().parse_webhook(headers, BODY).event_id == "evt_123"


def test_parse_webhook_accepts_the_new_signature_while_stripe_still_signs_with_both_secrets() -> None:
    # GIVEN Stripe rolling the secret: the header carries v1 for the old and the new secret,
    # and this endpoint already has only the new one (R8)
    old, new = sign(BODY, secret=OLD_SECRET), sign(BODY, secret=SECRET)
    header = f"t={NOW},v1={old.split('v1=')[1]},v1={new.split('v1=')[1]}"

    # WHEN / THEN the delivery is accepted
    assert provider([SECRET]).parse_webhook({"Stripe-Signature": header}, BODY).event_id == "evt_123"


def test_parse_webhook_accepts_a_delivery_signed_with_the_previous_secret_during_rotation() -> None:
    # GIVEN an endpoint configured with the new and the old secret, and a delivery signed with the old
    headers = {"Stripe-Signature": sign(BODY, secret=OLD_SECRET)}

    # WHEN / THEN
    assert provider([SECRET, OLD_SECRET]).parse_webhook(headers, BODY).event_id == "evt_123"


def test_parse_webhook_rejects_the_previous_secret_once_it_is_removed() -> None:
    # GIVEN the rotation finished: only the new secret is configured
    headers = {"Stripe-Signature": sign(BODY, secret=OLD_SECRET)}

    # WHEN / THEN
    with pytest.raises(AuthenticationFailed):
        provider([SECRET]).parse_webhook(headers, BODY)


def test_parse_webhook_reports_malformed_json_after_a_valid_signature_as_invalid_request() -> None:
    # GIVEN a correctly signed body that is not JSON
    body = b'{"id": "evt_1", "object": "event",'

    # WHEN / THEN it is authentic but unusable
    with pytest.raises(InvalidRequest, match="not a Stripe event"):
        provider().parse_webhook({"Stripe-Signature": sign(body)}, body)


def test_parse_webhook_reports_json_that_is_not_an_event_as_invalid_request() -> None:
    # GIVEN a correctly signed JSON object of another kind
    body = json.dumps({"id": "re_1", "object": "refund"}).encode()

    # WHEN / THEN
    with pytest.raises(InvalidRequest, match="not a Stripe event"):
        provider().parse_webhook({"Stripe-Signature": sign(body)}, body)


def test_parse_webhook_reports_a_refund_event_without_amount_as_invalid_request() -> None:
    # GIVEN a signed refund.updated whose refund lacks its amount
    body = event_body("refund.updated", {k: v for k, v in refund_object().items() if k != "amount"})

    # WHEN / THEN
    with pytest.raises(InvalidRequest, match="amount"):
        provider().parse_webhook({"Stripe-Signature": sign(body)}, body)


# ---------------------------------------------------------------- event types


@pytest.mark.parametrize(
    ("event_type", "stripe_status", "expected"),
    [
        ("refund.created", "pending", ProviderRefundStatus.PENDING),
        ("refund.created", "requires_action", ProviderRefundStatus.PENDING),
        ("refund.updated", "succeeded", ProviderRefundStatus.SUCCEEDED),
        ("refund.updated", "canceled", ProviderRefundStatus.CANCELED),
        ("refund.failed", "failed", ProviderRefundStatus.FAILED),
    ],
)
def test_refund_events_carry_the_refund_with_our_status(
    event_type: str, stripe_status: str, expected: ProviderRefundStatus
) -> None:
    # GIVEN a signed refund event
    body = event_body(event_type, refund_object(status=stripe_status))

    # WHEN
    event = provider().parse_webhook({"Stripe-Signature": sign(body)}, body)

    # THEN
    assert event.event_type == event_type
    assert [refund.status for refund in event.refunds] == [expected]


def test_refund_failed_event_carries_the_failure_reason() -> None:
    # GIVEN a refund that failed after it looked successful
    body = event_body("refund.failed", refund_object(status="failed", failure_reason="expired_or_canceled_card"))

    # WHEN
    [refund] = provider().parse_webhook({"Stripe-Signature": sign(body)}, body).refunds

    # THEN
    assert refund.status is ProviderRefundStatus.FAILED
    assert refund.failure_reason == "expired_or_canceled_card"


def test_refund_event_in_a_zero_decimal_currency_keeps_the_amount() -> None:
    # GIVEN a JPY refund: Stripe's unit is the yen, as ours
    body = event_body("refund.created", refund_object(amount=500, currency="jpy"))

    # WHEN
    [refund] = provider().parse_webhook({"Stripe-Signature": sign(body)}, body).refunds

    # THEN
    assert refund.amount == Money.of(500, "JPY")


def test_refund_of_a_charge_without_payment_intent_names_the_charge() -> None:
    # GIVEN a refund of a legacy Charge (no PaymentIntent)
    body = event_body("refund.created", refund_object(payment_intent=None))

    # WHEN
    event = provider().parse_webhook({"Stripe-Signature": sign(body)}, body)

    # THEN
    assert event.payment is not None
    assert event.payment.payment_id == "ch_123"
    assert event.refunds[0].payment_id == "ch_123"


def charge_object(**overrides: Any) -> dict[str, Any]:
    charge = {
        "id": "ch_123",
        "object": "charge",
        "amount": 5000,
        "amount_captured": 5000,
        "amount_refunded": 1250,
        "captured": True,
        "currency": "eur",
        "status": "succeeded",
        "payment_intent": "pi_123",
        "refunded": False,
    }
    charge.update(overrides)
    return charge


def test_charge_refunded_without_refund_list_names_the_payment_only() -> None:
    # GIVEN charge.refunded as current API versions send it: no embedded refunds
    body = event_body("charge.refunded", charge_object())

    # WHEN
    event = provider().parse_webhook({"Stripe-Signature": sign(body)}, body)

    # THEN the payment is known, the refunds must be fetched
    assert event.event_type == "charge.refunded"
    assert event.payment is not None
    assert event.payment.payment_id == "pi_123"
    assert event.refunds == []


def test_charge_refunded_with_an_embedded_refund_list_carries_those_refunds() -> None:
    # GIVEN charge.refunded from an API version before 2022-11-15, with refunds embedded
    refunds = {"object": "list", "data": [refund_object(status="succeeded")], "has_more": False}
    body = event_body("charge.refunded", charge_object(refunds=refunds))

    # WHEN
    event = provider().parse_webhook({"Stripe-Signature": sign(body)}, body)

    # THEN
    assert [(refund.provider_refund_id, refund.status) for refund in event.refunds] == [
        ("re_123", ProviderRefundStatus.SUCCEEDED)
    ]


def test_other_event_types_carry_no_refunds() -> None:
    # GIVEN an event refundflow does not act on
    body = event_body("payment_intent.succeeded", {"id": "pi_999", "object": "payment_intent", "amount": 100})

    # WHEN
    event = provider().parse_webhook({"Stripe-Signature": sign(body)}, body)

    # THEN it is verified and passed on, empty
    assert (event.event_type, event.refunds, event.payment and event.payment.payment_id) == (
        "payment_intent.succeeded",
        [],
        "pi_999",
    )


def test_customer_event_has_neither_refunds_nor_payment() -> None:
    # GIVEN an event about another kind of object
    body = event_body("customer.created", {"id": "cus_1", "object": "customer"})

    # WHEN
    event = provider().parse_webhook({"Stripe-Signature": sign(body)}, body)

    # THEN
    assert (event.refunds, event.payment) == ([], None)
