"""A failed delivery asks for a refund (issue 12, the other triggers): reason delivery_failed, one refund per
shipment whatever the carrier reports next, from the carrier whose secret signed it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from refundflow.connectors.standard_webhooks import VerifiedSource
from refundflow.domain.delivery_failures import CHANNEL, accept_delivery_failure, delivery_failure_request
from refundflow.errors import IdempotencyConflict
from refundflow.ids import derive_refund_id
from refundflow.models import DeliveryFailureBody, RefundReason, ReturnStatus
from refundflow.status import RefundStatus
from tests.support.fakes import TIMING, World

CARRIER = VerifiedSource("parcel-carrier")


def failure(status: str = "failed", tracking: str = "3SABC123", **extra: Any) -> DeliveryFailureBody:
    return DeliveryFailureBody.model_validate(
        {
            "shipment": {
                "carrier": "postnl",
                "tracking_number": tracking,
                "status": status,
                "occurred_at": "2026-12-05T09:30:00+01:00",
            },
            "payment": {"provider": "stripe", "payment_id": "pi_parcel"},
            "customer": {"email": "robin@example.com"},
            **extra,
        }
    )


def accept(env: World, body: DeliveryFailureBody, delivery_id: str) -> Any:
    return accept_delivery_failure(
        body, source=CARRIER, delivery_id=delivery_id, recorder=env.recorder, starter=env.starter, timing=TIMING
    )


def test_a_failed_delivery_is_a_delivery_failed_refund_request_from_the_signing_carrier() -> None:
    request = delivery_failure_request(failure(amount={"minor_units": 1250, "currency": "EUR"}), source=CARRIER)
    assert request.reason is RefundReason.DELIVERY_FAILED
    assert (request.source.system, request.source.reference) == ("parcel-carrier", "postnl:3SABC123")
    assert request.return_info is not None
    assert (request.return_info.status, request.return_info.tracking_reference) == (
        ReturnStatus.DELIVERY_FAILED,
        "3SABC123",
    )
    assert request.amount is not None
    assert request.amount.minor_units == 1250
    assert request.approved_by is None  # a carrier asserts no approval


def test_one_refund_per_shipment_whatever_the_carrier_reports_next(env: World) -> None:
    # GIVEN a shipment reported as failed WHEN it is reported again as returned to sender, under another id
    first = accept(env, failure("failed"), "dlv-1")
    second = accept(env, failure("returned_to_sender"), "dlv-2")
    # THEN both land on one refund, and only its workflow is started (a redelivery of a refund still RECEIVED makes
    # sure its execution exists: the same execution name, so Step Functions starts it once)
    assert (
        first.refund.refund_id == second.refund.refund_id == derive_refund_id(CHANNEL, "parcel-carrier:postnl:3SABC123")
    )
    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.refund.status is RefundStatus.RECEIVED
    assert {refund_id for refund_id, _ in env.starter.calls} == {first.refund.refund_id}


def test_the_same_shipment_for_another_payment_is_a_conflict(env: World) -> None:
    accept(env, failure(), "dlv-1")
    other = failure(payment={"provider": "stripe", "payment_id": "pi_other"})
    with pytest.raises(IdempotencyConflict):
        accept(env, other, "dlv-3")
    assert (
        env.repository.get(derive_refund_id(CHANNEL, "parcel-carrier:postnl:3SABC123")).payment.payment_id
        == "pi_parcel"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"status": "delivered"},
        {"carrier": "x" * 41},
        {"tracking_number": "has space"},
        {"occurred_at": "2026-12-05T09:30:00"},  # no offset: not a moment
    ],
    ids=["not-a-failure", "carrier-too-long", "tracking-number-characters", "naive-time"],
)
def test_what_is_not_a_failed_shipment_is_refused(change: dict[str, Any]) -> None:
    shipment = {"carrier": "postnl", "tracking_number": "T1", "status": "lost", "occurred_at": "2026-12-05T09:30:00Z"}
    with pytest.raises(ValidationError):
        DeliveryFailureBody.model_validate(
            {
                "shipment": {**shipment, **change},
                "payment": {"provider": "stripe", "payment_id": "pi_1"},
                "customer": {"email": "robin@example.com"},
            }
        )


def test_lines_must_add_up_to_the_amount_as_on_a_refund_request() -> None:
    with pytest.raises(ValidationError, match="lines add up to 500"):
        failure(
            amount={"minor_units": 600, "currency": "EUR"},
            lines=[{"description": "Mug", "amount": {"minor_units": 500, "currency": "EUR"}}],
        )
