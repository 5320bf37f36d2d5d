"""Invoked by the RefundSteps workflow's ValidateRefund state (Step Functions lambda:invoke)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import wiring
from refundflow.domain.validation import validate_refund
from refundflow.models import StepInput
from refundflow.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id)
    return validate_refund(task.refund_id, recorder=wiring.recorder()).model_dump(mode="json")
