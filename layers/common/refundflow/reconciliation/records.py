"""What every settlement and bank parser yields: one small record per line, amounts in integer minor units.

Records are named tuples, not pydantic models or dataclasses: a settlement file has millions of lines and
building a model (or a frozen dataclass) per line would cost more than the parsing. ``money`` gives the
line's amount as a :class:`Money` where the rest of refundflow needs one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from enum import StrEnum
from functools import wraps
from typing import NamedTuple, ParamSpec

from refundflow import carddata
from refundflow.money import CURRENCY_EXPONENTS, Money


class LineKind(StrEnum):
    """What a settlement line is, across providers."""

    CHARGE = "charge"
    REFUND = "refund"
    # A refund the provider could not deliver after it had looked done (Stripe refund_failure,
    # Adyen RefundedReversed, PayPal's refund reversal): the money came back to the merchant.
    REFUND_FAILURE = "refund_failure"
    FEE = "fee"
    PAYOUT = "payout"
    OTHER = "other"


class Direction(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


class SettlementLine(NamedTuple):
    """One line of a provider's settlement report.

    ``amount`` is the gross magnitude (always >= 0) in minor units of ``currency``; ``net`` is the signed
    effect on the merchant's provider balance after ``fee`` (what a payout adds up). ``line_id`` is the
    provider's own id of the line (unique within a report, so a repeat is a duplicate line); ``reference``
    is what matches one of our refunds (the provider refund id) or, for a payout line, the payout id.
    """

    source: str
    line_no: int
    line_id: str
    kind: LineKind
    reference: str
    amount: int
    currency: str
    fee: int
    net: int
    booked_on: date | None
    payout_id: str | None = None
    description: str = ""

    @property
    def money(self) -> Money:
        return Money.of(self.amount, self.currency)


class BankLine(NamedTuple):
    """One entry of a bank statement: ``amount`` >= 0 minor units, ``direction`` says which way.
    ``text`` gathers the references and remittance information a payout id can be found in."""

    source: str
    line_no: int
    line_id: str
    direction: Direction
    amount: int
    currency: str
    booked_on: date | None
    text: str

    @property
    def money(self) -> Money:
        return Money.of(self.amount, self.currency)


class SettlementFormatError(ValueError):
    """The file is not what its parser reads: a missing column, a bad amount, an unknown currency.

    Its message quotes the file (the cell, or what a parsing library said of the line): card data in it is masked,
    as everywhere a file's text goes (the message reaches the CLI, the state machine's error and ops)."""

    def __init__(self, message: str) -> None:
        super().__init__(mask_card_data(message))


# ---------------------------------------------------------------------------------------------- card data
#
# A settlement or bank file is inbound text like any request: a card number typed into a remittance text, a
# reference or a description must not reach what reconciliation keeps (the converted JSON Lines, mismatch
# records, kept bank lines, events, the report). A file is not refused for it (it is the provider's or the
# bank's, and its money must still be reconciled): every text field of every line is masked as it is read
# (``[card ****1111]``, security codes removed: ``carddata.mask_text``), before anything else sees it.
# A line id that reads as a card number (a numeric bank reference does about 3 times in 100) keeps its line
# number beside the mask, so two such lines never share a key (a repeated line is then found only by position);
# a reference that does is masked like any text, so it matches none of our refunds and shows as a mismatch.


def mask_card_data(text: str) -> str:
    """``text`` with card data masked (the same string when it has none)."""
    return carddata.mask_text(text) if text and carddata.find_in_text(text) else text


def mask_line_id(line_id: str, line_no: int) -> str:
    """A line id with card data masked, its line number beside the mask (the same id when it has none)."""
    masked = mask_card_data(line_id)
    return masked if masked == line_id else f"{masked} (line {line_no})"


def settlement_line_masked(line: SettlementLine) -> SettlementLine:
    """``line`` with card data masked in its text fields (the same line when it has none)."""
    line_id, reference = mask_line_id(line.line_id, line.line_no), mask_card_data(line.reference)
    description = mask_card_data(line.description)
    payout_id = mask_card_data(line.payout_id) if line.payout_id else line.payout_id
    if (line_id, reference, description, payout_id) == (line.line_id, line.reference, line.description, line.payout_id):
        return line
    return line._replace(line_id=line_id, reference=reference, description=description, payout_id=payout_id)


def bank_line_masked(line: BankLine) -> BankLine:
    """``line`` with card data masked in its id and text (the same line when it has none)."""
    line_id, text = mask_line_id(line.line_id, line.line_no), mask_card_data(line.text)
    return line if (line_id, text) == (line.line_id, line.text) else line._replace(line_id=line_id, text=text)


P = ParamSpec("P")


def masks_card_data(
    parse: Callable[P, Iterator[SettlementLine]],
) -> Callable[P, Iterator[SettlementLine]]:
    """A settlement parser whose lines come out with card data masked (:func:`settlement_line_masked`)."""

    @wraps(parse)
    def masked(*args: P.args, **kwargs: P.kwargs) -> Iterator[SettlementLine]:
        return map(settlement_line_masked, parse(*args, **kwargs))

    return masked


def masks_bank_card_data(parse: Callable[P, Iterator[BankLine]]) -> Callable[P, Iterator[BankLine]]:
    """A bank statement parser whose lines come out with card data masked (:func:`bank_line_masked`)."""

    @wraps(parse)
    def masked(*args: P.args, **kwargs: P.kwargs) -> Iterator[BankLine]:
        return map(bank_line_masked, parse(*args, **kwargs))

    return masked


def currency_exponent(code: str, *, where: str) -> int:
    try:
        return CURRENCY_EXPONENTS[code]
    except KeyError:
        raise SettlementFormatError(f"{where}: unknown currency {code!r}") from None


# The largest amount a line may carry, in minor units (exclusive): a quadrillion minor units is 10 trillion in a
# two-decimal currency, far beyond any settlement line, and well inside the 64-bit integers the engine keeps (so a
# sum of a payout's lines cannot overflow either). A line beyond it is refused, whichever parser reads it.
MAX_MINOR_UNITS = 10**15


def ascii_digits(text: str) -> bool:
    """Only the digits 0-9 (``str.isdigit`` also takes other scripts' digits and superscripts)."""
    return text.isascii() and text.isdigit()


def bounded_minor(minor: int, text: str, *, where: str) -> int:
    """Raises: SettlementFormatError: ``minor`` is :data:`MAX_MINOR_UNITS` or more in magnitude."""
    if -MAX_MINOR_UNITS < minor < MAX_MINOR_UNITS:
        return minor
    raise SettlementFormatError(f"{where}: {text!r} is beyond {MAX_MINOR_UNITS - 1:,} minor units")


def decimal_to_minor(text: str, currency: str, *, where: str) -> int:
    """Exact conversion of a report's decimal string ("-10.00", "1,234.50", "1000") to minor units.

    String arithmetic, no Decimal and no float: this runs once per line of files with millions of lines.

    Raises:
        SettlementFormatError: not a plain decimal of the digits 0-9, more decimals than the currency has, or
        beyond :data:`MAX_MINOR_UNITS`.
    """
    digits = CURRENCY_EXPONENTS.get(currency)
    if digits is None:
        digits = currency_exponent(currency, where=where)
    # Fast path, the shape of nearly every report amount: [-]digits[.exactly `digits` digits].
    whole, dot, fraction = text.partition(".")
    if len(fraction) == digits and (not fraction or ascii_digits(fraction)) and (dot or not digits):
        head = whole[1:] if whole[:1] == "-" else whole
        if ascii_digits(head):
            return bounded_minor(int(whole + fraction), text, where=where)
    value = text.strip().replace(",", "")
    negative = value.startswith("-")
    if negative or value.startswith("+"):
        value = value[1:]
    whole, _, fraction = value.partition(".")
    if (not whole and not fraction) or not ascii_digits(whole or "0") or (fraction and not ascii_digits(fraction)):
        raise SettlementFormatError(f"{where}: {text!r} is not a decimal amount")
    fraction = fraction.rstrip("0")
    if len(fraction) > digits:
        raise SettlementFormatError(f"{where}: {text!r} has more than {digits} decimals for {currency}")
    minor = int((whole or "0") + fraction.ljust(digits, "0"))
    return bounded_minor(-minor if negative else minor, text, where=where)


def line_to_json(line: SettlementLine) -> dict[str, object]:
    """One JSON Lines record of the converted settlement (what each Distributed Map batch receives)."""
    return {
        "source": line.source,
        "line_no": line.line_no,
        "line_id": line.line_id,
        "kind": line.kind.value,
        "reference": line.reference,
        "amount": line.amount,
        "currency": line.currency,
        "fee": line.fee,
        "net": line.net,
        "booked_on": line.booked_on.isoformat() if line.booked_on else None,
        "payout_id": line.payout_id,
    }


def line_from_json(record: dict[str, object]) -> SettlementLine:
    """Raises: SettlementFormatError: a record that is not one :func:`line_to_json` wrote."""
    try:
        booked = record.get("booked_on")
        payout = record.get("payout_id")
        return SettlementLine(
            source=str(record["source"]),
            line_no=int(str(record["line_no"])),
            line_id=str(record["line_id"]),
            kind=LineKind(str(record["kind"])),
            reference=str(record["reference"]),
            amount=_int(record["amount"]),
            currency=str(record["currency"]),
            fee=_int(record["fee"]),
            net=_int(record["net"]),
            booked_on=date.fromisoformat(str(booked)) if booked else None,
            payout_id=str(payout) if payout else None,
        )
    except (KeyError, ValueError, TypeError) as error:
        raise SettlementFormatError(f"not a settlement line record: {error}") from error


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettlementFormatError(f"{value!r} is not an integer amount")
    return value


def bank_to_json(line: BankLine) -> dict[str, object]:
    """One JSON Lines record of a converted bank statement."""
    return {
        "source": line.source,
        "line_no": line.line_no,
        "line_id": line.line_id,
        "direction": line.direction.value,
        "amount": line.amount,
        "currency": line.currency,
        "booked_on": line.booked_on.isoformat() if line.booked_on else None,
        "text": line.text,
    }


def bank_from_json(record: dict[str, object]) -> BankLine:
    """Raises: SettlementFormatError: a record that is not one :func:`bank_to_json` wrote."""
    try:
        booked = record.get("booked_on")
        return BankLine(
            source=str(record["source"]),
            line_no=int(str(record["line_no"])),
            line_id=str(record["line_id"]),
            direction=Direction(str(record["direction"])),
            amount=_int(record["amount"]),
            currency=str(record["currency"]),
            booked_on=date.fromisoformat(str(booked)) if booked else None,
            text=str(record["text"]),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise SettlementFormatError(f"not a bank line record: {error}") from error
