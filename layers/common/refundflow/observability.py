"""The one Logger, Tracer and Metrics of refundflow, with personal data and card numbers masked."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from refundflow import carddata

SERVICE = "refundflow"

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Base64 secrets (whsec_…) hold "+", "/" and "=": stopping at them would leak the rest of the key. Keys are
# found inside identifiers too (STRIPE_KEY_sk_live_…): with live/test or whsec_ anywhere, bare at a boundary.
_SECRET_VALUE = re.compile(
    r"(?:(sk|rk|pk)_(?:live|test)_[A-Za-z0-9+/=_]{4,}"
    r"|(whsec)_[A-Za-z0-9+/=]{4,}"
    r"|(?<![A-Za-z0-9])(sk|rk|pk)_[A-Za-z0-9]{10,}[A-Za-z0-9+/=_]*)"
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Values under these keys are secrets whatever they look like (compared lower-case, "-" read as "_").
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "x_api_key",
        "private_key",
        "signing_key",
    }
)
_SECRET_KEY_ENDINGS = ("_token", "_secret", "_secrets", "_password", "_api_key", "_apikey", "_private_key")
REDACTED = "[redacted]"


def _secret_key(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return name in _SECRET_KEYS or name.endswith(_SECRET_KEY_ENDINGS)


def _mask_secret(match: re.Match[str]) -> str:
    prefix = next(group for group in match.groups() if group)
    return f"{prefix}_{REDACTED}"


def redact_text(text: str) -> str:
    """Mask card numbers and security codes, e-mail addresses (first letter and domain kept), JWTs,
    ``Bearer``/``Basic`` credentials and API keys or webhook secrets."""
    text = carddata.mask_text(text)
    text = _JWT.sub("[jwt redacted]", text)
    text = _AUTH_SCHEME.sub(lambda match: f"{match.group(1)} {REDACTED}", text)
    text = _SECRET_VALUE.sub(_mask_secret, text)
    return _EMAIL.sub(r"\1***@\2", text)


def redact(value: Any) -> Any:
    """A JSON-like value with every string redacted and the values under secret-named keys replaced."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            redact_text(str(key)): REDACTED if _secret_key(str(key)) and item is not None else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and carddata.find_in_text(str(value)):
        return carddata.mask_text(str(value))
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, redacting what it wrote: whatever was logged (a message, ``extra=``
    values that are models, dataclasses or exceptions) is redacted as the text it became."""

    def serialize(self, log: Any) -> str:
        written = super().serialize(log)
        try:
            document = json.loads(written)
        except ValueError:
            return redact_text(written)
        return self.json_serializer(redact(document))


# Steps that change nothing (a replay, a poll with no news) have no metric to publish: not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
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
