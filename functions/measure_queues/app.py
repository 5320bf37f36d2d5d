"""Runs on a schedule: publishes how many refunds wait in PENDING_APPROVAL and NEEDS_ATTENTION and the age of
the oldest of each (the ops dashboard's gauges and the alarm on approvals older than the escalation window)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import wiring
from refundflow.domain.queues import measure_queues
from refundflow.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    gauges = measure_queues(store=wiring.repository(), now=lambda: datetime.now(UTC))
    return {
        "queues": [
            {"status": gauge.status.value, "count": gauge.count, "oldest_age_seconds": gauge.oldest_age_seconds}
            for gauge in gauges
        ]
    }
