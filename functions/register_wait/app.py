"""Invoked by the RefundWorkflow's WaitForApproval and WaitForRefundOutcome states
(lambda:invoke.waitForTaskToken): parks the workflow until the answer comes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import wiring
from refundflow.domain.waiting import WaitFor, register_wait
from refundflow.models import WaitStepInput
from refundflow.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = WaitStepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id, wait_for=task.wait_for)
    resumed = register_wait(
        task.refund_id,
        WaitFor(task.wait_for),
        task.task_token,
        repository=wiring.repository(),
        callbacks=wiring.callbacks(),
    )
    return {"refund_id": task.refund_id, "resumed": resumed}
