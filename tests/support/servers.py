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
