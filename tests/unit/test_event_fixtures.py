"""The sample events in events/ are what the handlers accept: a stale fixture fails here, not in a demo."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from refundflow.api import DeliveryFailureBody, RefundRequestBody, ReturnUpdateBody
from refundflow.domain.failures import CHILD_STOPPED, unwrap_child_failure
from refundflow.events import RefundEvent
from refundflow.models import FailureStepInput, ProviderStepInput, RefundOrigin, StepInput, WaitStepInput
from refundflow.platforms.stripe.inbound import StripeInbound
from refundflow.ports import ProviderRefundStatus

EVENTS = Path(__file__).resolve().parents[2] / "events"
STEP_MODELS = {
    "step_validate_refund.json": StepInput,
    "step_refund_with_stripe.json": ProviderStepInput,
    "step_wait_for_approval.json": WaitStepInput,
    "step_handle_failure_child_stopped.json": FailureStepInput,
}


@pytest.mark.parametrize("path", sorted(EVENTS.glob("refund_requests_*.json")), ids=lambda path: path.name)
def test_sample_refund_requests_are_valid_bodies(path: Path) -> None:
    # GIVEN a sample trigger WHEN parsed as the API parses it THEN it is a valid refund request
    body = RefundRequestBody.model_validate(json.loads(path.read_text()))
    assert body.source.reference


@pytest.mark.parametrize("path", sorted(EVENTS.glob("delivery_failures_*.json")), ids=lambda path: path.name)
def test_sample_delivery_failures_are_valid_reports(path: Path) -> None:
    # GIVEN a sample carrier report WHEN parsed as POST /triggers/delivery-failures parses it THEN it names a shipment
    assert DeliveryFailureBody.model_validate(json.loads(path.read_text())).shipment.tracking_number


@pytest.mark.parametrize("path", sorted(EVENTS.glob("return_updates_*.json")), ids=lambda path: path.name)
def test_sample_return_updates_are_valid_steps(path: Path) -> None:
    # GIVEN a sample returns-system report WHEN parsed as the route parses it THEN it names a refund request
    assert ReturnUpdateBody.model_validate(json.loads(path.read_text())).source.reference


def test_there_is_a_return_update_sample() -> None:
    assert sorted(EVENTS.glob("return_updates_*.json"))


@pytest.mark.parametrize(("name", "model"), sorted(STEP_MODELS.items()), ids=lambda item: str(item))
def test_sample_step_inputs_match_their_models(name: str, model: type[StepInput]) -> None:
    # GIVEN a sample task input WHEN parsed THEN it is what that step's handler expects
    assert model.model_validate(json.loads((EVENTS / name).read_text())).refund_id.startswith("rf_")


def test_every_step_sample_is_checked() -> None:
    assert {path.name for path in EVENTS.glob("step_*.json")} == set(STEP_MODELS)


def test_the_child_stopped_sample_is_read_as_a_deliberate_stop() -> None:
    # GIVEN the error the parent catches when the Express child stops for an approval
    task = FailureStepInput.model_validate(json.loads((EVENTS / "step_handle_failure_child_stopped.json").read_text()))
    # WHEN unwrapped THEN it is the child's RefundSteps.<OUTCOME>, not a failure
    error, _ = unwrap_child_failure(task.error.error, task.error.cause)
    assert error == f"{CHILD_STOPPED}APPROVAL_REQUIRED"


def test_the_stripe_sample_event_parses_once_signed() -> None:
    # GIVEN the sample Stripe event signed with an endpoint secret
    raw = (EVENTS / "stripe_refund_updated.json").read_bytes()
    secret = "whsec_fixture"
    stamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
    # WHEN Stripe's inbound port verifies and parses it THEN it is a succeeded refund of our refund id
    delivery = StripeInbound().verify(
        {"Stripe-Signature": f"t={stamp},v1={signature}"}, raw, {"webhook_secrets": [secret]}
    )
    (event,) = delivery.events
    (refund,) = event.refunds
    assert (refund.status, refund.refund_id, refund.amount.minor_units) == (
        ProviderRefundStatus.SUCCEEDED,
        "rf_2f9a6c3be1d04d7f8a5b9c0d1e2f3a4b",
        4500,
    )


def test_the_sqs_sample_carries_a_refund_event_the_notifier_reads() -> None:
    # GIVEN the sample SQS batch WHEN its record is read as the notifier reads it THEN it is a RefundEvent
    record = json.loads((EVENTS / "sqs_refund_issued.json").read_text())["Records"][0]
    envelope = json.loads(record["body"])
    event = RefundEvent.model_validate({**envelope["detail"], "detail_type": envelope["detail-type"]})
    assert (event.detail_type, event.amount and event.amount.minor_units) == ("RefundIssued", 4500)


def test_the_books_queue_sample_is_an_external_refund_for_xeros_function() -> None:
    # GIVEN the sample SQS batch of a books platform's external-refunds queue (`sam local invoke BooksXeroFunction`)
    record = json.loads((EVENTS / "sqs_external_refund_issued.json").read_text())["Records"][0]
    envelope = json.loads(record["body"])
    # WHEN its record is read as the books function reads it
    event = RefundEvent.model_validate({**envelope["detail"], "detail_type": envelope["detail-type"]})
    # THEN it is a RefundIssued of a refund made outside refundflow, for Xero's books
    assert (event.detail_type, event.origin, event.books) == ("RefundIssued", RefundOrigin.EXTERNAL, "xero")
    assert record["eventSourceARN"].endswith("-books-xero-external")
