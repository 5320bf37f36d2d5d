"""Customer velocity from day counters (RefundRepository on moto): the counters move in the transaction of
every write that changes what a refund counts for, exactly once across retries, and the policy's customer facts
computed from them (plus the edge days read one by one) are the facts computed from the whole history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow.adapters.dynamodb import customer_key
from refundflow.domain.policy_step import customer_velocity
from refundflow.errors import ConcurrentModification
from refundflow.models import Refund, VelocityDay
from refundflow.money import Money
from refundflow.policy import build_policy_input
from refundflow.policy.inputs import HISTORY_DAYS, CustomerFacts
from refundflow.status import RefundStatus
from tests.support.fakes import World, a_refund, world

S = RefundStatus
JANE = "jane.doe@example.com"
NOW = datetime(2025, 3, 1, 15, 30, tzinfo=UTC)


def eur(minor: int) -> Money:
    return Money.of(minor, "EUR")


def day_items(env: World, email: str = JANE) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = env.tables.client.query(
        TableName=env.tables.refunds_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"CUSTOMER#{customer_key(email)}"}},
    )["Items"]
    return items


def create(env: World, reference: str, at: datetime, amount: Money | None, email: str = JANE) -> Refund:
    env.clock.set(at)
    return env.repository.create(a_refund(reference, email=email, amount=amount), actor="tests", delivery=None).refund


def facts_both_ways(env: World, refund: Refund, now: datetime) -> tuple[CustomerFacts, CustomerFacts]:
    """The customer facts from the whole history (what the policy step read before) and from the counters."""
    common: dict[str, Any] = {"remaining": eur(10**9), "refunded_today": eur(0), "now": now}
    history = env.repository.customer_history(refund.customer.email, now - timedelta(days=HISTORY_DAYS))
    from_history = build_policy_input(refund, customer_history=history, **common).customer
    velocity = customer_velocity(env.repository, refund, now)
    from_counters = build_policy_input(refund, customer_velocity=velocity, **common).customer
    return from_history, from_counters


def test_a_refund_counts_once_on_its_day_and_stops_counting_when_rejected(env: World) -> None:
    # GIVEN a request for 25.00 EUR created on 1 March
    refund = create(env, "RMA-1", datetime(2025, 3, 1, 9, tzinfo=UTC), eur(2_500))
    # THEN the customer's counter of that day holds one refund of 25.00 EUR
    days = env.repository.velocity_days(JANE, NOW.date() - timedelta(days=3), NOW.date())
    assert days == [VelocityDay(day=NOW.date(), count=1, amounts={"EUR": 2_500})]
    # WHEN the policy lowers the amount, and later the refund is rejected
    refund = env.repository.transition(refund, S.VALIDATED, actor="tests", changes={"amount": eur(2_000)}).refund
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date())[0].amounts == {"EUR": 2_000}
    env.repository.transition(refund, S.REJECTED, actor="tests")
    # THEN the counter is back to nothing (the item stays, empty)
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date()) == [VelocityDay(day=NOW.date(), count=0)]


def test_a_request_for_everything_left_counts_once_its_amount_is_known(env: World) -> None:
    refund = create(env, "RMA-1", datetime(2025, 3, 1, 9, tzinfo=UTC), None)
    assert day_items(env) == []
    env.repository.record(refund, "PaymentLookedUp", actor="tests", changes={"amount": eur(700)})
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date()) == [
        VelocityDay(day=NOW.date(), count=1, amounts={"EUR": 700})
    ]


def test_a_retried_write_does_not_count_twice(env: World) -> None:
    # GIVEN a request for everything left, then looked up (the write that makes it count)
    stale = create(env, "RMA-1", datetime(2025, 3, 1, 9, tzinfo=UTC), None)
    env.repository.record(stale, "PaymentLookedUp", actor="tests", changes={"amount": eur(700)})
    # WHEN the same write is retried from the version it was read at
    with pytest.raises(ConcurrentModification):
        env.repository.record(stale, "PaymentLookedUp", actor="tests", changes={"amount": eur(700)})
    # THEN the counter still holds it once
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date())[0].count == 1


def test_the_velocity_read_is_one_query_and_edge_days_only_where_other_refunds_are(env: World) -> None:
    # GIVEN a refund 7 days ago at 10:00 (the 7-day window starts at 15:30 that day) and one today
    create(env, "RMA-OLD", datetime(2025, 2, 22, 10, tzinfo=UTC), eur(1_000))
    refund = create(env, "RMA-NEW", datetime(2025, 3, 1, 9, tzinfo=UTC), eur(2_500))
    # WHEN the velocity at NOW is gathered
    velocity = customer_velocity(env.repository, refund, NOW)
    # THEN the window's first day is read one by one (only that day: today holds nothing but the refund itself)
    assert velocity.edge_days == [datetime(2025, 2, 22).date()]
    assert [summary.refund_id for summary in velocity.edge_refunds] == [a_refund("RMA-OLD").refund_id]
    # AND the refund of 10:00 is outside the last 7 days but inside the last 30
    history, counters = facts_both_ways(env, refund, NOW)
    assert counters == history
    assert (counters.last_7_days.count, counters.last_30_days.count, counters.last_30_days.amount) == (0, 1, 1_000)


STATUS_PATHS: dict[str, list[RefundStatus]] = {
    "received": [],
    "validated": [S.VALIDATED],
    "approved": [S.VALIDATED, S.APPROVED],
    "rejected": [S.VALIDATED, S.REJECTED],
    "failed": [S.FAILED],
}
earlier_refund = st.tuples(
    st.integers(0, 400 * 24),  # hours before NOW
    st.sampled_from([None, "EUR", "USD"]),
    st.integers(1, 50_000),
    st.sampled_from(sorted(STATUS_PATHS)),
    st.booleans(),  # the policy changed the amount
    st.booleans(),  # same customer
)


@settings(max_examples=25, deadline=None)
@given(
    earlier=st.lists(earlier_refund, max_size=8),
    own_hours=st.integers(0, 48),
    own_path=st.sampled_from(["received", "validated"]),
    at_seconds=st.integers(0, 86_399),
)
def test_counters_give_the_same_customer_facts_as_the_whole_history(
    earlier: list[tuple[int, str | None, int, str, bool, bool]], own_hours: int, own_path: str, at_seconds: int
) -> None:
    now = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(seconds=at_seconds)
    with world() as env:
        # GIVEN earlier refunds of the customer (and someone else) at any time of the last 400 days, in any
        # currency, for a known amount or everything left, in any status, some with the amount changed later
        for index, (hours, currency, minor, path, changed, same) in enumerate(earlier):
            amount = Money.of(minor, currency) if currency else None
            refund = create(
                env, f"RMA-{index}", now - timedelta(hours=hours), amount, JANE if same else "john@example.com"
            )
            for step, status in enumerate(STATUS_PATHS[path]):
                changes = {"amount": Money.of(minor // 2 + 1, currency or "EUR")} if changed and step == 0 else {}
                refund = env.repository.transition(refund, status, actor="tests", changes=changes).refund
        own = create(env, "RMA-OWN", now - timedelta(hours=own_hours), eur(2_500))
        for status in STATUS_PATHS[own_path]:
            own = env.repository.transition(own, status, actor="tests").refund
        # WHEN the facts are computed from the counters and from the history
        history, counters = facts_both_ways(env, own, now)
        # THEN they are the same
        assert counters == history


def stored_before_counters(env: World, refund: Refund) -> None:
    """As if ``refund`` had been stored before the counters existed: no marker on its STATE item, no counter."""
    client, table = env.tables.client, env.tables.refunds_table
    client.update_item(
        TableName=table,
        Key={"pk": {"S": f"REFUND#{refund.refund_id}"}, "sk": {"S": "STATE"}},
        UpdateExpression="REMOVE vc",
    )
    for item in day_items(env, refund.customer.email):
        client.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})


def test_a_refund_stored_before_the_counters_joins_them_at_its_next_write_and_never_goes_below_zero(
    env: World,
) -> None:
    # GIVEN two refunds stored before the counters existed
    first = create(env, "RMA-1", datetime(2025, 3, 1, 9, tzinfo=UTC), eur(2_500))
    second = create(env, "RMA-2", datetime(2025, 3, 1, 10, tzinfo=UTC), eur(1_000))
    stored_before_counters(env, first)
    stored_before_counters(env, second)
    # WHEN the first is rejected: it never counted, so nothing is taken off
    env.repository.transition(first, S.REJECTED, actor="tests")
    assert day_items(env) == []
    # AND the second is validated: it joins with what it contributes now
    second = env.repository.transition(second, S.VALIDATED, actor="tests").refund
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date()) == [
        VelocityDay(day=NOW.date(), count=1, amounts={"EUR": 1_000})
    ]
    # AND from then on it moves the counters like any refund
    env.repository.transition(second, S.REJECTED, actor="tests")
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date()) == [VelocityDay(day=NOW.date(), count=0)]


def test_a_stale_write_of_a_refund_stored_before_the_counters_is_refused(env: World) -> None:
    refund = create(env, "RMA-1", datetime(2025, 3, 1, 9, tzinfo=UTC), eur(2_500))
    stored_before_counters(env, refund)
    env.repository.transition(refund, S.VALIDATED, actor="tests")
    with pytest.raises(ConcurrentModification):
        env.repository.transition(refund, S.VALIDATED, actor="tests")
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date())[0].count == 1


def test_the_backfill_counts_an_old_refund_once(env: World) -> None:
    # GIVEN a refund stored before the counters, never written again
    refund = create(env, "RMA-1", datetime(2025, 3, 1, 9, tzinfo=UTC), eur(2_500))
    stored_before_counters(env, refund)
    # WHEN the backfill counts it, twice
    assert env.repository.count_in_velocity(env.repository.get(refund.refund_id)) is True
    assert env.repository.count_in_velocity(env.repository.get(refund.refund_id)) is False
    # THEN it is counted once, and its next write moves the counter from there
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date())[0].count == 1
    env.repository.transition(env.repository.get(refund.refund_id), S.REJECTED, actor="tests")
    assert env.repository.velocity_days(JANE, NOW.date(), NOW.date())[0].count == 0
