"""Powertools idempotency around the money-moving and document-creating steps: a duplicate
invocation (Express workflows are at-least-once) waits for, or replays, the first one."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import settings
from refundflow.adapters.aws import client as aws_client


@cache
def _store() -> DynamoDBPersistenceLayer:
    table = settings.load(settings.IdempotencySettings).idempotency_table_name
    return DynamoDBPersistenceLayer(table_name=table, boto3_client=aws_client("dynamodb"))


@cache
def _config() -> IdempotencyConfig:
    # Keys are our own deterministic operation keys; a missing key must never run unguarded.
    return IdempotencyConfig(event_key_jmespath="key", raise_on_no_idempotency_key=True, expires_after_seconds=3600)


def run_once(key: str, operation: Callable[[], dict[str, Any]], context: LambdaContext | None = None) -> dict[str, Any]:
    """Run ``operation`` at most once at a time per ``key``; a finished result is replayed for an hour.

    Raises:
        IdempotencyAlreadyInProgressError: the same key is running elsewhere (the state machine retries).
        IdempotencyPersistenceLayerError: the idempotency store is unavailable (fail closed).
    """

    def _run(task: dict[str, str]) -> dict[str, Any]:
        return operation()

    config = _config()
    if context is not None:
        config.register_lambda_context(context)  # lets an in-progress lock expire with the invocation
    guarded = idempotent_function(data_keyword_argument="task", persistence_store=_store(), config=config)(_run)
    result: dict[str, Any] = guarded(task={"key": key})
    return result
