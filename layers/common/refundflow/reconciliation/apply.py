"""Applying the engine's findings to our refunds, exactly once per settlement line.

- ``matched``: the refund moves ``COMPLETED -> SETTLED`` (audit entry, ``RefundSettled``) in one transaction
  with two first-seen markers: the line's and the refund's "settled by" marker. A re-run of the same file
  finds the markers and changes nothing (so does the same provider line id delivered again in another
  report); another line settling the same refund, or a line id repeated within one file, is a
  ``duplicate_line``.
- any other class of one of our refunds: an audit entry ``ReconciliationMismatch`` on the refund's
  timeline, written with the line's marker, and the ``ReconciliationMismatch`` event (ops' rule routes it);
  a ``late_failure`` also moves a completed or settled refund to ``NEEDS_ATTENTION``.
- a class that belongs to no refund of ours (a refund made outside refundflow, a fee-only line, a payout):
  a ``ReconciliationMismatch`` event with a stable ``event_id``, then the line's marker.
- a line that is no refund's (a charge): only its marker, so that its repeat in another batch is a duplicate.
- ``missing_in_settlement``: once per refund, and never for a refund an earlier file named (every line that
  names one of our refunds also writes its "seen" marker).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from refundflow.domain.recorder import PROVIDER_REVERSED, RefundRecorder
from refundflow.errors import ConcurrentModification, RefundflowError
from refundflow.events import RECONCILIATION_MISMATCH, ReconciliationEvent
from refundflow.models import Refund
from refundflow.money import Money
from refundflow.ports import EventPublisher, PayoutMember, ReconciliationMarker, RefundStore, StoreWrite
from refundflow.reconciliation.engine import ExpectedRefund, Finding, MatchClass
from refundflow.status import RefundStatus

ACTOR = "reconciliation"
_ATTEMPTS = 3


class MarkerExists(RefundflowError):
    """The line (or the refund's settlement) was recorded before: a re-run."""

    code = "reconciliation_marker_exists"


class Outcome(StrEnum):
    SETTLED = "settled"
    RECORDED = "recorded"
    ALREADY_DONE = "already_done"
    NOTHING_TO_DO = "nothing_to_do"


@dataclass(frozen=True)
class Run:
    """The file being reconciled: its name (an S3 key) identifies it in markers and events; ``source`` is
    the provider whose settlement it is (``stripe``...)."""

    file: str
    correlation_id: str
    source: str = ""


@dataclass(frozen=True)
class Applied:
    finding: Finding
    outcome: Outcome


def expected_refunds(repository: RefundStore, references: Iterable[str]) -> dict[str, ExpectedRefund]:
    """Our refunds for the settlement lines' references, as the engine needs them."""
    found = repository.refunds_by_provider_refund_id(references)
    return {
        reference: ExpectedRefund(
            refund_id=entry.refund_id,
            provider_refund_id=reference,
            amount=entry.amount.minor_units if entry.amount else 0,
            currency=entry.amount.currency if entry.amount else "",
            status=entry.status.value,
        )
        for reference, entry in found.items()
    }


def _marker_key(finding: Finding, run: Run) -> str:
    # Line keys are the provider's line ids; a missing refund or a payout total is per file; a duplicate
    # line gets a marker of its own occurrence, so a re-run finds it and the original's marker stays.
    if finding.match_class is MatchClass.MISSING_IN_SETTLEMENT:
        return f"{finding.key}#missing"  # once per refund, whichever file first finds it missing
    if finding.match_class is MatchClass.PAYOUT_NOT_FOUND:
        return f"{finding.key}#not_found"  # once per payout, whichever statement first misses it
    key = finding.key if finding.line_no is not None and "#" in finding.key else f"{run.file}#{finding.key}"
    if finding.match_class is MatchClass.DUPLICATE_LINE:
        return f"{key}#dup#{run.file}#{finding.line_no}"
    return key


def _same_occurrence(marker: ReconciliationMarker | None, finding: Finding, run: Run) -> bool:
    """Whether ``marker`` recorded this very line: the same line of the same file (a re-run), or the same
    provider line id delivered again in another file (reports overlap: a re-delivery, not a second line).
    Only a line id repeated within one file is a duplicate line."""
    return marker is not None and (marker.file != run.file or marker.line_no == finding.line_no)


def _as_duplicate(finding: Finding, first: ReconciliationMarker) -> Finding:
    where = f"{first.file} line {first.line_no}"
    return finding._replace(match_class=MatchClass.DUPLICATE_LINE, difference=0, detail=f"first seen in {where}")


def _details(finding: Finding, run: Run) -> dict[str, Any]:
    return {
        "match_class": finding.match_class.value,
        "line": finding.key,
        "line_no": finding.line_no,
        "file": run.file,
        "reference": finding.reference,
        "settled_amount": {"minor_units": finding.amount, "currency": finding.currency} if finding.currency else None,
        "difference_minor_units": finding.difference,
        "detail": finding.detail,
        "payout_id": finding.payout_id,
    }


# A line of these classes is the refund's money in its payout (a duplicate repeats a line, a missing refund has none).
_IN_PAYOUT = frozenset(
    {MatchClass.MATCHED, MatchClass.AMOUNT_DIFFERS, MatchClass.CURRENCY_DIFFERS, MatchClass.LATE_FAILURE}
)


def _payout_member(finding: Finding, run: Run, repository: RefundStore) -> list[StoreWrite]:
    """The payout -> refund item to write with the line's record (none when the line names no payout)."""
    if finding.payout_id is None or finding.refund_id is None or finding.match_class not in _IN_PAYOUT:
        return []
    member = PayoutMember(
        payout_id=finding.payout_id,
        refund_id=finding.refund_id,
        line_key=_marker_key(finding, run),
        file=run.file,
        line_no=finding.line_no,
        match_class=finding.match_class.value,
        amount=finding.amount,
        currency=finding.currency,
    )
    return [repository.payout_member(member)]


def _marker(finding: Finding, run: Run, key: str | None = None) -> ReconciliationMarker:
    return ReconciliationMarker(
        key=key or _marker_key(finding, run),
        file=run.file,
        line_no=finding.line_no,
        match_class=finding.match_class.value,
        refund_id=finding.refund_id,
        line_key=_marker_key(finding, run),
    )


def apply_finding(
    finding: Finding, run: Run, *, repository: RefundStore, recorder: RefundRecorder, publisher: EventPublisher
) -> Applied:
    """Record one finding (see the module docstring). Safe to call again with the same finding.

    Raises:
        ConcurrentModification: the refund kept changing under us (the batch is retried).
        GuardUnavailable, TransientError: the store or the bus could not be reached.
    """
    if finding.match_class is MatchClass.NOT_RECONCILED or (
        finding.match_class is MatchClass.MATCHED and finding.refund_id is None
    ):
        # Nothing to record (a charge, a bank credit that matches its payout), but the line's marker still
        # tells a repeat of it in another batch of the file.
        marker = _marker(finding, run)
        if repository.put_reconciliation_marker(marker):
            return Applied(finding, Outcome.NOTHING_TO_DO)
        first = repository.get_reconciliation_marker(marker.key)
        if first is None or _same_occurrence(first, finding, run):
            return Applied(finding, Outcome.NOTHING_TO_DO)
        return _publish_unowned(_as_duplicate(finding, first), run, repository=repository, publisher=publisher)
    if finding.refund_id is None:
        return _publish_unowned(finding, run, repository=repository, publisher=publisher)
    for attempt in range(_ATTEMPTS):
        refund = repository.get(finding.refund_id)
        try:
            if finding.match_class is MatchClass.MATCHED:
                return _settle(finding, refund, run, repository=repository, recorder=recorder, publisher=publisher)
            return _note_mismatch(finding, refund, run, repository=repository, recorder=recorder)
        except ConcurrentModification:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _settle(
    finding: Finding,
    refund: Refund,
    run: Run,
    *,
    repository: RefundStore,
    recorder: RefundRecorder,
    publisher: EventPublisher,
) -> Applied:
    settled_key = f"SETTLED#{refund.refund_id}"
    if refund.status is RefundStatus.COMPLETED:
        exists = lambda: MarkerExists("already settled")  # noqa: E731
        try:
            recorder.move(
                refund,
                RefundStatus.SETTLED,
                actor=ACTOR,
                details=_details(finding, run),
                extra=[
                    repository.reconciliation_marker(_marker(finding, run), exists),
                    repository.reconciliation_marker(_marker(finding, run, settled_key), exists),
                    *_payout_member(finding, run, repository),
                ],
            )
            return Applied(finding, Outcome.SETTLED)
        except MarkerExists:
            pass
    settled_by = repository.get_reconciliation_marker(settled_key)
    if settled_by is not None:
        if _same_occurrence(settled_by, finding, run) and settled_by.line_key == _marker_key(finding, run):
            return Applied(finding, Outcome.ALREADY_DONE)
        duplicate = _as_duplicate(finding, settled_by)
        return _note_mismatch(duplicate, refund, run, repository=repository, recorder=recorder)
    # Matched while the refund is not COMPLETED yet (books pending, needs attention): record that the
    # money settled, without a status change; the refund settles when a later file matches it again.
    try:
        recorder.note(
            refund,
            "SettlementLineMatched",
            actor=ACTOR,
            details=_details(finding, run),
            extra=[
                repository.reconciliation_marker(_marker(finding, run), lambda: MarkerExists("seen")),
                repository.seen_in_settlement(refund.refund_id),
                *_payout_member(finding, run, repository),
            ],
        )
    except MarkerExists:
        first = repository.get_reconciliation_marker(_marker_key(finding, run))
        if first is None or _same_occurrence(first, finding, run):
            return Applied(finding, Outcome.ALREADY_DONE)
        return _note_mismatch(_as_duplicate(finding, first), refund, run, repository=repository, recorder=recorder)
    return Applied(finding, Outcome.RECORDED)


def _note_mismatch(
    finding: Finding, refund: Refund, run: Run, *, repository: RefundStore, recorder: RefundRecorder
) -> Applied:
    outcome = Outcome.RECORDED
    writes = [repository.reconciliation_marker(_marker(finding, run), lambda: MarkerExists("seen"))]
    if finding.match_class is MatchClass.MISSING_IN_SETTLEMENT:
        if repository.was_seen_in_settlement(refund.refund_id):
            # An earlier file named it (with a difference already on its timeline): not missing.
            return Applied(finding, Outcome.NOTHING_TO_DO)
    else:
        writes.append(repository.seen_in_settlement(refund.refund_id))
        writes.extend(_payout_member(finding, run, repository))
    try:
        refund = recorder.note(
            refund,
            RECONCILIATION_MISMATCH,
            actor=ACTOR,
            details=_details(finding, run),
            extra=writes,
            event=RECONCILIATION_MISMATCH,
        )
    except MarkerExists:
        first = repository.get_reconciliation_marker(_marker_key(finding, run))
        if first is not None and not _same_occurrence(first, finding, run):
            return _note_mismatch(_as_duplicate(finding, first), refund, run, repository=repository, recorder=recorder)
        outcome = Outcome.ALREADY_DONE
        refund = repository.get(refund.refund_id)
    if finding.match_class is MatchClass.LATE_FAILURE and refund.status in (
        RefundStatus.COMPLETED,
        RefundStatus.SETTLED,
    ):
        # The money came back to us: the customer has not been refunded after all.
        recorder.move(
            refund,
            RefundStatus.NEEDS_ATTENTION,
            actor=ACTOR,
            details=_details(finding, run),
            changes={"attention_reason": PROVIDER_REVERSED},
        )
        outcome = Outcome.RECORDED
    return Applied(finding, outcome)


def _publish_unowned(finding: Finding, run: Run, *, repository: RefundStore, publisher: EventPublisher) -> Applied:
    marker = _marker(finding, run)
    first = repository.get_reconciliation_marker(marker.key)
    if first is not None:
        if _same_occurrence(first, finding, run):
            return Applied(finding, Outcome.ALREADY_DONE)
        return _publish_unowned(_as_duplicate(finding, first), run, repository=repository, publisher=publisher)
    # Event first, marker second: a crash in between publishes again under the same event_id.
    publisher.publish(
        [
            ReconciliationEvent(
                event_id=f"recon#{marker.key}",
                match_class=finding.match_class.value,
                reference=finding.reference,
                amount=Money.of(finding.amount, finding.currency) if finding.currency else None,
                file=run.file,
                line_no=finding.line_no,
                difference_minor_units=finding.difference,
                correlation_id=run.correlation_id,
                occurred_at=datetime.now(UTC),
                details={"detail": finding.detail, "line": finding.key},
            )
        ]
    )
    repository.put_reconciliation_marker(marker)
    return Applied(finding, Outcome.RECORDED)
