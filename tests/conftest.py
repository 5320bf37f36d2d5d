"""Fixtures shared by every suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from refundflow import settings

ROOT = Path(__file__).resolve().parent.parent
# The official API specs, beside the repository; tests/contract/conftest.py decides what their absence means.
CONTRACTS = ROOT.parent / "shared" / "contracts"

# Tests never talk to real AWS: fake credentials and a fixed region for every boto3 client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are parsed once per process in Lambda; each test starts from its own environment."""
    settings.load.cache_clear()
    yield
    settings.load.cache_clear()
