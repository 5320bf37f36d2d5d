"""Streaming parsers for the providers' settlement reports (CSV): Stripe, Adyen, PayPal and a generic mapping.

Each parser takes an open text stream and yields :class:`SettlementLine` one at a time: the file is read by
``csv.reader`` row by row and nothing but the header is kept, so a report of any size runs in constant
memory. No maintained library parses these reports (they are plain CSV with provider-specific columns),
so the column handling is ours; the standard library's ``csv`` does the quoting.

Column names and codes follow the providers' public report specifications:
- Stripe: the itemized reports (``payout_reconciliation.itemized``, ``balance_change_from_activity.itemized``)
  with ``reporting_category``, amounts as decimal strings in major units, lower-case currencies; the
  Dashboard's balance-transaction export (``id``, ``Type``, ``Amount``...) is read too.
- Adyen: the Settlement details report (``Type`` = Settled, Refunded, RefundedReversed, Fee, MerchantPayout...;
  gross and net debit/credit columns in major units; the refund's own PSP reference in ``Modification
  Reference``; the payout batch in ``Batch Number``).
- PayPal: the Settlement Report (STL) with its RH/FH/SH/CH/SB/SF/SC/RF/RC/FF record types; amounts are
  unsigned integers in minor units with a separate debit/credit column; T-codes say what a line is.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from itertools import chain, islice, repeat
from operator import itemgetter, sub
from typing import TextIO

from refundflow.money import CURRENCY_EXPONENTS
from refundflow.reconciliation.records import (
    LineKind,
    SettlementFormatError,
    SettlementLine,
    ascii_digits,
    bounded_minor,
    currency_exponent,
    decimal_to_minor,
    masks_card_data,
)

Parser = Callable[[TextIO], Iterator[SettlementLine]]


def _date(text: str) -> date | None:
    """The date part of "2026-11-30", "2026-11-30 14:02:11", "2026/11/30 14:02:11 -0800"."""
    head = text.strip()[:10].replace("/", "-")
    if not head:
        return None
    try:
        return date.fromisoformat(head)
    except ValueError:
        return None


def _cached_date(cache: dict[str, date | None], text: str) -> date | None:
    day = text[:10]
    if day not in cache:
        cache[day] = _date(day)
    return cache[day]


def _columns(
    header: list[str], wanted: Mapping[str, tuple[str, ...]], required: Iterable[str], *, where: str
) -> dict[str, int]:
    """Column positions by our field name (each field may be spelled several ways across report versions).

    Raises:
        SettlementFormatError: a required column is missing.
    """
    positions = {name.strip().lstrip("\ufeff"): i for i, name in enumerate(header)}
    found = {
        key: positions[spelling]
        for key, spellings in wanted.items()
        for spelling in reversed(spellings)  # the first spelling listed wins
        if spelling in positions
    }
    missing = [key for key in required if key not in found]
    if missing:
        raise SettlementFormatError(f"{where}: missing column(s) {', '.join(missing)}")
    return found


# ---------------------------------------------------------------------------------------------- Stripe

_STRIPE_COLUMNS: dict[str, tuple[str, ...]] = {
    "line_id": ("balance_transaction_id", "id"),
    "category": ("reporting_category", "Reporting Category", "Type", "type"),
    "source": ("source_id", "Source", "source"),
    "gross": ("gross", "Amount", "amount"),
    "fee": ("fee", "Fee"),
    "net": ("net", "Net"),
    "currency": ("currency", "Currency"),
    "created": ("created_utc", "Created (UTC)", "created"),
    "payout": ("automatic_payout_id", "Transfer", "payout_id"),
    "description": ("description", "Description"),
}
_STRIPE_KINDS = {
    "charge": LineKind.CHARGE,
    "payment": LineKind.CHARGE,
    "refund": LineKind.REFUND,
    "payment_refund": LineKind.REFUND,
    "refund_failure": LineKind.REFUND_FAILURE,
    "payment_failure_refund": LineKind.REFUND_FAILURE,
    "fee": LineKind.FEE,
    "stripe_fee": LineKind.FEE,
    "application_fee": LineKind.FEE,
    "payout": LineKind.PAYOUT,
}


@masks_card_data
def parse_stripe(stream: TextIO, *, first_line_no: int = 2) -> Iterator[SettlementLine]:
    """Stripe itemized balance / payout reconciliation report, or the Dashboard's balance-transaction export.

    Read in chunks of rows: a chunk of well-formed rows (one width, amounts in the currency's plain decimal
    shape) is converted column by column with the standard library's C-level ``map``/``zip``; any other
    chunk goes row by row through the exact general rules. Both give the same lines. ``first_line_no`` is the
    number of the first row after the header (a block of a larger file read on its own).

    Raises:
        SettlementFormatError: a required column is missing, or an amount or currency is invalid.
    """
    chunks = _row_chunks(stream)
    first = next(chunks, None)
    if not first:
        return
    header, rows = first[0], first[1:]
    col = _columns(header, _STRIPE_COLUMNS, ("line_id", "category", "source", "gross", "currency"), where="stripe")
    reader = _StripeRows(col)
    line_no = first_line_no
    while True:
        lines = reader.columns(rows, line_no)
        yield from lines if lines is not None else reader.rows(rows, line_no)
        line_no += len(rows)
        chunk = next(chunks, None)
        if chunk is None:
            return
        rows = chunk


_CHUNK_ROWS = 256


def _row_chunks(stream: TextIO, size: int = _CHUNK_ROWS) -> Iterator[list[list[str]]]:
    """The stream's CSV rows, ``size`` lines at a time (an empty line is an empty row, as ``csv.reader`` gives).

    While no chunk holds a quote, a carriage return or a NUL, rows are the lines split on commas, which is
    exactly what ``csv.reader`` returns for such lines; from the first chunk that holds one on, ``csv.reader``
    reads the rest (a quoted field may span lines).
    """
    lines = iter(stream)
    while True:
        chunk = list(islice(lines, size))
        if not chunk:
            return
        text = "".join(chunk)
        if '"' in text or "\r" in text or "\0" in text:
            rows = csv.reader(chain(chunk, lines))
            while batch := list(islice(rows, size)):
                yield batch
            return
        if text.endswith("\n"):
            text = text[:-1]
        yield [line.split(",") if line else [] for line in text.split("\n")]


def _minor_column(values: tuple[str, ...], exponent: int) -> list[int] | None:
    """A column of amounts as minor units when every one has the plain shape ``[-]digits[.exactly exponent
    digits]`` (ASCII digits, 15 in all at most), else None (the caller reads row by row). A column of few
    distinct amounts (fees: mostly zero) converts each once."""
    distinct = set(values)
    if len(distinct) * 8 < len(values):
        keys = tuple(distinct)
        minor = _minor_column(keys, exponent)
        return None if minor is None else list(map(dict(zip(keys, minor, strict=True)).__getitem__, values))
    text = ",".join(values)
    if _PLAIN_AMOUNTS[exponent].fullmatch(text) is None:
        return None
    return list(map(int, text.replace(".", "").split(",") if exponent else text.split(",")))


# At most 15 digits in all (below MAX_MINOR_UNITS; a longer amount, leading zeros too, is read row by row, where
# one beyond it is refused): no sum of a block's amounts can overflow.
_PLAIN_AMOUNTS = {
    exponent: re.compile(rf"{one}(?:,{one})*")
    for exponent, one in ((0, "-?[0-9]{1,15}"), *((e, rf"-?[0-9]{{1,{15 - e}}}\.[0-9]{{{e}}}") for e in range(1, 5)))
}


class _StripeRows:
    """Rows of one Stripe report (its column positions) to settlement lines."""

    def __init__(self, col: dict[str, int]) -> None:
        self.i_id, self.i_cat, self.i_src = col["line_id"], col["category"], col["source"]
        self.i_gross, self.i_cur = col["gross"], col["currency"]
        self.i_fee, self.i_net, self.i_created = col.get("fee"), col.get("net"), col.get("created")
        self.i_payout, self.i_desc = col.get("payout"), col.get("description")
        self.width = max(col.values()) + 1
        self.dates: dict[str, date | None] = {}  # a report has few distinct days: parse each once

    def columns(self, rows: list[list[str]], line_no: int) -> list[SettlementLine] | None:
        """The chunk converted column by column, or None when a row is not of the plain shape."""
        widths = set(map(len, rows))
        if len(widths) != 1 or min(widths) < self.width:
            return None
        cols = list(zip(*rows, strict=True))
        currencies = {raw: raw.strip().upper() for raw in set(cols[self.i_cur])}
        exponents = {CURRENCY_EXPONENTS.get(code) for code in currencies.values()}
        if len(exponents) != 1:
            return None
        exponent = exponents.pop()
        if exponent is None or exponent not in _PLAIN_AMOUNTS:
            return None
        gross = _minor_column(cols[self.i_gross], exponent)
        if gross is None:
            return None
        fee: list[int] | None = [0] * len(rows)
        if self.i_fee is not None:
            fees = cols[self.i_fee]
            zero = "0." + "0" * exponent if exponent else "0"
            fee = _minor_column(tuple(value or zero for value in fees) if "" in fees else fees, exponent)
        if fee is None:
            return None
        if self.i_net is None:
            net: list[int] | None = list(map(sub, gross, fee))
        else:
            nets = cols[self.i_net]
            # The same texts are the same amounts (a chunk of lines without fees).
            net = gross if nets == cols[self.i_gross] else None if "" in nets else _minor_column(nets, exponent)
        if net is None:
            return None
        kinds = list(map(_STRIPE_KINDS.get, cols[self.i_cat]))
        if None in kinds:  # the Dashboard export's "Refund", padded cells
            kinds = [
                kind or _STRIPE_KINDS.get(text.strip().lower(), LineKind.OTHER)
                for kind, text in zip(kinds, cols[self.i_cat], strict=True)
            ]
        if self.i_created is None:
            booked: Iterable[date | None] = repeat(None)
        else:
            days = list(map(_DAY, cols[self.i_created]))
            for day in set(days).difference(self.dates):
                self.dates[day] = _date(day)
            booked = map(self.dates.__getitem__, days)
        if self.i_payout is None:
            payouts: Iterable[str | None] = repeat(None)
        else:
            named = {raw: raw.strip() or None for raw in set(cols[self.i_payout])}
            payouts = map(named.__getitem__, cols[self.i_payout])
        fields = zip(
            repeat("stripe"),
            range(line_no, line_no + len(rows)),
            map(str.strip, cols[self.i_id]),
            kinds,
            map(str.strip, cols[self.i_src]),
            map(abs, gross),
            map(currencies.__getitem__, cols[self.i_cur]),
            fee,
            net,
            booked,
            payouts,
            cols[self.i_desc] if self.i_desc is not None else repeat(""),
        )
        return list(map(_new_line, repeat(SettlementLine), fields))

    def rows(self, rows: list[list[str]], first_line_no: int) -> Iterator[SettlementLine]:
        """The chunk row by row: any shape the general rules accept, an error naming the line otherwise."""
        i_id, i_cat, i_src, i_gross, i_cur = self.i_id, self.i_cat, self.i_src, self.i_gross, self.i_cur
        i_fee, i_net, i_created, i_payout, i_desc = self.i_fee, self.i_net, self.i_created, self.i_payout, self.i_desc
        for line_no, row in enumerate(rows, start=first_line_no):
            if not row:
                continue
            where = f"stripe line {line_no}"
            if len(row) < self.width:
                raise SettlementFormatError(f"{where}: {len(row)} fields, the header names {self.width}")
            currency = row[i_cur].strip().upper()
            gross = decimal_to_minor(row[i_gross], currency, where=where)
            fee = decimal_to_minor(row[i_fee], currency, where=where) if i_fee is not None and row[i_fee] else 0
            net = (
                decimal_to_minor(row[i_net], currency, where=where) if i_net is not None and row[i_net] else gross - fee
            )
            kind = _STRIPE_KINDS.get(row[i_cat])
            if kind is None:  # the Dashboard export's "Refund", padded cells
                kind = _STRIPE_KINDS.get(row[i_cat].strip().lower(), LineKind.OTHER)
            yield SettlementLine(
                "stripe",
                line_no,
                row[i_id].strip(),
                kind,
                row[i_src].strip(),
                -gross if gross < 0 else gross,
                currency,
                fee,
                net,
                _cached_date(self.dates, row[i_created]) if i_created is not None else None,
                (row[i_payout].strip() or None) if i_payout is not None else None,
                row[i_desc] if i_desc is not None else "",
            )


_DAY = itemgetter(slice(None, 10))
_new_line = tuple.__new__


# ---------------------------------------------------------------------------------------------- Adyen

_ADYEN_COLUMNS: dict[str, tuple[str, ...]] = {
    "merchant": ("Merchant Account",),
    "psp": ("Psp Reference",),
    "type": ("Type",),
    "modification": ("Modification Reference",),
    "created": ("Creation Date",),
    "gross_currency": ("Gross Currency",),
    "gross_debit": ("Gross Debit (GC)",),
    "gross_credit": ("Gross Credit (GC)",),
    "net_currency": ("Net Currency",),
    "net_debit": ("Net Debit (NC)",),
    "net_credit": ("Net Credit (NC)",),
    "commission": ("Commission (NC)",),
    "markup": ("Markup (NC)",),
    "scheme": ("Scheme Fees (NC)",),
    "interchange": ("Interchange (NC)",),
    "batch": ("Batch Number",),
}
_ADYEN_KINDS = {
    "Settled": LineKind.CHARGE,
    "SettledBulk": LineKind.CHARGE,
    "Refunded": LineKind.REFUND,
    "RefundedBulk": LineKind.REFUND,
    "RefundedExternally": LineKind.REFUND,
    "RefundedReversed": LineKind.REFUND_FAILURE,
    "Fee": LineKind.FEE,
    "MiscCosts": LineKind.FEE,
    "PaymentCost": LineKind.FEE,
    "InvoiceDeduction": LineKind.FEE,
    "MerchantPayout": LineKind.PAYOUT,
}


def adyen_payout_reference(merchant_account: str, batch: str) -> str:
    """How an Adyen payout is named on the bank statement: the merchant account and the batch number."""
    return f"{merchant_account} batch {batch}".strip()


@masks_card_data
def parse_adyen(stream: TextIO) -> Iterator[SettlementLine]:
    """Adyen Settlement details report (raises SettlementFormatError like :func:`parse_stripe`)."""
    rows = csv.reader(stream)
    header = next(rows, None)
    if header is None:
        return
    required = ("psp", "type", "gross_currency", "gross_debit", "gross_credit", "net_currency")
    col = _columns(header, _ADYEN_COLUMNS, required, where="adyen")

    def cell(row: list[str], key: str) -> str:
        position = col.get(key)
        return row[position].strip() if position is not None and position < len(row) else ""

    for line_no, row in enumerate(rows, start=2):
        if not row or not any(row):
            continue
        where = f"adyen line {line_no}"
        kind_text = cell(row, "type")
        kind = _ADYEN_KINDS.get(kind_text, LineKind.OTHER)
        net_currency = cell(row, "net_currency").upper()
        currency = cell(row, "gross_currency").upper() or net_currency
        debit, credit = cell(row, "gross_debit"), cell(row, "gross_credit")
        gross = decimal_to_minor(debit or credit or "0", currency, where=where) if currency else 0
        fee = sum(
            decimal_to_minor(cell(row, key), net_currency, where=where)
            for key in ("commission", "markup", "scheme", "interchange")
            if cell(row, key)
        )
        net_debit, net_credit = cell(row, "net_debit"), cell(row, "net_credit")
        net = (decimal_to_minor(net_credit, net_currency, where=where) if net_credit else 0) - (
            decimal_to_minor(net_debit, net_currency, where=where) if net_debit else 0
        )
        if kind in (LineKind.FEE, LineKind.PAYOUT) and not (debit or credit):
            # Fee and payout lines have no gross side: what they move is on the net side.
            currency, gross = net_currency, 0
            if kind is LineKind.FEE:
                fee = fee or -net
            else:
                gross = -net
        batch = cell(row, "batch")
        payout = adyen_payout_reference(cell(row, "merchant"), batch) if batch else None
        modification = cell(row, "modification")
        # A refund's own PSP reference is the Modification Reference; the Psp Reference is the payment's.
        reference = modification if kind in (LineKind.REFUND, LineKind.REFUND_FAILURE) else cell(row, "psp")
        if kind is LineKind.PAYOUT:
            reference = payout or modification
        yield SettlementLine(
            source="adyen",
            line_no=line_no,
            line_id=f"{kind_text}:{modification or cell(row, 'psp') or f'{batch}:{line_no}'}",
            kind=kind,
            reference=reference,
            amount=abs(gross),
            currency=currency or net_currency,
            fee=fee,
            net=net,
            booked_on=_date(cell(row, "created")),
            payout_id=payout,
        )


# ---------------------------------------------------------------------------------------------- PayPal

_PAYPAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "txn": ("Transaction ID",),
    "ref": ("PayPal Reference ID",),
    "code": ("Transaction Event Code",),
    "completed": ("Transaction Completion Date",),
    "initiated": ("Transaction Initiation Date",),
    "direction": ("Transaction Debit or Credit", "Transaction  Debit or Credit"),
    "gross": ("Gross Transaction Amount",),
    "currency": ("Gross Transaction Currency",),
    "fee_direction": ("Fee Debit or Credit",),
    "fee": ("Fee Amount",),
}
_PAYPAL_RECORD_TYPES = {"RH", "FH", "SH", "CH", "SB", "SF", "SC", "RF", "RC", "FF"}


def _paypal_kind(code: str, direction: str) -> LineKind:
    """T-code groups of PayPal's transaction event codes (https://developer.paypal.com/docs/transaction-search/
    transaction-event-codes/ and the report T-code reference, https://developer.paypal.com/docs/reports/
    reference/tcodes/): T00xx payments, T01xx fees, T04xx withdrawals (payouts to the bank), T11xx
    reversals, of which T1107 is "payment refund, initiated by merchant".

    A T-code's debit or credit is the direction of the money relative to the report's subject (PayPal's own
    example: T0006 is CR for the seller receiving a payment, DR for the buyer sending it). So a refund we made
    is a T1107 DR; a T1107 CR is a refund the merchant received from someone it had paid, not one of ours
    (``other``). PayPal lists no T-code for a refund of a merchant's reversed afterwards (T1106 is a payment
    reversed by PayPal, a chargeback's completion): a PayPal refund fails through the API and its webhooks, so
    no PayPal settlement line is read as a late failure."""
    if code == "T1107":
        return LineKind.REFUND if direction == "DR" else LineKind.OTHER
    if code.startswith("T04"):
        return LineKind.PAYOUT
    if code.startswith("T01"):
        return LineKind.FEE
    if code.startswith("T00"):
        return LineKind.CHARGE
    return LineKind.OTHER


def _unsigned_minor(text: str, currency: str, *, where: str) -> int:
    value = text.strip() or "0"
    if not ascii_digits(value):
        raise SettlementFormatError(f"{where}: {text!r} is not an unsigned amount in minor units")
    currency_exponent(currency, where=where)
    return bounded_minor(int(value), text, where=where)


@masks_card_data
def parse_paypal(stream: TextIO) -> Iterator[SettlementLine]:
    """PayPal Settlement Report (STL), CSV flavour. Column positions come from each section's CH record.

    Raises:
        SettlementFormatError: an SB row before its CH header, an unknown record type, a bad amount.
    """
    col: dict[str, int] | None = None
    for line_no, row in enumerate(csv.reader(stream), start=1):
        if not row:
            continue
        record = row[0].strip().lstrip("\ufeff").strip('"')
        if record not in _PAYPAL_RECORD_TYPES:
            raise SettlementFormatError(f"paypal line {line_no}: unknown record type {record!r}")
        if record == "CH":
            col = _columns(row, _PAYPAL_COLUMNS, ("txn", "code", "direction", "gross", "currency"), where="paypal")
            continue
        if record != "SB":
            continue
        if col is None:
            raise SettlementFormatError(f"paypal line {line_no}: SB record before its CH header")
        where = f"paypal line {line_no}"
        currency = row[col["currency"]].strip().upper()
        direction = row[col["direction"]].strip().upper()
        gross = _unsigned_minor(row[col["gross"]], currency, where=where)
        fee_position, fee_direction_position = col.get("fee"), col.get("fee_direction")
        fee = _unsigned_minor(row[fee_position], currency, where=where) if fee_position is not None else 0
        fee_direction = row[fee_direction_position].strip().upper() if fee_direction_position is not None else "DR"
        signed_fee = fee if fee_direction == "DR" else -fee
        signed_gross = gross if direction == "CR" else -gross
        code = row[col["code"]].strip()
        kind = _paypal_kind(code, direction)
        if kind is LineKind.CHARGE and gross == 0 and fee:
            kind = LineKind.FEE
        txn = row[col["txn"]].strip()
        completed = col.get("completed", col.get("initiated"))
        yield SettlementLine(
            source="paypal",
            line_no=line_no,
            line_id=txn,
            kind=kind,
            reference=txn,
            amount=gross,
            currency=currency,
            fee=signed_fee,
            net=signed_gross - signed_fee,
            booked_on=_date(row[completed]) if completed is not None else None,
            payout_id=txn if kind is LineKind.PAYOUT else None,
        )


# ---------------------------------------------------------------------------------------------- generic


@dataclass(frozen=True)
class ColumnMapping:
    """How to read a provider CSV we have no dedicated parser for. Column names are the file's header.

    - ``line_id``, ``reference``, ``amount``, ``currency``, ``kind``: required columns.
    - ``amount_format``: ``"decimal"`` (major units, "12.50") or ``"minor"`` (integer minor units, "1250").
      A negative amount is read as its magnitude; the sign of ``net`` follows ``kind`` (refunds, fees and
      payouts take money out of the provider balance).
    - ``kinds``: the file's value of ``kind`` for each of refund, refund_failure, charge, fee, payout
      (anything else is ``other``).
    - ``fee``, ``date``, ``payout_id``: optional columns.
    """

    line_id: str
    reference: str
    amount: str
    currency: str
    kind: str
    kinds: Mapping[str, str] = field(default_factory=dict)
    amount_format: str = "decimal"
    fee: str | None = None
    date: str | None = None
    payout_id: str | None = None
    source: str = "generic"


DEFAULT_GENERIC_MAPPING = ColumnMapping(
    line_id="line_id",
    reference="refund_reference",
    amount="amount",
    currency="currency",
    kind="type",
    kinds={
        "refund": "refund",
        "refund_reversal": "refund_failure",
        "payment": "charge",
        "fee": "fee",
        "payout": "payout",
    },
    amount_format="decimal",
    fee="fee",
    date="booked_on",
    payout_id="payout_id",
)

_OUTFLOWS = {LineKind.REFUND, LineKind.FEE, LineKind.PAYOUT}


def generic_parser(mapping: ColumnMapping = DEFAULT_GENERIC_MAPPING) -> Parser:
    """A parser for a CSV described by ``mapping``."""
    kinds = {value: LineKind(kind) for value, kind in mapping.kinds.items()}
    if mapping.amount_format not in ("decimal", "minor"):
        raise SettlementFormatError(f"amount_format must be decimal or minor, not {mapping.amount_format!r}")

    def amount_of(text: str, currency: str, where: str) -> int:
        if mapping.amount_format == "minor":
            value = text.strip().lstrip("+-")
            if not ascii_digits(value):
                raise SettlementFormatError(f"{where}: {text!r} is not an amount in minor units")
            currency_exponent(currency, where=where)
            return bounded_minor(int(value), text, where=where)
        return abs(decimal_to_minor(text, currency, where=where))

    @masks_card_data
    def parse(stream: TextIO) -> Iterator[SettlementLine]:
        rows = csv.reader(stream)
        header = next(rows, None)
        if header is None:
            return
        positions = {name.strip().lstrip("\ufeff"): i for i, name in enumerate(header)}
        required = (mapping.line_id, mapping.reference, mapping.amount, mapping.currency, mapping.kind)
        missing = [name for name in required if name not in positions]
        if missing:
            raise SettlementFormatError(f"{mapping.source}: missing column(s) {', '.join(missing)}")

        def optional(name: str | None) -> int | None:
            return positions.get(name) if name else None

        i_fee, i_date, i_payout = optional(mapping.fee), optional(mapping.date), optional(mapping.payout_id)
        for line_no, row in enumerate(rows, start=2):
            if not row:
                continue
            where = f"{mapping.source} line {line_no}"
            currency = row[positions[mapping.currency]].strip().upper()
            amount = amount_of(row[positions[mapping.amount]], currency, where)
            fee = amount_of(row[i_fee], currency, where) if i_fee is not None and row[i_fee].strip() else 0
            kind = kinds.get(row[positions[mapping.kind]].strip(), LineKind.OTHER)
            gross = -amount if kind in _OUTFLOWS else amount
            yield SettlementLine(
                source=mapping.source,
                line_no=line_no,
                line_id=row[positions[mapping.line_id]].strip(),
                kind=kind,
                reference=row[positions[mapping.reference]].strip(),
                amount=amount,
                currency=currency,
                fee=fee,
                net=gross - fee,
                booked_on=_date(row[i_date]) if i_date is not None else None,
                payout_id=(row[i_payout].strip() or None) if i_payout is not None else None,
            )

    return parse


SETTLEMENT_PARSERS: dict[str, Parser] = {
    "stripe": parse_stripe,
    "adyen": parse_adyen,
    "paypal": parse_paypal,
    "generic": generic_parser(),
}
