"""How a refund of an order paid with several tenders is divided among them (split tenders).

An order paid with a card and a gift card, two cards, PayPal and a card, or a deposit and a final payment is
refunded across its payments: each tender's share is a leg, refunded by its own provider under its own
idempotency key. The rule that divides the amount is the merchant's (the policy document's ``split_tenders``
section): a rule never gives a tender more than it still has to refund, and the legs always add up to the
amount exactly (integer minor units, no rounding left over). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from refundflow.errors import RejectedError
from refundflow.models import PaymentReference, TenderKind
from refundflow.money import Money


class AllocationRule(StrEnum):
    """Which tender gets the money back first."""

    LAST_CAPTURED_FIRST = "last_captured_first"  # the most recent payment first (a final payment before its deposit)
    PROPORTIONAL = "proportional"  # each tender in proportion to what it paid
    LEAST_FEE_FIRST = "least_fee_first"  # the tender whose refund costs the merchant least first
    STORE_CREDIT_LAST = "store_credit_last"  # money back to real payments first; store credit and gift cards last
    EXPRESSION = "expression"  # the merchant's own CEL expression orders the tenders


class AllocationImpossible(RejectedError):
    """The amount cannot be divided among the tenders (more than they have left, another currency)."""

    code = "allocation_impossible"


@dataclass(frozen=True)
class TenderBalance:
    """One tender of the order as the allocation sees it: what it can still take back, when it was captured, and
    what refunding to it costs (basis points, from the merchant's configuration, for ``least_fee_first``)."""

    index: int
    payment: PaymentReference | None  # None for store credit (refundflow's own ledger) only
    kind: TenderKind
    captured: Money
    remaining: Money
    captured_at: datetime | None = None
    fee_basis_points: int = 0


@dataclass(frozen=True)
class LegAllocation:
    """A tender's share of the refund (``amount`` > 0)."""

    index: int
    payment: PaymentReference | None  # None for store credit only
    kind: TenderKind
    amount: Money


# An expression's order: the priority a tender gets (lower first). Built by the policy package from the merchant's
# CEL expression; the allocation itself never compiles CEL.
TenderPriority = Callable[[TenderBalance], int]

_STORE_CREDIT_KINDS = frozenset({TenderKind.STORE_CREDIT, TenderKind.GIFT_CARD})


def _captured_order(tender: TenderBalance) -> tuple[int, float, int]:
    # Latest capture first; a tender without a capture time after every dated one; then the order given.
    when = tender.captured_at.astimezone(UTC).timestamp() if tender.captured_at is not None else None
    return (1 if when is None else 0, -(when or 0.0), tender.index)


def _greedy(amount: int, ordered: Sequence[TenderBalance], currency: str) -> list[LegAllocation]:
    legs: list[LegAllocation] = []
    left = amount
    for tender in ordered:
        if left == 0:
            break
        share = min(left, tender.remaining.minor_units)
        if share > 0:
            legs.append(LegAllocation(tender.index, tender.payment, tender.kind, Money.of(share, currency)))
            left -= share
    return sorted(legs, key=lambda leg: leg.index)


def _proportional(amount: int, tenders: Sequence[TenderBalance], currency: str) -> list[LegAllocation]:
    """Shares in proportion to what each tender captured, never above what it has left; the minor units rounding
    leaves over go one each to the largest remainders (ties: the tender given first). A tender capped at what it
    has left passes the rest on to the others, in the same proportion."""
    shares = {tender.index: 0 for tender in tenders}
    open_tenders = [tender for tender in tenders if tender.remaining.minor_units > 0]
    left = amount
    while left > 0 and open_tenders:
        weights = {tender.index: max(tender.captured.minor_units, 1) for tender in open_tenders}
        total = sum(weights.values())
        exact = {index: (left * weight, total) for index, weight in weights.items()}
        floors = {index: numerator // denominator for index, (numerator, denominator) in exact.items()}
        rest = left - sum(floors.values())
        by_remainder = sorted(open_tenders, key=lambda tender: (-(exact[tender.index][0] % total), tender.index))
        for tender in by_remainder[:rest]:
            floors[tender.index] += 1
        capped = []
        for tender in open_tenders:
            room = tender.remaining.minor_units - shares[tender.index]
            give = min(floors[tender.index], room)
            shares[tender.index] += give
            left -= give
            if shares[tender.index] == tender.remaining.minor_units:
                capped.append(tender.index)
        open_tenders = [tender for tender in open_tenders if tender.index not in capped]
    by_index = {tender.index: tender for tender in tenders}
    return [
        LegAllocation(index, by_index[index].payment, by_index[index].kind, Money.of(share, currency))
        for index, share in sorted(shares.items())
        if share > 0
    ]


def allocate(
    amount: Money,
    tenders: Sequence[TenderBalance],
    rule: AllocationRule,
    *,
    priority: TenderPriority | None = None,
) -> list[LegAllocation]:
    """The legs ``amount`` is refunded in, ordered by tender index; they add up to ``amount`` exactly.

    Raises:
        AllocationImpossible: a tender in another currency, a repeated index, ``amount`` not positive or more than
            the tenders have left, or ``expression`` without ``priority``.
    """
    currency = amount.currency
    if amount.minor_units <= 0:
        raise AllocationImpossible("the amount to divide must be positive")
    if len({tender.index for tender in tenders}) != len(tenders):
        raise AllocationImpossible("tender indexes must be unique")
    other = sorted(({t.remaining.currency for t in tenders} | {t.captured.currency for t in tenders}) - {currency})
    if other:
        raise AllocationImpossible(f"tenders in {', '.join(other)} cannot take back {currency}")
    available = sum(max(tender.remaining.minor_units, 0) for tender in tenders)
    if amount.minor_units > available:
        raise AllocationImpossible(
            f"the tenders have {available} minor units of {currency} left to refund, {amount.minor_units} asked"
        )
    if rule is AllocationRule.PROPORTIONAL:
        return _proportional(amount.minor_units, tenders, currency)
    if rule is AllocationRule.LAST_CAPTURED_FIRST:
        ordered = sorted(tenders, key=_captured_order)
    elif rule is AllocationRule.LEAST_FEE_FIRST:
        ordered = sorted(tenders, key=lambda tender: (tender.fee_basis_points, *_captured_order(tender)))
    elif rule is AllocationRule.STORE_CREDIT_LAST:
        ordered = sorted(tenders, key=lambda tender: (tender.kind in _STORE_CREDIT_KINDS, *_captured_order(tender)))
    else:
        if priority is None:
            raise AllocationImpossible("the expression rule needs the merchant's expression")
        ordered = sorted(tenders, key=lambda tender: (priority(tender), *_captured_order(tender)))
    return _greedy(amount.minor_units, ordered, currency)
