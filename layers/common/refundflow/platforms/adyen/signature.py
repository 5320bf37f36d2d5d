"""Adyen's HMAC signature of one notification item (docs.adyen.com "Verify HMAC signatures").

The signed string is ``pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
eventCode:success`` (a missing field is empty), the key is the hex-decoded HMAC key of the webhook endpoint,
the signature the base64 HMAC-SHA256 in ``additionalData.hmacSignature``. Adyen's published example
(key ``44782DEF…A056``, AUTHORISATION of 1130 EUR) signs to ``coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=``.
Several keys are accepted while one is being replaced: Adyen says a new key takes time to propagate, so
notifications may still come signed with the previous one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from refundflow.errors import ConfigurationError

_SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


def signing_string(item: Mapping[str, Any]) -> str:
    """The string Adyen signs for one ``NotificationRequestItem`` (as received, before any parsing)."""
    amount = item.get("amount")
    amount = amount if isinstance(amount, Mapping) else {}
    values = {**item, "value": amount.get("value", ""), "currency": amount.get("currency", "")}
    return ":".join(_text(values.get(name)) for name in _SIGNED_FIELDS)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # never sent by Adyen as JSON booleans; kept distinct from "true"
        return "True" if value else "False"
    return str(value)


def signature(item: Mapping[str, Any], key: bytes) -> str:
    digest = hmac.new(key, signing_string(item).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def decode_keys(hex_keys: Iterable[str]) -> list[bytes]:
    """The HMAC keys of the verification secret, hex-decoded.

    Raises:
        ConfigurationError: no key, or a key that is not an even-length hexadecimal string.
    """
    keys: list[bytes] = []
    for hex_key in hex_keys:
        try:
            keys.append(binascii.unhexlify(hex_key.strip()))
        except (binascii.Error, ValueError, AttributeError) as error:
            raise ConfigurationError("an Adyen HMAC key is not a hexadecimal string") from error
        if not keys[-1]:
            raise ConfigurationError("an Adyen HMAC key is empty")
    if not keys:
        raise ConfigurationError("no Adyen HMAC key is configured")
    return keys


def is_signed(item: Mapping[str, Any], keys: Sequence[bytes]) -> bool:
    """True when the item's ``hmacSignature`` matches under one of ``keys`` (compared in constant time)."""
    additional = item.get("additionalData")
    received = additional.get("hmacSignature") if isinstance(additional, Mapping) else None
    if not isinstance(received, str) or not received:
        return False
    matched = False
    for key in keys:  # every key is tried, so the time does not tell which one matched
        matched |= hmac.compare_digest(signature(item, key).encode("ascii"), received.encode("utf-8", "replace"))
    return matched
