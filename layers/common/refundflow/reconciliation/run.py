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
    """Matches and applies batches of one file's lines, in order, keeping the engine's state between them."""

    run: Run
    repository: RefundStore
    recorder: RefundRecorder
    publisher: EventPublisher
    matcher: SettlementMatcher = field(init=False)
    summary: Summary = field(default_factory=Summary)
    _known: dict[str, ExpectedRefund] = field(default_factory=dict)
    last_booked: datetime | None = None

    def __post_init__(self) -> None:
        self.matcher = SettlementMatcher(self._known)

    def _apply(self, finding: Finding) -> Applied:
        applied = apply_finding(
            finding, self.run, repository=self.repository, recorder=self.recorder, publisher=self.publisher
        )
        self.summary.add(applied)
        return applied

    def match_batch(self, batch: list[SettlementLine]) -> list[Applied]:
        references = [line.reference for line in batch if line.kind in (LineKind.REFUND, LineKind.REFUND_FAILURE)]
        self._known.update(expected_refunds(self.repository, (ref for ref in references if ref not in self._known)))
        applied = []
        for line in batch:
            self.summary.lines += 1
            if line.booked_on is not None:
                booked = datetime(line.booked_on.year, line.booked_on.month, line.booked_on.day, tzinfo=UTC)
                self.last_booked = max(self.last_booked or booked, booked)
            applied.append(self._apply(self.matcher.match(line)))
        return applied

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
    reconciler = Reconciler(run, repository, recorder, publisher)
    for batch in _batches(lines, batch_size):
        results = reconciler.match_batch(batch)
        if on_batch:
            on_batch(results)
    tail = reconciler.finish(expected)
    if on_batch and tail:
        on_batch(tail)
    return reconciler
