"""Zoho OAuth 2.0 access tokens by the refresh-token grant, per data centre, shared by the Zoho platforms
(Zoho Books, Zoho CRM).

Zoho documents one accounts server per data centre (www.zoho.com/crm/developer/docs/api/v8/multi-dc.html and
.../v8/refresh.html; the same for Books at www.zoho.com/books/api/v3/oauth/): ``accounts.zoho.com``, ``.eu``, ``.in``,
``.com.au``, ``.jp``, ``zohocloud.ca``, ``.com.cn``, ``.sa``; the API domain of the same data centre
(``www.zohoapis.<dc>``) takes the token. ``POST {accounts}/oauth/v2/token`` with ``grant_type=refresh_token``,
``client_id``, ``client_secret`` and ``refresh_token`` answers ``{"access_token", "expires_in": 3600, "api_domain",
"token_type": "Bearer"}``; a refused grant is ``{"error": "invalid_code"}`` (Zoho answers it with HTTP 200 as often as
with 400). Tokens are cached until shortly before they expire and forgotten when the API answers 401. Zoho's refresh
tokens do not rotate: the secret is only read, and read again (bypassing caches) once when Zoho refuses the refresh
token, in case it was replaced meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from refundflow.connectors import exact_json
from refundflow.connectors.http import HttpClient, HttpResponse, retry_after_seconds
from refundflow.errors import ConfigurationError, RejectedError, TransientError

# Refresh a little before Zoho's one-hour access tokens expire.
TOKEN_EXPIRY_MARGIN_SECONDS = 300.0

SecretLoader = Callable[[bool], Mapping[str, Any]]
"""Reads the platform's API secret; the flag asks for a fresh read that bypasses any cache."""


load_json = exact_json.loads
"""Zoho's JSON with every non-integer number as an exact ``Decimal`` (``connectors.exact_json``)."""


class ZohoTokenSource:
    """Access tokens from Zoho's refresh-token grant at the data centre's accounts server, cached until shortly
    before they expire (one hour). ``platform`` names the errors; ``title`` is the product a person reads in them."""

    def __init__(
        self,
        *,
        accounts_base: str,
        load_secret: SecretLoader,
        platform: str,
        title: str,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float = TOKEN_EXPIRY_MARGIN_SECONDS,
    ) -> None:
        self.platform = platform
        self.title = title
        self._http = http or HttpClient(platform=platform, base_url=accounts_base)
        self._load_secret = load_secret
        self._clock = clock
        self._margin = expiry_margin_seconds
        self._secret: dict[str, Any] | None = None
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def secret_field(self, name: str) -> str:
        """A field of the platform's secret (e.g. Books' ``organization_id``).

        Raises:
            ConfigurationError: the secret has no such field.
        """
        return self._field(self._current_secret(), name)

    def access_token(self) -> str:
        """A valid access token, refreshed when the cached one is about to expire.

        Raises:
            TransientError: the accounts server could not answer now.
            RejectedError: Zoho refused the client or the refresh token (generate a new one).
            ConfigurationError: the secret is incomplete.
        """
        with self._lock:
            if self._access_token is not None and self._clock() < self._expires_at - self._margin:
                return self._access_token
            return self._refresh()

    def invalidate(self) -> None:
        """Forget the cached access token (Zoho answered 401 to it)."""
        with self._lock:
            self._access_token = None
            self._expires_at = 0.0

    def _current_secret(self) -> dict[str, Any]:
        if self._secret is None:
            self._secret = dict(self._load_secret(False))
        return self._secret

    def _field(self, secret: Mapping[str, Any], name: str) -> str:
        value = secret.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"the {self.title} secret has no {name}", platform=self.platform)
        return value

    def _refresh(self) -> str:
        secret = self._current_secret()
        response = self._token_request(secret)
        if _oauth_error(response) is not None:
            fresh = dict(self._load_secret(True))
            if self._field(fresh, "refresh_token") != self._field(secret, "refresh_token"):
                self._secret = secret = fresh
                response = self._token_request(secret)
        payload = self._token_payload(response)
        access_token = payload.get("access_token")
        expires_in = payload.get("expires_in")
        if not isinstance(access_token, str) or not isinstance(expires_in, int | Decimal):
            raise TransientError("Zoho accounts answered without a usable access token", platform=self.platform)
        self._access_token = access_token
        self._expires_at = self._clock() + float(expires_in)
        return access_token

    def _token_request(self, secret: Mapping[str, Any]) -> HttpResponse:
        # Zoho's pages show the grant's parameters in the query string; its accounts server takes them as a form too,
        # which keeps the client secret and refresh token out of URLs and access logs.
        return self._http.request(
            "POST",
            "/oauth/v2/token",
            data={
                "refresh_token": self._field(secret, "refresh_token"),
                "client_id": self._field(secret, "client_id"),
                "client_secret": self._field(secret, "client_secret"),
                "grant_type": "refresh_token",
            },
            headers={"Accept": "application/json"},
        )

    def _token_payload(self, response: HttpResponse) -> dict[str, Any]:
        error = _oauth_error(response)
        if response.status == 429 or response.status >= 500:
            raise TransientError(
                f"Zoho accounts unavailable ({error or f'HTTP {response.status}'})",
                code="zoho_accounts_unavailable",
                platform=self.platform,
                retry_after_seconds=retry_after_seconds(response),
            )
        if error is not None or response.status != 200:
            raise RejectedError(
                f"Zoho refused the token refresh ({error or f'HTTP {response.status}'}): generate a new refresh token "
                f"for the {self.title} client and store it in the secret",
                code="zoho_reconnect_required",
                platform=self.platform,
            )
        try:
            payload = load_json(response.body)
        except ValueError as failure:
            raise TransientError("Zoho accounts answered with unreadable JSON", platform=self.platform) from failure
        if not isinstance(payload, dict):
            raise TransientError("Zoho accounts answered without a token", platform=self.platform)
        return payload


def _oauth_error(response: HttpResponse) -> str | None:
    try:
        payload = load_json(response.body)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, str) else None
