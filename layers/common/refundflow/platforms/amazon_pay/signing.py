"""AMZN-PAY-RSASSA-PSS-V2: how every Amazon Pay API request is signed with the merchant's private key.

developer.amazon.com/docs/amazon-pay-api-v2/signing-requests.html (and Amazon's own SDKs):
- canonical request = method, canonical URI (the whole path, environment and version included), canonical query
  string (parameters sorted, URI-encoded), one ``name:value`` line per signed header (lower-case names, sorted), an
  empty line, the signed header names joined by ``;``, and the hex SHA-256 of the payload (of "" without one);
- string to sign = ``AMZN-PAY-RSASSA-PSS-V2`` + "\\n" + the hex SHA-256 of the canonical request;
- signature = RSASSA-PSS (SHA-256, MGF1 SHA-256, salt length 32; the older AMZN-PAY-RSASSA-PSS used 20), base64;
- header ``authorization: AMZN-PAY-RSASSA-PSS-V2 PublicKeyId=<id>, SignedHeaders=<names>, Signature=<base64>``;
  the signed headers are ``accept``, ``content-type``, ``x-amz-pay-date`` (``YYYYMMDDTHHMMSSZ``, UTC),
  ``x-amz-pay-host``, ``x-amz-pay-region`` and, on a POST, ``x-amz-pay-idempotency-key``.

``cryptography`` is imported when the first key is loaded.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from refundflow.errors import ConfigurationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ALGORITHM = "AMZN-PAY-RSASSA-PSS-V2"
SALT_LENGTH = 32
PLATFORM = "amazon_pay"
_KEY_CHARACTERS = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def amazon_idempotency_key(key: str) -> str:
    """``key`` as Amazon Pay takes one (at most 32 of ``A-Za-z0-9_-``): itself when it fits, else the first 32 hex
    digits of its SHA-256, so the same refund always sends the same key."""
    if _KEY_CHARACTERS.match(key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def amz_date(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def canonical_query(params: Mapping[str, str] | None) -> str:
    return "&".join(
        f"{quote(key, safe='')}={quote(str(value), safe='')}" for key, value in sorted((params or {}).items())
    )


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], payload: bytes
) -> tuple[str, str]:
    """``(canonical request, signed header names)`` for the headers given (all of them are signed)."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    names = sorted(lowered)
    lines = "".join(f"{name}:{lowered[name]}\n" for name in names)
    signed = ";".join(names)
    digest = hashlib.sha256(payload).hexdigest()
    return f"{method.upper()}\n{path}\n{query}\n{lines}\n{signed}\n{digest}", signed


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def load_private_key(pem: str) -> RSAPrivateKey:
    """Raises:
    ConfigurationError: not an unencrypted PEM RSA private key."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise ConfigurationError("Amazon Pay private_key is not a PEM private key", platform=PLATFORM) from error
    if not isinstance(key, RSAPrivateKey):
        raise ConfigurationError("Amazon Pay private_key is not an RSA key", platform=PLATFORM)
    return key


def sign(key: RSAPrivateKey, text: str) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = key.sign(
        text.encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LENGTH), hashes.SHA256()
    )
    return base64.b64encode(signature).decode()


def signed_headers(
    *,
    key: RSAPrivateKey,
    public_key_id: str,
    method: str,
    path: str,
    host: str,
    region: str,
    payload: bytes,
    at: datetime,
    params: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, str]:
    """The headers of one signed request, ``authorization`` included."""
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "x-amz-pay-date": amz_date(at),
        "x-amz-pay-host": host,
        "x-amz-pay-region": region,
    }
    if idempotency_key is not None:
        headers["x-amz-pay-idempotency-key"] = idempotency_key
    canonical, names = canonical_request(method, path, canonical_query(params), headers, payload)
    signature = sign(key, string_to_sign(canonical))
    headers["authorization"] = f"{ALGORITHM} PublicKeyId={public_key_id}, SignedHeaders={names}, Signature={signature}"
    return headers
