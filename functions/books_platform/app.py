"""Every books platform's own function, ``<stack>-books-<name>`` (one per books platform of the catalog, its
``PLATFORM`` in the environment, its own secret and IAM): the RefundSteps workflow's UpdateInvoice state, the
returns news the intake function forwards from a books platform that keeps returns (SAP's customer returns), and
its external-refunds queue (fed by the bus with ``RefundIssued`` of refunds made outside refundflow whose invoice
is in these books): each one's credit document booked once (refundflow.domain.external.book_external_refund)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import settings, wiring
from refundflow.adapters.idempotency import run_once
from refundflow.adapters.news import APPLY_RETURN_NEWS
from refundflow.adapters.sqs import delay_redelivery
from refundflow.domain.books import update_invoice
from refundflow.domain.external import book_external_refund
from refundflow.domain.returns import apply_return_news
from refundflow.errors import TransientError
from refundflow.events import RefundEvent
from refundflow.models import StepInput
from refundflow.observability import logger, metrics, tracer
from refundflow.ports import ReturnNews

PLATFORM = settings.own_platform()
processor = BatchProcessor(event_type=EventType.SQS)


def book_external_record(record: SQSRecord) -> None:
    """One ``RefundIssued`` of an external refund (an EventBridge envelope): its credit document, once. A failure
    the books may get over raises: the queue delivers the message again (after the books' Retry-After where they
    said one, else the queue's visibility timeout, BooksRetryWaitSeconds)."""
    envelope = json.loads(record.body)
    event = RefundEvent.model_validate({**envelope["detail"], "detail_type": envelope["detail-type"]})
    logger.append_keys(refund_id=event.refund_id, event_id=event.event_id)
    wiring.ensure_own_platform(PLATFORM, str(event.books))
    try:
        book_external_refund(
            event,
            recorder=wiring.recorder(),
            books=wiring.books(PLATFORM),
            max_attempts=settings.load(settings.FailureSettings).max_books_attempts,
        )
    except TransientError as error:
        if error.retry_after_seconds:
            delay_redelivery(record, error.retry_after_seconds)
        raise


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(platform=PLATFORM)
    if "Records" in event:
        answer: dict[str, Any] = dict(
            process_partial_response(
                event=event, record_handler=book_external_record, processor=processor, context=context
            )
        )
        return answer
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
