"""API Gateway (HTTP API, payload 2.0) events for driving the API handlers in-process, and Standard
Webhooks signatures computed over raw bytes (so bodies that are not UTF-8 can be signed too)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any


def standard_webhook_headers(
    body: bytes, secret: str, *, delivery_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """``webhook-id``/``webhook-timestamp``/``webhook-signature`` for ``body`` as its sender signs it:
    base64 HMAC-SHA256 with the secret's key over ``id.timestamp.`` + the body's bytes."""
    delivery_id = delivery_id if delivery_id is not None else f"msg_{uuid.uuid4().hex}"
    at = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{delivery_id}.{at}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": at,
        "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
    }


def http_api_event(
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str] | None = None,
    *,
    route: str | None = None,
    path_parameters: dict[str, str] | None = None,
    claims: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The event API Gateway hands a function for this request (the body always base64, as it passes
    bodies it does not treat as text)."""
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "tests",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t"},
        "requestId": str(uuid.uuid4()),
        "routeKey": f"{method} {route or path}",
        "stage": "$default",
        "timeEpoch": int(time.time() * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route or path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}},
        "requestContext": context,
        "isBase64Encoded": body is not None,
    }
    if body is not None:
        event["body"] = base64.b64encode(body).decode()
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event


def stripe_signature_header(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """``Stripe-Signature`` as Stripe computes it: hex HMAC-SHA256 with the secret over ``"<t>." + body``."""
    at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), str(at).encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"stripe-signature": f"t={at},v1={digest}"}
