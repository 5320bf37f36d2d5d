"""Settlement and bank parsers on the samples written from the formats' public specifications."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow.money import Money
from refundflow.reconciliation.bank import parse_bai2, parse_camt, parse_mt940
from refundflow.reconciliation.providers import (
    ColumnMapping,
    generic_parser,
    parse_adyen,
    parse_paypal,
    parse_stripe,
)
from refundflow.reconciliation.records import (
    Direction,
    LineKind,
    SettlementFormatError,
    decimal_to_minor,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "settlement"


def _text(name: str) -> io.TextIOWrapper:
    return open(FIXTURES / name, newline="", encoding="utf-8")


def test_stripe_report_lines_carry_minor_units_kinds_and_payout():
    # GIVEN the payout reconciliation report
    with _text("stripe_payout_reconciliation.csv") as stream:
        # WHEN it is parsed
        lines = list(parse_stripe(stream))
    # THEN refunds are magnitudes in minor units, nets are signed and every line names its payout
    by_id = {line.line_id: line for line in lines}
    refund = by_id["txn_3QaA2"]
    assert (refund.kind, refund.reference, refund.amount, refund.currency, refund.net) == (
        LineKind.REFUND,
        "re_3QaB7",
        2500,
        "EUR",
        -2500,
    )
    assert refund.payout_id == "po_1QbZ9"
    assert refund.booked_on == date(2026, 11, 28)
    assert by_id["txn_3QaA5"].kind is LineKind.REFUND_FAILURE
    assert (by_id["txn_3QaA4"].kind, by_id["txn_3QaA4"].fee) == (LineKind.FEE, 150)
    payout = by_id["txn_3QaA6"]
    assert (payout.kind, payout.reference, payout.amount) == (LineKind.PAYOUT, "po_1QbZ9", 199646)
    assert sum(line.net for line in lines if line.payout_id == "po_1QbZ9") == payout.amount


def test_adyen_refund_is_named_by_its_modification_reference_and_lines_add_up_to_the_batch():
    with _text("adyen_settlement_details.csv") as stream:
        lines = list(parse_adyen(stream))
    refunds = [line for line in lines if line.kind is LineKind.REFUND]
    assert [(line.reference, line.amount, line.currency) for line in refunds] == [
        ("8826178914091234", 2500, "EUR"),
        ("8826178914095678", 1000, "EUR"),
    ]
    reversed_refund = next(line for line in lines if line.kind is LineKind.REFUND_FAILURE)
    assert reversed_refund.reference == "8826178914095678"
    fee = next(line for line in lines if line.kind is LineKind.FEE)
    assert (fee.amount, fee.fee, fee.net) == (0, 75, -75)
    payout = next(line for line in lines if line.kind is LineKind.PAYOUT)
    assert (payout.reference, payout.amount) == ("AcmeShopEU batch 42", 9195)
    assert sum(line.net for line in lines if line.kind is not LineKind.PAYOUT) == payout.amount
    assert len({line.line_id for line in lines}) == len(lines)


def test_paypal_stl_reads_body_records_by_their_section_header():
    with _text("paypal_settlement_STL-20261130.01.009.CSV") as stream:
        lines = list(parse_paypal(stream))
    assert [line.kind for line in lines] == [LineKind.CHARGE, LineKind.REFUND, LineKind.REFUND, LineKind.PAYOUT]
    payment, refund, _, withdrawal = lines
    assert (payment.amount, payment.fee, payment.net) == (12000, 378, 11622)
    assert (refund.reference, refund.amount, refund.currency, refund.net) == ("1JU08902781691411", 2500, "USD", -2500)
    assert withdrawal.payout_id == "2HN25221RY3498712"
    assert sum(line.net for line in lines[:3]) == withdrawal.amount


def test_paypal_t1107_is_our_refund_as_a_debit_and_a_refund_received_as_a_credit():
    # PayPal's T-code reference: CR or DR is the money's direction relative to the report's subject
    stream = io.StringIO(
        '"CH","Transaction ID","PayPal Reference ID","Transaction Event Code","Transaction Debit or Credit",'
        '"Gross Transaction Amount","Gross Transaction Currency"\n'
        '"SB","1JU08902781691411","8PT597110X687430L","T1107","DR",2500,"USD"\n'
        '"SB","9AB","7ZZ","T1107","CR",2500,"USD"\n'
    )
    ours, received = parse_paypal(stream)
    assert (ours.kind, ours.reference, ours.net) == (LineKind.REFUND, "1JU08902781691411", -2500)
    assert (received.kind, received.reference, received.net) == (LineKind.OTHER, "9AB", 2500)


def test_paypal_body_before_its_header_is_refused():
    with pytest.raises(SettlementFormatError, match="before its CH"):
        list(parse_paypal(io.StringIO('"SB","X","T1107","DR",1,"USD"\n')))


def test_generic_mapping_reads_each_currency_with_its_exponent():
    with _text("generic_provider.csv") as stream:
        lines = list(generic_parser()(stream))
    assert [(line.reference, line.amount, line.currency) for line in lines[:3]] == [
        ("mol_rf_7Hk2", 1500, "EUR"),
        ("mol_rf_9Zt1", 1000, "JPY"),
        ("mol_rf_3Kw8", 1250, "KWD"),
    ]
    assert lines[0].net == -1525


def test_generic_mapping_in_minor_units_with_own_column_names():
    mapping = ColumnMapping(
        line_id="Id",
        reference="Ref",
        amount="Cents",
        currency="Ccy",
        kind="What",
        kinds={"RF": "refund"},
        amount_format="minor",
    )
    (line,) = generic_parser(mapping)(io.StringIO("Id,Ref,Cents,Ccy,What\n7,rf_1,-1999,eur,RF\n"))
    assert (line.kind, line.amount, line.currency) == (LineKind.REFUND, 1999, "EUR")


def test_missing_column_is_named():
    with pytest.raises(SettlementFormatError, match="currency"):
        list(parse_stripe(io.StringIO("balance_transaction_id,reporting_category,source_id,gross\nx,refund,re,1\n")))


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("-10.00", "EUR", -1000),
        ("1,234.5", "EUR", 123450),
        ("1000", "JPY", 1000),
        ("0.125", "KWD", 125),
        ("+7.10", "USD", 710),
    ],
)
def test_decimal_strings_convert_exactly(text, currency, minor):
    assert decimal_to_minor(text, currency, where="t") == minor


@pytest.mark.parametrize(
    ("text", "currency"), [("1.005", "EUR"), ("1.5", "JPY"), ("1e3", "EUR"), ("", "EUR"), ("1.0", "XXX")]
)
def test_inexact_or_malformed_amounts_are_refused(text, currency):
    with pytest.raises(SettlementFormatError):
        decimal_to_minor(text, currency, where="t")


@given(st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1), st.sampled_from(["JPY", "EUR", "KWD", "CLF"]))
def test_decimal_conversion_agrees_with_money(minor, currency):
    text = Money.of(abs(minor), currency).to_decimal_string()
    assert decimal_to_minor(("-" if minor < 0 else "") + text, currency, where="t") == minor


def test_camt053_yields_booked_entries_with_remittance_text():
    with open(FIXTURES / "bank_camt053.xml", "rb") as stream:
        lines = list(parse_camt(stream))
    assert [(line.amount, line.direction) for line in lines] == [
        (199646, Direction.CREDIT),
        (9190, Direction.CREDIT),
        (51200, Direction.CREDIT),
    ]  # the pending (PDNG) entry is left out
    assert "po_1QbZ9" in lines[0].text
    assert "AcmeShopEU batch 42" in lines[1].text
    assert lines[0].booked_on == date(2026, 12, 1)


def test_camt054_debit_notification_is_read_by_the_same_parser():
    with open(FIXTURES / "bank_camt054.xml", "rb") as stream:
        (line,) = parse_camt(stream)
    assert (line.direction, line.amount, line.currency, line.line_id) == (Direction.DEBIT, 25000, "EUR", "NTF-7-0001")
    assert "RF-REFUND-0001" in line.text


def test_camt_does_not_resolve_external_entities():
    hostile = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Document><Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><AddtlNtryInf>&x;</AddtlNtryInf>'
        b"</Ntry></Document>"
    )
    lines = list(parse_camt(io.BytesIO(hostile)))
    assert "root:" not in "".join(line.text for line in lines)


def test_mt940_statement_lines_with_their_information():
    with _text("bank_mt940.sta") as stream:
        lines = list(parse_mt940(stream))
    assert [(line.direction, line.amount, line.currency) for line in lines] == [
        (Direction.CREDIT, 4123, "USD"),
        (Direction.DEBIT, 15000, "USD"),
    ]
    assert "2HN25221RY3498712" in lines[0].text
    assert type(lines[0].booked_on) is date


def test_mt940_messages_are_parsed_one_at_a_time():
    message = (FIXTURES / "bank_mt940.sta").read_text(encoding="utf-8")
    lines = list(parse_mt940(io.StringIO(message * 3)))
    assert len(lines) == 6
    assert len({line.line_id for line in lines}) == 2


def test_bai2_details_with_continuations_and_funds_type_fields():
    with _text("bank_bai2.txt") as stream:
        lines = list(parse_bai2(stream))
    assert [(line.direction, line.amount, line.currency, line.line_id) for line in lines] == [
        (Direction.CREDIT, 4123, "USD", "BR2612010001"),
        (Direction.DEBIT, 15000, "USD", "BR2612010002"),
    ]
    assert "SETTLEMENT 2026-11-30" in lines[0].text
    assert lines[0].booked_on == date(2026, 12, 1)


def _big_stripe(rows: int) -> Iterator[str]:
    yield "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,automatic_payout_id\n"
    for i in range(rows):
        yield f"txn_{i},2026-11-28 10:00:00,eur,-{i % 1000}.25,0.00,-{i % 1000}.25,refund,re_{i},po_1\n"


class _LineStream(io.TextIOBase):
    """A text stream produced on demand: the file never exists in memory as a whole."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def __iter__(self) -> _LineStream:
        return self

    def __next__(self) -> str:
        return next(self._lines)


