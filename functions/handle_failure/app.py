"""Invoked by the workflows' HandleFailure states (their Catch path)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import settings, wiring
from refundflow.domain.failures import handle_failure
from refundflow.models import FailureStepInput
from refundflow.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = FailureStepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id, error=task.error.error)
    failures = settings.load(settings.FailureSettings)
    result = handle_failure(
        task.refund_id,
        task.error.error,
        task.error.cause,
        recorder=wiring.recorder(),
        max_books_attempts=failures.max_books_attempts,
        max_lookup_attempts=failures.max_lookup_attempts,
    )
    return result.model_dump(mode="json")
