"""Invoked by the Reconciliation workflow's Distributed Map (one batch of settlement lines per call)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import wiring
from refundflow.observability import logger, metrics, tracer
from refundflow.reconciliation.pipeline import match_batch


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch_input = dict(event["BatchInput"])
    logger.append_keys(settlement_file=batch_input.get("file"), correlation_id=batch_input.get("correlation_id"))
    recorder = wiring.recorder()
    return match_batch(
        list(event["Items"]),
        batch_input,
        repository=recorder.repository,
        recorder=recorder,
        publisher=recorder.publisher,
    )
