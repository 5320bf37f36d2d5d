"""Deterministic identifiers: every retry, redelivery or replay of a trigger lands on the same refund."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

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


def canonical_json(value: Any) -> str:
    """The one JSON text of a value (sorted keys, no spaces, UTF-8 as is): what digests are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# A request's forms: one payment, or tenders (with their allocation). The form a request does not use is left out of
# its fingerprint, so a request of one payment hashes as it did before split tenders existed.
_FORM_KEYS = ("payment", "tenders", "allocation")


def request_fingerprint(document: dict[str, Any]) -> str:
    """What a refund request asked for, as a digest: ``document`` is the model's dump of the request
    (``RefundRequestBody.model_dump(mode="json", by_alias=True)``, or what ``refundflow.request_check`` vouched
    for). A redelivery with the same content has the same fingerprint; other content under the same source
    reference is a conflict."""
    asked = {key: value for key, value in document.items() if not (key in _FORM_KEYS and value is None)}
    return hashlib.sha256(canonical_json(asked).encode()).hexdigest()
