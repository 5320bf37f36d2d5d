"""Invoked by the RefundWorkflow's EscalateApproval state when an approval request times out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import wiring
from refundflow.domain.approval import escalate_approval
from refundflow.models import StepInput
from refundflow.observability import logger, metrics, tracer
from refundflow.policy import active_policy


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id)
    policy = active_policy().select().policy
    return escalate_approval(task.refund_id, recorder=wiring.recorder(), policy=policy).model_dump(mode="json")
