"""The gauges of what waits for a person: refunds in PENDING_APPROVAL and NEEDS_ATTENTION, how many and how old
the oldest is, published every few minutes (the scheduled MeasureQueues function) for the ops dashboard and the
alarm on approvals older than the escalation window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from refundflow.observability import logger, publish_metrics
from refundflow.ports import RefundStore
from refundflow.status import RefundStatus

WAITING_FOR_A_PERSON = (RefundStatus.PENDING_APPROVAL, RefundStatus.NEEDS_ATTENTION)


@dataclass(frozen=True)
class QueueGauge:
    status: RefundStatus
    count: int
    oldest_age_seconds: int  # 0 when none waits


def measure_queues(*, store: RefundStore, now: Callable[[], datetime]) -> list[QueueGauge]:
    """Count the refunds in each status of WAITING_FOR_A_PERSON, measure the age of the oldest (since it was
    requested, like ApprovalAgeSeconds) and publish both as RefundsWaiting and OldestWaitingAgeSeconds."""
    gauges = []
    for status in WAITING_FOR_A_PERSON:
        queue = store.status_queue(status)
        oldest = queue.oldest_created_at
        age = max(0, int((now() - oldest).total_seconds())) if oldest is not None else 0
        gauge = QueueGauge(status=status, count=queue.count, oldest_age_seconds=age)
        publish_metrics({"RefundsWaiting": gauge.count, "OldestWaitingAgeSeconds": age}, "status", status.value)
        gauges.append(gauge)
    logger.info("queues measured", extra={"queues": {g.status.value: [g.count, g.oldest_age_seconds] for g in gauges}})
    return gauges
