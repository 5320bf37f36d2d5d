"""One reconciliation run over a stream of settlement lines: batches of lines are looked up, matched and
applied, and a summary counts every class with its amounts per currency. The CLI runs it over a whole
file; on AWS each Distributed Map batch runs :func:`match_batch` and the summary step the ``finish`` part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from refundflow.domain.recorder import RefundRecorder
from refundflow.models import Refund
from refundflow.ports import EventPublisher, RefundStore
from refundflow.reconciliation.apply import Applied, Run, apply_finding, expected_refunds
from refundflow.reconciliation.engine import ExpectedRefund, Finding, SettlementMatcher
from refundflow.reconciliation.records import LineKind, SettlementLine
from refundflow.status import RefundStatus

# How long after completion a refund may take to appear in a provider's settlement before it counts as missing.
SETTLEMENT_GRACE = timedelta(days=3)


@dataclass
class Summary:
    """Counts and amounts (minor units per currency) of each class."""

    lines: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    amounts: dict[str, Counter[str]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, applied: Applied) -> None:
        finding = applied.finding
        name = finding.match_class.value
        self.counts[name] += 1
        if finding.currency:
            self.amounts.setdefault(name, Counter())[finding.currency] += finding.amount
        self.outcomes[applied.outcome.value] += 1

    def merge(self, other: dict[str, Any]) -> None:
        """Add another summary's :meth:`as_dict` (a batch's) to this one."""
        self.lines += int(other.get("lines", 0))
        self.counts.update({name: int(count) for name, count in other.get("counts", {}).items()})
        for name, per in other.get("amounts_minor_units", {}).items():
            self.amounts.setdefault(name, Counter()).update({cur: int(amount) for cur, amount in per.items()})
        self.outcomes.update({name: int(count) for name, count in other.get("outcomes", {}).items()})

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "counts": dict(sorted(self.counts.items())),
            "amounts_minor_units": {name: dict(sorted(per.items())) for name, per in sorted(self.amounts.items())},
            "outcomes": dict(sorted(self.outcomes.items())),
        }


def _batches(lines: Iterable[SettlementLine], size: int) -> Iterator[list[SettlementLine]]:
    iterator = iter(lines)
    while batch := list(islice(iterator, size)):
        yield batch


def expected_in_settlement(repository: RefundStore, source: str, *, until: datetime) -> list[ExpectedRefund]:
    """Our completed refunds with ``source``'s provider that should have settled by ``until``."""

    def wanted(refund: Refund) -> bool:
        return refund.payment.provider.value == source and refund.provider_refund_id is not None

    return [
        ExpectedRefund(
            refund_id=refund.refund_id,
            provider_refund_id=refund.provider_refund_id or "",
            amount=refund.amount.minor_units if refund.amount else 0,
            currency=refund.amount.currency if refund.amount else "",
            status=refund.status.value,
        )
        for refund in repository.refunds_in_status(RefundStatus.COMPLETED, updated_before=until - SETTLEMENT_GRACE)
        if wanted(refund)
    ]


@dataclass
class Reconciler:
    """Matches and applies batches of one file's lines, in order, keeping the engine's state between them.

    Lines are classified by the columnar engine (:mod:`refundflow.reconciliation.columnar`, imported on the
    first batch: the summary step, which only finishes, does without polars); ``matcher`` is its state."""

    run: Run
    repository: RefundStore
    recorder: RefundRecorder
    publisher: EventPublisher
    matcher: SettlementMatcher = field(default_factory=lambda: SettlementMatcher({}))
    summary: Summary = field(default_factory=Summary)
    last_booked: datetime | None = None
    _columnar: Any = None

    def _apply(self, finding: Finding) -> Applied:
        applied = apply_finding(
            finding, self.run, repository=self.repository, recorder=self.recorder, publisher=self.publisher
        )
        self.summary.add(applied)
        return applied

    def match_batch(self, batch: list[SettlementLine]) -> list[Applied]:
        from refundflow.reconciliation.columnar import lines_frame

        return self.match_frame(lines_frame(batch))

    def match_frame(self, frame: Any) -> list[Applied]:
        """Classify and apply one frame of lines (``columnar.LINES_SCHEMA``): our refunds for its refund lines
        are read in one batched look-up, then every line's finding is applied in the frame's order."""
        import polars as pl

        from refundflow.reconciliation.columnar import ColumnarMatcher, RefundIndex, refunds_frame

        if self._columnar is None:
            self._columnar = ColumnarMatcher(self.matcher)
        kinds = [LineKind.REFUND.value, LineKind.REFUND_FAILURE.value]
        references = frame.filter(pl.col("kind").is_in(kinds))["reference"].unique(maintain_order=True).to_list()
        index = RefundIndex(refunds_frame(expected_refunds(self.repository, references).values()))
        classified = self._columnar.classify(frame, index)
        self.summary.lines += frame.height
        last = frame["booked_on"].max()
        if last is not None:
            booked = datetime(last.year, last.month, last.day, tzinfo=UTC)
            self.last_booked = max(self.last_booked or booked, booked)
        return [self._apply(finding) for finding in ColumnarMatcher.findings(classified)]

    def finish(self, expected: Iterable[ExpectedRefund] | None = None) -> list[Applied]:
        """Missing refunds (``expected``, by default our completed refunds of this provider older than the
        file's last booking date less the grace period) and payouts that do not add up."""
        if expected is None:
            source = self.run.source
            expected = (
                expected_in_settlement(self.repository, source, until=self.last_booked + timedelta(days=1))
                if self.last_booked and source
                else []
            )
        return [self._apply(finding) for finding in self.matcher.finish(expected)]


def reconcile(
    lines: Iterable[SettlementLine],
    run: Run,
    *,
    repository: RefundStore,
    recorder: RefundRecorder,
    publisher: EventPublisher,
    batch_size: int = 100,
    on_batch: Callable[[list[Applied]], None] | None = None,
    expected: Iterable[ExpectedRefund] | None = None,
) -> Reconciler:
    """Reconcile a whole stream of lines; ``on_batch`` sees each batch's results (progress, report)."""
    from refundflow.reconciliation.columnar import lines_frame

    frames = (lines_frame(batch) for batch in _batches(lines, batch_size))
    return reconcile_frames(
        frames,
        run,
        repository=repository,
        recorder=recorder,
        publisher=publisher,
        batch_size=batch_size,
        on_batch=on_batch,
        expected=expected,
    )


def reconcile_frames(
    frames: Iterable[Any],
    run: Run,
    *,
    repository: RefundStore,
    recorder: RefundRecorder,
    publisher: EventPublisher,
    batch_size: int = 100,
    on_batch: Callable[[list[Applied]], None] | None = None,
    expected: Iterable[ExpectedRefund] | None = None,
) -> Reconciler:
    """Reconcile frames of lines (``columnar.read_frames``), ``batch_size`` lines at a time."""
    reconciler = Reconciler(run, repository, recorder, publisher)
    for frame in frames:
        for offset in range(0, frame.height, batch_size):
            results = reconciler.match_frame(frame.slice(offset, batch_size))
            if on_batch:
                on_batch(results)
    tail = reconciler.finish(expected)
    if on_batch and tail:
        on_batch(tail)
    return reconciler
