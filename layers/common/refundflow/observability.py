"""The one Logger (refundflow.logs), Tracer and Metrics of refundflow, with personal data and card numbers masked."""

from __future__ import annotations

import json
import warnings
from typing import Any

from aws_lambda_powertools import Metrics, Tracer

# The logger and its redaction live in refundflow.logs; every function imports them from here.
from refundflow.logs import REDACTED, SERVICE, RedactingFormatter, logger, redact, redact_text

__all__ = [
    "DIMENSIONED_METRICS",
    "NAMESPACE",
    "REDACTED",
    "SERVICE",
    "RedactingFormatter",
    "logger",
    "metric_document",
    "metrics",
    "publish_metrics",
    "redact",
    "redact_text",
    "tracer",
]

# Steps that change nothing (a replay, a poll with no news) have no metric to publish: not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

# Powertools' default patches every library X-Ray supports that is installed (patch_all), importing each at load:
# requests and sqlite3 too, in every function, whether it makes an HTTP call or not. Patched at load: what every
# function calls through (boto3's botocore, http.client); requests when something first imports it (the shared
# HTTP client, an SDK), through wrapt's post-import hook (wrapt is X-Ray's own dependency): traced as before.
TRACED_AT_LOAD = ("botocore", "httplib")
tracer = Tracer(service=SERVICE, patch_modules=TRACED_AT_LOAD)


def _trace_requests(_module: object) -> None:
    tracer.patch(("requests",))


if not tracer.disabled:
    import wrapt

    wrapt.register_post_import_hook(_trace_requests, "requests")

metrics = Metrics(namespace="Refundflow", service=SERVICE)


# ------------------------------------------------------------------ metrics with their own dimensions
# Powertools' ``metrics`` above publishes one metric per refund event (RefundCompleted, RefundNeedsAttention,
# ...) with the ``service`` dimension only. The metrics below carry one more dimension each; they are written
# as their own EMF documents (Powertools' ``single_metric`` ignores POWERTOOLS_METRICS_DISABLED). The template's
# dashboard and alarms use exactly these names and dimensions (tests/contract/test_operations.py checks it).
NAMESPACE = "Refundflow"
DIMENSIONED_METRICS: dict[str, tuple[str, str]] = {
    # name: (extra dimension, unit)
    "RefundsByStatus": ("status", "Count"),  # every status change, by the status reached
    "NeedsAttentionByReason": ("reason", "Count"),  # a refund needing attention, or its reason changing
    "ProviderCalls": ("platform", "Count"),
    "ProviderErrors": ("platform", "Count"),  # unreachable, unknown outcome or crashed: not a refusal
    "ProviderLatency": ("platform", "Milliseconds"),
    "BooksCalls": ("platform", "Count"),
    "BooksErrors": ("platform", "Count"),
    "BooksLatency": ("platform", "Milliseconds"),
    "ApprovalAgeSeconds": ("decision", "Seconds"),  # the refund's age when an approver decided (APPROVED, REJECTED)
    # gauges of the refunds waiting for a person (PENDING_APPROVAL, NEEDS_ATTENTION), every few minutes:
    "RefundsWaiting": ("status", "Count"),  # how many are in the status now
    "OldestWaitingAgeSeconds": ("status", "Seconds"),  # the age (since requested) of the oldest of them, 0 if none
}


def metric_document(values: dict[str, float], dimension: str, value: str, *, at_ms: int) -> dict[str, Any]:
    """An EMF document publishing ``values`` (metric name -> value) in ``Refundflow`` with the dimensions
    ``service`` and ``dimension``. Every name must be one of DIMENSIONED_METRICS with that dimension.

    Raises:
        ValueError: an unknown metric, or one published with another dimension than its own.
    """
    for name in values:
        if DIMENSIONED_METRICS.get(name, ("",))[0] != dimension:
            raise ValueError(f"metric {name} is not published with dimension {dimension}")
    return {
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["service", dimension]],
                    "Metrics": [{"Name": name, "Unit": DIMENSIONED_METRICS[name][1]} for name in values],
                }
            ],
        },
        "service": SERVICE,
        dimension: value,
        **values,
    }


def publish_metrics(values: dict[str, float], dimension: str, value: str) -> None:
    """Write the EMF document of :func:`metric_document` to stdout (CloudWatch Logs turns it into metrics),
    unless POWERTOOLS_METRICS_DISABLED is set."""
    import os
    import time

    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "false").lower() in {"1", "true", "yes", "on"}:
        return
    document = metric_document(values, dimension, value, at_ms=int(time.time() * 1000))
    print(json.dumps(document, separators=(",", ":")), flush=True)
