"""Signing certificates a platform names in its webhook deliveries (PayPal's ``PAYPAL-CERT-URL``, Amazon SNS's
``SigningCertURL``): fetched only from allow-listed URL prefixes, over TLS verified against the system's roots,
without redirects and at most ``MAX_CERT_BYTES``; kept only when they hold an RSA key of 2048 bits or more; cached
per URL for ``CERT_CACHE_SECONDS`` (at most ``MAX_CACHED_CERTS``).

What the certificate must be issued to, when it must be valid and how the signature is checked stay with each
platform's scheme. ``cryptography`` and ``requests`` are imported on the first certificate only (intake's other
platforms never load them).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from refundflow.errors import AuthenticationFailed, ConfigurationError, TransientError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

CERT_CACHE_SECONDS = 24 * 3600
MAX_CERT_BYTES = 16 * 1024
MAX_CACHED_CERTS = 16
_CERT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class CertificateSource:
    """Whose certificates these are, as refusals name them."""

    platform: str
    """The platform code on errors (``paypal``)."""
    label: str
    """Who issues them, in messages (``PayPal``, ``SNS``)."""
    url_name: str
    """Where the URL came from, in messages (``PAYPAL-CERT-URL``, ``SigningCertURL``)."""


@dataclass(frozen=True)
class SigningCertificate:
    public_key: RSAPublicKey
    not_before: float
    not_after: float
    common_name: str
    fetched_at: float


def plain_url(url: str) -> bool:
    """No user info, query, fragment, backslash or ``..``: a URL that means what it says."""
    parts = urlsplit(url)
    return not (parts.username or parts.password or parts.query or parts.fragment or "\\" in url or ".." in parts.path)


def under_prefix(url: str, prefixes: Iterable[str]) -> bool:
    """Whether ``url`` is a plain URL of one certificate name directly under one of ``prefixes`` (same scheme and
    host, the part after the prefix a single name)."""
    if not plain_url(url):
        return False
    parts = urlsplit(url)
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (parts.scheme, parts.netloc.lower()) != (allowed.scheme, allowed.netloc.lower()):
            continue
        if parts.path.startswith(allowed.path) and _CERT_NAME.match(parts.path[len(allowed.path) :]):
            return True
    return False


def check_prefixes(prefixes: Sequence[object]) -> tuple[str, ...]:
    """A verification secret's ``cert_url_prefixes``, each an absolute http(s) URL prefix.

    Raises:
        ConfigurationError: one is not.
    """
    for prefix in prefixes:
        # A prefix without its closing "/" matches nothing: the part after it must be one certificate name.
        parts = urlsplit(prefix) if isinstance(prefix, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.netloc:
            raise ConfigurationError(f"cert_url_prefixes: {prefix!r} is not an absolute http(s) URL prefix")
    return tuple(str(prefix) for prefix in prefixes)


def fetch_certificate(source: CertificateSource, url: str) -> bytes:
    """GET the certificate over verified TLS, no redirects, at most ``MAX_CERT_BYTES``.

    Raises:
        TransientError: the certificate host did not answer 200 (the platform delivers the message again).
    """
    import requests

    try:
        answer = requests.get(url, timeout=(3.05, 5), allow_redirects=False, stream=True)
        body = answer.raw.read(MAX_CERT_BYTES + 1, decode_content=True)
    except requests.RequestException as error:
        raise TransientError(f"{source.label} certificate not fetched: {error}", platform=source.platform) from error
    if answer.status_code != 200 or len(body) > MAX_CERT_BYTES:
        raise TransientError(
            f"{source.label} certificate not fetched: HTTP {answer.status_code}", platform=source.platform
        )
    return bytes(body)


class CertificateCache:
    """Certificates by URL, loaded once and kept ``CERT_CACHE_SECONDS`` (at most ``MAX_CACHED_CERTS``)."""

    def __init__(
        self, source: CertificateSource, fetch: Fetch | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._source = source
        self._fetch: Fetch = fetch or (lambda url: fetch_certificate(source, url))
        self._clock = clock
        self._certificates: dict[str, SigningCertificate] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> SigningCertificate:
        """Raises:
        TransientError: the certificate could not be fetched.
        AuthenticationFailed: what was fetched is not an RSA certificate."""
        now = self._clock()
        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None and now - cached.fetched_at < CERT_CACHE_SECONDS:
            return cached
        certificate = load_certificate(self._source, self._fetch(url), now)
        with self._lock:
            if len(self._certificates) >= MAX_CACHED_CERTS:
                oldest = min(self._certificates, key=lambda key: self._certificates[key].fetched_at)
                del self._certificates[oldest]
            self._certificates[url] = certificate
        return certificate


def load_certificate(source: CertificateSource, pem: bytes, now: float) -> SigningCertificate:
    """The RSA key, validity period and subject common name of a PEM certificate fetched at ``now``.

    Raises:
        AuthenticationFailed: not a PEM certificate, or not an RSA key of 2048 bits or more.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.x509.oid import NameOID

    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise AuthenticationFailed(
            f"{source.url_name} did not serve a PEM certificate", code="signature_invalid", platform=source.platform
        ) from None
    key = certificate.public_key()
    if not isinstance(key, RSAPublicKey) or key.key_size < 2048:
        raise AuthenticationFailed(
            f"{source.label} certificate is not an RSA key of 2048 bits or more",
            code="signature_invalid",
            platform=source.platform,
        )
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return SigningCertificate(
        public_key=key,
        not_before=certificate.not_valid_before_utc.timestamp(),
        not_after=certificate.not_valid_after_utc.timestamp(),
        common_name=str(names[0].value) if names else "",
        fetched_at=now,
    )
