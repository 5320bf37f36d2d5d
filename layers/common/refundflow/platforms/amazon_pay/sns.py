"""Amazon Pay IPNs are Amazon SNS messages: verified with SNS's own signature, on the raw body, no API call.

docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html: a ``Notification`` is signed over
``Message``, ``MessageId``, ``Subject`` (when present), ``Timestamp``, ``TopicArn`` and ``Type``, each written as its
name, a newline, its value and a newline; ``SignatureVersion`` 1 is SHA1withRSA, 2 SHA256withRSA (PKCS #1 v1.5);
the certificate is at ``SigningCertURL``, which must be an https URL on ``sns.<region>.amazonaws.com`` (a deployment
may name other URL prefixes in its verification secret; the local stack names its simulator). The certificate is
fetched over TLS verified against the system's roots, its subject must be an SNS name on Amazon's hosts, and it is
cached per URL.

SNS delivers the same signed message again (Amazon Pay: every hour for up to 14 days) with its original
``Timestamp``, so no age limit is put on it: its ``MessageId`` is marked seen, and the IPN only names objects that
are read from the API before anything changes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest, TransientError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

PLATFORM = "amazon_pay"
SNS_CERT_URL = re.compile(r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9._-]{1,128}\.pem$")
SNS_COMMON_NAME = re.compile(r"^sns(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
CERT_CACHE_SECONDS = 24 * 3600
MAX_CERT_BYTES = 16 * 1024
MAX_CACHED_CERTS = 16
_CERT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SIGNED_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SIGNED_SUBSCRIPTION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")

Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class VerificationSecret:
    """Intake's secret ``<prefix>webhooks/amazon_pay``: ``{"merchant_ids": [...], "cert_url_prefixes"?: [...]}``.

    An IPN for a merchant id not listed is refused (several while an account moves)."""

    merchant_ids: tuple[str, ...]
    cert_url_prefixes: tuple[str, ...] = ()

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> VerificationSecret:
        """Raises:
        ConfigurationError: no merchant id, or a prefix that is not an absolute http(s) URL."""
        ids = secret.get("merchant_ids")
        if (
            isinstance(ids, str)
            or not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str) and i for i in ids)
        ):
            raise ConfigurationError("Amazon Pay verification secret needs merchant_ids: a non-empty list of strings")
        prefixes = secret.get("cert_url_prefixes", [])
        if not isinstance(prefixes, list):
            raise ConfigurationError("cert_url_prefixes must be a list of URL prefixes")
        for prefix in prefixes:
            parts = urlsplit(prefix) if isinstance(prefix, str) else None
            if parts is None or parts.scheme not in ("https", "http") or not parts.netloc:
                raise ConfigurationError(f"cert_url_prefixes: {prefix!r} is not an absolute http(s) URL prefix")
        return cls(merchant_ids=tuple(ids), cert_url_prefixes=tuple(prefixes))


def allowed_cert_url(url: str, prefixes: Iterable[str]) -> bool:
    """An SNS certificate URL, or one certificate under one of ``prefixes`` (no user info, query, fragment, ``..``)."""
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment or "\\" in url or ".." in parts.path:
        return False
    if SNS_CERT_URL.match(url):
        return True
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (parts.scheme, parts.netloc.lower()) != (allowed.scheme, allowed.netloc.lower()):
            continue
        if parts.path.startswith(allowed.path) and _CERT_NAME.match(parts.path[len(allowed.path) :]):
            return True
    return False


def string_to_sign(message: Mapping[str, Any]) -> str:
    """What SNS signs for a Notification (or a subscription message)."""
    notification = message.get("Type") == "Notification"
    keys = _SIGNED_NOTIFICATION if notification else _SIGNED_SUBSCRIPTION
    parts = []
    for key in keys:
        value = message.get(key)
        if value is None and key == "Subject":
            continue
        if not isinstance(value, str):
            raise AuthenticationFailed(f"SNS message without {key}", code="signature_invalid", platform=PLATFORM)
        parts.append(f"{key}\n{value}\n")
    return "".join(parts)


@dataclass(frozen=True)
class _Certificate:
    public_key: RSAPublicKey
    not_before: float
    not_after: float
    common_name: str
    fetched_at: float


def fetch_certificate(url: str) -> bytes:
    """GET the certificate over verified TLS, no redirects, at most ``MAX_CERT_BYTES``.

    Raises:
        TransientError: the certificate host did not answer 200 (SNS delivers the message again).
    """
    import requests

    try:
        answer = requests.get(url, timeout=(3.05, 5), allow_redirects=False, stream=True)
        body = answer.raw.read(MAX_CERT_BYTES + 1, decode_content=True)
    except requests.RequestException as error:
        raise TransientError(f"SNS certificate not fetched: {error}", platform=PLATFORM) from error
    if answer.status_code != 200 or len(body) > MAX_CERT_BYTES:
        raise TransientError(f"SNS certificate not fetched: HTTP {answer.status_code}", platform=PLATFORM)
    return bytes(body)


class CertificateCache:
    """Certificates by URL, loaded once and kept ``CERT_CACHE_SECONDS`` (at most ``MAX_CACHED_CERTS``)."""

    def __init__(self, fetch: Fetch = fetch_certificate, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._certificates: dict[str, _Certificate] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> _Certificate:
        """Raises:
        TransientError: the certificate could not be fetched.
        AuthenticationFailed: what was fetched is not an RSA certificate."""
        now = self._clock()
        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None and now - cached.fetched_at < CERT_CACHE_SECONDS:
            return cached
        certificate = _load(self._fetch(url), now)
        with self._lock:
            if len(self._certificates) >= MAX_CACHED_CERTS:
                oldest = min(self._certificates, key=lambda key: self._certificates[key].fetched_at)
                del self._certificates[oldest]
            self._certificates[url] = certificate
        return certificate


def _load(pem: bytes, now: float) -> _Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.x509.oid import NameOID

    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise AuthenticationFailed(
            "SigningCertURL did not serve a PEM certificate", code="signature_invalid", platform=PLATFORM
        ) from None
    key = certificate.public_key()
    if not isinstance(key, RSAPublicKey) or key.key_size < 2048:
        raise AuthenticationFailed(
            "SNS certificate is not an RSA key of 2048 bits or more", code="signature_invalid", platform=PLATFORM
        )
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return _Certificate(
        public_key=key,
        not_before=certificate.not_valid_before_utc.timestamp(),
        not_after=certificate.not_valid_after_utc.timestamp(),
        common_name=str(names[0].value) if names else "",
        fetched_at=now,
    )


def parse_message(raw_body: bytes) -> dict[str, Any]:
    """The SNS message (a JSON object, sent as text/plain).

    Raises:
        AuthenticationFailed: not a JSON object (nothing to verify).
    """
    try:
        body = json.loads(raw_body)
    except ValueError:
        raise AuthenticationFailed(
            "IPN body is not an SNS message", code="signature_missing", platform=PLATFORM
        ) from None
    if not isinstance(body, dict):
        raise AuthenticationFailed("IPN body is not an SNS message", code="signature_missing", platform=PLATFORM)
    return body


def verify(raw_body: bytes, secret: VerificationSecret, *, certificates: CertificateCache) -> dict[str, Any]:
    """Check one SNS message on its raw body; returns it.

    Raises:
        AuthenticationFailed: not a signed SNS message, another signature version, a certificate URL outside SNS's
            hosts and the allowed prefixes, an unusable certificate, or a signature that does not verify.
        TransientError: the certificate could not be fetched.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    message = parse_message(raw_body)
    version, cert_url = message.get("SignatureVersion"), message.get("SigningCertURL")
    if version not in ("1", "2"):
        raise AuthenticationFailed(
            f"SNS SignatureVersion {version!r} is not 1 or 2", code="signature_invalid", platform=PLATFORM
        )
    if not isinstance(cert_url, str) or not allowed_cert_url(cert_url, secret.cert_url_prefixes):
        raise AuthenticationFailed(
            "SigningCertURL is not a certificate URL of Amazon SNS", code="signature_invalid", platform=PLATFORM
        )
    try:
        signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationFailed("SNS Signature is not base64", code="signature_invalid", platform=PLATFORM) from None
    text = string_to_sign(message)
    certificate = certificates.get(cert_url)
    sent_at = _timestamp(message.get("Timestamp"))
    if not certificate.not_before <= sent_at <= certificate.not_after:
        raise AuthenticationFailed(
            "SNS certificate was not valid when the message was sent", code="signature_invalid", platform=PLATFORM
        )
    if SNS_CERT_URL.match(cert_url) and not SNS_COMMON_NAME.match(certificate.common_name):
        raise AuthenticationFailed(
            "SNS certificate is not issued to an SNS name", code="signature_invalid", platform=PLATFORM
        )
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS's SignatureVersion 1
    try:
        certificate.public_key.verify(signature, text.encode(), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise AuthenticationFailed(
            "SNS signature does not verify", code="signature_invalid", platform=PLATFORM
        ) from None
    return message


def _timestamp(value: object) -> float:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise AuthenticationFailed(
            f"SNS Timestamp {value!r} is not an ISO 8601 time", code="signature_invalid", platform=PLATFORM
        )
    return parsed.timestamp()


def ipn_of(message: Mapping[str, Any]) -> dict[str, Any]:
    """The IPN in a verified Notification's ``Message``.

    Raises:
        InvalidRequest: a Message that is not a JSON object.
    """
    try:
        ipn = json.loads(str(message.get("Message")))
    except ValueError:
        raise InvalidRequest("IPN Message is not JSON", code="invalid_payload", platform=PLATFORM) from None
    if not isinstance(ipn, dict):
        raise InvalidRequest("IPN Message is not a JSON object", code="invalid_payload", platform=PLATFORM)
    return ipn
