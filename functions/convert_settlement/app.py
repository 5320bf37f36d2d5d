"""Invoked by the Reconciliation workflow's ConvertToJsonLines state: the settlement file that landed in S3
is parsed as a stream and written as JSON Lines for the Distributed Map."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow.adapters.s3 import S3Files
from refundflow.observability import logger, metrics, tracer
from refundflow.reconciliation.pipeline import convert


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bucket, key = str(event["bucket"]), str(event["key"])
    correlation_id = str(event.get("correlation_id") or context.aws_request_id)
    logger.append_keys(settlement_file=key, correlation_id=correlation_id)
    return convert(bucket, key, files=S3Files(), correlation_id=correlation_id)
