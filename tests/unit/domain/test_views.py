"""The status API's view of a refund: its state, its timeline and whether the audit chain is intact."""

from __future__ import annotations

from typing import Any

import pytest

from refundflow.adapters.dynamodb import _from_item, _to_item
from refundflow.audit import GENESIS_HASH, entry_hash
from refundflow.domain.payments import issue_refund
from refundflow.domain.views import refund_view
from refundflow.errors import NotFound
from refundflow.models import AuditEntry
from refundflow.money import Money
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body

S = RefundStatus


@pytest.fixture
def refunded(env: World) -> str:
    env.provider.add_payment("pi_3Pabc", Money.of(10_000, "EUR"))
    refund_id = env.reserved(refund_request_body())
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id


def audit_keys(env: World, refund_id: str) -> list[dict[str, dict[str, str]]]:
    items = env.tables.client.query(
        TableName=env.tables.refunds_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"AUDIT#{refund_id}"}, ":prefix": {"S": "EVENT#"}},
    )["Items"]
    return [{"pk": item["pk"], "sk": item["sk"]} for item in items]


def test_the_view_shows_the_state_and_the_whole_timeline_with_an_intact_chain(env: World, refunded: str) -> None:
    # GIVEN a refunded refund WHEN its view is read
    view = refund_view(refunded, repository=env.repository)
    # THEN it shows where it stands and every step in order, and its audit chain verifies
    assert (view.status, view.amount, view.order_id) == (S.REFUNDED, Money.of(2_500, "EUR"), "ORD-RMA-1001")
    assert view.provider_refund_id == env.provider.only_refund().provider_refund_id
    assert [entry.type for entry in view.timeline] == [
        "RefundRequested",
        "StatusChanged:VALIDATED",
        "PaymentLookedUp",
        "StatusChanged:APPROVED",
        "AmountReserved",
        "StatusChanged:REFUND_SUBMITTED",
        "StatusChanged:REFUNDED",
    ]
    assert view.audit.intact
    assert view.audit.entries == len(view.timeline)


def test_an_audit_entry_edited_in_the_table_shows_in_the_view(env: World, refunded: str) -> None:
    # GIVEN someone with table access rewrites who approved the refund
    approved = audit_keys(env, refunded)[3]
    env.tables.client.update_item(
        TableName=env.tables.refunds_table,
        Key=approved,
        UpdateExpression="SET actor = :actor",
        ExpressionAttributeValues={":actor": {"S": "approver:mallory"}},
    )
    # WHEN the view is read THEN the chain is reported broken at that entry
    audit = refund_view(refunded, repository=env.repository).audit
    assert not audit.intact
    assert (audit.broken_at_seq, audit.problem) == (4, "edited entry")


def test_audit_entries_deleted_from_the_table_show_in_the_view(env: World, refunded: str) -> None:
    # GIVEN someone deletes the last audit entry (the refund still holds the chain's head)
    last = audit_keys(env, refunded)[-1]
    env.tables.client.delete_item(TableName=env.tables.refunds_table, Key=last)
    # WHEN the view is read THEN the missing tail is reported
    audit = refund_view(refunded, repository=env.repository).audit
    assert not audit.intact
    assert audit.problem == "missing tail"


def test_the_view_of_an_unknown_refund_is_not_found(env: World) -> None:
    # GIVEN no such refund WHEN its view is read THEN NotFound (the API answers 404)
    with pytest.raises(NotFound):
        refund_view("rf_" + "0" * 32, repository=env.repository)


# ---------------------------------------------------------------- the keyed chain (issue 6.6)


def stored_entries(env: World, partition: str) -> list[dict[str, Any]]:
    items = env.tables.client.query(
        TableName=env.tables.refunds_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": partition}, ":prefix": {"S": "EVENT#"}},
    )["Items"]
    return sorted((_from_item(item) for item in items), key=lambda item: item["seq"])


