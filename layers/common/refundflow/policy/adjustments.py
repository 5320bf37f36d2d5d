"""Adjustments in exact minor units: each deduction is clamped so the refund stays within 0..requested."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from refundflow.models import Adjustment, StrictModel
from refundflow.money import Money
from refundflow.policy.document import AdjustmentSpec, RestockingFee, ShippingDeduction
from refundflow.policy.inputs import LineFacts

_DESCRIPTION_LIMIT = 256


class AppliedAdjustment(StrictModel):
    """A deduction the policy made, with the lines and categories it hit."""

    kind: str
    name: str | None = Field(default=None, description="The document's name for it, when it is a named one.")
    description: str
    amount: Money
    lines: list[str] = Field(default_factory=list, description="Labels (sku, else category, else #n) of hit lines.")
    categories: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        hit = []
        if self.lines:
            hit.append("lines " + ", ".join(self.lines))
        if self.categories:
            hit.append("categories " + ", ".join(self.categories))
        return f"{self.description} ({'; '.join(hit)})" if hit else self.description

    def to_adjustment(self) -> Adjustment:
        text = self.summary()
        if len(text) > _DESCRIPTION_LIMIT:
            text = text[: _DESCRIPTION_LIMIT - 1] + "…"
        return Adjustment(kind=self.kind, description=text, amount=self.amount)


@dataclass(frozen=True)
class AdjustmentResult:
    final: Money
    applied: list[AppliedAdjustment]
    notes: list[str]


def _label(line: LineFacts, index: int) -> str:
    return line.sku or (f"#{index + 1} ({line.category})" if line.category else f"#{index + 1}")


def _restocking_fee(
    spec: RestockingFee, requested: Money, lines: Sequence[LineFacts]
) -> tuple[int, list[str], list[str]]:
    currency = requested.currency
    if not lines:
        if spec.categories is not None:
            return 0, [], []
        # A refund without lines is one line of the whole amount, one unit.
        if spec.basis_points is not None:
            return requested.percentage(spec.basis_points).minor_units, [], []
        return spec.per_unit[currency] if spec.per_unit else 0, [], []
    total = 0
    labels: list[str] = []
    categories: set[str] = set()
    for index, line in enumerate(lines):
        if spec.categories is not None and line.category not in spec.categories:
            continue
        if spec.basis_points is not None:
            fee = Money.of(line.amount, currency).percentage(spec.basis_points).minor_units
        else:
            fee = (spec.per_unit or {})[currency] * line.quantity
        total += min(max(fee, 0), max(line.amount, 0))
        labels.append(_label(line, index))
        if line.category:
            categories.add(line.category)
    return total, labels, sorted(categories)


def apply_adjustments(
    requested: Money, lines: Sequence[LineFacts], specs: Sequence[tuple[str | None, AdjustmentSpec]]
) -> AdjustmentResult:
    """Apply ``specs`` in order to ``requested``; the result is never negative and never above ``requested``.

    Fixed amounts are looked up in the refund's currency (the loader checks every fixed map covers the
    policy's currencies, and the engine never gets here for another currency).

    Raises:
        KeyError: a fixed amount map lacks the refund's currency.
    """
    currency = requested.currency
    running = max(requested.minor_units, 0)
    applied: list[AppliedAdjustment] = []
    notes: list[str] = []
    for name, spec in specs:
        labels: list[str] = []
        categories: list[str] = []
        idle = "nothing left to deduct from"
        if isinstance(spec, RestockingFee):
            wanted, labels, categories = _restocking_fee(spec, requested, lines)
            if spec.categories is not None and not labels:
                idle = f"no lines in {', '.join(spec.categories)}"
        elif isinstance(spec, ShippingDeduction):
            wanted = spec.amount[currency]
        else:
            limits = []
            if spec.basis_points is not None:
                limits.append(requested.percentage(spec.basis_points).minor_units)
            if spec.max is not None:
                limits.append(spec.max[currency])
            wanted = running - min(limits)
            idle = "the amount is within the cap"
        deduction = min(max(wanted, 0), running)
        if deduction == 0:
            notes.append(f"{spec.kind} '{name or spec.description}' deducted nothing: {idle}")
            continue
        running -= deduction
        applied.append(
            AppliedAdjustment(
                kind=spec.kind,
                name=name,
                description=spec.description,
                amount=Money.of(deduction, currency),
                lines=labels,
                categories=categories,
            )
        )
    return AdjustmentResult(final=Money.of(running, currency), applied=applied, notes=notes)
