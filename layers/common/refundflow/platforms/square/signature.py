"""Square's webhook signature (developer.squareup.com "Verify and Validate an Event Notification").

``x-square-hmacsha256-signature`` is the base64 HMAC-SHA256, keyed with the subscription's signature key (used
as text), of the notification URL exactly as registered at Square followed by the raw request body. The URL is
part of what is signed, so intake holds it in the verification secret beside the key (a load balancer or a
custom domain in front of the API would change what the function sees of its own URL). Square signs no
timestamp and retries an unacknowledged notification for 24 to 72 hours (its pages differ), so there is no
freshness window: a repeated delivery is recognised by its ``event_id``, and its content is news that the
refund's function reads again from the API before anything changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

from refundflow.errors import AuthenticationFailed

HEADER = "x-square-hmacsha256-signature"


def signature(notification_url: str, body: bytes, key: str) -> str:
    """The signature Square sends for ``body`` delivered to ``notification_url``."""
    digest = hmac.new(key.encode("utf-8"), notification_url.encode("utf-8") + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(headers: Mapping[str, str], body: bytes, *, keys: Iterable[str], notification_urls: Iterable[str]) -> None:
    """Accept the delivery only if its signature matches one key and one registered URL.

    Raises:
        AuthenticationFailed: no signature header, or none of the keys and URLs signs the body to it.
    """
    received = next((value for name, value in headers.items() if name.lower() == HEADER), None)
    if not received or not received.strip():
        raise AuthenticationFailed(f"no {HEADER} header", platform="square")
    wanted = received.strip().encode("utf-8", "replace")
    matched = False
    for url in notification_urls:
        for key in keys:  # every pair is tried, so the time does not tell which one matched
            matched |= hmac.compare_digest(signature(url, body, key).encode("ascii"), wanted)
    if not matched:
        raise AuthenticationFailed("the Square signature does not match", platform="square")
