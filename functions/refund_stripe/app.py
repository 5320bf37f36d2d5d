"""Invoked by the workflows' LookUpStripePayment, RefundWithStripe and PollStripeRefund states."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import wiring
from refundflow.adapters.idempotency import run_once
from refundflow.connectors.stripe import stripe_provider
from refundflow.domain import payments
from refundflow.models import ProviderStepInput, StepResult
from refundflow.observability import logger, metrics, tracer

OPERATIONS: dict[str, Callable[..., StepResult]] = {
    "look_up_payment": payments.look_up_payment,
    "refund": payments.issue_refund,
    "poll_refund": payments.poll_refund,
}
# Only the money-moving call is held to one run at a time (and replayed); a poll must see fresh news.
GUARDED = {"refund"}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = ProviderStepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id, operation=task.operation)
    operation = OPERATIONS[task.operation]

    def run() -> dict[str, Any]:
        return operation(task.refund_id, recorder=wiring.recorder(), provider=stripe_provider()).model_dump(mode="json")

    if task.operation in GUARDED:
        return run_once(f"{task.refund_id}:stripe:{task.operation}", run, context)
    return run()
