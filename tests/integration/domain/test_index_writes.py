"""The refunds table's indexes cost writes only when what they are for changes (issue 14): by-status is sparse
and keyed by the moment a refund entered its status, by-payment, by-customer and by-provider-refund project keys
only, and their readers read the rest from the table. Priced with the benchmark's meter on moto (template.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.meters import Meter
from refundflow.adapters.dynamodb import INDEXED_STATUSES, plain_values
from refundflow.models import PaymentProvider, Refund
from refundflow.money import Money
from refundflow.status import RefundStatus
from refundflow_cli.commands.refunds import _page, _summary
from tests.support.fakes import World, a_refund

S = RefundStatus
STRIPE = PaymentProvider.STRIPE
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def state_item(env: World, refund_id: str) -> dict[str, Any]:
    item: dict[str, Any] = env.tables.client.get_item(
        TableName=env.tables.refunds_table, Key={"pk": {"S": f"REFUND#{refund_id}"}, "sk": {"S": "STATE"}}
    )["Item"]
    return item


@contextmanager
def metered() -> Iterator[Meter]:
    meter = Meter().start()
    try:
        yield meter
    finally:
        meter.stop()


def created(env: World, reference: str, *, payment_id: str = "pi_1", email: str = "jane.doe@example.com") -> Refund:
    refund = a_refund(reference, payment_id=payment_id, email=email, amount=Money.of(2_500, "EUR"))
    return env.repository.create(refund, actor="tests", delivery=None).refund


def moved(env: World, refund: Refund, *statuses: RefundStatus, **changes: Any) -> Refund:
    for status in statuses:
        refund = env.repository.transition(refund, status, actor="tests", changes=changes).refund
    return refund


def test_a_straight_through_refund_writes_each_index_entry_once(env: World) -> None:
    # GIVEN the statuses of a refund that needs nobody, and the provider refund id recorded with REFUNDED
    env.clock.set(START)
    with metered() as meter:
        refund = created(env, "RMA-1")
        refund = moved(env, refund, S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED)
        refund = moved(env, refund, S.REFUNDED, provider_refund_id="re_1")
        refund = moved(env, refund, S.INVOICE_UPDATED, S.COMPLETED)
        # AND a note on the completed refund (a write that keeps the status)
        env.repository.record(refund, "NoteAdded", actor="tests", details={"note": "seen"})
    # THEN by-payment and by-customer were written when it was created, by-provider-refund when the id came,
    # by-status when it reached COMPLETED (the first status on the way that the index holds): once each
    assert dict(meter.index_write_units) == {"by-payment": 1, "by-customer": 1, "by-provider-refund": 1, "by-status": 1}


def test_a_status_passed_through_has_no_by_status_key_and_a_waiting_one_keeps_its_entry_through_notes(
    env: World,
) -> None:
    # GIVEN a validated refund (VALIDATED is a status refunds pass through)
    env.clock.set(START)
    refund = moved(env, created(env, "RMA-1"), S.VALIDATED)
    assert S.VALIDATED not in INDEXED_STATUSES
    assert "gsi1pk" not in state_item(env, refund.refund_id)
    # WHEN the policy sends it to a person
    waiting = moved(env, refund, S.PENDING_APPROVAL)
    entered = waiting.updated_at
    item = state_item(env, refund.refund_id)
    # THEN it is in by-status's PENDING_APPROVAL partition, keyed by the moment it entered the status
    assert item["gsi1pk"]["S"] == "STATUS#PENDING_APPROVAL"
    assert item["gsi1sk"]["S"] == f"{entered.isoformat().replace('+00:00', 'Z')}#{refund.refund_id}"
    # WHEN notes are written an hour later (same status)
    env.clock.set(START + timedelta(hours=1))
    with metered() as meter:
        noted = env.repository.record(waiting, "ApprovalReminderSent", actor="tests", details={}).refund
        env.repository.record(noted, "ApprovalReminderSent", actor="tests", details={})
    # THEN no index entry was written, the key did not move, and the refund read back knows when it entered
    assert dict(meter.index_write_units) == {}
    assert state_item(env, refund.refund_id)["gsi1sk"] == item["gsi1sk"]
    reread = env.repository.get(refund.refund_id)
    assert (reread.status_since, reread.updated_at > entered) == (entered, True)


def test_reconciliation_expects_refunds_by_when_they_completed_not_by_their_last_note(env: World) -> None:
    # GIVEN a refund completed on day 1 and noted on day 5, and one completed on day 4
    env.clock.set(START)
    early = moved(env, created(env, "RMA-1"), S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED, S.REFUNDED, S.COMPLETED)
    env.clock.set(START + timedelta(days=3))
    late = moved(env, created(env, "RMA-2"), S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED, S.REFUNDED, S.COMPLETED)
    env.clock.set(START + timedelta(days=4))
    env.repository.record(early, "NoteAdded", actor="tests", details={})
    # WHEN the refunds that completed before day 3 are asked for
    found = list(env.repository.refunds_in_status(S.COMPLETED, updated_before=START + timedelta(days=2)))
    # THEN the early one is there (its note did not move it) and the late one is not
    assert [refund.refund_id for refund in found] == [early.refund_id]
    assert found[0].audit_seq == early.audit_seq + 1  # read in full, after the note
    assert {r.refund_id for r in env.repository.list_by_status(S.COMPLETED)} == {early.refund_id, late.refund_id}


def test_news_about_a_payment_reads_the_status_of_its_refunds_from_the_table(env: World) -> None:
    # GIVEN three refunds of one payment: one waiting for the provider, one validated, one completed
    env.clock.set(START)
    submitted = moved(env, created(env, "RMA-1"), S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED)
    moved(env, created(env, "RMA-2"), S.VALIDATED)
    moved(env, created(env, "RMA-3"), S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED, S.REFUNDED, S.COMPLETED)
    created(env, "RMA-4", payment_id="pi_2")
    # WHEN the refunds whose outcome is open are asked for (the index entries hold no status)
    open_refunds = env.repository.open_refunds_for_payment(STRIPE, "pi_1")
    # THEN only the submitted one comes back, in full
    assert [(r.refund_id, r.status) for r in open_refunds] == [(submitted.refund_id, S.REFUND_SUBMITTED)]
    # AND once it is refunded, none
    moved(env, open_refunds[0], S.REFUNDED)
    assert env.repository.open_refunds_for_payment(STRIPE, "pi_1") == []
    assert len(env.repository.refunds_for_payment(STRIPE, "pi_1")) == 3


def test_a_customers_refunds_of_a_day_carry_their_current_status_and_amount(env: World) -> None:
    # GIVEN a refund of the customer that was rejected after it was created, and one of another customer
    env.clock.set(START)
    rejected = moved(env, created(env, "RMA-1"), S.VALIDATED, S.REJECTED)
    created(env, "RMA-2", email="john@example.com")
    # WHEN the day's refunds of the customer are read (the by-customer index projects keys only)
    (summary,) = env.repository.customer_refunds_on("jane.doe@example.com", START.date())
    # THEN status, amount and creation time come from the refund as it is now
    assert (summary.refund_id, summary.status, summary.amount, summary.created_at) == (
        rejected.refund_id,
        S.REJECTED,
        Money.of(2_500, "EUR"),
        rejected.created_at,
    )


def test_a_refund_no_provider_refund_item_names_is_found_on_the_index_with_its_state(env: World) -> None:
    # GIVEN a refunded refund whose PROVIDER_REFUND item is missing (recorded before those items existed)
    env.clock.set(START)
    refund = moved(env, created(env, "RMA-1"), S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED)
    refund = moved(
        env, refund, S.REFUNDED, provider_refund_id="re_old", amount={"minor_units": 2_000, "currency": "EUR"}
    )
    env.tables.client.delete_item(
        TableName=env.tables.refunds_table, Key={"pk": {"S": "PROVIDER_REFUND#re_old"}, "sk": {"S": "REFUND"}}
    )
    moved(env, refund, S.COMPLETED)
    # WHEN reconciliation looks the id up
    found = env.repository.refunds_by_provider_refund_id(["re_old", "re_nobody"])
    # THEN the keys-only index names the refund and its STATE item gives its status and amount now
    assert list(found) == ["re_old"]
    entry = found["re_old"]
    assert (entry.refund_id, entry.status, entry.amount) == (refund.refund_id, S.COMPLETED, Money.of(2_000, "EUR"))


def test_a_status_the_index_leaves_out_is_still_listed(env: World) -> None:
    # GIVEN refunds in a status the by-status index leaves out
    env.clock.set(START)
    first = moved(env, created(env, "RMA-1"), S.VALIDATED)
    second = moved(env, created(env, "RMA-2"), S.VALIDATED)
    created(env, "RMA-3")
    # WHEN listed THEN a scan of the table finds them, up to the limit asked
    assert {r.refund_id for r in env.repository.list_by_status(S.VALIDATED)} == {first.refund_id, second.refund_id}
    assert len(env.repository.list_by_status(S.VALIDATED, limit=1)) == 1


def test_the_cli_lists_an_indexed_status_from_the_index_and_another_by_scanning(env: World) -> None:
    # GIVEN two refunds waiting for approval (one entered an hour later) and two validated ones
    env.clock.set(START)
    first = moved(env, created(env, "RMA-1"), S.VALIDATED, S.PENDING_APPROVAL)
    env.clock.set(START + timedelta(hours=1))
    second = moved(env, created(env, "RMA-2"), S.VALIDATED, S.PENDING_APPROVAL)
    validated = {moved(env, created(env, f"RMA-{n}"), S.VALIDATED).refund_id for n in (3, 4)}
    client, table = env.tables.client, env.tables.refunds_table
    # WHEN the waiting ones are listed one a page, newest arrival first
    page = _page(client, table, S.PENDING_APPROVAL, None, 1, None)
    following = _page(client, table, S.PENDING_APPROVAL, None, 1, page["LastEvaluatedKey"])
    # THEN each page holds the whole STATE item read from the table, with when it entered the status
    rows = [_summary(plain) for plain in map(plain_row, page["Items"] + following["Items"])]
    assert [row["refund_id"] for row in rows] == [second.refund_id, first.refund_id]
    assert rows[0]["in_status_since"] == second.updated_at.isoformat().replace("+00:00", "Z")
    assert rows[0]["amount"] == "25.00 EUR"
    # AND since a moment, only what entered the status after it
    since = _page(client, table, S.PENDING_APPROVAL, START + timedelta(minutes=30), 10, None)
    assert [plain_row(item)["refund_id"] for item in since["Items"]] == [second.refund_id]
    # WHEN a status the index leaves out is listed THEN a scan finds them all
    scanned = _page(client, table, S.VALIDATED, None, 10, None)
    assert {plain_row(item)["refund_id"] for item in scanned["Items"]} == validated
    assert "LastEvaluatedKey" not in scanned


def plain_row(item: dict[str, Any]) -> dict[str, Any]:
    return plain_values(item)


def test_refunds_stored_by_the_earlier_code_keep_their_entry_or_lose_it_at_their_next_write(env: World) -> None:
    # GIVEN a completed and a validated refund as the earlier code stored them: every status keyed, by the last change
    env.clock.set(START)
    completed = moved(env, created(env, "RMA-1"), S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED, S.REFUNDED, S.COMPLETED)
    env.clock.set(START + timedelta(hours=2))
    completed = env.repository.record(completed, "NoteAdded", actor="tests", details={}).refund  # its last change
    validated = moved(env, created(env, "RMA-2"), S.VALIDATED)
    for refund in (completed, validated):
        legacy = {
            "gsi1pk": {"S": f"STATUS#{refund.status.value}"},
            "gsi1sk": {"S": f"{refund.updated_at.isoformat().replace('+00:00', 'Z')}#{refund.refund_id}"},
        }
        env.tables.client.put_item(
            TableName=env.tables.refunds_table, Item={**state_item(env, refund.refund_id), **legacy}
        )
    old_key = state_item(env, completed.refund_id)["gsi1sk"]
    # WHEN each is written again a day later: a note on the completed one, a status change of the validated one
    env.clock.set(START + timedelta(days=1))
    with metered() as meter:
        env.repository.record(env.repository.get(completed.refund_id), "NoteAdded", actor="tests", details={})
        moved(env, env.repository.get(validated.refund_id), S.APPROVED)
    # THEN the completed one keeps its entry (the moment it counts from is its last change before), and the
    # validated one's entry, in a partition nothing reads, is deleted: 1 write
    assert state_item(env, completed.refund_id)["gsi1sk"] == old_key
    assert old_key["S"].startswith((START + timedelta(hours=2)).isoformat().replace("+00:00", ""))
    assert "gsi1pk" not in state_item(env, validated.refund_id)
    assert dict(meter.index_write_units) == {"by-status": 1}
