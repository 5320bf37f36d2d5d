"""Braintree's webhooks: bt_signature over bt_payload verified as the official SDKs do (interoperably: a sample the
official SDK signed verifies here), refused when forged, signed with another key, unsigned or malformed; refund
notifications become news naming our refund, every other kind is accepted without an event."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from local.simulators.braintree import DEFAULT_PRIVATE_KEY, DEFAULT_PUBLIC_KEY, BraintreeSimulator
from refundflow.api import RefundRequestBody
from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.platforms.braintree import webhooks
from refundflow.platforms.braintree.inbound import BraintreeInbound
from refundflow.ports import ProviderRefundStatus

EVENTS = Path(__file__).resolve().parents[3] / "events" / "braintree"
KEY = webhooks.hmac_key_of(DEFAULT_PRIVATE_KEY)
SECRET = {"signing_keys": [f"{DEFAULT_PUBLIC_KEY}|{KEY}"]}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OUR_REFUND = "rf_2f9a6c3be1d04d7f8a5b9c0d1e2f3a4b"


def body_of(name: str) -> bytes:
    return urlencode(json.loads((EVENTS / name).read_text())).encode()


def signed(xml: str, public_key: str = DEFAULT_PUBLIC_KEY, hex_key: str = KEY, *, extra: str = "") -> bytes:
    payload = base64.encodebytes(xml.encode())
    pair = webhooks.sign(payload, public_key, hex_key)
    return urlencode({"bt_signature": f"{extra}{pair}", "bt_payload": payload.decode()}).encode()


def refund_xml(kind: str, status: str = "settled", order_id: str = OUR_REFUND) -> str:
    return BraintreeSimulator().notification_xml(
        kind,
        {
            "legacyId": "r7k2m9q1",
            "status": status.upper(),
            "amount": {"value": "12.34", "currencyCode": "EUR"},
            "orderId": order_id,
            "refundedTransactionId": "t4x8n2p6",
        },
    )


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("braintree_refund_transaction_settled.json", ProviderRefundStatus.SUCCEEDED),
        ("braintree_refund_transaction_settlement_declined.json", ProviderRefundStatus.FAILED),
        ("braintree_refund_refund_failed.json", ProviderRefundStatus.FAILED),
    ],
)
def test_the_refund_samples_verify_and_name_our_refund(name: str, status: ProviderRefundStatus) -> None:
    delivery = BraintreeInbound().verify(FORM, body_of(name), SECRET)
    (event,) = delivery.events
    (refund,) = event.refunds
    assert (refund.provider_refund_id, refund.refund_id, refund.status) == ("r7k2m9q1", OUR_REFUND, status)
    assert str(refund.amount) == "45.00 EUR"
    assert event.payment is not None
    assert event.payment.locator == {"id_type": "legacy"}
    assert (delivery.answer.status, delivery.answer.body) == (200, "OK")


def test_a_notification_the_official_sdk_signed_verifies_here() -> None:
    # GIVEN samples built by the official braintree SDK's WebhookTesting with the local stack's key pair
    for name in ("braintree_sdk_sample_transaction_settled.json", "braintree_sdk_sample_check.json"):
        # WHEN verified / THEN accepted; a sale settling and a URL check carry no refund news
        assert BraintreeInbound().verify(FORM, body_of(name), SECRET).events == []
    payload = webhooks.verify(body_of("braintree_sdk_sample_transaction_settled.json"), webhooks.signing_keys(SECRET))
    told = webhooks.notification(payload)
    assert told.kind == "transaction_settled"
    assert told.transaction is not None
    assert (told.transaction.id, told.transaction.type) == ("a1b2c3d4", "sale")


def test_the_sample_refund_request_is_a_valid_body() -> None:
    body = RefundRequestBody.model_validate(
        json.loads((EVENTS / "braintree_refund_request_legacy_id.json").read_text())
    )
    assert body.payment.locator == {"id_type": "legacy"}


def test_a_forged_payload_is_refused() -> None:
    genuine = signed(refund_xml("transaction_settled"))
    forged_xml = refund_xml("transaction_settled").replace("12.34", "99.34")
    payload = base64.encodebytes(forged_xml.encode()).decode()
    fields = dict(pair.split("=", 1) for pair in genuine.decode().split("&"))
    forged = f"bt_signature={fields['bt_signature']}&" + urlencode({"bt_payload": payload})
    with pytest.raises(AuthenticationFailed):
        BraintreeInbound().verify(FORM, forged.encode(), SECRET)


def test_another_key_or_another_public_key_is_refused() -> None:
    xml = refund_xml("transaction_settled")
    with pytest.raises(AuthenticationFailed, match="does not match"):
        BraintreeInbound().verify(FORM, signed(xml, hex_key="0" * 40), SECRET)
    with pytest.raises(AuthenticationFailed, match="no public key"):
        BraintreeInbound().verify(FORM, signed(xml, public_key="otherpk"), SECRET)


def test_while_keys_rotate_either_verifies_and_pairs_for_other_keys_are_skipped() -> None:
    xml = refund_xml("transaction_settled")
    rotating = {"signing_keys": [f"oldpk|{'1' * 40}", f"{DEFAULT_PUBLIC_KEY}|{KEY}"]}
    delivery = BraintreeInbound().verify(FORM, signed(xml, extra=f"oldpk|{'f' * 40}&"), rotating)
    assert len(delivery.events) == 1


def test_a_payload_signed_with_its_trailing_newline_verifies_as_the_sdks_accept() -> None:
    payload = base64.encodebytes(refund_xml("transaction_settled").encode()).rstrip(b"\n")
    pair = webhooks.sign(payload + b"\n", DEFAULT_PUBLIC_KEY, KEY)
    body = urlencode({"bt_signature": pair, "bt_payload": payload.decode()}).encode()
    assert len(BraintreeInbound().verify(FORM, body, SECRET).events) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"bt_payload=abc",
        b"bt_signature=x%7Cy",
        b"bt_signature=a&bt_signature=b&bt_payload=abc",
        b"not a form at all \xff",
        urlencode({"bt_signature": "p|s", "bt_payload": "<notification/>"}).encode(),
    ],
)
def test_unsigned_or_malformed_deliveries_are_refused(body: bytes) -> None:
    with pytest.raises(AuthenticationFailed):
        BraintreeInbound().verify(FORM, body, SECRET)


def test_a_signed_payload_that_is_no_notification_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        BraintreeInbound().verify(FORM, signed("<html>nope</html>"), SECRET)


def test_the_same_notification_twice_has_one_event_id_and_another_kind_another() -> None:
    xml = refund_xml("transaction_settled")
    first = BraintreeInbound().verify(FORM, signed(xml), SECRET).events[0]
    again = BraintreeInbound().verify(FORM, signed(xml), SECRET).events[0]
    failed = BraintreeInbound().verify(FORM, signed(refund_xml("refund_failed", "processor_declined")), SECRET)
    assert first.event_id == again.event_id
    assert failed.events[0].event_id != first.event_id
    assert failed.events[0].refunds[0].failure_reason == "refund_failed: processor_declined"


def test_a_refund_not_made_by_refundflow_carries_no_refund_id() -> None:
    (event,) = (
        BraintreeInbound().verify(FORM, signed(refund_xml("transaction_settled", order_id="ORD-77")), SECRET).events
    )
    assert event.refunds[0].refund_id is None


@pytest.mark.parametrize(
    "secret",
    [
        {},
        {"signing_keys": "pk|abc"},
        {"signing_keys": [DEFAULT_PRIVATE_KEY]},
        {"signing_keys": [f"pk|{DEFAULT_PRIVATE_KEY}"]},
    ],
)
def test_a_verification_secret_of_another_shape_is_a_configuration_error(secret: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        BraintreeInbound().verify(FORM, signed(refund_xml("transaction_settled")), secret)


def test_the_simulators_deliveries_verify_with_its_local_secret() -> None:
    simulator = BraintreeSimulator()
    secret = simulator.local_secrets()["verification"]
    assert secret == SECRET
    assert DEFAULT_PRIVATE_KEY not in json.dumps(secret)


def test_an_old_notification_still_verifies_and_is_known_again_by_its_event_id() -> None:
    # Braintree signs no separate time and retries for hours: a year-old delivery is not refused as stale; what
    # keeps a replay harmless is its event id (kind, subject, timestamp) and the refund read back from the API.
    old = re.sub(r"<timestamp([^>]*)>[^<]+<", r"<timestamp\1>2025-01-02T03:04:05Z<", refund_xml("transaction_settled"))
    first = BraintreeInbound().verify(FORM, signed(old), SECRET).events[0]
    replay = BraintreeInbound().verify(FORM, signed(old), SECRET).events[0]
    assert first.occurred_at.year == 2025
    assert first.event_id == replay.event_id
