"""The keyed chain over a refund's audit trail: each entry commits to the one before it.

Two schemes, named on every entry:

- ``hmac-sha256-v2`` (written today): ``hash`` is HMAC-SHA256(key, prev_hash + "\\n" + canonical JSON of the
  entry without ``hash``); the entry names the key (``key_id``) and the scheme, both covered by the MAC. Only
  holders of the audit key (the functions that write the table) can make a valid entry, so rewriting an entry
  and recomputing the chain without the key is detected.
- ``sha256-v1`` (trails written before the key): ``hash`` is SHA-256(prev_hash + "\\n" + canonical JSON of the
  entry without ``hash``, ``scheme`` and ``key_id``). Still verified, reported as not keyed, and never accepted
  after a keyed entry of the same trail (no downgrade).

The exact digest rules are pinned by known vectors in tests/unit/core/test_audit_vectors.py: changing them
would make every stored trail fail verification.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from refundflow.errors import ConfigurationError
from refundflow.ids import canonical_json
from refundflow.models import AuditEntry, StrictModel

GENESIS_HASH = "0" * 64
LEGACY_SCHEME = "sha256-v1"
KEYED_SCHEME = "hmac-sha256-v2"
MIN_KEY_BYTES = 32
_NOT_IN_LEGACY_DIGEST = {"hash", "scheme", "key_id"}


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The legacy (v1) digest: SHA-256 over the previous hash and the entry's canonical JSON (without its own
    hash and without the scheme fields v1 entries never had)."""
    body = {key: value for key, value in fields.items() if key not in _NOT_IN_LEGACY_DIGEST}
    return hashlib.sha256(f"{prev_hash}\n{canonical_json(body)}".encode()).hexdigest()


def entry_mac(key: bytes, prev_mac: str, fields: Mapping[str, Any]) -> str:
    """The keyed (v2) MAC: HMAC-SHA256 over the previous MAC and the entry's canonical JSON without its MAC."""
    body = {name: value for name, value in fields.items() if name != "hash"}
    return hmac.new(key, f"{prev_mac}\n{canonical_json(body)}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditKeys:
    """The audit MAC keys by id (old ones kept to verify old entries) and the id new entries are signed with."""

    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ConfigurationError("audit key secret: 'current' names no key in 'keys'")
        short = sorted(key_id for key_id, key in self.keys.items() if len(key) < MIN_KEY_BYTES)
        if short:
            raise ConfigurationError(f"audit key secret: keys {short} are shorter than {MIN_KEY_BYTES} bytes")

    @classmethod
    def from_secret(cls, document: Mapping[str, Any]) -> AuditKeys:
        """Parse ``{"keys": {"k1": "<base64 of 32 random bytes>", ...}, "current": "k1"}``.

        Raises:
            ConfigurationError: the secret does not have that shape.
        """
        keys = document.get("keys")
        current = document.get("current")
        if not isinstance(keys, dict) or not keys or not isinstance(current, str):
            raise ConfigurationError('audit key secret must be {"keys": {"<id>": "<base64>"}, "current": "<id>"}')
        decoded: dict[str, bytes] = {}
        for key_id, encoded in keys.items():
            try:
                decoded[str(key_id)] = base64.b64decode(str(encoded), validate=True)
            except (binascii.Error, ValueError) as error:
                raise ConfigurationError(f"audit key secret: key {key_id} is not base64") from error
        return cls(keys=decoded, current=current)

    def seal(self, fields: Mapping[str, Any]) -> AuditEntry:
        """The entry ``fields`` (everything but ``hash``, ``scheme`` and ``key_id``) signed with the current key."""
        draft = AuditEntry.model_validate({**fields, "scheme": KEYED_SCHEME, "key_id": self.current, "hash": ""})
        mac = entry_mac(self.keys[self.current], draft.prev_hash, draft.model_dump(mode="json"))
        return draft.model_copy(update={"hash": mac})


class ChainVerification(StrictModel):
    intact: bool
    entries: int
    keyed: bool = False
    broken_at_seq: int | None = None
    problem: str | None = None


def _digest(entry: AuditEntry, keys: AuditKeys | None) -> str | None:
    """What ``entry.hash`` should be, or None when it cannot be checked (unknown scheme or key)."""
    fields = entry.model_dump(mode="json")
    if entry.scheme == LEGACY_SCHEME:
        return entry_hash(entry.prev_hash, fields)
    key = keys.keys.get(entry.key_id or "") if keys is not None else None
    if entry.scheme == KEYED_SCHEME and key is not None:
        return entry_mac(key, entry.prev_hash, fields)
    return None


def verify_chain(
    entries: Iterable[AuditEntry],
    expected_head: str | None = None,
    keys: AuditKeys | None = None,
    keyed_from_seq: int | None = None,
) -> ChainVerification:
    """Check sequence numbers, links, scheme and MACs; ``expected_head`` is the head stored on the refund.

    ``keyed`` is true when every entry carries a MAC under a key (a trail written before the keyed scheme
    verifies, as not keyed). Keyed entries need ``keys``; without the entry's key the chain is not intact.
    Entries from ``keyed_from_seq`` on were stored where only the keyed scheme writes: an unkeyed one there
    is a forgery (a rewrite that relabels entries as legacy to avoid the key).
    """
    previous = GENESIS_HASH
    count = 0
    seen_keyed = False
    all_keyed = True

    def broken(seq: int, problem: str) -> ChainVerification:
        return ChainVerification(intact=False, entries=count, broken_at_seq=seq, problem=problem)

    for count, entry in enumerate(sorted(entries, key=lambda e: e.seq), start=1):
        if entry.seq != count:
            return broken(count, "gap in sequence")
        if entry.prev_hash != previous:
            return broken(entry.seq, "broken link")
        if entry.scheme == LEGACY_SCHEME and seen_keyed:
            return broken(entry.seq, "unkeyed entry after keyed ones")
        if entry.scheme == LEGACY_SCHEME and keyed_from_seq is not None and entry.seq >= keyed_from_seq:
            return broken(entry.seq, "unkeyed entry where only keyed ones are written")
        if entry.scheme not in {LEGACY_SCHEME, KEYED_SCHEME}:
            return broken(entry.seq, "unknown scheme")
        expected = _digest(entry, keys)
        if expected is None:
            return broken(entry.seq, "unknown audit key")
        if not hmac.compare_digest(expected, entry.hash):
            return broken(entry.seq, "edited entry")
        seen_keyed = seen_keyed or entry.scheme == KEYED_SCHEME
        all_keyed = all_keyed and entry.scheme == KEYED_SCHEME
        previous = entry.hash
    if expected_head is not None and expected_head != previous:
        return broken(count + 1, "missing tail")
    return ChainVerification(intact=True, entries=count, keyed=count > 0 and all_keyed)
