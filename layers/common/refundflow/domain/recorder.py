"""Every status change goes through here: one transaction (state + audit entry + extra items), then
its event on the bus when something consumes it (``refundflow.events.is_consumed``). Steps re-run after a crash
find their work done and publish the event again, so events are at-least-once and consumers deduplicate on
``event_id``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit

from refundflow import catalog, settings
from refundflow.events import EVENT_FOR_STATUS, RefundEvent, is_consumed
from refundflow.models import Refund, StepResult
from refundflow.observability import metrics, publish_metrics
from refundflow.ports import EventPublisher, RefundStore, StatusMove, StoreWrite
from refundflow.status import RefundStatus

# Why a refund needs a person; BOOKS_UPDATE_FAILED is retried automatically, OUTCOME_UNKNOWN is polled.
BOOKS_UPDATE_FAILED = "books_update_failed"
BOOKS_REJECTED = "books_rejected"
OUTCOME_UNKNOWN = "provider_outcome_unknown"
# The outcome is unknown and cannot be resolved without a person: the platform can neither find the refund
# by our reference nor still remember the idempotency key (a resend could refund twice).
OUTCOME_UNRESOLVED = "outcome_unknown"
# A webhook-only platform did not report the outcome within the workflow's wait (it cannot be polled).
OUTCOME_NOT_REPORTED = "outcome_not_reported"
# The money moved after the workflow stopped waiting for it (late news): the books step has not run.
BOOKS_PENDING = "books_pending"
PROVIDER_REVERSED = "provider_reversed_refund"
# A refund made outside refundflow, to be booked, for which no invoice is known: a person books it.
EXTERNAL_REFUND_UNBOOKED = "external_refund_unbooked"
AMOUNT_MISMATCH = "provider_amount_mismatch"
# The platform steps of a split-tender refund (one with tenders) run in the function ``refund-split``: its legs go
# to their own payments' platforms (refundflow.domain.split_tenders).
SPLIT: Final = "split"
APPROVER_DECISIONS = frozenset({RefundStatus.APPROVED, RefundStatus.REJECTED})


@cache
def write_back_platforms() -> frozenset[str]:
    """The platforms whose write-back rule takes every event of the refunds that came from them (tools/platforms:
    one rule per platform with the ticket role)."""
    return frozenset(entry.name for entry in catalog.ticket_platforms())


class RefundRecorder:
    def __init__(self, repository: RefundStore, publisher: EventPublisher, *, publish_all: bool | None = None) -> None:
        """``publish_all``: every status event goes on the bus (None: PUBLISH_ALL_STATUS_EVENTS decides)."""
        self.repository = repository
        self.publisher = publisher
        self._publish_all = publish_all

    @property
    def publish_all(self) -> bool:
        if self._publish_all is None:
            self._publish_all = settings.load(settings.EventSettings).publish_all_status_events
        return self._publish_all

    def move(
        self,
        refund: Refund,
        to: RefundStatus,
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        changes: dict[str, Any] | None = None,
        extra: Iterable[StoreWrite] = (),
        event_details: dict[str, Any] | None = None,
    ) -> Refund:
        """Change the status, append the audit entry, then publish the status's event (with
        ``event_details`` when the audit details are too much for the bus).

        Raises:
            IllegalTransition, ConcurrentModification, GuardUnavailable, TransientError.
        """
        change = self.repository.transition(refund, to, actor=actor, details=details, changes=changes, extra=extra)
        published = details or {} if event_details is None else event_details
        self._publish(change.refund, EVENT_FOR_STATUS[to], change.entry.seq, published)
        _status_metrics(refund, change.refund)
        return change.refund

    def move_through(self, refund: Refund, moves: Sequence[StatusMove], *, extra: Iterable[StoreWrite] = ()) -> Refund:
        """Several status changes (and notes) in one write, one audit entry each, then each status's event, in order.

        Raises:
            IllegalTransition, ConcurrentModification, GuardUnavailable, TransientError.
        """
        changes = self.repository.transition_through(refund, moves, extra=extra)
        before = refund
        for move, change in zip(moves, changes, strict=True):
            if move.note is None:
                published = move.details if move.event_details is None else move.event_details
                self._publish(change.refund, EVENT_FOR_STATUS[move.to], change.entry.seq, published)
                _status_metrics(before, change.refund)
            before = change.refund
        return changes[-1].refund

    def note(
        self,
        refund: Refund,
        entry_type: str,
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        changes: dict[str, Any] | None = None,
        extra: Iterable[StoreWrite] = (),
        event: str | None = None,
    ) -> Refund:
        """Append an audit entry without a status change; publish ``event`` if given."""
        change = self.repository.record(refund, entry_type, actor=actor, details=details, changes=changes, extra=extra)
        reason = change.refund.attention_reason
        if change.refund.status is RefundStatus.NEEDS_ATTENTION and reason and reason != refund.attention_reason:
            publish_metrics({"NeedsAttentionByReason": 1}, "reason", reason)
        if event:
            self._publish(change.refund, event, change.entry.seq, details or {})
        return change.refund

    def publish_note(self, refund: Refund, event: str, seq: int, details: dict[str, Any]) -> None:
        """Publish the event of an audit entry already written (``seq``) again, under the same ``event_id``."""
        self._publish(refund, event, seq, details)

    def announce_created(self, written: Sequence[Refund], moves: Sequence[StatusMove]) -> None:
        """The events of a refund just created (``RefundStore.create``'s ``written``: as created, then after each of
        ``moves``, made in the same write): its first status's, then each move's, as :meth:`move_through` does."""
        created, *moved = written
        self.republish(created)
        for before, after, move in zip(written[:-1], moved, moves, strict=True):
            if move.note is None:
                published = move.details if move.event_details is None else move.event_details
                self._publish(after, EVENT_FOR_STATUS[move.to], after.audit_seq, published)
                _status_metrics(before, after)

    def republish(self, refund: Refund) -> None:
        """Publish the event of the refund's latest status change again, under the same ``event_id``."""
        self._publish(refund, EVENT_FOR_STATUS[refund.status], refund.status_seq or refund.audit_seq, {})

    def replay(self, refund: Refund, outcome: str | None = None) -> StepResult:
        """A step found its work already done (a retry after a crash or a failed publish): its status
        event may never have reached the bus, so it goes out again (consumers deduplicate on
        ``event_id``), and the step reports where the refund stands."""
        self.republish(refund)
        return step_result(refund, outcome)

    def _publish(self, refund: Refund, detail_type: str, seq: int, details: dict[str, Any]) -> None:
        consumed = is_consumed(
            detail_type,
            refund.source_platform,
            write_back_platforms=write_back_platforms(),
            publish_all=self.publish_all,
        )
        if consumed:
            self.publisher.publish([RefundEvent.for_refund(refund, detail_type, seq=seq, details=details)])
        # One CloudWatch metric per event type (RefundCompleted, RefundNeedsAttention, ...), published or not: what
        # ops alarm on.
        if not settings.load(settings.MetricsSettings).metrics_disabled:
            metrics.add_metric(name=detail_type, unit=MetricUnit.Count, value=1)


