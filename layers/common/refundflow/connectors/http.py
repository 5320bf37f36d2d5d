"""The one HTTP client every connector without an official SDK speaks through.

Timeouts on every call, bodies never logged, and transport failures mapped to the error vocabulary:
a failure before the request left is transient; a read timeout on a write is an unknown outcome.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from refundflow import settings
from refundflow.errors import NotFound, OutcomeUnknownError, RefundflowError, RejectedError, TransientError
from refundflow.observability import logger

_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body) if self.body else None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object.

        Raises:
            ValueError: not JSON, or JSON that is not an object.
        """
        body = self.json()
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body

    def json_object_or_empty(self) -> dict[str, Any]:
        """The body as a JSON object, or {} when it is not one (an error answer may be empty, HTML or a bare string)."""
        try:
            return self.json_object()
        except ValueError:
            return {}

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class HttpClient:
    """A base URL, default headers and timeouts for one platform."""

    def __init__(
        self,
        *,
        platform: str,
        base_url: str,
        default_headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> None:
        self.platform = platform
        self.base_url = base_url.rstrip("/")
        self.default_headers = dict(default_headers or {})
        self._session = session
        if timeout is None:
            config = settings.load(settings.ConnectorSettings)
            timeout = (config.connect_timeout_seconds, config.read_timeout_seconds)
        self.timeout = timeout

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        absolute_url: str | None = None,
    ) -> HttpResponse:
        """Send one request; any HTTP status comes back as a response for the connector to map.

        Raises:
            TransientError: the connection failed before the request was sent, or a read timed
                out on a GET.
            OutcomeUnknownError: a write timed out or the connection dropped after sending.
        """
        url = absolute_url or f"{self.base_url}/{path.lstrip('/')}"
        merged = {**self.default_headers, **(headers or {})}
        started = time.monotonic()
        try:
            response = self.session.request(
                method, url, params=params, json=json, data=data, headers=merged, auth=auth, timeout=self.timeout
            )
        except (requests.ConnectTimeout, requests.exceptions.SSLError) as error:
            raise TransientError(f"{method} {path}: could not connect", platform=self.platform) from error
        except (requests.ReadTimeout, requests.ConnectionError) as error:
            if method.upper() in _WRITE_METHODS and not _failed_before_sending(error):
                raise OutcomeUnknownError(
                    f"{method} {path}: no answer after sending", platform=self.platform
                ) from error
            raise TransientError(f"{method} {path}: no answer", platform=self.platform) from error
        logger.info(
            "platform call",
            extra={
                "platform": self.platform,
                "method": method,
                "path": path.split("?")[0],
                "status": response.status_code,
                "duration_ms": round((time.monotonic() - started) * 1000),
                "request_id": response.headers.get("request-id") or response.headers.get("x-request-id"),
            },
        )
        return HttpResponse(status=response.status_code, headers=dict(response.headers), body=response.content)


def _failed_before_sending(error: requests.RequestException) -> bool:
    """True when the connection was never established (refused, DNS): the request did not leave."""
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    reason: object = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | NameResolutionError)


def retry_after_seconds(response: HttpResponse) -> float | None:
    """``Retry-After`` in seconds, whatever the case of its name (Gorgias sends ``Retry-after``)."""
    value = next((item for key, item in response.headers.items() if key.lower() == "retry-after"), None)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def status_failure(
    response: HttpResponse,
    message: str,
    *,
    platform: str,
    write: bool,
    in_progress: str | None = "idempotency_key_in_use",
) -> RefundflowError | None:
    """What an error answer's HTTP status alone says, the same at every platform, or None (the platform's own codes
    decide). ``write``: the call may have moved money.

    5xx: OutcomeUnknownError on a write (the work may have been done), else TransientError (with Retry-After);
    429: TransientError ``rate_limited`` (with Retry-After); 409: TransientError ``in_progress`` (the key's first
    request is still being processed, so a retry under it is safe; None where 409 means nothing of the kind);
    401: RejectedError ``provider_authentication_failed``; 403: RejectedError ``provider_permission_denied``.
    """
    status = response.status
    if status >= 500:
        if write:
            return OutcomeUnknownError(message, platform=platform)
        return TransientError(message, platform=platform, retry_after_seconds=retry_after_seconds(response))
    if status == 429:
        return TransientError(
            message, code="rate_limited", platform=platform, retry_after_seconds=retry_after_seconds(response)
        )
    if status == 409 and in_progress is not None:
        return TransientError(message, code=in_progress, platform=platform)
    if status == 401:
        return RejectedError(message, code="provider_authentication_failed", platform=platform)
    if status == 403:
        return RejectedError(message, code="provider_permission_denied", platform=platform)
    return None


def missing(message: str, *, platform: str, write: bool) -> RefundflowError:
    """A resource the platform does not know: NotFound on a read, a refusal (``resource_missing``) on a write."""
    if write:
        return RejectedError(message, code="resource_missing", platform=platform)
    return NotFound(message, code="resource_missing", platform=platform)


def oauth_error_words(response: HttpResponse) -> str:
    """What a refused OAuth 2.0 token request says, in one line (RFC 6749 ``{"error", "error_description"}``, or
    the HTTP status when the body is not that)."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, Mapping) else None
    description = payload.get("error_description") if isinstance(payload, Mapping) else None
    return str(description or error or f"HTTP {response.status}").splitlines()[0][:300]
