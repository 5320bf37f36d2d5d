"""Invoked by the RefundSteps workflow's UpdateInvoice state (Step Functions lambda:invoke)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import wiring
from refundflow.adapters.idempotency import run_once
from refundflow.domain.books import update_invoice
from refundflow.models import BooksSystem, StepInput
from refundflow.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id)
    return run_once(
        f"{task.refund_id}:books",
        lambda: update_invoice(
            task.refund_id, recorder=wiring.recorder(), books=wiring.books_for(BooksSystem.XERO)
        ).model_dump(mode="json"),
        context,
    )
