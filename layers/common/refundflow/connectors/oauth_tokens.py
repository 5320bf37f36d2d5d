"""OAuth 2.0 access tokens as every connector with one keeps them: cached until shortly before they expire, forgotten
when the API answers 401, and a token endpoint's failure mapped the same way (RFC 6749 section 5.2: 429 and 5xx are
transient, any other refusal needs a person to fix the credentials).

``CachedTokenSource`` is the cache (the grant is the platform's: client credentials at Entra ID, Salesforce and
NetSuite); ``RefreshTokenGrant`` adds the refresh-token grant (RFC 6749 section 6) over a stored secret, with the
rotation some platforms do (Xero, Intuit) and the one re-read of the secret when another process replaced it first.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from refundflow.connectors import exact_json
from refundflow.connectors.http import HttpClient, HttpResponse, retry_after_seconds
from refundflow.errors import ConfigurationError, RefundflowError, RejectedError, TransientError

SecretLoader = Callable[[bool], Mapping[str, Any]]
"""Reads the platform's API secret; the flag asks for a fresh read that bypasses any cache."""

SecretSaver = Callable[[dict[str, Any]], None]
"""Stores the platform's API secret (with a rotated refresh token)."""


def token_endpoint_failure(
    response: HttpResponse, *, platform: str, unavailable: str, unavailable_code: str, refused: str, refused_code: str
) -> RefundflowError:
    """What a token endpoint's error answer means: 429 or 5xx, TransientError ``unavailable_code`` (with Retry-After);
    any other, RejectedError ``refused_code`` (retrying cannot help until someone fixes the credentials)."""
    if response.status == 429 or response.status >= 500:
        return TransientError(
            unavailable, code=unavailable_code, platform=platform, retry_after_seconds=retry_after_seconds(response)
        )
    return RejectedError(refused, code=refused_code, platform=platform)


def oauth_error_code(response: HttpResponse) -> str | None:
    """The ``error`` of an RFC 6749 error body (``invalid_grant``...), or None when the body has none."""
    try:
        payload = exact_json.loads(response.body)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, str) else None


