"""boto3 clients, built once per process on first use (boto3 honours AWS_ENDPOINT_URL for the local stack)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Short timeouts and bounded, jittered retries: every external call has a timeout (DESIGN §8).
_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]
