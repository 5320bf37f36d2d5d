"""Zoho's accounts server as the Zoho sandbox simulators (Zoho Books, Zoho CRM) serve it.

What Zoho documents (www.zoho.com/crm/developer/docs/api/v8/refresh.html, www.zoho.com/books/api/v3/oauth/):
``POST /oauth/v2/token`` with ``grant_type=refresh_token``, ``client_id``, ``client_secret`` and ``refresh_token`` (in
the query string or the form) answers ``{"access_token", "api_domain", "token_type": "Bearer", "expires_in": 3600}``;
a refused grant is ``{"error": "invalid_code" | "invalid_client" | ...}`` under HTTP 200. The API takes the access
token as ``Authorization: Zoho-oauthtoken <token>``. Refresh tokens do not rotate.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import Simulator, json_response


class ZohoAccountsSimulator(Simulator):
    """One Zoho client's refresh-token grant at ``/accounts/oauth/v2/token`` and the access tokens it issued, each
    valid ``ACCESS_TOKEN_SECONDS``. A subclass sets ``client_id``, ``client_secret``, ``refresh_token`` and
    ``clock``, and checks a request's token with ``access_token_valid``."""

    ACCESS_TOKEN_SECONDS: ClassVar[int] = 3600
    client_id: str
    client_secret: str
    refresh_token: str
    clock: Callable[[], float]

    def __init__(self) -> None:
        self.access_tokens: dict[str, float] = {}
        self.token_grants = 0
        super().__init__()
        self.route("/accounts/oauth/v2/token", self._zoho_token, methods=["POST"])

    def access_token_valid(self, request: Request) -> bool:
        """Whether the request carries ``Zoho-oauthtoken <token>`` with a token this server issued and has not
        revoked, still inside its hour."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self.lock:
            expires = self.access_tokens.get(token.strip()) if scheme == "Zoho-oauthtoken" else None
            return expires is not None and expires > self.clock()

    def revoke_access_tokens(self) -> None:
        """Make every issued access token answer 401 (as an hour later, or after a revocation)."""
        with self.lock:
            self.access_tokens.clear()

    def _zoho_token(self, request: Request) -> Response:
        values = {**request.form.to_dict(), **request.args.to_dict()}
        if values.get("grant_type") != "refresh_token":
            return json_response({"error": "unsupported_grant_type"})
        if values.get("client_id") != self.client_id or values.get("client_secret") != self.client_secret:
            return json_response({"error": "invalid_client"})
        if values.get("refresh_token") != self.refresh_token:
            return json_response({"error": "invalid_code"})
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        with self.lock:
            self.access_tokens[token] = self.clock() + self.ACCESS_TOKEN_SECONDS
            self.token_grants += 1
        return json_response(
            {
                "access_token": token,
                "api_domain": "https://www.zohoapis.com",
                "token_type": "Bearer",
                "expires_in": self.ACCESS_TOKEN_SECONDS,
            }
        )
