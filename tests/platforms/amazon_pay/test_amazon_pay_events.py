"""The sample events in events/amazon_pay/ are what the code reads: a refund request, IPNs, a declined refund."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from refundflow.api import RefundRequestBody
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.amazon_pay.connector import provider_refund
from refundflow.platforms.amazon_pay.inbound import provider_event
from refundflow.platforms.amazon_pay.sns import ipn_of, string_to_sign
from refundflow.ports import ProviderRefundStatus

EVENTS = Path(__file__).resolve().parents[3] / "events" / "amazon_pay"


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_the_sample_refund_request_is_a_valid_body_for_a_charge() -> None:
    body = RefundRequestBody.model_validate(load("amazon_pay_refund_request.json"))
    assert body.payment.provider is PaymentProvider.AMAZON_PAY


def test_the_sample_ipns_reduce_to_news_naming_the_refund_and_the_charge() -> None:
    refund_message = load("amazon_pay_ipn_refund_state_change.json")
    assert string_to_sign(refund_message).startswith("Message\n")
    refund_event = provider_event(refund_message["MessageId"], ipn_of(refund_message), refund_message["Timestamp"])
    assert refund_event is not None
    assert refund_event.named_refund_ids == ["S01-5105180-3221187-R022311"]
    charge_message = load("amazon_pay_ipn_charge_state_change.json")
    charge_event = provider_event(charge_message["MessageId"], ipn_of(charge_message), charge_message["Timestamp"])
    assert charge_event is not None
    assert charge_event.payment is not None
    assert charge_event.payment.payment_id == "S01-5105180-3221187-C056351"


def test_the_sample_declined_refund_reads_as_failed_with_amazons_reason() -> None:
    read = provider_refund(load("amazon_pay_refund_declined.json"))
    assert (read.status, read.failure_reason, read.amount) == (
        ProviderRefundStatus.FAILED,
        "AmazonRejected",
        Money.of(1_400, "USD"),
    )