def test_parsing_streams_in_constant_memory():
    # GIVEN a 50,000-line report produced on demand
    tracemalloc.start()
    try:
        # WHEN it is parsed and the lines are consumed one by one
        total = sum(line.amount for line in parse_stripe(_LineStream(_big_stripe(50_000))))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # THEN memory stays far below what holding the lines would take (~200 bytes a line)
    assert total > 0
    assert peak < 2_000_000


amounts = st.lists(
    st.tuples(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(["EUR", "JPY", "KWD", "USD"])),
    min_size=1,
    max_size=20,
)


@given(amounts)
def test_stripe_amounts_read_back_exactly_in_every_exponent(rows):
    # GIVEN a report whose gross and net are written as Stripe writes them (major units, the currency's decimals)
    lines = ["balance_transaction_id,reporting_category,source_id,gross,fee,net,currency"]
    for number, (minor, currency) in enumerate(rows):
        text = ("-" if minor < 0 else "") + Money.of(abs(minor), currency).to_decimal_string()
        lines.append(f"txn_{number},refund,re_{number},{text},0,{text},{currency.lower()}")
    # WHEN parsed
    parsed = list(parse_stripe(io.StringIO("\n".join(lines) + "\n")))
    # THEN every amount is the integer it was, in its own currency
    assert [(line.net, line.amount, line.currency) for line in parsed] == [
        (minor, abs(minor), currency) for minor, currency in rows
    ]


