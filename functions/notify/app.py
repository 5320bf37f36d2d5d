"""Invoked by the SQS event sources of the customer and ops notification queues (fed by EventBridge rules): the
customer's one message per refund (the merchant's webhook or an SES e-mail; nothing for a help desk that replies in
its ticket), and ops e-mails."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import catalog, settings, wiring
from refundflow.adapters.sqs import delay_redelivery
from refundflow.domain.notifications import Channel, notify, notify_ops_of_mismatch
from refundflow.errors import TransientError
from refundflow.events import RECONCILIATION_MISMATCH, ReconciliationEvent, RefundEvent
from refundflow.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def _channel(queue_arn: str) -> Channel:
    config = settings.load(settings.NotifySettings)
    return {config.customer_queue_arn: Channel.CUSTOMER, config.ops_queue_arn: Channel.OPS}[queue_arn]


def handle_record(record: SQSRecord) -> None:
    envelope = json.loads(record.body)
    if envelope["detail-type"] == RECONCILIATION_MISMATCH and envelope["detail"].get("refund_id") is None:
        mismatch = ReconciliationEvent.model_validate({**envelope["detail"], "detail_type": envelope["detail-type"]})
        logger.append_keys(event_id=mismatch.event_id)
        notify_ops_of_mismatch(
            mismatch,
            repository=wiring.repository(),
            mailer=wiring.mailer(),
            ops_email=settings.load(settings.NotifySettings).ops_email,
        )
        return
    event = RefundEvent.model_validate({**envelope["detail"], "detail_type": envelope["detail-type"]})
    logger.append_keys(refund_id=event.refund_id, event_id=event.event_id)
    try:
        notify(
            event,
            _channel(record.event_source_arn),
            repository=wiring.repository(),
            mailer=wiring.mailer(),
            ops_email=settings.load(settings.NotifySettings).ops_email,
            webhook=wiring.merchant_webhook(),
            reply_desks=catalog.public_reply_desks(),
        )
    except TransientError as error:
        if error.retry_after_seconds:
            delay_redelivery(record, error.retry_after_seconds)
        raise


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
