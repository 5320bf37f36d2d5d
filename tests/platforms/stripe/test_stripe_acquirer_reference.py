"""Stripe gives a card refund's acquirer reference number (ARN) in ``destination_details.card`` once the network has
assigned it: read only when ``available``, and only as an ARN."""

from __future__ import annotations

from typing import Any

import pytest

from local.simulators.stripe import Call, StripeSimulator
from refundflow.platforms.stripe.payloads import StripeRefund, provider_refund

ARN = "74987654321098765432109"


def refund(card: dict[str, Any] | None) -> StripeRefund:
    details = {"type": "card", "card": card} if card is not None else None
    return StripeRefund.model_validate(
        {
            "id": "re_1",
            "object": "refund",
            "amount": 1000,
            "currency": "eur",
            "status": "succeeded",
            "payment_intent": "pi_1",
            "destination_details": details,
        }
    )


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        ({"reference": ARN, "reference_status": "available", "reference_type": "acquirer_reference_number"}, ARN),
        ({"reference": ARN, "reference_status": "available"}, ARN),
        ({"reference": None, "reference_status": "pending", "reference_type": "acquirer_reference_number"}, None),
        ({"reference": ARN, "reference_status": "unavailable"}, None),
        ({"reference": ARN, "reference_status": "available", "reference_type": "system_trace_audit_number"}, None),
        ({"reference": "74 98 <script>", "reference_status": "available"}, None),
        (None, None),
    ],
    ids=["available", "no-type", "pending", "unavailable", "another-kind", "not-a-reference", "no-card"],
)
def test_the_arn_is_read_only_when_stripe_says_it_is_available(
    card: dict[str, Any] | None, expected: str | None
) -> None:
    assert provider_refund(refund(card)).acquirer_reference == expected


def test_the_sandbox_assigns_the_reference_later_and_says_so_in_refund_updated() -> None:
    # GIVEN a succeeded card refund at the sandbox: its reference is pending
    sandbox = StripeSimulator()
    payment = sandbox.seed_payment(5_000, "EUR")
    params = {"payment_intent": payment["payment_id"], "amount": "2000"}
    _, created = sandbox._create_refund(Call("test", "req_test", None, params, write=True))
    assert created["status"] == "succeeded"
    assert provider_refund(StripeRefund.model_validate(created)).acquirer_reference is None
    # WHEN the network assigns it
    updated = sandbox.assign_acquirer_reference(created["id"])
    # THEN the refund carries it, a refund.updated event says what changed, and it is assigned once
    reference = provider_refund(StripeRefund.model_validate(updated)).acquirer_reference
    assert reference is not None
    assert len(reference) == 23
    event = sandbox.events[-1]
    assert event["type"] == "refund.updated"
    assert event["data"]["previous_attributes"]["destination_details"]["card"]["reference_status"] == "pending"
    with pytest.raises(ValueError, match="available"):
        sandbox.assign_acquirer_reference(created["id"])


@pytest.mark.parametrize(
    ("card_type", "method"), [("reversal", "void"), ("refund", "refund"), ("pending", "refund"), (None, "refund")]
)
def test_a_reversal_is_told_as_one_it_has_no_arn(card_type: str | None, method: str) -> None:
    card = {"type": card_type, "reference_status": "unavailable"} if card_type else None
    assert provider_refund(refund(card)).method == method