@given(amounts)
def test_paypal_unsigned_minor_units_take_their_sign_from_the_direction(rows):
    header = (
        '"CH","Transaction ID","Transaction Event Code","Transaction Debit or Credit","Gross Transaction Amount",'
        '"Gross Transaction Currency"'
    )
    body = [
        f'"SB","T{number}","T0006","{"CR" if minor >= 0 else "DR"}",{abs(minor)},"{currency}"'
        for number, (minor, currency) in enumerate(rows)
    ]
    parsed = list(parse_paypal(io.StringIO("\n".join([header, *body]) + "\n")))
    assert [(line.net, line.currency) for line in parsed] == rows


_SHAPES = st.sampled_from(
    ["plain", "trailing_zero", "padded_currency", "dashboard_kind", "empty_fee", "with_fee", "quoted", "blank"]
)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=-(10**9), max_value=10**9), st.sampled_from(["EUR", "JPY", "KWD"]), _SHAPES),
        min_size=1,
        max_size=700,
    )
)
def test_stripe_reads_plain_and_unusual_rows_alike_across_chunks(rows):
    # GIVEN a report longer than a parsing chunk, mixing plain rows (read column by column, some with a fee)
    # with shapes only the row-by-row rules read: extra zero decimals, padded currency, the Dashboard's
    # "Refund", empty fee and net, a quoted description with a comma (from there on csv quoting applies),
    # blank lines
    text = ["balance_transaction_id,reporting_category,source_id,gross,fee,net,currency,description"]
    expected = []
    for number, (minor, currency, shape) in enumerate(rows):
        amount = ("-" if minor < 0 else "") + Money.of(abs(minor), currency).to_decimal_string()
        if shape == "trailing_zero":
            amount += "0" if "." in amount else ".0"
        fee_minor = 1 if shape == "with_fee" else 0
        fee = "" if shape == "empty_fee" else Money.of(fee_minor, currency).to_decimal_string()
        net_minor = minor - fee_minor
        net = ("-" if net_minor < 0 else "") + Money.of(abs(net_minor), currency).to_decimal_string()
        net = "" if shape == "empty_fee" else (net if shape == "with_fee" else amount)
        code = f" {currency.lower()} " if shape == "padded_currency" else currency.lower()
        kind = "Refund" if shape == "dashboard_kind" else "refund"
        description = '"a, b"' if shape == "quoted" else f"d{number}"
        if shape == "blank":
            text.append("")
        text.append(f"txn_{number},{kind},re_{number},{amount},{fee},{net},{code},{description}")
        parsed_description = "a, b" if shape == "quoted" else f"d{number}"
        expected.append(
            (
                len(text),
                f"txn_{number}",
                LineKind.REFUND,
                abs(minor),
                currency,
                fee_minor,
                net_minor,
                parsed_description,
            )
        )
    # WHEN parsed
    parsed = list(parse_stripe(io.StringIO("\n".join(text) + "\n")))
    # THEN every line is what the row says, with its own line number
    assert [
        (line.line_no, line.line_id, line.kind, line.amount, line.currency, line.fee, line.net, line.description)
        for line in parsed
    ] == expected


