"""A local OpenID issuer for approvers: it signs JWTs (RS256) and validates them the way API Gateway's
JWT authorizer does (signature against the issuer's JWKS, iss, aud, exp, nbf). Its key pair is made
at start and lives only in memory; the tokens it mints are good for this local stack only."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request, Response

ROLE_CLAIM = "refundflow:role"
KEY_ID = "refundflow-local-1"


class LocalIssuer:
    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def mint(
        self,
        subject: str,
        role: str,
        *,
        refund_id: str | None = None,
        ttl_seconds: int = 900,
        audience: str | None = None,
        issued_at: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed approver token. ``refund_id`` binds it to one refund; ``jti`` makes it single-use."""
        now = int(issued_at if issued_at is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": str(uuid.uuid4()),
            ROLE_CLAIM: role,
            **(extra or {}),
        }
        if refund_id:
            claims["refundflow:refund_id"] = refund_id
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": KEY_ID})

    def authorize(self, header: str) -> dict[str, Any] | None:
        """The token's claims as API Gateway passes them on, or None (API Gateway answers 401)."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        # API Gateway hands claims to the function as strings.
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in claims.items()}

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}

    def wsgi(self, request: Request) -> Response:
        suffix = request.path[len("/_local/issuer") :]
        if suffix == "/.well-known/openid-configuration":
            document = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/.well-known/jwks.json"}
            return Response(json.dumps(document), mimetype="application/json")
        if suffix == "/.well-known/jwks.json":
            return Response(json.dumps(self.jwks()), mimetype="application/json")
        if suffix == "/token" and request.method == "POST":
            payload = request.get_json(force=True, silent=True) or {}
            if not payload.get("sub") or not payload.get("role"):
                return Response(
                    json.dumps({"error": "sub and role are required"}), status=400, mimetype="application/json"
                )
            token = self.mint(
                str(payload["sub"]),
                str(payload["role"]),
                refund_id=payload.get("refund_id"),
                ttl_seconds=int(payload.get("ttl_seconds", 900)),
            )
            return Response(json.dumps({"access_token": token, "token_type": "Bearer"}), mimetype="application/json")
        return Response(json.dumps({"error": "not found"}), status=404, mimetype="application/json")
