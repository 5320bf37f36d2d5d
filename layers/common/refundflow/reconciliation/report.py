"""The reconciliation report for finance and ops: a CSV with every line and its class (written as the
lines are matched, so it never holds the file in memory) and a readable summary with counts, amounts per
currency and a bar chart of the classes."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

from refundflow.money import Money
from refundflow.reconciliation.apply import Applied
from refundflow.reconciliation.engine import MISMATCHES, MatchClass

COLUMNS = (
    "line",
    "line_no",
    "class",
    "mismatch",
    "reference",
    "refund_id",
    "amount",
    "currency",
    "difference_minor_units",
    "outcome",
    "detail",
)


# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): the report's text comes from the
# settlement and bank files, which finance opens in a spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(text: str) -> str:
    """``text`` as a spreadsheet shows it, never as a formula: a leading apostrophe when it would start one."""
    return "'" + text if text.startswith(_FORMULA_START) else text


class CsvReport:
    """Every line with its class. Text from the files (line ids, references, details) never starts a formula;
    amounts and numbers are ours."""

    def __init__(self, stream: TextIO) -> None:
        self._writer = csv.writer(stream)
        self._writer.writerow(COLUMNS)

    def write(self, results: Iterable[Applied]) -> None:
        for applied in results:
            finding = applied.finding
            amount = Money.of(finding.amount, finding.currency).to_decimal_string() if finding.currency else ""
            self._writer.writerow(
                (
                    _text_cell(finding.key),
                    finding.line_no if finding.line_no is not None else "",
                    finding.match_class.value,
                    "yes" if finding.is_mismatch else "no",
                    _text_cell(finding.reference),
                    finding.refund_id or "",
                    amount,
                    finding.currency,
                    finding.difference,
                    applied.outcome.value,
                    _text_cell(finding.detail),
                )
            )


def _amounts(per_currency: dict[str, int]) -> str:
    return ", ".join(str(Money.of(minor, currency)) for currency, minor in sorted(per_currency.items()))


def summary_text(summary: dict[str, Any], *, title: str, width: int = 40) -> str:
    """Counts and amounts per class, mismatches first, with a bar per class scaled to the largest."""
    counts: dict[str, int] = summary.get("counts", {})
    amounts: dict[str, dict[str, int]] = summary.get("amounts_minor_units", {})
    order = [cls.value for cls in MatchClass]
    names = sorted(counts, key=lambda name: (MatchClass(name) not in MISMATCHES, order.index(name)))
    largest = max(counts.values(), default=0) or 1
    mismatches = sum(count for name, count in counts.items() if MatchClass(name) in MISMATCHES)
    lines = [
        title,
        f"lines read: {summary.get('lines', 0)}   mismatches: {mismatches}   matched: {counts.get('matched', 0)}",
        "",
        f"{'class':<26} {'count':>9}  {'amount':<30} chart",
    ]
    for name in names:
        bar = "#" * max(1, round(width * counts[name] / largest)) if counts[name] else ""
        lines.append(f"{name:<26} {counts[name]:>9}  {_amounts(amounts.get(name, {})):<30} {bar}")
    outcomes = summary.get("outcomes", {})
    if outcomes:
        lines += ["", "what changed: " + ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))]
    return "\n".join(lines) + "\n"