def test_stripe_bad_amount_after_plain_chunks_names_its_line():
    plain = [f"txn_{n},2026-11-28 10:00:00,eur,-1.25,0.00,-1.25,refund,re_{n},po_1" for n in range(600)]
    # GIVEN 600 plain lines (more than two parsing chunks) and then an amount that is not a decimal
    header = next(_big_stripe(0)).rstrip("\n")
    bad = "txn_x,2026-11-28 10:00:00,eur,-1.2x,0.00,-1.20,refund,re_x,po_1"
    text = "\n".join([header, *plain, bad])
    # THEN the error names the file's line 602
    with pytest.raises(SettlementFormatError, match="stripe line 602"):
        list(parse_stripe(io.StringIO(text + "\n")))


def test_stripe_plain_chunks_with_fees_and_currencies_read_exactly():
    # GIVEN 700 plain lines (read column by column): fees on every third, EUR and USD, one payout in five
    header = (
        "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,automatic_payout_id"
    )
    text, expected = [header], []
    for n in range(700):
        gross, fee = -(n * 37 + 5), (n % 300) if n % 3 == 0 else 0
        currency = "usd" if n % 2 else "eur"
        payout = f"po_{n % 4}" if n % 5 else ""
        text.append(
            f"txn_{n},2026-11-{1 + n % 28:02d} 10:00:00,{currency},{_decimal(gross)},{_decimal(fee)},"
            f"{_decimal(gross - fee)},refund,re_{n},{payout}"
        )
        expected.append(
            (n + 2, abs(gross), currency.upper(), fee, gross - fee, date(2026, 11, 1 + n % 28), payout or None)
        )
    # WHEN parsed
    parsed = list(parse_stripe(io.StringIO("\n".join(text) + "\n")))
    # THEN each line has its own amounts, fee, net, currency, day and payout
    assert [
        (line.line_no, line.amount, line.currency, line.fee, line.net, line.booked_on, line.payout_id)
        for line in parsed
    ] == expected


def _decimal(minor: int) -> str:
    return f"{'-' if minor < 0 else ''}{abs(minor) // 100}.{abs(minor) % 100:02d}"


def test_stripe_row_shorter_than_its_header_is_refused_naming_its_line():
    # GIVEN a plain Stripe report whose third line lost its last fields (a truncated export)
    header = next(_big_stripe(0)).rstrip("\n")
    plain = "txn_1,2026-11-28 10:00:00,eur,-1.25,0.00,-1.25,refund,re_1,po_1"
    short = "txn_2,2026-11-28 10:00:00,eur,-1.25"
    # WHEN parsed THEN it is a format error naming the file's line, not a crash of the parser
    with pytest.raises(SettlementFormatError, match="stripe line 3: 4 fields"):
        list(parse_stripe(io.StringIO("\n".join([header, plain, short]) + "\n")))
