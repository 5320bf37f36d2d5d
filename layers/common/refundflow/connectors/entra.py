"""Microsoft Entra ID access tokens by the OAuth 2.0 client-credentials grant, shared by the Microsoft platforms
(Dynamics 365 Business Central, Dynamics 365 Finance).

One form POST to ``{login_base}/{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``, the app's client
id and secret and the resource's ``/.default`` scope (Microsoft identity platform, "OAuth 2.0 client credentials
flow": https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow). The token is cached
until ``expiry_margin_seconds`` before it expires and forgotten when the resource answers 401 to it. Nothing rotates:
the client secret is the app registration's, so the function's secret is never written back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from decimal import Decimal

from refundflow.connectors.http import HttpClient, HttpResponse, oauth_error_words
from refundflow.connectors.oauth_tokens import CachedTokenSource, token_endpoint_failure
from refundflow.errors import RefundflowError, TransientError

DEFAULT_LOGIN_BASE = "https://login.microsoftonline.com"
# Refresh a little before Entra ID's access tokens (about an hour) expire, so a call never starts with a dying one.
TOKEN_EXPIRY_MARGIN_SECONDS = 300.0


class EntraTokenSource(CachedTokenSource):
    """Access tokens for one app in one tenant and one resource scope, cached until shortly before they expire.

    ``platform`` names the errors (``<platform>_credentials``, ``<platform>_identity_unavailable``); ``title`` is the
    product an accountant reads in them."""

    def __init__(
        self,
        *,
        platform: str,
        title: str,
        scope: str,
        login_base: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float = TOKEN_EXPIRY_MARGIN_SECONDS,
    ) -> None:
        super().__init__(clock=clock, expiry_margin_seconds=expiry_margin_seconds)
        self.platform = platform
        self.title = title
        self.scope = scope
        self._http = http or HttpClient(platform=platform, base_url=login_base)
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._client_secret = client_secret

    def _fetch(self) -> tuple[str, float]:
        """Raises:
        TransientError: Entra ID could not answer now.
        RejectedError: Entra ID refused the app's credentials (``<platform>_credentials``)."""
        response = self._http.request(
            "POST",
            f"/{self._tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "scope": self.scope,
            },
            headers={"Accept": "application/json"},
        )
        if response.status != 200:
            raise self._token_error(response)
        try:
            payload = json.loads(response.body, parse_float=Decimal) if response.body else None
        except ValueError as error:
            raise TransientError("Entra ID answered with unreadable JSON", platform=self.platform) from error
        token = payload.get("access_token") if isinstance(payload, Mapping) else None
        expires_in = payload.get("expires_in") if isinstance(payload, Mapping) else None
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(token, str) or not isinstance(expires_in, int | Decimal) or isinstance(expires_in, bool):
            raise TransientError("Entra ID answered without a usable access token", platform=self.platform)
        return token, float(expires_in)

    def _token_error(self, response: HttpResponse) -> RefundflowError:
        what = oauth_error_words(response)
        return token_endpoint_failure(
            response,
            platform=self.platform,
            unavailable=f"Entra ID unavailable ({what})",
            unavailable_code=f"{self.platform}_identity_unavailable",
            refused=f"Entra ID refused the {self.title} app's credentials ({what}): check the tenant, client id and "
            "secret",
            refused_code=f"{self.platform}_credentials",
        )
