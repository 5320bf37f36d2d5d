"""NetSuite OAuth 2.0 client credentials (machine to machine): a JWT assertion signed with the certificate's private key
is exchanged for a 60-minute access token at ``/services/rest/auth/oauth2/v1/token``.

The JWT header names the algorithm (PS256 for an RSA key, ES256 for an EC P-256 key) and the certificate id of the
integration's mapping (``kid``); its payload the client id (``iss``), the ``rest_webservices`` scope, the token
endpoint (``aud``) and a lifetime under 60 minutes. Nothing rotates: there is no refresh token to write back.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from refundflow.connectors.http import HttpClient, HttpResponse
from refundflow.connectors.oauth_tokens import CachedTokenSource, token_endpoint_failure
from refundflow.errors import ConfigurationError, RefundflowError, TransientError

PLATFORM = "netsuite"
TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
SCOPE = "rest_webservices"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# NetSuite refuses an assertion whose exp is 60 minutes or more after its iat.
ASSERTION_SECONDS = 300
# Refresh a little before the access token expires, so a call never starts with a dying token.
TOKEN_EXPIRY_MARGIN_SECONDS = 120.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_assertion(*, private_key_pem: str, certificate_id: str, client_id: str, audience: str, now: float) -> str:
    """The client assertion: a compact JWT signed PS256 (RSA key) or ES256 (EC P-256 key).

    Raises:
        ConfigurationError: not a PEM private key, or a key of another type or curve.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    try:
        key = serialization.load_pem_private_key(private_key_pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise ConfigurationError(
            "the NetSuite secret's private_key is not a PEM private key", platform=PLATFORM
        ) from error
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = "PS256"
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    else:
        raise ConfigurationError("the NetSuite private_key must be RSA (PS256) or EC P-256 (ES256)", platform=PLATFORM)
    header = {"typ": "JWT", "alg": algorithm, "kid": certificate_id}
    issued = int(now)
    payload = {"iss": client_id, "scope": SCOPE, "aud": audience, "iat": issued, "exp": issued + ASSERTION_SECONDS}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}".encode("ascii")
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(
            signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
        )
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


class NetSuiteTokenSource(CachedTokenSource):
    """Access tokens from the client-credentials grant, cached until shortly before they expire."""

    def __init__(
        self,
        *,
        api_base: str,
        client_id: str,
        certificate_id: str,
        private_key: str,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float = TOKEN_EXPIRY_MARGIN_SECONDS,
    ) -> None:
        super().__init__(clock=clock, expiry_margin_seconds=expiry_margin_seconds)
        self.token_url = f"{api_base.rstrip('/')}{TOKEN_PATH}"
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)
        self._client_id = client_id
        self._certificate_id = certificate_id
        self._private_key = private_key
        self.grants = 0

    def _fetch(self) -> tuple[str, float]:
        """Raises:
        TransientError: the token endpoint could not answer now.
        RejectedError: NetSuite refused the client, the certificate or the role (fix the integration).
        ConfigurationError: the private key is unusable."""
        assertion = sign_assertion(
            private_key_pem=self._private_key,
            certificate_id=self._certificate_id,
            client_id=self._client_id,
            audience=self.token_url,
            now=self._clock(),
        )
        response = self._http.request(
            "POST",
            TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            headers={"Accept": "application/json"},
        )
        if response.status != 200:
            raise _token_error(response)
        payload = _json(response)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        expires_in = payload.get("expires_in") if isinstance(payload, dict) else None
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or isinstance(expires_in, bool):
            raise TransientError("NetSuite answered the token request without a usable token", platform=PLATFORM)
        self.grants += 1
        return token, float(expires_in)


def _json(response: HttpResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _token_error(response: HttpResponse) -> RefundflowError:
    payload = _json(response)
    error = payload.get("error") if isinstance(payload, dict) else None
    what = error if isinstance(error, str) else f"HTTP {response.status}"
    return token_endpoint_failure(
        response,
        platform=PLATFORM,
        unavailable=f"NetSuite's token endpoint is unavailable ({what})",
        unavailable_code="netsuite_auth_unavailable",
        refused=f"NetSuite refused the integration's sign-in ({what}): check the client id, the certificate mapping "
        "and the role's REST web services permission",
        refused_code="netsuite_auth_refused",
    )
