"""The matching engine: pure, streaming, no I/O.

A :class:`SettlementMatcher` classifies settlement lines one at a time against our refunds (looked up by
provider refund id), keeping only what it must remember across lines: the line ids and refund references
already seen (duplicates) and a running net per payout. ``finish`` then reports what can only be known at
the end: refunds we expected that never appeared, and payouts whose lines do not add up to them.
A :class:`BankMatcher` matches bank statement lines to the payouts a settlement announced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import NamedTuple

from refundflow.reconciliation.records import BankLine, Direction, LineKind, SettlementLine


class MatchClass(StrEnum):
    MATCHED = "matched"
    MISSING_IN_SETTLEMENT = "missing_in_settlement"
    # A refund line we have no refund for: a refund made outside refundflow whose news never reached us. One recorded
    # from the provider's news (origin external, its PROVIDER_REFUND#<id> claimed) is a refund of ours here: it
    # matches (and settles) like any other.
    UNEXPECTED_IN_SETTLEMENT = "unexpected_in_settlement"
    AMOUNT_DIFFERS = "amount_differs"
    CURRENCY_DIFFERS = "currency_differs"
    DUPLICATE_LINE = "duplicate_line"
    FEE_ONLY = "fee_only"
    # A refund that had settled (or looked done) and was reversed by the provider afterwards.
    LATE_FAILURE = "late_failure"
    PAYOUT_NOT_FOUND = "payout_not_found"
    PAYOUT_AMOUNT_DIFFERS = "payout_amount_differs"
    # Not a refund's line (charges, payouts that add up, bank lines of other business): no finding.
    NOT_RECONCILED = "not_reconciled"


_REFUND_KINDS = frozenset({LineKind.REFUND, LineKind.REFUND_FAILURE})
_REFUND, _CHARGE, _PAYOUT = LineKind.REFUND, LineKind.CHARGE, LineKind.PAYOUT
_MATCHED, _NOT_RECONCILED = MatchClass.MATCHED, MatchClass.NOT_RECONCILED
# A named tuple from a tuple of all its fields, without the generated __new__'s Python frame (hot path only).
_new = tuple.__new__
MISMATCHES = frozenset(MatchClass) - {MatchClass.MATCHED, MatchClass.NOT_RECONCILED}


class ExpectedRefund(NamedTuple):
    """What we know of one of our refunds: enough to match it, nothing personal."""

    refund_id: str
    provider_refund_id: str
    amount: int
    currency: str
    status: str


class Finding(NamedTuple):
    """The class of one line (or of a refund / payout no line matched). ``difference`` is in minor units
    (settlement minus ours) for amount and payout differences."""

    key: str
    match_class: MatchClass
    reference: str
    amount: int
    currency: str
    refund_id: str | None = None
    difference: int = 0
    line_no: int | None = None
    detail: str = ""
    # The payout the line's money went out in (``SettlementLine.payout_id``): what a refund's trace follows to the
    # bank. None for a line that names none (PayPal's lines) and for what only the whole file tells.
    payout_id: str | None = None

    @property
    def is_mismatch(self) -> bool:
        return self.match_class in MISMATCHES


def line_key(line: SettlementLine | BankLine) -> str:
    return f"{line.source}#{line.line_id}"


def _finding(
    line: SettlementLine,
    key: str,
    match_class: MatchClass,
    refund: ExpectedRefund | None = None,
    *,
    difference: int = 0,
    detail: str = "",
) -> Finding:
    refund_id = refund.refund_id if refund else None
    return Finding(
        key,
        match_class,
        line.reference,
        line.amount,
        line.currency,
        refund_id,
        difference,
        line.line_no,
        detail,
        line.payout_id,
    )


@dataclass
class _Payout:
    currency: str
    # Net of the lines that name this payout, per currency (a payout settles one currency; lines in another
    # are not its money). Empty when no line names it (PayPal's withdrawals are not linked to lines).
    nets: dict[str, int] = field(default_factory=dict)
    announced: int | None = None
    line_no: int | None = None
    booked_on: date | None = None


@dataclass
class SettlementMatcher:
    """Classify settlement lines against ``refunds`` (provider refund id -> refund)."""

    refunds: Mapping[str, ExpectedRefund]
    seen_lines: set[str] = field(default_factory=set)
    seen_refunds: set[str] = field(default_factory=set)
    payouts: dict[str, _Payout] = field(default_factory=dict)

    def match(self, line: SettlementLine) -> Finding:
        # The hot path of a million-line file: the line unpacked once, one key, positional tuples, no helper
        # calls for the common lines (a charge, a refund of ours that settles).
        source, line_no, line_id, kind, reference, amount, currency, fee, net, _, payout_id, _ = line
        key = source + "#" + line_id
        if payout_id and kind is not _PAYOUT:
            payout = self.payouts.get(payout_id)
            if payout is None:
                payout = self.payouts[payout_id] = _Payout(currency)
            nets = payout.nets
            nets[currency] = nets.get(currency, 0) + net
        seen_lines = self.seen_lines
        if key in seen_lines:
            refund = self.refunds.get(reference) if kind in _REFUND_KINDS else None
            return _finding(line, key, MatchClass.DUPLICATE_LINE, refund, detail="line id seen before in this file")
        seen_lines.add(key)
        if kind is _REFUND:
            refund = self.refunds.get(reference)
            if (
                refund is not None
                and reference not in self.seen_refunds
                and refund.currency == currency
                and refund.amount == amount
            ):
                self.seen_refunds.add(reference)
                return _new(
                    Finding, (key, _MATCHED, reference, amount, currency, refund.refund_id, 0, line_no, "", payout_id)
                )
            return self._refund(line, key)
        if kind is _CHARGE and (amount or not fee):
            return _new(Finding, (key, _NOT_RECONCILED, reference, amount, currency, None, 0, line_no, "", payout_id))
        if kind is LineKind.REFUND_FAILURE:
            refund = self.refunds.get(reference)
            return _finding(line, key, MatchClass.LATE_FAILURE, refund, detail="the provider reversed the refund")
        if kind is LineKind.FEE or (amount == 0 and fee):
            found = _finding(line, key, MatchClass.FEE_ONLY, detail="a fee with no refund or payment")
            return found._replace(amount=abs(fee))
        if kind is _PAYOUT:
            payout = self._payout(reference, currency)
            # What the payout takes out of the provider balance: the net of the lines it settles.
            payout.announced = -net
            payout.currency = currency
            payout.line_no = line_no
            payout.booked_on = line.booked_on
        return Finding(key, _NOT_RECONCILED, reference, amount, currency, None, 0, line_no, "", payout_id)

    def _refund(self, line: SettlementLine, key: str) -> Finding:
        refund = self.refunds.get(line.reference)
        if line.reference in self.seen_refunds:
            return _finding(line, key, MatchClass.DUPLICATE_LINE, refund, detail="refund settled by an earlier line")
        self.seen_refunds.add(line.reference)
        if refund is None:
            return _finding(line, key, MatchClass.UNEXPECTED_IN_SETTLEMENT, detail="no refund of ours has this id")
        if refund.currency != line.currency:
            detail = f"ours {refund.currency}, settled {line.currency}"
            return _finding(line, key, MatchClass.CURRENCY_DIFFERS, refund, detail=detail)
        if refund.amount != line.amount:
            difference = line.amount - refund.amount
            return _finding(line, key, MatchClass.AMOUNT_DIFFERS, refund, difference=difference, detail="amount")
        return _finding(line, key, MatchClass.MATCHED, refund)

    def _payout(self, reference: str, currency: str) -> _Payout:
        payout = self.payouts.get(reference)
        if payout is None:
            payout = self.payouts[reference] = _Payout(currency)
        return payout

    def finish(self, expected: Iterable[ExpectedRefund] = ()) -> list[Finding]:
        """Refunds of ``expected`` no line settled (missing), and announced payouts whose lines add up to
        a different amount. Call once, after the last line."""
        findings = [
            Finding(
                key=f"refund#{refund.refund_id}",
                match_class=MatchClass.MISSING_IN_SETTLEMENT,
                reference=refund.provider_refund_id,
                amount=refund.amount,
                currency=refund.currency,
                refund_id=refund.refund_id,
                detail="no settlement line for this refund",
            )
            for refund in expected
            if refund.provider_refund_id not in self.seen_refunds
        ]
        for reference, payout in sorted(self.payouts.items()):
            lines_net = payout.nets.get(payout.currency, 0)
            if payout.announced is not None and payout.nets and payout.announced != lines_net:
                findings.append(
                    Finding(
                        key=f"payout#{reference}",
                        match_class=MatchClass.PAYOUT_AMOUNT_DIFFERS,
                        reference=reference,
                        amount=payout.announced,
                        currency=payout.currency,
                        difference=lines_net - payout.announced,
                        line_no=payout.line_no,
                        detail="the payout's lines add up to a different amount",
                    )
                )
        return findings

    def announced_payout_dates(self) -> dict[str, date | None]:
        return {
            reference: payout.booked_on for reference, payout in self.payouts.items() if payout.announced is not None
        }

    def announced_payouts(self) -> dict[str, tuple[int, str]]:
        """Payout reference -> (amount, currency) of the payouts this settlement announced."""
        return {
            reference: (payout.announced, payout.currency)
            for reference, payout in self.payouts.items()
            if payout.announced is not None
        }


@dataclass
class BankMatcher:
    """Match bank credits to announced payouts: a payout is found when its reference appears in the line's
    text (remittance information, references) in the same currency."""

    payouts: Mapping[str, tuple[int, str]]
    found: set[str] = field(default_factory=set)
    seen_lines: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._lowered = {reference.lower(): reference for reference in self.payouts}

    def match(self, line: BankLine) -> Finding:
        key = line_key(line)
        if key in self.seen_lines:
            return self._finding(line, MatchClass.DUPLICATE_LINE, line.line_id, detail="line seen before")
        self.seen_lines.add(key)
        text = line.text.lower()
        reference = next((original for lowered, original in self._lowered.items() if lowered in text), None)
        if reference is None:
            return self._finding(line, MatchClass.NOT_RECONCILED, line.line_id)
        amount, currency = self.payouts[reference]
        if reference in self.found:
            return self._finding(line, MatchClass.DUPLICATE_LINE, reference, detail="payout already credited")
        self.found.add(reference)
        if currency != line.currency:
            return self._finding(line, MatchClass.CURRENCY_DIFFERS, reference, detail=f"payout in {currency}")
        # A payout credits the bank; one whose lines came to less than nothing debits it.
        signed = line.amount if line.direction is Direction.CREDIT else -line.amount
        if amount != signed:
            return self._finding(
                line, MatchClass.PAYOUT_AMOUNT_DIFFERS, reference, difference=signed - amount, detail="amount"
            )
        return self._finding(line, MatchClass.MATCHED, reference)

    @staticmethod
    def _finding(
        line: BankLine, match_class: MatchClass, reference: str, *, difference: int = 0, detail: str = ""
    ) -> Finding:
        return Finding(
            key=line_key(line),
            match_class=match_class,
            reference=reference,
            amount=line.amount,
            currency=line.currency,
            difference=difference,
            line_no=line.line_no,
            detail=detail,
        )

    def finish(self) -> list[Finding]:
        """Announced payouts no bank line credited."""
        return [
            Finding(
                key=f"payout#{reference}",
                match_class=MatchClass.PAYOUT_NOT_FOUND,
                reference=reference,
                amount=amount,
                currency=currency,
                detail="no bank line credits this payout",
            )
            for reference, (amount, currency) in sorted(self.payouts.items())
            if reference not in self.found
        ]


def matcher_state(matcher: SettlementMatcher) -> dict[str, object]:
    """What a batch's matcher learnt that the run's summary needs (JSON-ready): the refund references it
    saw, and per payout the net of its lines and the amount announced."""
    return {
        "refunds_seen": sorted(matcher.seen_refunds),
        "payouts": {
            reference: {
                "currency": payout.currency,
                "nets": payout.nets,
                "announced": payout.announced,
                "booked_on": payout.booked_on.isoformat() if payout.booked_on else None,
            }
            for reference, payout in sorted(matcher.payouts.items())
        },
    }


def absorb_state(matcher: SettlementMatcher, state: Mapping[str, object]) -> None:
    """Add a batch's :func:`matcher_state` to ``matcher`` (the summary merges every batch this way)."""
    seen = state.get("refunds_seen", [])
    payouts = state.get("payouts", {})
    assert isinstance(seen, list)
    assert isinstance(payouts, dict)
    matcher.seen_refunds.update(str(reference) for reference in seen)
    for reference, values in payouts.items():
        payout = matcher._payout(str(reference), str(values["currency"]))
        for currency, net in dict(values["nets"]).items():
            payout.nets[str(currency)] = payout.nets.get(str(currency), 0) + int(net)
        if values.get("announced") is not None:
            payout.announced = int(values["announced"])
            payout.currency = str(values["currency"])
            booked = values.get("booked_on")
            payout.booked_on = date.fromisoformat(str(booked)) if booked else None
