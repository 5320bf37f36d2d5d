"""RefundRepository on moto (tables from template.yaml): idempotent create, atomic transitions with a
hash-chained audit trail, the refundable-balance guard under concurrency (R4), daily totals, wait
tokens, indexes, and failing closed when the store is unreachable (R17)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow.adapters.dynamodb import RefundRepository, customer_key
from refundflow.audit import verify_chain
from refundflow.errors import (
    ConcurrentModification,
    GuardUnavailable,
    IdempotencyConflict,
    IllegalTransition,
    InsufficientRefundableAmount,
    NotFound,
    TransientError,
)
from refundflow.models import PaymentProvider, Refund
from refundflow.money import Money
from refundflow.ports import ProviderPayment
from refundflow.status import RefundStatus
from tests.support.fakes import TEST_AUDIT_KEYS, UnreachableDynamoDB, World, a_refund, world

S = RefundStatus
STRIPE = PaymentProvider.STRIPE


def eur(minor: int) -> Money:
    return Money.of(minor, "EUR")


def open_payment(env: World, payment_id: str, captured: int, refunded: int = 0) -> None:
    env.repository.open_balance(
        ProviderPayment(
            provider=STRIPE, payment_id=payment_id, captured=eur(captured), refunded=eur(refunded), status="succeeded"
        )
    )


def validated(env: World, reference: str, *, payment_id: str = "pi_1", email: str = "jane.doe@example.com") -> Refund:
    created = env.repository.create(
        a_refund(reference, payment_id=payment_id, email=email), actor="tests", delivery=None
    )
    return env.repository.transition(created.refund, S.VALIDATED, actor="tests").refund


def balance(env: World, payment_id: str) -> dict[str, int]:
    found = env.repository.get_balance(STRIPE, payment_id)
    assert found is not None
    return {
        "captured": found.captured.minor_units,
        "refunded": found.refunded.minor_units,
        "reserved": found.reserved.minor_units,
        "remaining": found.remaining.minor_units,
    }


def raw_item(env: World, pk: str, sk: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = env.tables.client.get_item(
        TableName=env.tables.refunds_table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
    ).get("Item")
    return item


# ---------------------------------------------------------------- create


def test_create_stores_the_refund_its_first_audit_entry_and_the_delivery_marker(env: World) -> None:
    # GIVEN a new refund arriving with a delivery id
    refund = a_refund("RMA-1")
    # WHEN stored
    outcome = env.repository.create(refund, actor="shop", delivery=("shop", "evt-1"), details={"delivery_id": "evt-1"})
    # THEN it exists at version 1 with one audit entry whose hash is the refund's head, and the delivery is marked
    assert (outcome.created, outcome.duplicate_delivery) == (True, False)
    stored = env.repository.get(refund.refund_id)
    assert (stored.status, stored.version, stored.audit_seq) == (S.RECEIVED, 1, 1)
    timeline = env.repository.timeline(refund.refund_id)
    assert [entry.type for entry in timeline] == ["RefundRequested"]
    assert timeline[0].details == {"delivery_id": "evt-1"}
    assert stored.audit_head == timeline[0].hash
    assert env.repository.delivery_refund_id("shop", "evt-1") == refund.refund_id


def test_the_same_delivery_again_is_a_duplicate_and_writes_nothing(env: World) -> None:
    # GIVEN a stored refund
    refund = a_refund("RMA-1")
    env.repository.create(refund, actor="shop", delivery=("shop", "evt-1"))
    # WHEN the same delivery arrives again
    again = env.repository.create(refund, actor="shop", delivery=("shop", "evt-1"))
    # THEN it is reported as a duplicate delivery and nothing new is written
    assert (again.created, again.duplicate_delivery) == (False, True)
    assert again.refund.version == 1
    assert len(env.repository.timeline(refund.refund_id)) == 1


def test_the_same_refund_under_another_delivery_is_not_created_twice(env: World) -> None:
    # GIVEN a stored refund that has moved on
    refund = a_refund("RMA-1")
    env.repository.create(refund, actor="shop", delivery=("shop", "evt-1"))
    moved = env.repository.transition(env.repository.get(refund.refund_id), S.VALIDATED, actor="tests").refund
    # WHEN the same request arrives under a new delivery id
    again = env.repository.create(refund, actor="shop", delivery=("shop", "evt-2"))
    # THEN the stored refund comes back untouched, and the new delivery id is remembered for it
    assert (again.created, again.duplicate_delivery) == (False, False)
    assert again.refund == moved
    assert len(env.repository.timeline(refund.refund_id)) == 2
    assert env.repository.delivery_refund_id("shop", "evt-2") == refund.refund_id


def test_a_delivery_id_reused_for_another_refund_is_an_idempotency_conflict(env: World) -> None:
    # GIVEN a delivery id already used for one refund
    first, other = a_refund("RMA-1"), a_refund("RMA-2")
    env.repository.create(first, actor="shop", delivery=("shop", "evt-1"))
    # WHEN another refund arrives under the same delivery id
    with pytest.raises(IdempotencyConflict):
        env.repository.create(other, actor="shop", delivery=("shop", "evt-1"))
    # THEN the other refund is not stored and the marker still points at the first
    assert env.repository.find(other.refund_id) is None
    assert env.repository.delivery_refund_id("shop", "evt-1") == first.refund_id


def test_mark_delivery_reports_a_redelivery(env: World) -> None:
    # GIVEN a delivery marked once WHEN it is marked again THEN the second time says it was seen
    assert env.repository.mark_delivery("stripe", "evt_1", "rf_x") is True
    assert env.repository.mark_delivery("stripe", "evt_1", "rf_x") is False
    # AND the marker has an expiry far beyond the providers' 3-day redelivery window
    item = raw_item(env, "SOURCE#stripe#evt_1", "SOURCE")
    assert item is not None
    first_seen = datetime.fromisoformat(item["first_seen_at"]["S"])
    assert int(item["expires_at"]["N"]) - first_seen.timestamp() > 365 * 86_400


def test_get_of_an_unknown_refund_is_not_found(env: World) -> None:
    # GIVEN an empty table WHEN a refund is read THEN NotFound (find gives None)
    with pytest.raises(NotFound):
        env.repository.get("rf_" + "0" * 32)
    assert env.repository.find("rf_" + "0" * 32) is None


# ---------------------------------------------------------------- transitions and the audit trail


def test_transition_writes_state_and_audit_entry_together_and_bumps_the_version(env: World) -> None:
    # GIVEN a received refund
    refund = env.repository.create(a_refund("RMA-1"), actor="shop", delivery=None).refund
    # WHEN it is validated with a change and details
    change = env.repository.transition(
        refund,
        S.VALIDATED,
        actor="step:ValidateRefund",
        details={"provider": "stripe"},
        changes={"provider_status": "checked"},
    )
    # THEN the stored state and the new audit entry agree, and the version went up by one
    stored = env.repository.get(refund.refund_id)
    assert stored == change.refund
    assert (stored.status, stored.version, stored.provider_status) == (S.VALIDATED, 2, "checked")
    entry = env.repository.timeline(refund.refund_id)[-1]
    assert entry == change.entry
    assert (entry.seq, entry.from_status, entry.to_status, entry.actor) == (
        2,
        S.RECEIVED,
        S.VALIDATED,
        "step:ValidateRefund",
    )
    assert entry.details == {"provider": "stripe"}
    assert entry.prev_hash == refund.audit_head
    assert stored.audit_head == entry.hash
    assert verify_chain(
        env.repository.timeline(refund.refund_id), expected_head=stored.audit_head, keys=TEST_AUDIT_KEYS
    ).intact


def test_record_appends_an_audit_entry_without_changing_the_status(env: World) -> None:
    # GIVEN a validated refund WHEN an event without a status change is recorded
    refund = validated(env, "RMA-1")
    change = env.repository.record(refund, "PaymentLookedUp", actor="provider:stripe", changes={"amount": eur(500)})
    # THEN the status stays, the change is stored, and the entry extends the chain
    stored = env.repository.get(refund.refund_id)
    assert (stored.status, stored.amount, stored.version) == (S.VALIDATED, eur(500), 3)
    assert change.entry.type == "PaymentLookedUp"
    assert verify_chain(
        env.repository.timeline(refund.refund_id), expected_head=stored.audit_head, keys=TEST_AUDIT_KEYS
    ).intact


def test_audit_timestamps_never_go_backwards_even_with_a_clock_behind(env: World) -> None:
    # GIVEN a refund written at noon
    refund = env.repository.create(a_refund("RMA-1"), actor="shop", delivery=None).refund
    # WHEN the next writer's clock is an hour behind
    env.clock.set(datetime(2025, 3, 1, 11, 0, tzinfo=UTC))
    env.repository.transition(refund, S.VALIDATED, actor="tests")
    # THEN its entry is still later than the previous one
    first, second = env.repository.timeline(refund.refund_id)
    assert second.at > first.at


def test_a_stale_version_is_a_concurrent_modification_and_writes_nothing(env: World) -> None:
    # GIVEN two workers that read the same version of a refund, and a payment with a balance
    open_payment(env, "pi_1", 10_000)
    stale = validated(env, "RMA-1")
    env.repository.transition(stale, S.APPROVED, actor="worker-1")
    # WHEN the second writes from its stale copy, with a reservation in the same transaction
    with pytest.raises(ConcurrentModification):
        env.repository.transition(
            stale, S.REJECTED, actor="worker-2", extra=[env.repository.reserve(stale, eur(5_000))]
        )
    # THEN neither its state, nor its audit entry, nor its reservation was written
    stored = env.repository.get(stale.refund_id)
    assert (stored.status, stored.version) == (S.APPROVED, 3)
    assert [entry.actor for entry in env.repository.timeline(stale.refund_id)] == ["tests", "tests", "worker-1"]
    assert balance(env, "pi_1")["remaining"] == 10_000


@pytest.mark.parametrize(
    ("setup", "target"), [([], S.REFUNDED), ([S.REJECTED], S.APPROVED), ([S.VALIDATED], S.RECEIVED)]
)
def test_an_illegal_transition_is_refused_and_writes_nothing(
    env: World, setup: list[RefundStatus], target: RefundStatus
) -> None:
    # GIVEN a refund in some status
    refund = env.repository.create(a_refund("RMA-1"), actor="shop", delivery=None).refund
    for status in setup:
        refund = env.repository.transition(refund, status, actor="tests").refund
    # WHEN moved where the state model does not allow
    with pytest.raises(IllegalTransition):
        env.repository.transition(refund, target, actor="tests")
    # THEN nothing changed
    assert env.repository.get(refund.refund_id) == refund
    assert len(env.repository.timeline(refund.refund_id)) == 1 + len(setup)


# ---------------------------------------------------------------- the refundable balance (R4)


def test_open_balance_keeps_the_first_figures_and_excludes_refunds_made_elsewhere(env: World) -> None:
    # GIVEN a payment already partly refunded at the provider before refundflow saw it
    open_payment(env, "pi_1", 10_000, refunded=2_500)
    # WHEN it is opened again with other figures
    open_payment(env, "pi_1", 99_999)
    # THEN the first figures stand: what was refunded elsewhere is not refundable again
    assert balance(env, "pi_1") == {"captured": 10_000, "refunded": 2_500, "reserved": 0, "remaining": 7_500}


def test_reserve_rejects_an_amount_over_what_remains(env: World) -> None:
    # GIVEN a payment with 100.00 EUR remaining
    open_payment(env, "pi_1", 10_000)
    refund = validated(env, "RMA-1")
    # WHEN 100.01 is reserved
    with pytest.raises(InsufficientRefundableAmount):
        env.repository.transition(
            refund, S.APPROVED, actor="tests", extra=[env.repository.reserve(refund, eur(10_001))]
        )
    # THEN nothing is reserved and the refund did not move
    assert balance(env, "pi_1")["remaining"] == 10_000
    assert env.repository.get(refund.refund_id).status is S.VALIDATED


def test_reserve_rejects_another_currency_and_an_unopened_payment(env: World) -> None:
    # GIVEN a EUR payment and a refund on a payment never looked up
    open_payment(env, "pi_1", 10_000)
    refund = validated(env, "RMA-1")
    unknown = validated(env, "RMA-2", payment_id="pi_unknown")
    # WHEN a USD amount is reserved on the first, or anything on the second THEN both are refused
    with pytest.raises(InsufficientRefundableAmount):
        env.repository.record(
            refund, "Reserve", actor="tests", extra=[env.repository.reserve(refund, Money.of(100, "USD"))]
        )
    with pytest.raises(InsufficientRefundableAmount):
        env.repository.record(unknown, "Reserve", actor="tests", extra=[env.repository.reserve(unknown, eur(1))])
    assert balance(env, "pi_1")["remaining"] == 10_000
    assert env.repository.get_balance(STRIPE, "pi_unknown") is None


@pytest.mark.parametrize("trial", range(5))
def test_concurrent_partial_refunds_never_over_refund(threaded_env: World, trial: int) -> None:
    env = threaded_env
    # GIVEN a 100.00 EUR capture and ten refunds of 30.00 each, every one of which sees 100.00 remaining
    payment_id = f"pi_r4_{trial}"
    open_payment(env, payment_id, 10_000)
    refunds = [validated(env, f"R4-{trial}-{index}", payment_id=payment_id) for index in range(10)]
    assert balance(env, payment_id)["remaining"] >= 3_000
    barrier = threading.Barrier(len(refunds))
    results: dict[str, str] = {}

    def approve_and_reserve(refund: Refund) -> None:
        barrier.wait()
        try:
            env.repository.transition(
                refund, S.APPROVED, actor="tests", extra=[env.repository.reserve(refund, eur(3_000))]
            )
            results[refund.refund_id] = "reserved"
        except InsufficientRefundableAmount:
            results[refund.refund_id] = "refused"
        except Exception as error:  # pragma: no cover - reported by the assertion below
            results[refund.refund_id] = repr(error)

    # WHEN all ten reserve at the same moment
    threads = [threading.Thread(target=approve_and_reserve, args=(refund,)) for refund in refunds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN exactly three are accepted, seven refused, and the balance never goes below zero
    assert sorted(results.values()) == ["refused"] * 7 + ["reserved"] * 3
    assert balance(env, payment_id) == {"captured": 10_000, "refunded": 0, "reserved": 9_000, "remaining": 1_000}
    # AND only the accepted refunds moved; the refused ones wrote nothing
    for refund in refunds:
        stored = env.repository.get(refund.refund_id)
        if results[refund.refund_id] == "reserved":
            assert (stored.status, stored.version) == (S.APPROVED, 3)
        else:
            assert stored == refund
            assert len(env.repository.timeline(refund.refund_id)) == 2


operation = st.tuples(st.sampled_from(["reserve", "release", "consume", "unconsume"]), st.integers(1, 6_000))


@settings(max_examples=20, deadline=None)
@given(captured=st.integers(0, 15_000), operations=st.lists(operation, max_size=8))
def test_the_balance_guard_keeps_its_invariants_under_any_sequence(
    captured: int, operations: list[tuple[str, int]]
) -> None:
    # moto copies a whole table per transaction: a fresh (small) table per example keeps this fast
    with world() as env:
        # GIVEN a captured payment
        open_payment(env, "pi_1", captured)
        refund = validated(env, "RMA-1")
        model = {"captured": captured, "refunded": 0, "reserved": 0, "remaining": captured}
        # WHEN any sequence of reservations, releases, consumptions and reversals is attempted
        for name, amount in operations:
            item = getattr(env.repository, name)(refund, eur(amount))
            allowed = {
                "reserve": amount <= model["remaining"],
                "release": amount <= model["reserved"],
                "consume": amount <= model["reserved"],
                "unconsume": amount <= model["refunded"],
            }[name]
            try:
                refund = env.repository.record(refund, name, actor="tests", extra=[item]).refund
            except (InsufficientRefundableAmount, IllegalTransition):
                assert not allowed
            else:
                assert allowed
                shift = {
                    "reserve": {"remaining": -amount, "reserved": amount},
                    "release": {"remaining": amount, "reserved": -amount},
                    "consume": {"refunded": amount, "reserved": -amount},
                    "unconsume": {"refunded": -amount, "remaining": amount},
                }[name]
                for key, delta in shift.items():
                    model[key] += delta
            # THEN the stored balance follows exactly, nothing goes negative, and nothing is created or lost
            stored = balance(env, "pi_1")
            assert stored == model
            assert min(stored.values()) >= 0
            assert stored["remaining"] + stored["reserved"] + stored["refunded"] == captured


def test_a_reservation_is_released_exactly_once(env: World) -> None:
    # GIVEN a refund holding 30.00 of a 100.00 capture
    open_payment(env, "pi_1", 10_000)
    refund = validated(env, "RMA-1")
    held = env.repository.transition(
        refund, S.APPROVED, actor="tests", extra=[env.repository.reserve(refund, eur(3_000))]
    ).refund
    # WHEN it fails and releases
    env.repository.transition(held, S.FAILED, actor="tests", extra=[env.repository.release(held, eur(3_000))])
    assert balance(env, "pi_1") == {"captured": 10_000, "refunded": 0, "reserved": 0, "remaining": 10_000}
    # THEN a second release from the same read is refused by the version, and a fresh one by the balance
    with pytest.raises(ConcurrentModification):
        env.repository.transition(held, S.FAILED, actor="tests", extra=[env.repository.release(held, eur(3_000))])
    failed = env.repository.get(refund.refund_id)
    with pytest.raises(IllegalTransition, match="releasing more than is reserved"):
        env.repository.record(failed, "Release", actor="tests", extra=[env.repository.release(failed, eur(3_000))])
    assert balance(env, "pi_1")["remaining"] == 10_000


def test_a_reservation_is_consumed_exactly_once(env: World) -> None:
    # GIVEN a refund holding 30.00
    open_payment(env, "pi_1", 10_000)
    refund = validated(env, "RMA-1")
    held = env.repository.transition(
        refund, S.APPROVED, actor="tests", extra=[env.repository.reserve(refund, eur(3_000))]
    ).refund
    # WHEN the provider confirms it and the reservation is consumed
    consumed = env.repository.record(
        held, "Consume", actor="tests", extra=[env.repository.consume(held, eur(3_000))]
    ).refund
    assert balance(env, "pi_1") == {"captured": 10_000, "refunded": 3_000, "reserved": 0, "remaining": 7_000}
    # THEN consuming again is refused and changes nothing
    with pytest.raises(IllegalTransition, match="consuming more than is reserved"):
        env.repository.record(consumed, "Consume", actor="tests", extra=[env.repository.consume(consumed, eur(3_000))])
    assert balance(env, "pi_1")["refunded"] == 3_000


def test_a_reversed_refund_becomes_refundable_again(env: World) -> None:
    # GIVEN 30.00 refunded on a 100.00 capture
    open_payment(env, "pi_1", 10_000)
    refund = validated(env, "RMA-1")
    refund = env.repository.record(
        refund, "Reserve", actor="tests", extra=[env.repository.reserve(refund, eur(3_000))]
    ).refund
    refund = env.repository.record(
        refund, "Consume", actor="tests", extra=[env.repository.consume(refund, eur(3_000))]
    ).refund
    # WHEN the provider reverses it
    refund = env.repository.record(
        refund, "Reverse", actor="tests", extra=[env.repository.unconsume(refund, eur(3_000))]
    ).refund
    # THEN the amount is refundable again, and it cannot be reversed twice
    assert balance(env, "pi_1") == {"captured": 10_000, "refunded": 0, "reserved": 0, "remaining": 10_000}
    with pytest.raises(IllegalTransition):
        env.repository.record(refund, "Reverse", actor="tests", extra=[env.repository.unconsume(refund, eur(3_000))])


# ---------------------------------------------------------------- daily totals


def test_daily_totals_add_reservations_and_subtract_releases_per_day_and_currency(env: World) -> None:
    # GIVEN reservations and a release on one day, and reservations on another day and in another currency
    refund = validated(env, "RMA-1")
    monday, tuesday = date(2025, 3, 3), date(2025, 3, 4)
    for amount, day in [(eur(3_000), monday), (eur(2_000), monday), (eur(-3_000), monday), (eur(700), tuesday)]:
        refund = env.repository.record(
            refund, "Total", actor="tests", extra=[env.repository.add_to_daily_total(amount, day)]
        ).refund
    refund = env.repository.record(
        refund, "Total", actor="tests", extra=[env.repository.add_to_daily_total(Money.of(900, "JPY"), monday)]
    ).refund
    # WHEN the totals are read THEN each day and currency has its own net total
    assert env.repository.daily_total("EUR", monday) == eur(2_000)
    assert env.repository.daily_total("EUR", tuesday) == eur(700)
    assert env.repository.daily_total("JPY", monday) == Money.of(900, "JPY")
    assert env.repository.daily_total("EUR", date(2025, 3, 5)) == eur(0)


# ---------------------------------------------------------------- wait tokens


def test_a_wait_token_is_taken_once(env: World) -> None:
    # GIVEN a workflow's stored task token
    env.repository.put_wait_token("rf_1", "approval", "token-1")
    assert env.repository.peek_wait_token("rf_1", "approval") == "token-1"
    # WHEN it is taken twice THEN only the first gets it
    assert env.repository.take_wait_token("rf_1", "approval") == "token-1"
    assert env.repository.take_wait_token("rf_1", "approval") is None
    assert env.repository.peek_wait_token("rf_1", "approval") is None


def test_a_wait_token_taken_concurrently_goes_to_one_taker(threaded_env: World) -> None:
    env = threaded_env
    # GIVEN a stored token and ten resumers racing for it
    env.repository.put_wait_token("rf_1", "refund_outcome", "token-1")
    barrier = threading.Barrier(10)
    taken: list[str | None] = []

    def take() -> None:
        barrier.wait()
        taken.append(env.repository.take_wait_token("rf_1", "refund_outcome"))

    threads = [threading.Thread(target=take) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN exactly one of them has it
    assert taken.count("token-1") == 1
    assert taken.count(None) == 9


def test_wait_tokens_are_kept_per_kind(env: World) -> None:
    # GIVEN tokens for an approval and for a provider outcome WHEN one is taken THEN the other stays
    env.repository.put_wait_token("rf_1", "approval", "token-a")
    env.repository.put_wait_token("rf_1", "refund_outcome", "token-b")
    assert env.repository.take_wait_token("rf_1", "approval") == "token-a"
    assert env.repository.peek_wait_token("rf_1", "refund_outcome") == "token-b"


# ---------------------------------------------------------------- indexes


def test_customer_history_finds_a_customers_refunds_since_a_moment(env: World) -> None:
    # GIVEN two refunds of one customer a month apart, and one of another customer
    env.clock.set(datetime(2025, 2, 1, tzinfo=UTC))
    amount = Money.of(1_000, "EUR")
    older = env.repository.create(
        a_refund("RMA-1", email="jane.doe@example.com", amount=amount), actor="shop", delivery=None
    ).refund
    env.clock.set(datetime(2025, 3, 1, tzinfo=UTC))
    newer = env.repository.create(
        a_refund("RMA-2", email="jane.doe@example.com", amount=amount), actor="shop", delivery=None
    ).refund
    env.repository.create(a_refund("RMA-3", email="john@example.com", amount=amount), actor="shop", delivery=None)
    # WHEN her history is read (address written differently)
    recent = env.repository.customer_history(" Jane.Doe@Example.com ", since=datetime(2025, 2, 15, tzinfo=UTC))
    everything = env.repository.customer_history("jane.doe@example.com", since=datetime(2025, 1, 1, tzinfo=UTC))
    # THEN only her refunds since then come back
    assert [refund.refund_id for refund in recent] == [newer.refund_id]
    assert {refund.refund_id for refund in everything} == {older.refund_id, newer.refund_id}


@pytest.mark.parametrize(
    ("since", "included"),
    [
        (datetime(2025, 3, 1, 12, 0, tzinfo=UTC), True),  # a whole second, the refund 1 ms later
        (datetime(2025, 3, 1, 20, 0, tzinfo=timezone(timedelta(hours=9))), True),  # 11:00 UTC, in Tokyo
        (datetime(2025, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=-5))), False),  # 17:30 UTC, in New York
        (datetime(2025, 3, 1, 12, 0, 0, 2_000, tzinfo=UTC), False),  # 1 ms after the refund
    ],
)
def test_customer_history_compares_moments_not_their_spelling(env: World, since: datetime, included: bool) -> None:
    # GIVEN a refund created at 12:00:00.001 UTC
    env.clock.set(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
    refund = env.repository.create(a_refund("RMA-1", amount=Money.of(1_000, "EUR")), actor="shop", delivery=None).refund
    assert refund.created_at == datetime(2025, 3, 1, 12, 0, 0, 1_000, tzinfo=UTC)
    # WHEN the history is asked since a moment given in another zone or without fractions
    found = env.repository.customer_history("jane.doe@example.com", since=since)
    # THEN the refund is in it exactly when it was created at or after that moment
    assert [r.refund_id for r in found] == ([refund.refund_id] if included else [])


def test_the_customer_index_holds_no_email_address(env: World) -> None:
    # GIVEN a stored refund WHEN its raw item is read THEN the customer index key is a pseudonym
    refund = env.repository.create(a_refund("RMA-1", email="jane.doe@example.com"), actor="shop", delivery=None).refund
    item = raw_item(env, f"REFUND#{refund.refund_id}", "STATE")
    assert item is not None
    assert item["gsi4pk"]["S"] == f"CUSTOMER#{customer_key('jane.doe@example.com')}"
    assert "@" not in item["gsi4pk"]["S"]


def test_refunds_are_listed_by_status_and_by_payment(env: World) -> None:
    # GIVEN refunds on two payments, one of them validated
    first = validated(env, "RMA-1", payment_id="pi_1")
    second = env.repository.create(a_refund("RMA-2", payment_id="pi_1"), actor="shop", delivery=None).refund
    env.repository.create(a_refund("RMA-3", payment_id="pi_2"), actor="shop", delivery=None)
    # WHEN listed THEN the status index and the payment index find the right ones
    assert [refund.refund_id for refund in env.repository.list_by_status(S.VALIDATED)] == [first.refund_id]
    assert {r.refund_id for r in env.repository.refunds_for_payment(STRIPE, "pi_1")} == {
        first.refund_id,
        second.refund_id,
    }


# ---------------------------------------------------------------- failing closed (R17)


def test_an_unreachable_store_fails_closed() -> None:
    # GIVEN a repository whose DynamoDB cannot be reached
    client = UnreachableDynamoDB()
    repository = RefundRepository("refunds", dynamodb=client, audit_keys=lambda: TEST_AUDIT_KEYS)
    refund = a_refund("RMA-1")
    payment = ProviderPayment(
        provider=STRIPE, payment_id="pi_1", captured=eur(100), refunded=eur(0), status="succeeded"
    )
    # WHEN anything is read or written THEN GuardUnavailable is raised: no caller may proceed unguarded
    attempts = [
        lambda: repository.get(refund.refund_id),
        lambda: repository.create(refund, actor="shop", delivery=("shop", "evt-1")),
        lambda: repository.transition(refund, S.VALIDATED, actor="tests", extra=[repository.reserve(refund, eur(100))]),
        lambda: repository.open_balance(payment),
        lambda: repository.mark_delivery("shop", "evt-1", refund.refund_id),
        lambda: repository.delivery_refund_id("shop", "evt-1"),
        lambda: repository.take_wait_token(refund.refund_id, "approval"),
        lambda: repository.daily_total("EUR", date(2025, 3, 1)),
    ]
    for attempt in attempts:
        with pytest.raises(GuardUnavailable):
            attempt()
    assert "transact_write_items" in client.calls


class FailingDynamoDB:
    """A DynamoDB client that answers every call with one AWS error code."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __getattr__(self, name: str) -> Any:
        def fail(**kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": self.code, "Message": "test"}}, name)

        return fail


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ThrottlingException", TransientError),
        ("ProvisionedThroughputExceededException", TransientError),
        ("InternalServerError", TransientError),
        ("ResourceNotFoundException", GuardUnavailable),
        ("AccessDeniedException", GuardUnavailable),
        ("UnrecognizedClientException", GuardUnavailable),
    ],
)
def test_store_errors_map_to_retry_or_fail_closed(code: str, expected: type[Exception]) -> None:
    # GIVEN a store answering with an AWS error WHEN a refund is read
    # THEN throttling is retryable, anything else fails closed
    repository = RefundRepository("refunds", dynamodb=FailingDynamoDB(code))
    with pytest.raises(expected):
        repository.get("rf_" + "0" * 32)
