"""PayPal webhook verification by certificate (no API call, no API credentials).

PayPal signs each delivery with its private key (developer.paypal.com/api/rest/webhooks/rest, "verify the
signature"): headers ``PAYPAL-TRANSMISSION-ID``, ``PAYPAL-TRANSMISSION-TIME``, ``PAYPAL-TRANSMISSION-SIG`` (base64),
``PAYPAL-CERT-URL`` and ``PAYPAL-AUTH-ALGO`` (``SHA256withRSA``). The signed string is
``<transmission id>|<transmission time>|<webhook id>|<CRC32 of the raw body as an unsigned decimal>``, the string
PayPal's own Python SDK builds (``paypalrestsdk`` ``WebhookEvent._get_expected_sig``); the webhook id is the one
PayPal gave the subscribed URL, so a delivery meant for another listener does not verify here.

Why the certificate and not ``POST /v1/notifications/verify-webhook-signature``: that API needs an OAuth token,
i.e. the REST app's client secret, which can move money. Intake holds verification secrets only (the webhook ids
here); the certificate scheme needs nothing else.

What stands in for the SDK's certificate-chain check: the certificate is fetched only from PayPal's own hosts
(``https://api[-m][.sandbox].paypal.com/v1/notifications/certs/...``; a deployment may name other URL prefixes in
its verification secret, the local stack names its simulator), over TLS verified against the system's roots, so
TLS authenticates the certificate's origin; and on PayPal's hosts its subject must end in ``.paypal.com``
(PayPal's SDK asks the same). Its validity period is checked at the transmission time. Fetched certificates are
cached per URL (PayPal serves one URL per certificate).

PayPal documents no tolerance for the transmission time; refundflow accepts ``TOLERANCE_SECONDS`` either way
(a replay of an older delivery is refused; the event id is also marked seen, so a replay inside the window
changes nothing).
"""

from __future__ import annotations

import base64
import binascii
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from refundflow.connectors import signing_certificates
from refundflow.connectors.signing_certificates import CertificateSource, Fetch, check_prefixes, under_prefix
from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest

PLATFORM = "paypal"
AUTH_ALGO = "SHA256withRSA"
TOLERANCE_SECONDS = 600
PAYPAL_CERT_URL_PREFIXES: tuple[str, ...] = tuple(
    f"https://{host}/v1/notifications/certs/"
    for host in ("api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com")
)
HEADERS = (
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "paypal-auth-algo",
)
SOURCE = CertificateSource(platform=PLATFORM, label="PayPal", url_name="PAYPAL-CERT-URL")


@dataclass(frozen=True)
class VerificationSecret:
    """Intake's secret ``<prefix>webhooks/paypal``: ``{"webhook_ids": [...], "cert_url_prefixes"?: [...]}``.

    Several webhook ids are accepted while a listener is being moved (each subscribed URL has its own id).
    """

    webhook_ids: tuple[str, ...]
    cert_url_prefixes: tuple[str, ...] = PAYPAL_CERT_URL_PREFIXES

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> VerificationSecret:
        """Raises:
        ConfigurationError: no webhook id, or a prefix that is not an absolute http(s) URL."""
        ids = secret.get("webhook_ids")
        if (
            isinstance(ids, str)
            or not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str) and i for i in ids)
        ):
            raise ConfigurationError("PayPal verification secret needs webhook_ids: a non-empty list of strings")
        prefixes = secret.get("cert_url_prefixes", list(PAYPAL_CERT_URL_PREFIXES))
        if not isinstance(prefixes, list) or not prefixes:
            raise ConfigurationError("cert_url_prefixes must be a non-empty list of URL prefixes")
        return cls(webhook_ids=tuple(ids), cert_url_prefixes=check_prefixes(prefixes))


