"""A webhook endpoint for tests: records every delivery PayPal's simulator makes (headers and raw body)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes

    def event(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class Receiver:
    """Answers 200 unless ``refuse`` more deliveries are to be refused (500) first."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.refuse = 0
        self._condition = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        delivery = Delivery(headers=dict(request.headers), body=request.get_data())
        with self._condition:
            self.deliveries.append(delivery)
            refuse = self.refuse > 0
            if refuse:
                self.refuse -= 1
            self._condition.notify_all()
        response = Response("no", status=500) if refuse else Response("", status=200)
        return response(environ, start_response)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        """Every delivery once at least ``count`` have arrived (a bound on the wait, not a pace)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(self.deliveries)} deliveries after {timeout} s, expected {count}")
                self._condition.wait(remaining)
            return list(self.deliveries)

    def clear(self) -> None:
        with self._condition:
            self.deliveries.clear()
            self.refuse = 0
