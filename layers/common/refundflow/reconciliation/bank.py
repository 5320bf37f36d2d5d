"""Streaming parsers for bank statements: ISO 20022 camt.053 / camt.054, SWIFT MT940 and BAI2.

Libraries, measured (see README, Reconciliation):
- camt.053 / camt.054: ``lxml.etree.iterparse`` over ``Ntry`` elements, each cleared once read, so memory
  stays flat whatever the statement's size; entities are not resolved and the network is never used.
  (The ``camt053`` package pulls in a web framework and a crypto stack; ``xsdata`` builds the whole
  document as objects.)
- MT940: the maintained ``mt-940`` package parses one statement message at a time; we split the stream
  into messages (each starts with ``:20:``) so only one statement is ever in memory.
- BAI2: the ``bai2`` package's record reader (``bai2.helpers.record_generator``, which joins ``88``
  continuation records) over a line generator; its full-file parser builds the whole file as objects,
  so the transaction-detail fields (``16``) are read here, record by record.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any, TextIO

from refundflow.reconciliation.records import (
    BankLine,
    Direction,
    SettlementFormatError,
    ascii_digits,
    bounded_minor,
    currency_exponent,
    decimal_to_minor,
    masks_bank_card_data,
)

# ---------------------------------------------------------------------------------------------- camt


def _iso_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


@masks_bank_card_data
def parse_camt(stream: IO[bytes], *, source: str = "camt") -> Iterator[BankLine]:
    """Entries (``Ntry``) of a camt.053 statement or a camt.054 notification, booked ones only.

    Raises:
        SettlementFormatError: an entry without amount, currency or credit/debit indicator.
    """
    from lxml import etree

    entries = etree.iterparse(
        stream, events=("end",), tag="{*}Ntry", resolve_entities=False, no_network=True, huge_tree=False
    )
    try:
        yield from _camt_lines(entries, source)
    except etree.XMLSyntaxError as error:
        raise SettlementFormatError(f"{source}: not a well-formed XML document: {_first_line(error)}") from error


def _first_line(error: BaseException, limit: int = 200) -> str:
    """What a library says of a file it cannot read, in one line of at most ``limit`` characters."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _camt_lines(entries: Any, source: str) -> Iterator[BankLine]:
    for number, (_, entry) in enumerate(entries, start=1):
        where = f"{source} entry {number}"
        tag = str(entry.tag)
        ns = tag[: tag.index("}") + 1] if tag.startswith("{") else ""

        def text(path: str, node: Any = entry, ns: str = ns) -> str:
            return (node.findtext(_qualified(path, ns)) or "").strip()

        amount_node = entry.find(f"{ns}Amt")
        indicator = text("CdtDbtInd")
        if amount_node is None or indicator not in ("CRDT", "DBIT"):
            raise SettlementFormatError(f"{where}: missing Amt or CdtDbtInd")
        currency = (amount_node.get("Ccy") or "").upper()
        status = text("Sts/Cd") or text("Sts")
        reversal = text("RvslInd").lower() == "true"
        texts = [text("AcctSvcrRef"), text("NtryRef"), text("AddtlNtryInf")]
        for tx in entry.iterfind(_qualified("NtryDtls/TxDtls", ns)):
            texts += (text("Refs/EndToEndId", tx), text("Refs/AcctSvcrRef", tx), text("AddtlTxInf", tx))
            texts += ((line.text or "").strip() for line in tx.iterfind(_qualified("RmtInf/Ustrd", ns)))
        line = BankLine(
            source=source,
            line_no=number,
            line_id=texts[0] or texts[1] or f"{source}-{number}",
            direction=(Direction.CREDIT if indicator == "CRDT" else Direction.DEBIT),
            amount=abs(decimal_to_minor(amount_node.text or "", currency, where=where)),
            currency=currency,
            booked_on=_iso_date(text("BookgDt/Dt") or text("BookgDt/DtTm")),
            text=" ".join(part for part in texts if part and part != "NOTPROVIDED"),
        )
        # Free what was read: the entry, and the references its parent keeps to earlier siblings.
        entry.clear()
        parent = entry.getparent()
        while parent is not None and entry.getprevious() is not None:
            del parent[0]
        if status in ("", "BOOK") and not reversal:
            yield line


def _qualified(path: str, ns: str) -> str:
    """``Sts/Cd`` in the document's namespace: ``{urn:...}Sts/{urn:...}Cd``."""
    return "/".join(ns + part for part in path.split("/"))


# ---------------------------------------------------------------------------------------------- MT940


def _mt940_messages(stream: TextIO) -> Iterator[str]:
    """One statement message at a time: a new ``:20:`` (transaction reference) starts the next one."""
    buffer: list[str] = []
    for raw in stream:
        line = raw.rstrip("\r\n")
        if line.startswith(":20:") and any(part.startswith(":20:") for part in buffer):
            yield "\n".join(buffer) + "\n"
            buffer = []
        if line.strip() in ("-}", "-") or line.startswith("{1:"):
            if any(part.startswith(":20:") for part in buffer):
                yield "\n".join(buffer) + "\n"
            buffer = [] if line.strip() in ("-}", "-") else [line[line.find(":20:") :]] if ":20:" in line else []
            continue
        buffer.append(line)
    if any(part.startswith(":20:") for part in buffer):
        yield "\n".join(buffer) + "\n"