def _status_metrics(before: Refund, after: Refund) -> None:
    """Per status change (not per replay): the status reached, why a refund needs attention, and how old a
    refund was when an approver decided."""
    publish_metrics({"RefundsByStatus": 1}, "status", after.status.value)
    if after.status is RefundStatus.NEEDS_ATTENTION and after.attention_reason:
        publish_metrics({"NeedsAttentionByReason": 1}, "reason", after.attention_reason)
    if before.status is RefundStatus.PENDING_APPROVAL and after.status in APPROVER_DECISIONS:
        age = max((after.updated_at - after.created_at).total_seconds(), 0.0)
        publish_metrics({"ApprovalAgeSeconds": age}, "decision", after.status.value)


def outcome_of(refund: Refund) -> str:
    """The word the state machine routes on, derived from the refund's status."""
    status = refund.status
    if status is RefundStatus.NEEDS_ATTENTION:
        if refund.attention_reason == BOOKS_UPDATE_FAILED:
            return "BOOKS_RETRY"
        if refund.attention_reason == OUTCOME_UNKNOWN:
            return "REFUND_PENDING"
        return "NEEDS_ATTENTION"
    return {
        RefundStatus.PENDING_APPROVAL: "APPROVAL_REQUIRED",
        RefundStatus.AWAITING_RETURN: "RETURN_REQUIRED",
        RefundStatus.SETTLED: "COMPLETED",
    }.get(status, status.value)


def step_result(refund: Refund, outcome: str | None = None) -> StepResult:
    return StepResult(
        refund_id=refund.refund_id,
        status=refund.status,
        outcome=outcome or outcome_of(refund),
        provider=SPLIT if refund.tenders else refund.payment.provider,
        books=refund.invoice.system if refund.invoice else None,
        parent_refund_id=refund.parent_refund_id,
    )
