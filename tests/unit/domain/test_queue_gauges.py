"""The gauges of refunds waiting for a person (issue 15): how many are in PENDING_APPROVAL and NEEDS_ATTENTION
now and how old the oldest of each is, read from the by-status index and published as EMF metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refundflow.domain.books import update_invoice
from refundflow.domain.queues import QueueGauge, measure_queues
from refundflow.errors import RejectedError
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import World
from tests.unit.domain.test_approval import pending
from tests.unit.domain.test_failures import fail, refunded
from tests.unit.domain.test_operational_metrics import published, values  # noqa: F401 - shared fixture

S = RefundStatus
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def needs_attention(env: World) -> str:
    env.provider.add_payment(PAYMENT, eur(10_000))
    refund_id = refunded(env)
    env.books.failures = [RejectedError("invoice is voided", platform="xero")]
    with pytest.raises(RejectedError):
        update_invoice(refund_id, recorder=env.recorder, books=env.books)
    fail(env, refund_id, "RejectedError")
    assert env.repository.get(refund_id).status is S.NEEDS_ATTENTION
    return refund_id


def test_waiting_refunds_are_counted_with_the_age_of_the_oldest_per_status(env: World, published: Any) -> None:  # noqa: F811
    # GIVEN two refunds parked for approval an hour apart and one needing attention, requested later
    env.clock.set(T0)
    oldest = pending(env, reference="RMA-2001")
    env.clock.set(T0 + timedelta(hours=1))
    pending(env, reference="RMA-2002")
    env.clock.set(T0 + timedelta(hours=2))
    attention = needs_attention(env)
    published()
    # WHEN the queues are measured three hours after the first request (the clock ticks 1 ms per reading)
    now = T0 + timedelta(hours=3, milliseconds=500)
    gauges = measure_queues(store=env.repository, now=lambda: now)
    # THEN each status has its count and the age of its oldest refund since it was requested
    assert [
        env.repository.get(refund_id).created_at < T0 + timedelta(hours=n, milliseconds=500)
        for refund_id, n in (
            (oldest, 0),
            (attention, 2),
        )
    ] == [True, True]
    assert gauges == [
        QueueGauge(status=S.PENDING_APPROVAL, count=2, oldest_age_seconds=3 * 3600),
        QueueGauge(status=S.NEEDS_ATTENTION, count=1, oldest_age_seconds=3600),
    ]
    # AND both are published with the status dimension, the names the dashboard and the alarm read
    documents = published()
    assert values(documents, "RefundsWaiting", "status") == [("PENDING_APPROVAL", 2), ("NEEDS_ATTENTION", 1)]
    assert values(documents, "OldestWaitingAgeSeconds", "status") == [
        ("PENDING_APPROVAL", 3 * 3600),
        ("NEEDS_ATTENTION", 3600),
    ]


def test_a_refund_that_left_the_status_is_no_longer_counted_and_empty_queues_publish_zero(
    env: World,
    published: Any,  # noqa: F811
) -> None:
    # GIVEN a refund that waited for approval and was then approved
    env.clock.set(T0)
    refund_id = pending(env, reference="RMA-3001")
    env.approve(refund_id)
    published()
    # WHEN the queues are measured
    gauges = measure_queues(store=env.repository, now=lambda: T0 + timedelta(days=2))
    # THEN nothing waits, and zeros are published (the dashboard shows an empty queue, not missing data)
    assert [(gauge.count, gauge.oldest_age_seconds) for gauge in gauges] == [(0, 0), (0, 0)]
    assert values(published(), "OldestWaitingAgeSeconds", "status") == [("PENDING_APPROVAL", 0), ("NEEDS_ATTENTION", 0)]