def set_head(env: World, refund_id: str, head: str) -> None:
    env.tables.client.update_item(
        TableName=env.tables.refunds_table,
        Key={"pk": {"S": f"REFUND#{refund_id}"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET audit_head = :head",
        ExpressionAttributeValues={":head": {"S": head}},
    )


def rechain(items: list[dict[str, Any]], *, legacy: bool) -> str:
    """Recompute every entry's plain SHA-256 hash in place (what a forger without the key can do)."""
    previous = GENESIS_HASH
    for item in items:
        if legacy:
            item.pop("scheme", None)
            item.pop("key_id", None)
        item["prev_hash"] = previous
        entry = AuditEntry.model_validate({key: item[key] for key in AuditEntry.model_fields if key in item})
        item["hash"] = previous = entry_hash(previous, entry.model_dump(mode="json"))
    return previous


def put_all(env: World, items: list[dict[str, Any]]) -> None:
    for item in items:
        env.tables.client.put_item(TableName=env.tables.refunds_table, Item=_to_item(item))


def test_audit_entries_live_in_their_own_partition(env: World, refunded: str) -> None:
    # GIVEN a refunded refund THEN its audit entries are under AUDIT#<id>, none under the refund's partition
    assert [item["seq"] for item in stored_entries(env, f"AUDIT#{refunded}")] == list(range(1, 8))
    assert stored_entries(env, f"REFUND#{refunded}") == []
    assert {item["scheme"] for item in stored_entries(env, f"AUDIT#{refunded}")} == {"hmac-sha256-v2"}


@pytest.mark.parametrize("legacy", [False, True], ids=["keeps-keyed-label", "relabels-as-legacy"])
def test_entry_five_rewritten_with_recomputed_hashes_and_head_is_not_intact(
    env: World, refunded: str, legacy: bool
) -> None:
    # GIVEN someone with table write access rewrites entry 5 (another approver, another note), recomputes
    # every hash after it and the head stored on the refund
    items = stored_entries(env, f"AUDIT#{refunded}")
    items[4]["actor"] = "approver:mallory"
    items[4]["details"] = {"note": "approved, trust me"}
    tail = items[4:] if not legacy else items
    put_all(env, items)
    head = rechain(items, legacy=legacy)
    put_all(env, tail)
    set_head(env, refunded, head)
    # WHEN the view is read THEN the chain is not intact
    audit = refund_view(refunded, repository=env.repository).audit
    assert not audit.intact
    assert audit.broken_at_seq == (5 if not legacy else 1)


def test_a_trail_stored_before_the_keyed_scheme_verifies_as_not_keyed_and_goes_on_keyed(
    env: World, refunded: str
) -> None:
    # GIVEN a trail as the previous release stored it: plain SHA-256 entries in the refund's own partition
    items = stored_entries(env, f"AUDIT#{refunded}")
    for item in items:
        env.tables.client.delete_item(
            TableName=env.tables.refunds_table, Key=_to_item({"pk": item["pk"], "sk": item["sk"]})
        )
        item["pk"] = f"REFUND#{refunded}"
    head = rechain(items, legacy=True)
    put_all(env, items)
    set_head(env, refunded, head)
    # WHEN the view is read THEN it is intact, and says it is not keyed
    view = refund_view(refunded, repository=env.repository)
    assert (view.audit.intact, view.audit.keyed, view.audit.entries) == (True, False, 7)
    # AND a later change appends a keyed entry in the audit partition that links to the old head
    env.repository.record(env.repository.get(refunded), "NoteAdded", actor="tests")
    view = refund_view(refunded, repository=env.repository)
    assert (view.audit.intact, view.audit.keyed, view.audit.entries) == (True, False, 8)
    assert view.timeline[-1].prev_hash == head
    assert [item["seq"] for item in stored_entries(env, f"AUDIT#{refunded}")] == [8]


def test_an_entry_appended_between_the_views_two_reads_leaves_the_chain_intact(env: World, refunded: str) -> None:
    # GIVEN the workflow appends an entry right after the view read the refund's state (a race under load)
    repository = env.repository
    read_trail = repository.audit_trail

    def trail_after_a_concurrent_append(refund_id: str) -> Any:
        env.recorder.note(repository.get(refund_id), "ConcurrentNote", actor="workflow")
        return read_trail(refund_id)

    repository.audit_trail = trail_after_a_concurrent_append  # type: ignore[method-assign]
    try:
        view = refund_view(refunded, repository=repository)
    finally:
        del repository.audit_trail
    # THEN the view is one snapshot: the trail up to the state it shows, verified intact
    assert view.audit.intact, view.audit
    assert [entry.type for entry in view.timeline][-1] != "ConcurrentNote"
    # AND the next read shows the new entry, intact too
    after = refund_view(refunded, repository=repository)
    assert after.audit.intact
    assert after.timeline[-1].type == "ConcurrentNote"
