"""Calls to the payment provider and the books, counted and timed per platform: ``ProviderCalls``,
``ProviderErrors``, ``ProviderLatency`` and the ``Books*`` three (dimension ``platform``). An error is a call
that did not get an answer (unreachable, unknown outcome, a crash); a refusal or a not-found is an answer.

The meter wraps a connector without knowing its methods: every public method the domain calls on it is
one call to the platform (the connectors do no local-only work behind their port's methods)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from refundflow.errors import OutcomeUnknownError, RefundflowError, TransientError
from refundflow.observability import publish_metrics

T = TypeVar("T")
C = TypeVar("C")
PROVIDER, BOOKS = "Provider", "Books"


def _is_error(error: BaseException) -> bool:
    return isinstance(error, TransientError | OutcomeUnknownError) or not isinstance(error, RefundflowError)


def metered(kind: str, platform: str, call: Callable[[], T]) -> T:
    """Run ``call`` and publish ``<kind>Calls``, ``<kind>Latency`` and ``<kind>Errors`` (1 when it failed)."""
    started = time.perf_counter()
    failed = False
    try:
        return call()
    except BaseException as error:
        failed = _is_error(error)
        raise
    finally:
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        values = {f"{kind}Calls": 1.0, f"{kind}Latency": elapsed_ms, f"{kind}Errors": 1.0 if failed else 0.0}
        publish_metrics(values, "platform", platform)


class _Metered:
    """Delegates everything to ``inner``; its public methods are metered."""

    def __init__(self, inner: Any, kind: str, platform: str) -> None:
        self._inner, self._kind, self._platform = inner, kind, platform

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            return metered(self._kind, self._platform, lambda: value(*args, **kwargs))

        return call


def meter(connector: C, kind: str, platform: str) -> C:
    """``connector`` with its calls metered as ``kind`` (``Provider`` or ``Books``) for ``platform``."""
    if isinstance(connector, _Metered):
        return connector
    return cast(C, _Metered(connector, kind, platform))
