"""Braintree webhook verification: ``bt_signature`` / ``bt_payload``, form-encoded (no API call, no API key).

What Braintree posts (its server SDKs' ``WebhookNotification.parse`` and ``WebhookTesting``): a form body with
``bt_signature`` and ``bt_payload``. The payload is the base64 text (with newlines) of a ``<notification>`` XML
document (``timestamp``, ``kind``, ``subject``); the signature is one or more ``<public key>|<hex HMAC-SHA1>`` pairs
joined by ``&``, the HMAC keyed with SHA1(private key) over the payload exactly as sent (the SDKs also accept the
payload with a trailing newline). A payload with a character outside ``[A-Za-z0-9+=/\\n]`` is refused before
anything else, as the SDKs do.

Intake holds no API credentials, so its verification secret does not hold the private key: it holds the HMAC key
itself, SHA1(private key) in hex (``{"signing_keys": ["<public key>|<40 hex>", ...]}``; several while an API key is
replaced). SHA1 is one-way: the private key, which can move money, cannot be recovered from it.

Braintree signs no separate time and retries a failed delivery for hours: there is no freshness window here. A
replay carries the same notification (kind, subject id, timestamp: its event id) and is applied once; the news only
names the refund, which the platform function then reads from the API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest

PLATFORM = "braintree"
MAX_BODY_BYTES = 256 * 1024
_PAYLOAD = re.compile(rb"^[A-Za-z0-9+=/\n]+$")
_HEX_KEY = re.compile(r"^[0-9a-f]{40}$")
_PUBLIC_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class SigningKey:
    public_key: str
    hmac_key: bytes


def hmac_key_of(private_key: str) -> str:
    """The HMAC key Braintree signs webhooks with: SHA1 of the API private key, in hex (what intake holds)."""
    return hashlib.sha1(private_key.encode("ascii")).hexdigest()  # noqa: S324 - Braintree's scheme, not ours


def signing_keys(secret: Mapping[str, Any]) -> tuple[SigningKey, ...]:
    """The verification secret ``{"signing_keys": ["<public key>|<hex SHA1(private key)>", ...]}``.

    Raises:
        ConfigurationError: no key, or one of another shape (a private key stored by mistake is refused).
    """
    entries = secret.get("signing_keys")
    if isinstance(entries, str) or not isinstance(entries, list) or not entries:
        raise ConfigurationError(
            "Braintree verification secret needs signing_keys: a non-empty list", platform=PLATFORM
        )
    keys = []
    for entry in entries:
        public_key, _, hex_key = entry.partition("|") if isinstance(entry, str) else ("", "", "")
        if not _PUBLIC_KEY.match(public_key) or not _HEX_KEY.match(hex_key.lower()):
            raise ConfigurationError(
                "signing_keys entries are '<public key>|<40 hex: SHA1 of the private key>'", platform=PLATFORM
            )
        keys.append(SigningKey(public_key=public_key, hmac_key=bytes.fromhex(hex_key)))
    return tuple(keys)


def sign(payload: bytes, public_key: str, hex_key: str) -> str:
    """One ``public_key|signature`` pair for ``payload`` (the simulator's and the tests' counterpart)."""
    digest = hmac.new(bytes.fromhex(hex_key), payload, hashlib.sha1).hexdigest()
    return f"{public_key}|{digest}"


def form_fields(raw_body: bytes) -> tuple[str, bytes]:
    """``bt_signature`` and ``bt_payload`` of a form body, each exactly once.

    Raises:
        AuthenticationFailed: not such a form (missing, repeated or non-ASCII fields, too large).
    """
    if not raw_body or len(raw_body) > MAX_BODY_BYTES:
        raise AuthenticationFailed(
            "no Braintree bt_signature/bt_payload body", code="signature_missing", platform=PLATFORM
        )
    try:
        fields = parse_qs(raw_body.decode("ascii"), keep_blank_values=True, strict_parsing=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise AuthenticationFailed(
            "Braintree webhook body is not a form", code="signature_missing", platform=PLATFORM
        ) from None
    signatures, payloads = fields.get("bt_signature", []), fields.get("bt_payload", [])
    if len(signatures) != 1 or len(payloads) != 1 or not signatures[0] or not payloads[0]:
        raise AuthenticationFailed(
            "a Braintree webhook carries one bt_signature and one bt_payload",
            code="signature_missing",
            platform=PLATFORM,
        )
    return signatures[0], payloads[0].encode("ascii")


def verify(raw_body: bytes, keys: Sequence[SigningKey]) -> bytes:
    """The verified payload of a delivery.

    Raises:
        AuthenticationFailed: no form, an illegal payload character, no pair for a public key we hold, or no pair
            whose HMAC matches.
    """
    signature, payload = form_fields(raw_body)
    if not _PAYLOAD.match(payload):
        raise AuthenticationFailed(
            "bt_payload contains illegal characters", code="signature_invalid", platform=PLATFORM
        )
    pairs = [pair.split("|", 1) for pair in signature.split("&") if "|" in pair]
    known = False
    for key in keys:
        for public_key, digest in pairs:
            if public_key != key.public_key:
                continue
            known = True
            for candidate in (payload, payload + b"\n"):
                expected = hmac.new(key.hmac_key, candidate, hashlib.sha1).hexdigest()
                if hmac.compare_digest(expected, digest.lower()):
                    return payload
    raise AuthenticationFailed(
        "bt_signature does not match the payload" if known else "bt_signature names no public key we hold",
        code="signature_invalid",
        platform=PLATFORM,
    )


# ---------------------------------------------------------------- the notification (verified payloads only)


@dataclass(frozen=True)
class SubjectTransaction:
    """The ``<transaction>`` a transaction notification is about (legacy ids, as Braintree's XML gives them)."""

    id: str
    type: str | None
    status: str | None
    amount: str | None
    currency: str | None
    order_id: str | None
    refunded_transaction_id: str | None


@dataclass(frozen=True)
class Notification:
    kind: str
    timestamp: datetime
    transaction: SubjectTransaction | None

    @property
    def event_id(self) -> str:
        """The same for every delivery of one notification: kind, subject and time."""
        subject = self.transaction.id if self.transaction is not None else "-"
        return f"{self.kind}:{subject}:{self.timestamp.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _text(element: ElementTree.Element | None, name: str) -> str | None:
    found = element.find(name) if element is not None else None
    value = (found.text or "").strip() if found is not None else ""
    return value or None


def notification(payload: bytes) -> Notification:
    """The notification a verified payload carries.

    Raises:
        InvalidRequest: not base64 of a ``<notification>`` with a kind and a timestamp.
    """
    try:
        document = base64.decodebytes(payload)
        # A verified payload (signed by Braintree): the standard parser does not resolve external entities.
        root = ElementTree.fromstring(document)  # noqa: S314
    except (binascii.Error, ElementTree.ParseError, ValueError):
        raise InvalidRequest(
            "bt_payload is not a notification document", code="invalid_payload", platform=PLATFORM
        ) from None
    kind, stamp = _text(root, "kind"), _text(root, "timestamp")
    if root.tag != "notification" or kind is None or stamp is None:
        raise InvalidRequest("notification without kind or timestamp", code="invalid_payload", platform=PLATFORM)
    try:
        timestamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"notification timestamp {stamp!r}", code="invalid_payload", platform=PLATFORM) from None
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    subject = root.find("subject")
    element = subject.find("transaction") if subject is not None else None
    transaction = None
    if element is not None:
        legacy_id = _text(element, "id")
        if legacy_id is None:
            raise InvalidRequest("notification transaction without id", code="invalid_payload", platform=PLATFORM)
        transaction = SubjectTransaction(
            id=legacy_id,
            type=_text(element, "type"),
            status=_text(element, "status"),
            amount=_text(element, "amount"),
            currency=_text(element, "currency-iso-code"),
            order_id=_text(element, "order-id"),
            refunded_transaction_id=_text(element, "refunded-transaction-id"),
        )
    return Notification(kind=kind, timestamp=timestamp, transaction=transaction)
