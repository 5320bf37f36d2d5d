"""Every books platform's own function, ``<stack>-books-<name>`` (one per books platform of the catalog, its
``PLATFORM`` in the environment, its own secret and IAM): the RefundSteps workflow's UpdateInvoice state."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import settings, wiring
from refundflow.adapters.idempotency import run_once
from refundflow.domain.books import update_invoice
from refundflow.models import StepInput
from refundflow.observability import logger, metrics, tracer

PLATFORM = settings.own_platform()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id, platform=PLATFORM)
    return run_once(
        f"{task.refund_id}:books",
        lambda: update_invoice(task.refund_id, recorder=wiring.recorder(), books=wiring.books(PLATFORM)).model_dump(
            mode="json"
        ),
        context,
    )
