"""Every books platform's own function, ``<stack>-books-<name>`` (one per books platform of the catalog, its
``PLATFORM`` in the environment, its own secret and IAM): the RefundSteps workflow's UpdateInvoice state, and the
returns news the intake function forwards from a books platform that keeps returns (SAP's customer returns)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import settings, wiring
from refundflow.adapters.idempotency import run_once
from refundflow.adapters.news import APPLY_RETURN_NEWS
from refundflow.domain.books import update_invoice
from refundflow.domain.returns import apply_return_news
from refundflow.models import StepInput
from refundflow.observability import logger, metrics, tracer
from refundflow.ports import ReturnNews

PLATFORM = settings.own_platform()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(platform=PLATFORM)
    if event.get("operation") == APPLY_RETURN_NEWS:
        # What refundflow.adapters.news sends: {"operation": "apply_return_news", "platform", "event": ReturnNews}.
        wiring.ensure_own_platform(PLATFORM, str(event.get("platform")))
        news = ReturnNews.model_validate(event.get("event"))
        logger.append_keys(provider_event_id=news.event_id, return_id=news.return_id)
        recorded = apply_return_news(
            news, reader=wiring.returns_reader(PLATFORM), recorder=wiring.recorder(), callbacks=wiring.callbacks()
        )
        return {
            "platform": PLATFORM,
            "event_id": news.event_id,
            "refund_id": recorded.refund_id if recorded is not None else None,
            "return_status": recorded.lifecycle.status.value if recorded is not None else None,
            "duplicate": recorded.duplicate if recorded is not None else None,
        }
    task = StepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id)
    return run_once(
        f"{task.refund_id}:books",
        lambda: update_invoice(task.refund_id, recorder=wiring.recorder(), books=wiring.books(PLATFORM)).model_dump(
            mode="json"
        ),
        context,
    )
