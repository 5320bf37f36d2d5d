"""Deterministic identifiers: every retry, redelivery or replay of a trigger lands on the same refund."""

from __future__ import annotations

import hashlib
import re

_PART = re.compile(r"^[^\x00-\x1f|]{1,256}$")
_REFUND_ID = re.compile(r"^rf_[0-9a-f]{32}$")


def derive_refund_id(platform: str, source_object: str, discriminator: str = "") -> str:
    """``rf_`` + 128 bits of SHA-256 over the trigger's identity (a valid Step Functions execution name).

    ``platform`` names where the trigger came from, ``source_object`` the object it is about (an RMA, a
    ticket), ``discriminator`` separates several refunds of the same object (a refund request number).
    """
    parts = (platform, source_object, discriminator)
    for part in parts[:2]:
        if not _PART.match(part):
            raise ValueError(f"invalid refund id part {part!r}")
    digest = hashlib.sha256("|".join(("v1", *parts)).encode()).hexdigest()
    return f"rf_{digest[:32]}"


def is_refund_id(value: str) -> bool:
    return bool(_REFUND_ID.match(value))


def idempotency_key(refund_id: str, operation: str, *, max_length: int = 255) -> str:
    """The key sent to a platform for one operation of one refund, e.g. ``rf_…:refund``.

    Platforms with short key limits (Square 45, Amazon Pay 32) get a hash of the same identity, so
    the key stays deterministic whatever the limit.
    """
    key = f"{refund_id}:{operation}"
    if len(key) <= max_length:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:max_length]
