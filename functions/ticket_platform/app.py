"""Every help desk's own function, ``<stack>-ticket-<name>`` (one per ticket platform of the catalog, its
``PLATFORM`` in the environment, its own API secret and IAM):

- ``apply_ticket_news``: a delivery intake verified (the help desk's webhook): the ticket is read through the
  platform's API and the merchant's mapping decides what it asks for (refundflow.domain.tickets);
- its FIFO write-back queue (fed by the bus with this help desk's refunds' events): each event written to its
  ticket once, in order, and, where the desk has a public reply, the customer's one message about the refund;
  a rate limit puts the message back for the platform's Retry-After.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import catalog, settings, wiring
from refundflow.adapters.news import APPLY_TICKET_NEWS, refusal, refused_answer
from refundflow.adapters.sqs import delay_redelivery
from refundflow.domain import tickets
from refundflow.domain.intake import timing_from
from refundflow.errors import (
    Forbidden,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    RefundflowError,
    RejectedError,
    TransientError,
)
from refundflow.events import RefundEvent
from refundflow.observability import logger, metrics, tracer
from refundflow.policy import active_policy
from refundflow.ports import TicketNews

PLATFORM = settings.own_platform()
# Refusals the help desk hears as 4xx (the ticket asks for nothing refundflow can do as it stands).
REFUSALS = (InvalidRequest, Forbidden, IdempotencyConflict, NotFound)
processor = SqsFifoPartialProcessor()


def apply_ticket_news(event: dict[str, Any]) -> dict[str, Any]:
    wiring.ensure_own_platform(PLATFORM, str(event.get("platform")))
    news = TicketNews.model_validate(event.get("event"))
    logger.append_keys(delivery_id=news.event_id, ticket_id=news.ticket_id)
    if news.refused is not None:  # intake refused the delivery (card data): only tell the ticket why
        told = refusal(news.refused)
        tell_the_ticket(news, told)
        return refused_answer(told)
    try:
        outcome = tickets.apply_ticket_news(
            news,
            tickets=wiring.ticket_platform(PLATFORM),
            mapping=wiring.ticket_mapping(PLATFORM),
            recorder=wiring.recorder(),
            starter=wiring.workflow(),
            callbacks=wiring.callbacks(),
            policy=active_policy().select().policy,
            timing=timing_from(settings.load(settings.WorkflowTimingSettings)),
        )
    except REFUSALS as refused:
        logger.info("ticket refused", extra={"code": refused.code})
        if not isinstance(refused, NotFound):
            tell_the_ticket(news, refused)
        return refused_answer(refused)
    logger.info("ticket news applied", extra=outcome.as_answer())
    return outcome.as_answer()


def tell_the_ticket(news: TicketNews, refused: RefundflowError) -> None:
    """The agent sees in the ticket why nothing happened (an internal note, once per delivery). A rate limit or an
    outage raises (the delivery is answered 5xx and the help desk sends it again); the help desk refusing the
    note itself, or having no such ticket (a delivery naming one that does not exist), is logged, and the refusal is
    still the answer: there is nobody to tell, and a 5xx would only make the platform send it again and again."""
    try:
        tickets.write_refusal(news, refused, tickets=wiring.ticket_platform(PLATFORM), repository=wiring.repository())
    except (RejectedError, NotFound) as error:
        logger.warning("the refusal could not be written to the ticket", extra={"code": error.code})


def write_back_record(record: SQSRecord) -> None:
    envelope = json.loads(record.body)
    event = RefundEvent.model_validate({**envelope["detail"], "detail_type": envelope["detail-type"]})
    logger.append_keys(refund_id=event.refund_id, event_id=event.event_id)
    try:
        tickets.write_back(
            event,
            platform=PLATFORM,
            tickets=wiring.ticket_platform(PLATFORM),
            repository=wiring.repository(),
            public_reply=PLATFORM in catalog.public_reply_desks(),
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
    if event.get("operation") == APPLY_TICKET_NEWS:
        return apply_ticket_news(event)
    # In order: after a failed record, the rest of the batch is handed back untouched (SqsFifoPartialProcessor).
    answer: dict[str, Any] = dict(
        process_partial_response(event=event, record_handler=write_back_record, processor=processor, context=context)
    )
    return answer
