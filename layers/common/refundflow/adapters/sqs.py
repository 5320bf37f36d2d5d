"""SQS from a consumer: hand a message back later than the queue's visibility timeout would (a platform's
Retry-After), so the retry does not hit the rate limit again."""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from refundflow.adapters import aws
from refundflow.observability import logger

MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit (12 hours)


def delay_redelivery(record: Any, seconds: float) -> None:
    """Make ``record`` (a Powertools SQSRecord) visible again in ``seconds`` (best effort: when this fails, the
    queue's own visibility timeout applies)."""
    _, _, _, region, account, name = record.event_source_arn.split(":", 5)
    sqs = aws.client("sqs")
    try:
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        sqs.change_message_visibility(
            QueueUrl=url,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=min(max(math.ceil(seconds), 1), MAX_VISIBILITY_SECONDS),
        )
    except (BotoCoreError, ClientError) as error:
        logger.warning("could not delay the redelivery", extra={"error": str(error), "queue": name, "region": region})
