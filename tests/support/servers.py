"""Serve a WSGI app (a simulator, the local API) on an ephemeral loopback port for a test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server


@contextmanager
def serve_wsgi(app: Callable[..., Any], host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` in a background thread; yields its base URL (``http://127.0.0.1:<port>``)."""
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-wsgi", daemon=True
    )
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


class DeliveryRecorder:
    """A webhook endpoint for tests: records every delivery (headers, raw body) and answers ``answer``."""

    def __init__(self, answer: tuple[int, str, str] = (200, "application/json", "{}")) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.answer = answer
        self._condition = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        with self._condition:
            self.deliveries.append((dict(request.headers), request.get_data()))
            self._condition.notify_all()
        status, content_type, body = self.answer
        return Response(body, status=status, mimetype=content_type)(environ, start_response)

    def wait_until(self, found: Callable[[list[tuple[dict[str, str], bytes]]], bool], timeout: float = 30.0) -> None:
        """Wait until ``found`` holds for the deliveries so far (a bound on the wait, not a pace).

        Raises:
            AssertionError: not within ``timeout`` seconds.
        """
        with self._condition:
            if not self._condition.wait_for(lambda: found(list(self.deliveries)), timeout=timeout):
                raise AssertionError(f"the expected webhook did not arrive within {timeout} s ({len(self.deliveries)})")

    def clear(self) -> None:
        with self._condition:
            self.deliveries.clear()
