"""Chargebee's webhooks: the sender authenticated by the webhook's Basic credentials (several while rotating), the
body taken as news naming an invoice and nothing more; the samples in events/chargebee/ read as such."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from local.simulators.chargebee import DEFAULT_WEBHOOK_AUTH
from refundflow.api import RefundRequestBody
from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.models import PaymentProvider
from refundflow.platforms.chargebee.inbound import ChargebeeInbound, inbound

EVENTS = Path(__file__).resolve().parents[3] / "events" / "chargebee"
SAMPLES = sorted(EVENTS.glob("chargebee_*.json"))
SECRET = {"basic_auth": [DEFAULT_WEBHOOK_AUTH]}


def basic(credentials: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def body(event_type: str = "payment_refunded", **content: object) -> bytes:
    default = {"transaction": {"id": "txn_1", "type": "refund"}, "invoice": {"id": "INV-7"}}
    return json.dumps(
        {
            "id": "ev_1",
            "object": "event",
            "occurred_at": 1764979200,
            "event_type": event_type,
            "content": content or default,
        }
    ).encode()


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_each_sample_names_its_invoice_and_nothing_else(path: Path) -> None:
    raw = path.read_bytes()
    delivery = inbound().verify(basic(DEFAULT_WEBHOOK_AUTH), raw, SECRET)
    (event,) = delivery.events
    sample = json.loads(raw)
    assert (event.event_id, event.event_type) == (sample["id"], sample["event_type"])
    assert event.provider is PaymentProvider.CHARGEBEE
    assert event.payment is not None
    assert event.payment.payment_id == sample["content"]["invoice"]["id"]
    assert event.refunds == []
    assert event.payments == []
    assert delivery.answer.status == 200


def test_the_sample_refund_request_is_a_valid_body() -> None:
    parsed = RefundRequestBody.model_validate(json.loads((EVENTS / "refund_request.json").read_text()))
    assert parsed.payment.provider is PaymentProvider.CHARGEBEE


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("refundflow:not-the-password"),
        basic("someone:local-webhook-password"),
        basic(DEFAULT_WEBHOOK_AUTH + "x"),
        {"Authorization": "Bearer " + base64.b64encode(DEFAULT_WEBHOOK_AUTH.encode()).decode()},
        {"Authorization": "Basic not*base64"},
    ],
    ids=["none", "password", "user", "longer", "bearer", "garbled"],
)
def test_a_delivery_without_the_webhooks_credentials_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationFailed):
        ChargebeeInbound().verify(headers, body(), SECRET)


def test_either_credential_is_accepted_while_one_replaces_the_other() -> None:
    secret = {"basic_auth": ["old:first-password", "new:second-password"]}
    for credentials in secret["basic_auth"]:
        assert ChargebeeInbound().verify(basic(credentials), body(), secret).events


@pytest.mark.parametrize("secret", [{}, {"basic_auth": []}, {"basic_auth": ["nopassword"]}, {"basic_auth": "u:p"}])
def test_a_verification_secret_of_another_shape_is_a_configuration_error(secret: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ChargebeeInbound().verify(basic(DEFAULT_WEBHOOK_AUTH), body(), secret)


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", json.dumps({"id": "ev_1", "event_type": "x"}).encode()], ids=str
)
def test_an_authenticated_body_that_is_not_an_event_is_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        ChargebeeInbound().verify(basic(DEFAULT_WEBHOOK_AUTH), raw, SECRET)


@pytest.mark.parametrize(
    "raw",
    [
        body("subscription_created", subscription={"id": "sub_1"}),
        body("transaction_updated", transaction={"id": "txn_2", "type": "payment"}, invoice={"id": "INV-7"}),
        body("payment_refunded", transaction={"id": "txn_3", "type": "refund"}),
    ],
    ids=["not-a-refund-event", "a-payment-transaction", "no-invoice-named"],
)
def test_an_event_about_no_refunded_invoice_is_acknowledged_and_carries_nothing(raw: bytes) -> None:
    delivery = ChargebeeInbound().verify(basic(DEFAULT_WEBHOOK_AUTH), raw, SECRET)
    assert delivery.events == []
    assert delivery.answer.status == 200


def test_a_transaction_event_names_the_invoice_of_its_credit_note() -> None:
    transaction = {
        "id": "txn_4",
        "type": "refund",
        "linked_credit_notes": [{"cn_id": "CN-1", "cn_reference_invoice_id": "INV-9"}],
    }
    (event,) = (
        ChargebeeInbound()
        .verify(basic(DEFAULT_WEBHOOK_AUTH), body("transaction_updated", transaction=transaction), SECRET)
        .events
    )
    assert event.payment is not None
    assert event.payment.payment_id == "INV-9"


def test_the_same_delivery_twice_is_the_same_event() -> None:
    first = ChargebeeInbound().verify(basic(DEFAULT_WEBHOOK_AUTH), body(), SECRET).events
    second = ChargebeeInbound().verify(basic(DEFAULT_WEBHOOK_AUTH), body(), SECRET).events
    assert [event.event_id for event in first] == [event.event_id for event in second] == ["ev_1"]
