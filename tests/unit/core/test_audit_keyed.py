"""The keyed audit chain: a rewrite without the key is found, whatever the forger recomputes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refundflow.audit import GENESIS_HASH, KEYED_SCHEME, LEGACY_SCHEME, AuditKeys, entry_hash, verify_chain
from refundflow.models import AuditEntry

KEYS = AuditKeys(keys={"k1": b"\x01" * 32, "k2": b"\x02" * 32}, current="k1")


def fields(seq: int, previous: str) -> dict[str, Any]:
    return {
        "refund_id": "rf_" + "b" * 32,
        "seq": seq,
        "at": datetime(2025, 3, 1, tzinfo=UTC) + timedelta(seconds=seq),
        "type": f"Step{seq}",
        "actor": "approver:alice" if seq == 5 else "tests",
        "to_status": "APPROVED" if seq == 5 else "VALIDATED",
        "details": {"note": "looks fine"} if seq == 5 else {"n": seq},
        "prev_hash": previous,
    }


def keyed_chain(length: int, keys: AuditKeys = KEYS, start: int = 1, previous: str = GENESIS_HASH) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for seq in range(start, start + length):
        entries.append(keys.seal(fields(seq, previous)))
        previous = entries[-1].hash
    return entries


def legacy_chain(length: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    previous = GENESIS_HASH
    for seq in range(1, length + 1):
        draft = AuditEntry.model_validate({**fields(seq, previous), "hash": ""})
        entries.append(draft.model_copy(update={"hash": entry_hash(previous, draft.model_dump(mode="json"))}))
        previous = entries[-1].hash
    return entries


def rewrite_from(chain: list[AuditEntry], index: int, *, scheme: str, **changes: Any) -> list[AuditEntry]:
    """What a forger with table write access but no key does: edit one entry, then recompute every plain
    SHA-256 hash from there (the head on the refund is set to the last one)."""
    forged = chain[:index]
    previous = forged[-1].hash if forged else GENESIS_HASH
    for position, entry in enumerate(chain[index:]):
        edited = entry.model_copy(update={**(changes if position == 0 else {}), "prev_hash": previous})
        if scheme == LEGACY_SCHEME:
            edited = edited.model_copy(update={"scheme": LEGACY_SCHEME, "key_id": None})
        digest = entry_hash(previous, edited.model_dump(mode="json"))
        forged.append(edited.model_copy(update={"hash": digest}))
        previous = digest
    return forged


def test_a_keyed_chain_verifies_and_says_it_is_keyed() -> None:
    chain = keyed_chain(6)
    result = verify_chain(chain, expected_head=chain[-1].hash, keys=KEYS)
    assert (result.intact, result.keyed, result.entries) == (True, True, 6)
    assert {entry.scheme for entry in chain} == {KEYED_SCHEME}


@pytest.mark.parametrize("scheme", [KEYED_SCHEME, LEGACY_SCHEME])
def test_entry_five_rewritten_with_recomputed_hashes_and_head_is_not_intact(scheme: str) -> None:
    # GIVEN entry 5 rewritten (another approver, another note), every later hash and the head recomputed
    chain = keyed_chain(7)
    forged = rewrite_from(chain, 4, scheme=scheme, actor="approver:mallory", details={"note": "approved by me"})
    # WHEN verified with the key THEN the chain is broken at entry 5
    result = verify_chain(forged, expected_head=forged[-1].hash, keys=KEYS)
    assert not result.intact
    assert result.broken_at_seq == 5
    assert result.problem in {"edited entry", "unkeyed entry after keyed ones"}


def test_a_whole_trail_relabelled_as_legacy_is_refused_where_only_keyed_entries_are_written() -> None:
    # GIVEN every entry rewritten as a legacy one (no key needed), head recomputed
    chain = keyed_chain(6)
    forged = rewrite_from(chain, 0, scheme=LEGACY_SCHEME, actor="mallory")
    # WHEN verified knowing that these entries were read from the keyed partition
    result = verify_chain(forged, expected_head=forged[-1].hash, keys=KEYS, keyed_from_seq=1)
    # THEN the downgrade is found at the first entry
    assert not result.intact
    assert (result.broken_at_seq, result.problem) == (1, "unkeyed entry where only keyed ones are written")


def test_an_entry_signed_with_another_key_is_an_edited_entry() -> None:
    chain = keyed_chain(3, keys=AuditKeys(keys={"k1": b"\x09" * 32}, current="k1"))
    result = verify_chain(chain, expected_head=chain[-1].hash, keys=KEYS)
    assert (result.intact, result.broken_at_seq, result.problem) == (False, 1, "edited entry")


def test_rotation_keeps_old_entries_verifiable_while_the_old_key_is_kept() -> None:
    # GIVEN entries 1-3 under k1 and 4-5 under k2 after a rotation
    old = keyed_chain(3)
    rotated = AuditKeys(keys=KEYS.keys, current="k2")
    chain = old + keyed_chain(2, keys=rotated, start=4, previous=old[-1].hash)
    assert [entry.key_id for entry in chain] == ["k1", "k1", "k1", "k2", "k2"]
    # THEN it verifies with both keys in the secret
    assert verify_chain(chain, expected_head=chain[-1].hash, keys=rotated).intact
    # AND once k1 is dropped from the secret its entries can no longer be checked
    only_new = AuditKeys(keys={"k2": KEYS.keys["k2"]}, current="k2")
    result = verify_chain(chain, expected_head=chain[-1].hash, keys=only_new)
    assert (result.intact, result.broken_at_seq, result.problem) == (False, 1, "unknown audit key")


def test_keyed_entries_cannot_be_checked_without_keys() -> None:
    chain = keyed_chain(2)
    result = verify_chain(chain, expected_head=chain[-1].hash)
    assert (result.intact, result.problem) == (False, "unknown audit key")


def test_a_legacy_trail_continued_with_keyed_entries_verifies_as_not_keyed() -> None:
    # GIVEN a trail begun before the deploy (v1) and continued after it (v2)
    old = legacy_chain(3)
    chain = old + keyed_chain(2, start=4, previous=old[-1].hash)
    # WHEN verified, the keyed part read from the keyed partition
    result = verify_chain(chain, expected_head=chain[-1].hash, keys=KEYS, keyed_from_seq=4)
    # THEN it is intact but not keyed as a whole
    assert (result.intact, result.keyed) == (True, False)


def test_an_unknown_scheme_is_refused() -> None:
    chain = keyed_chain(2)
    chain[1] = chain[1].model_copy(update={"scheme": "none"})
    result = verify_chain(chain, expected_head=chain[-1].hash, keys=KEYS)
    assert (result.intact, result.broken_at_seq, result.problem) == (False, 2, "unknown scheme")
