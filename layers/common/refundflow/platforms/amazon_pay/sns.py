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
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from refundflow.connectors import signing_certificates
from refundflow.connectors.signing_certificates import CertificateSource, Fetch, check_prefixes, plain_url, under_prefix
from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest

PLATFORM = "amazon_pay"
SNS_CERT_URL = re.compile(r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9._-]{1,128}\.pem$")
SNS_COMMON_NAME = re.compile(r"^sns(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
SOURCE = CertificateSource(platform=PLATFORM, label="SNS", url_name="SigningCertURL")
_SIGNED_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SIGNED_SUBSCRIPTION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


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
        return cls(merchant_ids=tuple(ids), cert_url_prefixes=check_prefixes(prefixes))


def allowed_cert_url(url: str, prefixes: Iterable[str]) -> bool:
    """An SNS certificate URL, or one certificate under one of ``prefixes`` (no user info, query, fragment, ``..``)."""
    if not plain_url(url):
        return False
    return SNS_CERT_URL.match(url) is not None or under_prefix(url, prefixes)


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


class CertificateCache(signing_certificates.CertificateCache):
    """SNS's signing certificates by URL, fetched and cached by the shared rule (``signing_certificates``)."""

    def __init__(self, fetch: Fetch | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(SOURCE, fetch, clock)


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
