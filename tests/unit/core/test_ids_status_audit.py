"""Deterministic ids and keys, the status model, and the audit hash chain."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refundflow.audit import GENESIS_HASH, entry_hash, verify_chain
from refundflow.events import EVENT_FOR_STATUS
from refundflow.ids import derive_refund_id, idempotency_key, is_refund_id
from refundflow.models import AuditEntry
from refundflow.status import (
    ALLOWED_TRANSITIONS,
    MONEY_MAY_HAVE_MOVED,
    TERMINAL_STATUSES,
    RefundStatus,
    can_transition,
)

S = RefundStatus
# Step Functions execution names: 1-80 characters, none of whitespace, < > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /
# and no control characters.
EXECUTION_NAME = re.compile(r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}$")
part = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="|\x00", min_codepoint=32),
    min_size=1,
    max_size=60,
)


# ---------------------------------------------------------------- refund ids


def test_refund_id_is_stable_across_releases() -> None:
    # GIVEN a trigger's identity
    # WHEN its refund id is derived THEN it is rf_ + the first 128 bits of SHA-256 over "v1|platform|object|disc"
    # (a change here would give every redelivery of an existing trigger a new refund)
    expected = "rf_" + hashlib.sha256(b"v1|zendesk|ticket-123|2").hexdigest()[:32]
    assert derive_refund_id("zendesk", "ticket-123", "2") == expected


@given(platform=part, source=part, discriminator=part | st.just(""))
def test_refund_id_is_deterministic_and_a_valid_execution_name(platform: str, source: str, discriminator: str) -> None:
    # GIVEN the same trigger twice WHEN ids are derived THEN they are equal and usable as an execution name
    first = derive_refund_id(platform, source, discriminator)
    assert first == derive_refund_id(platform, source, discriminator)
    assert is_refund_id(first)
    assert EXECUTION_NAME.match(first)


@given(a=st.tuples(part, part, part), b=st.tuples(part, part, part))
def test_refund_id_differs_when_any_part_differs(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    # GIVEN two triggers that differ in platform, object or discriminator
    assume(a != b)
    # WHEN their ids are derived THEN the ids differ
    assert derive_refund_id(*a) != derive_refund_id(*b)


@pytest.mark.parametrize(
    ("platform", "source"),
    [("", "obj"), ("shop", ""), ("sh|op", "obj"), ("shop", "o|bj"), ("shop", "ob\nj"), ("shop", "x" * 257)],
)
def test_refund_id_rejects_ambiguous_parts(platform: str, source: str) -> None:
    # GIVEN a part that is empty, too long, or holds the separator or a control character
    # WHEN an id is derived THEN it is refused (two triggers could otherwise share an id)
    with pytest.raises(ValueError, match="invalid refund id part"):
        derive_refund_id(platform, source)


@pytest.mark.parametrize("value", ["rf_" + "0" * 31, "rf_" + "G" * 32, "re_" + "0" * 32, "rf_" + "0" * 33])
def test_is_refund_id_rejects_other_shapes(value: str) -> None:
    # GIVEN a string that is not rf_ + 32 lowercase hex digits WHEN checked THEN it is no refund id
    assert not is_refund_id(value)


# ---------------------------------------------------------------- idempotency keys


def test_idempotency_key_names_the_refund_and_operation() -> None:
    # GIVEN a refund id WHEN a key for an operation is made with the default limit THEN it is readable
    refund_id = derive_refund_id("shop", "order-1")
    assert idempotency_key(refund_id, "refund") == f"{refund_id}:refund"


@given(source=part, operation=st.sampled_from(["refund", "credit_note", "payment"]), limit=st.integers(8, 64))
def test_shortened_idempotency_keys_fit_the_limit_and_stay_deterministic(
    source: str, operation: str, limit: int
) -> None:
    # GIVEN a platform with a short key limit (Amazon Pay 32, Square 45)
    refund_id = derive_refund_id("shop", source)
    # WHEN the key is made twice THEN it fits and is the same both times
    key = idempotency_key(refund_id, operation, max_length=limit)
    assert len(key) <= limit
    assert key == idempotency_key(refund_id, operation, max_length=limit)


@given(a=part, b=part, limit=st.sampled_from([32, 45]))
def test_shortened_idempotency_keys_differ_per_refund_and_operation(a: str, b: str, limit: int) -> None:
    # GIVEN two refunds WHEN short keys are made THEN they differ per refund and per operation
    assume(a != b)
    first, second = derive_refund_id("shop", a), derive_refund_id("shop", b)
    assert idempotency_key(first, "refund", max_length=limit) != idempotency_key(second, "refund", max_length=limit)
    assert idempotency_key(first, "refund", max_length=limit) != idempotency_key(first, "credit_note", max_length=limit)


# ---------------------------------------------------------------- statuses


EXPECTED_TRANSITIONS: dict[RefundStatus, set[RefundStatus]] = {
    S.RECEIVED: {S.VALIDATED, S.REJECTED, S.FAILED},
    S.VALIDATED: {S.APPROVED, S.PENDING_APPROVAL, S.AWAITING_RETURN, S.REJECTED, S.FAILED},
    S.PENDING_APPROVAL: {S.APPROVED, S.AWAITING_RETURN, S.REJECTED, S.FAILED},
    S.AWAITING_RETURN: {S.APPROVED, S.PENDING_APPROVAL, S.REJECTED, S.FAILED},
    S.APPROVED: {S.REFUND_SUBMITTED, S.REJECTED, S.FAILED},
    S.REFUND_SUBMITTED: {S.REFUNDED, S.REFUND_PENDING, S.FAILED, S.NEEDS_ATTENTION},
    S.REFUND_PENDING: {S.REFUNDED, S.FAILED, S.NEEDS_ATTENTION},
    S.REFUNDED: {S.INVOICE_UPDATED, S.COMPLETED, S.NEEDS_ATTENTION},
    S.INVOICE_UPDATED: {S.COMPLETED, S.NEEDS_ATTENTION},
    S.COMPLETED: {S.SETTLED, S.NEEDS_ATTENTION},
    S.SETTLED: {S.NEEDS_ATTENTION},
    S.NEEDS_ATTENTION: {S.REFUND_PENDING, S.REFUNDED, S.FAILED, S.INVOICE_UPDATED, S.COMPLETED},
    S.REJECTED: set(),
    S.FAILED: set(),
}


@pytest.mark.parametrize("current", list(RefundStatus))
def test_each_status_allows_exactly_its_designed_transitions(current: RefundStatus) -> None:
    # GIVEN a status WHEN every possible target is checked THEN only the designed ones are allowed
    allowed = {target for target in RefundStatus if can_transition(current, target)}
    assert allowed == EXPECTED_TRANSITIONS[current]
    assert set(ALLOWED_TRANSITIONS[current]) == EXPECTED_TRANSITIONS[current]


def test_rejected_and_failed_are_final() -> None:
    # GIVEN a refund that was rejected or failed WHEN anything is checked THEN no transition leaves it
    for status in (S.REJECTED, S.FAILED):
        assert not any(can_transition(status, target) for target in RefundStatus)


def test_completed_and_settled_only_leave_for_settlement_or_attention() -> None:
    # GIVEN a completed or settled refund (terminal for the workflow)
    # WHEN transitions are checked THEN only settlement or a reversal needing a person can follow
    assert {S.COMPLETED, S.SETTLED, S.REJECTED, S.FAILED} == TERMINAL_STATUSES
    assert set(ALLOWED_TRANSITIONS[S.COMPLETED]) == {S.SETTLED, S.NEEDS_ATTENTION}
    assert set(ALLOWED_TRANSITIONS[S.SETTLED]) == {S.NEEDS_ATTENTION}


def test_money_that_moved_is_never_rejected() -> None:
    # GIVEN a refund whose money may have moved WHEN checked THEN it can never be REJECTED or go back before approval
    before_money = {S.RECEIVED, S.VALIDATED, S.PENDING_APPROVAL, S.APPROVED, S.REJECTED}
    for status in MONEY_MAY_HAVE_MOVED:
        assert not (set(ALLOWED_TRANSITIONS[status]) & before_money), status
    # AND once the provider confirmed it, FAILED is reachable only through NEEDS_ATTENTION (a person)
    for status in (S.REFUNDED, S.INVOICE_UPDATED, S.COMPLETED, S.SETTLED):
        assert not can_transition(status, S.FAILED)


def test_no_status_transitions_to_itself_and_every_status_is_reachable() -> None:
    # GIVEN the state model WHEN walked from RECEIVED THEN every status is reachable and none loops on itself
    seen, frontier = {S.RECEIVED}, [S.RECEIVED]
    while frontier:
        for target in ALLOWED_TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(RefundStatus)
    assert all(status not in ALLOWED_TRANSITIONS[status] for status in RefundStatus)


def test_every_status_has_its_own_event() -> None:
    # GIVEN the statuses WHEN their events are looked up THEN each has a distinct Refund… detail-type
    assert set(EVENT_FOR_STATUS) == set(RefundStatus)
    assert len(set(EVENT_FOR_STATUS.values())) == len(RefundStatus)
    assert EVENT_FOR_STATUS[S.REFUNDED] == "RefundIssued"
    assert EVENT_FOR_STATUS[S.FAILED] == "RefundFailed"


# ---------------------------------------------------------------- the audit hash chain


def build_chain(length: int, refund_id: str = "rf_" + "a" * 32) -> list[AuditEntry]:
    """A valid chain made with the documented rule: each hash covers the previous hash and the entry."""
    entries: list[AuditEntry] = []
    previous = GENESIS_HASH
    start = datetime(2025, 3, 1, tzinfo=UTC)
    statuses = list(RefundStatus)
    for seq in range(1, length + 1):
        fields: dict[str, Any] = {
            "refund_id": refund_id,
            "seq": seq,
            "at": start + timedelta(seconds=seq),
            "type": f"Step{seq}",
            "actor": "tests",
            "from_status": statuses[(seq - 1) % len(statuses)] if seq > 1 else None,
            "to_status": statuses[seq % len(statuses)],
            "details": {"n": seq, "amount": {"minor_units": 100 * seq, "currency": "EUR"}},
            "prev_hash": previous,
        }
        draft = AuditEntry.model_validate({**fields, "hash": "0" * 64})
        digest = entry_hash(previous, draft.model_dump(mode="json"))
        entries.append(draft.model_copy(update={"hash": digest}))
        previous = digest
    return entries


def rehash(entry: AuditEntry, **changes: Any) -> AuditEntry:
    """What a careful forger does: edit an entry and recompute its own hash."""
    edited = entry.model_copy(update=changes)
    return edited.model_copy(update={"hash": entry_hash(edited.prev_hash, edited.model_dump(mode="json"))})


def test_an_untouched_chain_verifies() -> None:
    # GIVEN a chain of five entries WHEN verified against its head THEN it is intact
    chain = build_chain(5)
    result = verify_chain(chain, expected_head=chain[-1].hash)
    assert result.intact
    assert result.entries == 5


def test_entries_read_in_any_order_still_verify() -> None:
    # GIVEN the chain as a store returns it, in another order WHEN verified THEN order of reading does not matter
    chain = build_chain(4)
    assert verify_chain(list(reversed(chain)), expected_head=chain[-1].hash).intact


@given(length=st.integers(2, 12), data=st.data())
def test_an_edited_entry_is_detected(length: int, data: st.DataObject) -> None:
    # GIVEN a chain and one entry whose details were changed afterwards
    chain = build_chain(length)
    index = data.draw(st.integers(0, length - 1))
    chain[index] = chain[index].model_copy(update={"details": {"n": -1}})
    # WHEN verified THEN it is broken at that entry
    result = verify_chain(chain, expected_head=build_chain(length)[-1].hash)
    assert not result.intact
    assert result.broken_at_seq == index + 1
    assert result.problem == "edited entry"


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() -> None:
    # GIVEN an entry edited and re-hashed by someone who cannot rewrite the rest of the chain
    chain = build_chain(5)
    chain[2] = rehash(chain[2], actor="mallory")
    # WHEN verified THEN the following entry no longer links to it
    result = verify_chain(chain, expected_head=chain[-1].hash)
    assert not result.intact
    assert (result.broken_at_seq, result.problem) == (4, "broken link")


@pytest.mark.parametrize("removed", [0, 2])
def test_a_removed_entry_is_detected(removed: int) -> None:
    # GIVEN a chain with the first or a middle entry deleted
    chain = build_chain(5)
    head = chain[-1].hash
    del chain[removed]
    # WHEN verified THEN the gap in the sequence is found
    result = verify_chain(chain, expected_head=head)
    assert not result.intact
    assert result.problem == "gap in sequence"


def test_a_reordered_entry_is_detected() -> None:
    # GIVEN entries 2 and 3 swapped in the history (renumbered so the sequence has no gap)
    chain = build_chain(5)
    second, third = chain[1], chain[2]
    chain[1] = third.model_copy(update={"seq": 2})
    chain[2] = second.model_copy(update={"seq": 3})
    # WHEN verified THEN the chain is broken at the first moved entry
    result = verify_chain(chain, expected_head=chain[-1].hash)
    assert not result.intact
    assert result.broken_at_seq == 2


def test_a_missing_tail_is_detected_against_the_stored_head() -> None:
    # GIVEN a chain whose last two entries were removed (the rest is internally consistent)
    chain = build_chain(5)
    head = chain[-1].hash
    truncated = chain[:3]
    # WHEN verified against the head stored on the refund THEN the missing tail is found
    result = verify_chain(truncated, expected_head=head)
    assert not result.intact
    assert (result.problem, result.broken_at_seq) == ("missing tail", 4)
    # AND without the head a truncated chain cannot be told apart: that is why the refund stores it
    assert verify_chain(truncated).intact


def test_a_chain_that_does_not_start_at_genesis_is_detected() -> None:
    # GIVEN a chain whose first entry claims another predecessor (spliced from elsewhere)
    chain = build_chain(3)
    chain[0] = rehash(chain[0], prev_hash="f" * 64)
    # WHEN verified THEN the first link is broken
    result = verify_chain(chain)
    assert not result.intact
    assert (result.broken_at_seq, result.problem) == (1, "broken link")
