"""Invoked by the Reconciliation workflow's Summarize state, after the Distributed Map wrote its results."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import wiring
from refundflow.adapters.s3 import S3Files
from refundflow.observability import logger, metrics, tracer
from refundflow.reconciliation.pipeline import summarize


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = dict(event["run"])
    logger.append_keys(settlement_file=run.get("file"), correlation_id=run.get("correlation_id"))
    recorder = wiring.recorder()
    return summarize(
        run,
        dict(event["results"]["ResultWriterDetails"]),
        files=S3Files(),
        repository=recorder.repository,
        recorder=recorder,
        publisher=recorder.publisher,
    )