class CachedTokenSource(ABC):
    """An access token, asked for again (``_fetch``) only when the cached one is within ``expiry_margin_seconds`` of
    expiring, or after ``invalidate``. One token request at a time per source (a lock)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, expiry_margin_seconds: float) -> None:
        self._clock = clock
        self._margin = expiry_margin_seconds
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def access_token(self) -> str:
        """A valid access token, the cached one while it lasts.

        Raises:
            TransientError: the token endpoint could not answer now.
            RejectedError: the platform refused the credentials for good (a person must fix them).
            ConfigurationError: the credentials are incomplete.
        """
        with self._lock:
            if self._access_token is not None and self._clock() < self._expires_at - self._margin:
                return self._access_token
            token, lifetime_seconds = self._fetch()
            self._access_token = token
            self._expires_at = self._clock() + lifetime_seconds
            return token

    def invalidate(self) -> None:
        """Forget the cached access token (the API answered 401 to it)."""
        with self._lock:
            self._access_token = None
            self._expires_at = 0.0

    @abstractmethod
    def _fetch(self) -> tuple[str, float]:
        """A new access token from the platform and its lifetime in seconds (called under the lock)."""


class RefreshTokenGrant(CachedTokenSource):
    """Access tokens from the refresh-token grant over the platform's secret (``client_id``, ``client_secret``,
    ``refresh_token`` and whatever else the platform needs), read once through ``load_secret``.

    When the platform refuses the refresh token (``_refused``), the secret is read again bypassing caches and, if it
    holds another refresh token (another process rotated or replaced it), the refresh is tried once more with that.
    With ``save_secret`` (platforms that rotate refresh tokens), a new refresh token in the answer is kept in memory
    first, so this process goes on with the newest even if storing fails, and stored at once.

    A subclass sends the request (``_token_request``) and names its errors: ``service`` (who answers token requests,
    as a person reads it), ``unavailable_code``, ``reconnect_code``, ``reconnect_hint`` (what to do, may name
    ``{title}``) and ``secret_store_code``.
    """

    service: ClassVar[str]
    unavailable_code: ClassVar[str]
    reconnect_code: ClassVar[str]
    reconnect_hint: ClassVar[str]
    secret_store_code: ClassVar[str] = ""

    def __init__(
        self,
        *,
        platform: str,
        title: str,
        http: HttpClient,
        load_secret: SecretLoader,
        save_secret: SecretSaver | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float,
    ) -> None:
        super().__init__(clock=clock, expiry_margin_seconds=expiry_margin_seconds)
        self.platform = platform
        self.title = title
        self._http = http
        self._load_secret = load_secret
        self._save_secret = save_secret
        self._secret: dict[str, Any] | None = None

    def secret_field(self, name: str) -> str:
        """A field of the platform's secret (Xero's ``tenant_id``, QuickBooks' ``realm_id``...).

        Raises:
            ConfigurationError: the secret has no such field.
        """
        with self._lock:
            return self._field(self._current_secret(), name)

    @abstractmethod
    def _token_request(self, secret: Mapping[str, Any]) -> HttpResponse:
        """POST the refresh-token grant with ``secret``'s client and refresh token."""

    def _refused(self, response: HttpResponse) -> bool:
        """Whether the answer refuses the refresh token itself (RFC 6749: 400 ``invalid_grant``)."""
        return response.status == 400 and oauth_error_code(response) == "invalid_grant"

    def _current_secret(self) -> dict[str, Any]:
        if self._secret is None:
            self._secret = dict(self._load_secret(False))
        return self._secret

    def _field(self, secret: Mapping[str, Any], name: str) -> str:
        value = secret.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"the {self.title} secret has no {name}", platform=self.platform)
        return value

    def _fetch(self) -> tuple[str, float]:
        secret = self._current_secret()
        response = self._token_request(secret)
        if self._refused(response):
            fresh = dict(self._load_secret(True))
            if self._field(fresh, "refresh_token") != self._field(secret, "refresh_token"):
                self._secret = secret = fresh
                response = self._token_request(secret)
        payload = self._token_payload(response)
        access_token = payload.get("access_token")
        expires_in = payload.get("expires_in")
        if not isinstance(access_token, str) or not isinstance(expires_in, int | Decimal):
            raise TransientError(f"{self.service} answered without a usable access token", platform=self.platform)
        rotated = payload.get("refresh_token")
        if (
            self._save_secret is not None
            and isinstance(rotated, str)
            and rotated not in ("", secret.get("refresh_token"))
        ):
            self._store_rotated({**secret, "refresh_token": rotated})
        return access_token, float(expires_in)

    def _token_payload(self, response: HttpResponse) -> dict[str, Any]:
        if response.status != 200 or self._refused(response):
            words = oauth_error_code(response) or f"HTTP {response.status}"
            raise token_endpoint_failure(
                response,
                platform=self.platform,
                unavailable=f"{self.service} is unavailable ({words})",
                unavailable_code=self.unavailable_code,
                refused=f"{self.service} refused the token refresh ({words}): "
                + self.reconnect_hint.format(title=self.title),
                refused_code=self.reconnect_code,
            )
        try:
            payload = exact_json.loads(response.body)
        except ValueError as error:
            raise TransientError(f"{self.service} answered with unreadable JSON", platform=self.platform) from error
        if not isinstance(payload, dict):
            raise TransientError(f"{self.service} answered without a token", platform=self.platform)
        return payload

    def _store_rotated(self, rotated: dict[str, Any]) -> None:
        assert self._save_secret is not None
        self._secret = rotated
        try:
            self._save_secret(rotated)
        except Exception as error:
            raise TransientError(
                f"could not store the rotated {self.title} refresh token",
                code=self.secret_store_code,
                platform=self.platform,
            ) from error


class AccessTokens(Protocol):
    """What an API call needs of a token source (every source above, and the platforms' own)."""

    def access_token(self) -> str: ...

    def invalidate(self) -> None: ...


def send_with_token(tokens: AccessTokens, send: Callable[[str], HttpResponse]) -> HttpResponse:
    """``send(access_token)`` with the cached token; when the API answers 401 (the token was revoked or ended early),
    the token is forgotten and the call sent once more with a new one. The second answer is final, 401 or not."""
    response = send(tokens.access_token())
    if response.status == 401:
        tokens.invalidate()
        response = send(tokens.access_token())
    return response
