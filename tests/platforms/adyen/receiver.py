"""A webhook endpoint for tests: records every delivery Adyen's simulator makes and answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response


class Receiver:
    """Answers ``[accepted]`` unless ``refuse`` more deliveries are to be refused (500) first."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.refuse = 0
        self.answer: Callable[[bytes], Response] | None = None
        self._condition = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        body = request.get_data()
        with self._condition:
            self.bodies.append(body)
            refuse = self.refuse > 0
            if refuse:
                self.refuse -= 1
            self._condition.notify_all()
        if self.answer is not None:
            response = self.answer(body)
        elif refuse:
            response = Response("no", status=500)
        else:
            response = Response("[accepted]", status=200, mimetype="text/plain")
        return response(environ, start_response)

    def batches(self) -> list[dict[str, Any]]:
        with self._condition:
            return [json.loads(body) for body in self.bodies]

    def items(self) -> list[dict[str, Any]]:
        return [
            wrapper["NotificationRequestItem"] for batch in self.batches() for wrapper in batch["notificationItems"]
        ]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every delivery once at least ``count`` have arrived (a bound on the wait, not a pace)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.bodies) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(self.bodies)} deliveries after {timeout} s, expected {count}")
                self._condition.wait(remaining)
        return self.batches()

    def clear(self) -> None:
        with self._condition:
            self.bodies.clear()
            self.refuse = 0
            self.answer = None
