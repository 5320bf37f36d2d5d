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

import time
from collections.abc import Callable, Mapping
from typing import Any

from refundflow.connectors import exact_json
from refundflow.connectors.http import HttpClient, HttpResponse
from refundflow.connectors.oauth_tokens import RefreshTokenGrant, SecretLoader, oauth_error_code

# Refresh a little before Zoho's one-hour access tokens expire.
TOKEN_EXPIRY_MARGIN_SECONDS = 300.0


load_json = exact_json.loads
"""Zoho's JSON with every non-integer number as an exact ``Decimal`` (``connectors.exact_json``)."""


class ZohoTokenSource(RefreshTokenGrant):
    """Access tokens from Zoho's refresh-token grant at the data centre's accounts server, cached until shortly
    before they expire (one hour). ``platform`` names the errors; ``title`` is the product a person reads in them.
    Zoho says a refused grant with ``{"error": ...}`` under HTTP 200 as often as under 400, so any ``error`` is a
    refusal; its refresh tokens do not rotate, so nothing is stored."""

    service = "Zoho accounts"
    unavailable_code = "zoho_accounts_unavailable"
    reconnect_code = "zoho_reconnect_required"
    reconnect_hint = "generate a new refresh token for the {title} client and store it in the secret"

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
        super().__init__(
            platform=platform,
            title=title,
            http=http or HttpClient(platform=platform, base_url=accounts_base),
            load_secret=load_secret,
            clock=clock,
            expiry_margin_seconds=expiry_margin_seconds,
        )

    def _refused(self, response: HttpResponse) -> bool:
        return oauth_error_code(response) is not None

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
