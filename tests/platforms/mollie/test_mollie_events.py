"""The sample events in events/mollie/ are what Mollie sends and what the API accepts: the next-gen events are the
spec's ``entity-webhook-event`` and verify once signed, the classic call is news about its payment, and the refund
request is a valid body for a Mollie payment."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from refundflow.api import RefundRequestBody
from refundflow.money import Money
from refundflow.platforms.mollie.inbound import MollieInbound
from refundflow.ports import ProviderRefundStatus
from tests.platforms.mollie import contract

EVENTS = Path(__file__).resolve().parents[3] / "events" / "mollie"
SECRET = "sample-signing-secret"


@pytest.mark.parametrize(
    ("name", "status", "minor"),
    [
        ("mollie_refund_refunded.json", ProviderRefundStatus.SUCCEEDED, 4_500),
        ("mollie_refund_failed.json", ProviderRefundStatus.FAILED, 1_250),
    ],
)
def test_the_next_gen_samples_are_mollies_and_verify_once_signed(
    name: str, status: ProviderRefundStatus, minor: int
) -> None:
    raw = (EVENTS / name).read_bytes()
    assert contract.event_errors(json.loads(raw)) == []
    signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    delivery = MollieInbound().verify({"X-Mollie-Signature": f"sha256={signature}"}, raw, {"signing_secrets": [SECRET]})
    (event,) = delivery.events
    (refund,) = event.refunds
    assert (refund.status, refund.amount, refund.refund_id) == (
        status,
        Money.of(minor, "EUR"),
        "rf_2f9a6c3be1d04d7f8a5b9c0d1e2f3a4b",
    )


def test_the_classic_sample_names_its_payment_only() -> None:
    raw = (EVENTS / "mollie_classic_payment_webhook.form").read_bytes()
    (event,) = MollieInbound().verify({}, raw, {"signing_secrets": []}).events
    assert event.payment is not None
    assert (event.payment.payment_id, event.refunds) == ("tr_5B8cwPMGnU", [])


def test_the_refund_request_sample_is_a_valid_body_for_a_mollie_payment() -> None:
    body = RefundRequestBody.model_validate(json.loads((EVENTS / "mollie_refund_request_partial.json").read_text()))
    assert (body.payment.provider.value, body.payment.payment_id) == ("mollie", "tr_5B8cwPMGnU")
