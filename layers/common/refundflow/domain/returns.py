"""The return's lifecycle: a returns system reports each step of a return (label created, in transit, received,
inspected with an outcome per line, closed) on ``POST /triggers/return-updates`` for the refund request it sent.

Each step is its own item, put only if absent and keyed by its status and ``occurred_at``, in the refund's
``RETURN#`` partition, in the same transaction as its ``ReturnUpdated`` audit entry. So:

- a redelivered step is a duplicate: nothing is written twice, the answer says ``duplicate: true``;
- steps may arrive in any order: the return's status is its highest-ranked step's, so a late ``in_transit``
  after ``received`` is kept in the history but never winds the status back;
- a step that arrives before the refund request (the returns system is faster than the shop) is stored under
  the refund id the request will have, and the refund finds it when it is created (its audit trail then gets
  the ``ReturnUpdated`` entries, marked ``before_request``).

The request's own ``return`` is the lifecycle's first step (source: the request's source).

A platform that keeps returns itself (SAP's customer return) reports them as news on its webhook: its books function
reads the return and records the step it reached (``apply_return_news``, ``record_platform_return_step``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from refundflow.domain.intake import GENERIC_SOURCE, RETURN_UPDATED, return_step_details, source_refund_id
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.waiting import REDECIDED_ON_RETURN, resume_waiting
from refundflow.errors import ConcurrentModification, Forbidden, IdempotencyConflict, ReturnStepExists
from refundflow.ids import is_refund_id
from refundflow.models import (
    AuditEntry,
    Refund,
    ReturnLifecycle,
    ReturnStatus,
    ReturnStep,
    ReturnUpdateBody,
    return_lifecycle,
)
from refundflow.observability import logger
from refundflow.ports import (
    RefundStore,
    RequestedRefund,
    ReturnNews,
    ReturnsReader,
    StoreWrite,
    TaskCallbacks,
    VerifiedSource,
)

# A refund the workflow moves at the same moment: read it again and append the entry again, a few times, after a
# short random pause that grows (the workflow's steps write a few times a second at most).
_WRITE_ATTEMPTS = 8
_BACKOFF_SECONDS = 0.02


@dataclass(frozen=True)
class ReturnUpdateAccepted:
    refund_id: str
    lifecycle: ReturnLifecycle
    duplicate: bool
    refund: Refund | None = None


def accept_return_update(
    body: ReturnUpdateBody,
    *,
    source: VerifiedSource,
    delivery_id: str,
    recorder: RefundRecorder,
    callbacks: TaskCallbacks | None = None,
) -> ReturnUpdateAccepted:
    """Record a step of a return, once, whatever the order and the redeliveries; a refund waiting for its return
    (AWAITING_RETURN) has its workflow resumed to decide it again (also on a redelivery, when the first try could
    not resume it: the wait knows which steps it has seen).

    Raises:
        Forbidden: ``source.system`` is not the source whose secret signed the delivery (source_mismatch).
        IdempotencyConflict: a step with this status and occurred_at was reported before with other content.
        GuardUnavailable, TransientError: the store could not be reached (nothing was written), or the waiting
            workflow could not be told (the step is recorded; the sender's retry resumes it).
    """
    if body.source.system != source.name:
        raise Forbidden(
            f"source.system {body.source.system!r} is not the source whose secret signed this delivery",
            code="source_mismatch",
        )
    refund_id = source_refund_id(GENERIC_SOURCE, body.source.system, body.source.reference)
    step = ReturnStep(
        status=body.status,
        occurred_at=body.occurred_at,
        recorded_at=datetime.now(UTC),
        source=source.name,
        tracking_reference=body.tracking_reference,
        lines=body.lines,
    )
    return _record_step(refund_id, step, delivery_id=delivery_id, recorder=recorder, callbacks=callbacks)


def record_platform_return_step(
    refund_id: str,
    status: ReturnStatus,
    occurred_at: datetime,
    *,
    source: str,
    delivery_id: str,
    recorder: RefundRecorder,
    callbacks: TaskCallbacks | None = None,
) -> ReturnUpdateAccepted:
    """Record a step of a return that a platform keeps (SAP's customer return, read by its books function), for the
    refund the return names: the same store, duplicates, ordering and wait resumption as
    ``POST /triggers/return-updates`` (the step's source is the platform, its actor ``returns:<platform>``).

    Raises:
        IdempotencyConflict: this status and occurred_at were recorded before with other content.
        GuardUnavailable, TransientError: the store or the waiting workflow could not be reached.
    """
    step = ReturnStep(status=status, occurred_at=occurred_at, recorded_at=datetime.now(UTC), source=source)
    return _record_step(refund_id, step, delivery_id=delivery_id, recorder=recorder, callbacks=callbacks)


def apply_return_news(
    news: ReturnNews, *, reader: ReturnsReader, recorder: RefundRecorder, callbacks: TaskCallbacks
) -> ReturnUpdateAccepted | None:
    """Returns news in the platform's own function: read the return from the platform (the news is not believed),
    and when it names one of our refunds and has reached a step of the lifecycle, record that step. None: nothing
    to record (the return names no refund id of ours, or it has reached no step yet).

    Raises:
        NotFound: the platform does not know the return the news names.
        TransientError: the platform, the store or the workflow could not be reached (redelivered).
    """
    found = reader.read_return(news.return_id)
    if found.refund_id is None or not is_refund_id(found.refund_id) or found.status is None:
        logger.info(
            "return news with nothing to record",
            extra={"return_id": news.return_id, "names_refund": found.refund_id is not None, "status": found.status},
        )
        return None
    return record_platform_return_step(
        found.refund_id,
        found.status,
        found.occurred_at,
        source=news.platform,
        delivery_id=news.event_id,
        recorder=recorder,
        callbacks=callbacks,
    )


def _record_step(
    refund_id: str,
    step: ReturnStep,
    *,
    delivery_id: str,
    recorder: RefundRecorder,
    callbacks: TaskCallbacks | None,
) -> ReturnUpdateAccepted:
    repository = recorder.repository
    actor = f"returns:{step.source}"
    details = return_step_details(step, delivery_id=delivery_id)
    found = repository.find_refund_or_request(refund_id)
    refund = found if isinstance(found, Refund) else None
    # The request intake may have stored the request already, its workflow not yet made the refund.
    after_request = isinstance(found, RequestedRefund)
    duplicate = False
    if refund is None:
        # Before the refund: kept under the refund id the request has (or will have); its creation records it.
        duplicate = not repository.put_return_step(refund_id, step)
        refund = repository.find(refund_id)
        if refund is not None and not duplicate and not _in_trail(repository, refund_id, step):
            # Created meanwhile, after its creation looked for early steps (else the creation recorded it, or is
            # recording it now: the step's mark lets one of the two write its entry).
            try:
                refund = _note(
                    recorder,
                    refund,
                    actor,
                    details if after_request else {**details, "before_request": True},
                    extra=[repository.return_step_noted(refund_id, step)],
                )
            except ReturnStepExists:
                refund = repository.get(refund_id)
    else:
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                refund = recorder.note(
                    refund,
                    RETURN_UPDATED,
                    actor=actor,
                    details=details,
                    changes={"return_seq": refund.audit_seq + 1},
                    extra=[repository.return_step_put(refund_id, step)],
                    event=RETURN_UPDATED,
                )
                break
            except ReturnStepExists:
                duplicate = True
                break
            except ConcurrentModification:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
                _pause(attempt)
                refund = repository.get(refund_id)
    steps = repository.return_steps(refund_id)
    if duplicate:
        _check_same_report(step, steps)
        if refund is not None:
            _publish_again(recorder, refund, step)
    if refund is not None and refund.status in REDECIDED_ON_RETURN and callbacks is not None:
        # Waiting for its return, or for a person: the policy decides it again on this step.
        resume_waiting(refund, REDECIDED_ON_RETURN[refund.status], repository=repository, callbacks=callbacks)
    lifecycle = return_lifecycle(refund, steps)
    assert lifecycle is not None  # at least this step is stored
    return ReturnUpdateAccepted(refund_id=refund_id, lifecycle=lifecycle, duplicate=duplicate, refund=refund)


def _note(
    recorder: RefundRecorder, refund: Refund, actor: str, details: dict[str, Any], extra: Iterable[StoreWrite] = ()
) -> Refund:
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            return recorder.note(
                refund,
                RETURN_UPDATED,
                actor=actor,
                details=details,
                changes={"return_seq": refund.audit_seq + 1},
                extra=extra,
                event=RETURN_UPDATED,
            )
        except ConcurrentModification:
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
            _pause(attempt)
            refund = recorder.repository.get(refund.refund_id)
    return refund


def _in_trail(repository: RefundStore, refund_id: str, step: ReturnStep) -> bool:
    """Whether the refund's audit trail already records ``step`` (a rare race with intake: read the trail)."""
    return _trail_entry(repository, refund_id, step) is not None


def _trail_entry(repository: RefundStore, refund_id: str, step: ReturnStep) -> AuditEntry | None:
    status, occurred = step.key
    return next(
        (
            entry
            for entry in repository.timeline(refund_id)
            if entry.type == RETURN_UPDATED
            and entry.details.get("status") == status.value
            and datetime.fromisoformat(str(entry.details.get("occurred_at"))).astimezone(UTC) == occurred
        ),
        None,
    )


def _publish_again(recorder: RefundRecorder, refund: Refund, step: ReturnStep) -> None:
    """A redelivered step: its ``ReturnUpdated`` event goes out again under the same ``event_id`` (the first
    delivery may have been recorded and then lost its publish; consumers deduplicate)."""
    entry = _trail_entry(recorder.repository, refund.refund_id, step)
    if entry is not None:
        recorder.publish_note(refund, RETURN_UPDATED, entry.seq, entry.details)


def _pause(attempt: int) -> None:
    time.sleep(random.uniform(0, _BACKOFF_SECONDS * 2**attempt))


def _check_same_report(step: ReturnStep, steps: list[ReturnStep]) -> None:
    stored = next((kept for kept in steps if kept.key == step.key), None)
    if stored is not None and not stored.same_report(step):
        raise IdempotencyConflict(
            f"the return step {step.status.value} at {step.occurred_at.isoformat()} was reported before "
            "with other content"
        )