@masks_bank_card_data
def parse_mt940(stream: TextIO, *, source: str = "mt940") -> Iterator[BankLine]:
    """Statement lines (``:61:`` with their ``:86:``) of SWIFT MT940 messages.

    Raises:
        SettlementFormatError: a statement line the ``mt-940`` package cannot read, or a bad amount.
    """
    import mt940

    # The package logs a statement line it cannot read at ERROR, with the line and its regular expressions: the
    # file's text (a card number typed into it too) would reach the logs unmasked. What it could not read is
    # raised below, in one line, as a SettlementFormatError.
    logging.getLogger("mt940").setLevel(logging.CRITICAL)
    number = 0
    for message in _mt940_messages(stream):
        transactions = mt940.models.Transactions()
        try:
            transactions.parse(message)
        except Exception as error:  # the package raises plain exceptions of several kinds
            raise SettlementFormatError(f"{source}: unreadable statement: {_first_line(error)}") from error
        statement = transactions.data.get("transaction_reference", "")
        for transaction in transactions:
            number += 1
            data = transaction.data
            amount = data["amount"]
            currency = str(amount.currency).upper()
            value: Decimal = amount.amount
            where = f"{source} line {number}"
            status = str(data.get("status", ""))
            when = data.get("entry_date") or data.get("date")
            texts = [
                str(data.get("bank_reference") or ""),
                str(data.get("customer_reference") or ""),
                str(data.get("extra_details") or ""),
                str(data.get("transaction_details") or "").replace("\n", " "),
            ]
            yield BankLine(
                source=source,
                line_no=number,
                line_id=f"{statement}:{texts[0] or number}",
                direction=Direction.CREDIT if status in ("C", "RD") else Direction.DEBIT,
                amount=abs(decimal_to_minor(format(value, "f"), currency, where=where)),
                currency=currency,
                booked_on=date(when.year, when.month, when.day) if isinstance(when, date) else None,
                text=" ".join(part.strip() for part in texts if part and part.strip() and part != "NONREF"),
            )


# ---------------------------------------------------------------------------------------------- BAI2

# BAI2 funds types: how many availability fields follow the funds type in a 16 record.
_FUNDS_FIELDS = {"S": 3, "V": 2}


def _bai2_date(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%y%m%d").date() if text else None
    except ValueError:
        return None


def _bai2_lines(stream: TextIO) -> Iterator[str]:
    for raw in stream:
        line = raw.strip()
        if line:
            yield line


@masks_bank_card_data
def parse_bai2(stream: TextIO, *, source: str = "bai2") -> Iterator[BankLine]:
    """Transaction details (``16`` records, with their ``88`` continuations) of a BAI2 file. Type codes
    100-399 are credits, 400-699 debits; amounts are minor units of the account's (or group's) currency.

    Raises:
        SettlementFormatError: a 16 record outside an account, or an amount that is not an integer.
    """
    from bai2.constants import RecordCode
    from bai2.helpers import record_generator

    group_currency = "USD"  # BAI2's default when the group header leaves the currency out
    group_date: date | None = None
    currency: str | None = None
    number = 0
    lines = _bai2_lines(stream)
    first = next(lines, None)
    if first is None:
        return  # an empty file: no records (the bai2 package fails on one)
    records = record_generator(itertools.chain([first], lines))
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except Exception as error:  # the package raises plain exceptions of several kinds
            raise SettlementFormatError(f"{source}: unreadable BAI2 record: {_first_line(error)}") from error
        fields = [value.strip() for value in record.fields]
        if record.code is RecordCode.group_header:
            group_currency = (fields[5] if len(fields) > 5 and fields[5] else "USD").upper()
            group_date = _bai2_date(fields[3] if len(fields) > 3 else "")
        elif record.code is RecordCode.account_identifier:
            currency = (fields[1] if len(fields) > 1 and fields[1] else group_currency).upper()
        elif record.code is RecordCode.account_trailer:
            currency = None
        elif record.code is RecordCode.transaction_detail:
            number += 1
            where = f"{source} record {number}"
            if currency is None:
                raise SettlementFormatError(f"{where}: transaction detail outside an account")
            currency_exponent(currency, where=where)
            type_code, amount_text, funds = fields[0], fields[1], fields[2] if len(fields) > 2 else ""
            if not ascii_digits(amount_text) or not ascii_digits(type_code):
                raise SettlementFormatError(f"{where}: {amount_text!r} / {type_code!r} is not an amount / type code")
            amount = bounded_minor(int(amount_text), amount_text, where=where)
            rest = fields[3:]
            if funds == "D":
                count = int(rest[0]) if rest and ascii_digits(rest[0]) else 0
                rest = rest[1 + 2 * count :]
            else:
                rest = rest[_FUNDS_FIELDS.get(funds, 0) :]
            bank_ref = rest[0] if rest else ""
            customer_ref = rest[1] if len(rest) > 1 else ""
            text = ",".join(rest[2:])
            yield BankLine(
                source=source,
                line_no=number,
                line_id=bank_ref or f"{source}-{number}",
                direction=Direction.CREDIT if int(type_code) < 400 else Direction.DEBIT,
                amount=amount,
                currency=currency,
                booked_on=group_date,
                text=" ".join(part for part in (bank_ref, customer_ref, text) if part),
            )


BANK_FORMATS = ("camt053", "camt054", "mt940", "bai2")