@dataclass(frozen=True)
class Transmission:
    """The five PayPal headers of one delivery."""

    transmission_id: str
    transmission_time: str
    signature: bytes
    cert_url: str
    auth_algo: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Transmission:
        """Raises:
        AuthenticationFailed: a header is missing or the signature is not base64."""
        lowered = {key.lower(): value for key, value in headers.items()}
        missing = [name for name in HEADERS if not lowered.get(name, "").strip()]
        if missing:
            raise AuthenticationFailed(
                f"missing PayPal signature headers: {', '.join(missing)}", code="signature_missing", platform=PLATFORM
            )
        try:
            signature = base64.b64decode(lowered["paypal-transmission-sig"].strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuthenticationFailed(
                "PAYPAL-TRANSMISSION-SIG is not base64", code="signature_invalid", platform=PLATFORM
            ) from None
        return cls(
            transmission_id=lowered["paypal-transmission-id"].strip(),
            transmission_time=lowered["paypal-transmission-time"].strip(),
            signature=signature,
            cert_url=lowered["paypal-cert-url"].strip(),
            auth_algo=lowered["paypal-auth-algo"].strip(),
        )


def signing_string(transmission_id: str, transmission_time: str, webhook_id: str, raw_body: bytes) -> str:
    """What PayPal signs: ``id|time|webhook id|CRC32(raw body)`` (unsigned decimal)."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(raw_body) & 0xFFFFFFFF}"


def parse_time(value: str) -> float:
    """RFC 3339 (``2016-09-21T22:00:46Z``) to epoch seconds.

    Raises:
        AuthenticationFailed: not an RFC 3339 date-time with an offset.
    """
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise AuthenticationFailed(
            f"PAYPAL-TRANSMISSION-TIME {value!r} is not an RFC 3339 time", code="signature_invalid", platform=PLATFORM
        )
    return parsed.timestamp()


def allowed_cert_url(url: str, prefixes: Iterable[str]) -> bool:
    """Whether ``url`` is one certificate under one of ``prefixes`` (no user info, query, fragment or ``..``)."""
    return under_prefix(url, prefixes)


class CertificateCache(signing_certificates.CertificateCache):
    """PayPal's certificates by URL, fetched and cached by the shared rule (``signing_certificates``)."""

    def __init__(self, fetch: Fetch | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(SOURCE, fetch, clock)


def verify(
    headers: Mapping[str, str],
    raw_body: bytes,
    secret: VerificationSecret,
    *,
    certificates: CertificateCache,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> str:
    """Check one delivery; returns the webhook id it was signed for.

    Raises:
        AuthenticationFailed: missing or malformed headers, another algorithm, a stale or future transmission,
            a certificate URL outside the allowed prefixes, an unusable certificate, or a signature that does
            not verify for any configured webhook id.
        TransientError: the certificate could not be fetched (PayPal retries the delivery).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    transmission = Transmission.from_headers(headers)
    if transmission.auth_algo != AUTH_ALGO:
        raise AuthenticationFailed(
            f"PAYPAL-AUTH-ALGO {transmission.auth_algo!r} is not {AUTH_ALGO}",
            code="signature_invalid",
            platform=PLATFORM,
        )
    sent_at = parse_time(transmission.transmission_time)
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise AuthenticationFailed(
            f"transmission time {transmission.transmission_time} is more than {tolerance:.0f} s from now",
            code="signature_stale",
            platform=PLATFORM,
        )
    if not allowed_cert_url(transmission.cert_url, secret.cert_url_prefixes):
        raise AuthenticationFailed(
            "PAYPAL-CERT-URL is not a certificate URL of an allowed host", code="signature_invalid", platform=PLATFORM
        )
    certificate = certificates.get(transmission.cert_url)
    if not certificate.not_before <= sent_at <= certificate.not_after:
        raise AuthenticationFailed(
            "PayPal certificate was not valid at the transmission time", code="signature_invalid", platform=PLATFORM
        )
    if allowed_cert_url(transmission.cert_url, PAYPAL_CERT_URL_PREFIXES) and not certificate.common_name.endswith(
        ".paypal.com"
    ):
        raise AuthenticationFailed(
            "PayPal certificate is not issued to a paypal.com name", code="signature_invalid", platform=PLATFORM
        )
    for webhook_id in secret.webhook_ids:
        message = signing_string(transmission.transmission_id, transmission.transmission_time, webhook_id, raw_body)
        try:
            certificate.public_key.verify(transmission.signature, message.encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return webhook_id
    raise AuthenticationFailed(
        "PayPal signature does not verify for any configured webhook id", code="signature_invalid", platform=PLATFORM
    )


def require_json_object(raw_body: bytes) -> Mapping[str, Any]:
    """The body as a JSON object (verified deliveries only).

    Raises:
        InvalidRequest: not a JSON object.
    """
    import json

    try:
        body = json.loads(raw_body)
    except ValueError:
        raise InvalidRequest("PayPal webhook body is not JSON", code="invalid_payload", platform=PLATFORM) from None
    if not isinstance(body, dict):
        raise InvalidRequest("PayPal webhook body is not a JSON object", code="invalid_payload", platform=PLATFORM)
    return body


__all__: Sequence[str] = (
    "AUTH_ALGO",
    "PAYPAL_CERT_URL_PREFIXES",
    "TOLERANCE_SECONDS",
    "CertificateCache",
    "Transmission",
    "VerificationSecret",
    "allowed_cert_url",
    "parse_time",
    "require_json_object",
    "signing_string",
    "verify",
)
