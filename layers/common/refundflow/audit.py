"""The hash chain over a refund's audit trail: each entry commits to the one before it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from refundflow.models import AuditEntry, StrictModel

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON (without its own hash)."""
    body = {key: value for key, value in fields.items() if key != "hash"}
    return hashlib.sha256(f"{prev_hash}\n{canonical_json(body)}".encode()).hexdigest()


class ChainVerification(StrictModel):
    intact: bool
    entries: int
    broken_at_seq: int | None = None
    problem: str | None = None


def verify_chain(entries: Iterable[AuditEntry], expected_head: str | None = None) -> ChainVerification:
    """Check sequence numbers, links and hashes; ``expected_head`` is the head stored on the refund."""
    previous = GENESIS_HASH
    count = 0
    for count, entry in enumerate(sorted(entries, key=lambda e: e.seq), start=1):
        if entry.seq != count:
            return ChainVerification(intact=False, entries=count, broken_at_seq=count, problem="gap in sequence")
        if entry.prev_hash != previous:
            return ChainVerification(intact=False, entries=count, broken_at_seq=entry.seq, problem="broken link")
        if entry_hash(entry.prev_hash, entry.model_dump(mode="json")) != entry.hash:
            return ChainVerification(intact=False, entries=count, broken_at_seq=entry.seq, problem="edited entry")
        previous = entry.hash
    if expected_head is not None and expected_head != previous:
        return ChainVerification(intact=False, entries=count, broken_at_seq=count + 1, problem="missing tail")
    return ChainVerification(intact=True, entries=count)
