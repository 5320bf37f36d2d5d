"""Invoked by the workflows' HandleFailure states (their Catch path)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import settings, wiring
from refundflow.domain.failures import handle_failure
from refundflow.errors import RefundflowError
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
    if result.parent_refund_id is not None:
        # A split-tender leg failed: its parent counts it now, rather than at its outcome wait's end.
        from refundflow.domain.split_tenders import after_leg

        try:
            after_leg(result.parent_refund_id, result.status, recorder=wiring.recorder(), callbacks=wiring.callbacks())
        except RefundflowError as error:
            logger.warning("split-tender parent not resumed: its poll will", extra={"code": error.code})
    return result.model_dump(mode="json")
