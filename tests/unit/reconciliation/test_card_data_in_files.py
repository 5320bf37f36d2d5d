"""Card data in a settlement or bank file never gets past its parser: every text field of every line is
masked as it is read (a file is reconciled, never refused for it), whichever parser and path read it, and the
report never hands a spreadsheet a formula from a file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from refundflow import carddata
from refundflow.reconciliation import columnar as columnar_module
from refundflow.reconciliation.apply import Applied, Outcome
from refundflow.reconciliation.bank import parse_bai2, parse_camt, parse_mt940
from refundflow.reconciliation.columnar import frame_lines, read_frames
from refundflow.reconciliation.engine import Finding, MatchClass
from refundflow.reconciliation.providers import SETTLEMENT_PARSERS, parse_stripe
from refundflow.reconciliation.records import BankLine, SettlementFormatError, SettlementLine
from refundflow.reconciliation.report import CsvReport

FIXTURES = Path(__file__).parents[2] / "fixtures" / "settlement"
VISA, MASTERCARD, AMEX = "4111111111111111", "5555 5555 5555 4444", "3782-822463-10005"
STRIPE_HEADER = (
    "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,"
    "description,automatic_payout_id,automatic_payout_effective_at\n"
)


def no_card_data(*texts: str | None) -> bool:
    return all(carddata.find_in_text(text or "") is None for text in texts)


def settlement_texts(line: SettlementLine) -> tuple[str | None, ...]:
    return line.line_id, line.reference, line.description, line.payout_id


def stripe_report() -> str:
    rows = [
        f"{VISA},2026-11-28 10:00:00,2026-11-30 00:00:00,eur,-25.00,0.00,-25.00,refund,re_1,,po_1,",
        f"txn_2,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,-10.00,0.00,-10.00,refund,{MASTERCARD},,po_1,",
        "txn_3,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,-10.00,0.00,-10.00,refund,re_3 c\u0131d 123,,po_1,",
        f"txn_4,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,-10.00,0.00,-10.00,refund,re_4,,{AMEX},",
        # a second line whose id is another card with the same last four digits: the ids must stay apart
        "4000000000001111,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,-5.00,0.00,-5.00,refund,re_5,,po_1,",
        "5500000000001111,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,-5.00,0.00,-5.00,refund,re_6,,po_1,",
        "txn_7,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,-7.00,0.00,-7.00,refund,re_7,,po_1,",
    ]
    return STRIPE_HEADER + "\n".join(rows) + "\n"


def test_card_numbers_and_security_codes_in_a_stripe_report_are_masked_on_both_paths(monkeypatch):
    text = stripe_report()
    per_line = list(parse_stripe(io.StringIO(text, newline="")))

    # the native block path alone (the per-line fallback would fail the test)
    def no_fallback(*args, **kwargs):
        raise AssertionError("the block was not read natively")

    monkeypatch.setattr(columnar_module, "parse_stripe", no_fallback)
    frames = list(read_frames("stripe", io.BytesIO(text.encode()), block_bytes=1 << 20))
    native = [line for frame in frames for line in frame_lines(frame)]

    assert [line._replace(description="") for line in per_line] == native
    for line in native:
        assert no_card_data(*settlement_texts(line)), line
    by_reference = {line.line_no: line for line in native}
    assert by_reference[2].line_id == "[card ****1111] (line 2)"
    assert by_reference[3].reference == "[card ****4444]"
    assert by_reference[4].reference == "re_3 [card security code]"
    assert by_reference[5].payout_id == "[card ****0005]"
    # two ids masked to the same last four digits stay two lines
    assert by_reference[6].line_id != by_reference[7].line_id
    # a line with none is untouched
    assert (by_reference[8].line_id, by_reference[8].reference, by_reference[8].payout_id) == ("txn_7", "re_7", "po_1")


@pytest.mark.parametrize(
    ("source", "fixture", "plant", "kept"),
    [
        # a field the parser does not keep: the line is as if it were not there
        ("adyen", "adyen_settlement_details.csv", ("order-5512", f"order {VISA}"), False),
        ("adyen", "adyen_settlement_details.csv", ("8826178914091234", "4111111111111111"), True),
        ("paypal", "paypal_settlement_STL-20261130.01.009.CSV", ("INV-5512", f"INV {MASTERCARD}"), False),
        ("paypal", "paypal_settlement_STL-20261130.01.009.CSV", ("8PT597110X687430L", MASTERCARD), True),
        ("generic", "generic_provider.csv", ("mol_rf_7Hk2", f"cvv 123 {AMEX}"), True),
        ("generic", "generic_provider.csv", ("L-0002", VISA), True),
    ],
)
def test_card_data_in_any_provider_report_is_masked(source, fixture, plant, kept):
    original, planted = plant
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    assert original in text
    lines = list(SETTLEMENT_PARSERS[source](io.StringIO(text.replace(original, planted, 1), newline="")))
    clean = list(SETTLEMENT_PARSERS[source](io.StringIO(text, newline="")))
    assert len(lines) == len(clean)
    for line in lines:
        assert no_card_data(*settlement_texts(line)), line
    changed = [line for line, before in zip(lines, clean, strict=True) if line != before]
    assert bool(changed) is kept  # read into a field and masked there, or not read at all


@pytest.mark.parametrize(
    ("parse", "fixture", "plant", "binary"),
    [
        (
            parse_camt,
            "bank_camt053.xml",
            ("STRIPE PAYOUT po_1QbZ9", f"STRIPE PAYOUT po_1QbZ9 card {VISA} cvc 123"),
            True,
        ),
        (parse_camt, "bank_camt053.xml", ("2026120100001", "4111111111111111"), True),
        (parse_mt940, "bank_mt940.sta", ("PAYPAL TRANSFER 2HN25221RY3498712", f"PAYPAL TRANSFER {MASTERCARD}"), False),
        (parse_bai2, "bank_bai2.txt", ("BR2612010001", "5555555555554444"), False),
    ],
)
def test_card_data_in_a_bank_statement_is_masked(parse, fixture, plant, binary):
    original, planted = plant
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    assert original in text
    body = text.replace(original, planted, 1)
    lines: list[BankLine] = list(parse(io.BytesIO(body.encode()) if binary else io.StringIO(body)))
    for line in lines:
        assert no_card_data(line.line_id, line.text), line
    assert any("[card ****" in line.line_id + line.text for line in lines)
    # the payout reference beside it is still found in the text
    if "po_1QbZ9" in planted:
        assert any("po_1QbZ9" in line.text for line in lines)


def test_the_report_never_hands_a_spreadsheet_a_formula():
    finding = Finding(
        key='stripe#=HYPERLINK("https://evil.example","x")',
        match_class=MatchClass.UNEXPECTED_IN_SETTLEMENT,
        reference="+cmd|' /C calc'!A0",
        amount=100,
        currency="EUR",
        difference=-3,
        line_no=2,
        detail="@SUM(1+1)",
    )
    out = io.StringIO()
    CsvReport(out).write([Applied(finding, Outcome.RECORDED)])
    row = out.getvalue().splitlines()[1]
    assert '"stripe#=HYPERLINK' in row  # not at the start of its cell: left as it is
    assert "'+cmd|" in row
    assert "'@SUM(1+1)" in row
    assert ",-3," in row  # our own numbers are numbers


@pytest.mark.parametrize(
    ("parse", "body", "says"),
    [
        (parse_camt, b'<Document><Stmt><Ntry><Amt Ccy="EUR">1.00</Amt>', "not a well-formed XML document"),
        (parse_camt, b"a statement, but not XML", "not a well-formed XML document"),
        (parse_camt, b"", "not a well-formed XML document"),
        (parse_bai2, "zz,not a record\n", "unreadable BAI2 record"),
        (parse_mt940, f":20:X\n:61:not a line {VISA}\n:86:text\n", "unreadable statement"),
    ],
)
def test_a_bank_file_its_parser_cannot_read_is_one_line_naming_it_never_a_library_error(parse, body, says, caplog):
    stream = io.BytesIO(body) if isinstance(body, bytes) else io.StringIO(body)
    with caplog.at_level("DEBUG"), pytest.raises(SettlementFormatError) as refused:
        list(parse(stream))
    message = str(refused.value)
    assert says in message
    assert "\n" not in message
    assert len(message) < 400
    assert no_card_data(message)
    # the package's own logging of the line it could not read stays out of the logs
    assert no_card_data(*(record.getMessage() for record in caplog.records))


def test_an_empty_bai2_file_has_no_lines():
    assert list(parse_bai2(io.StringIO(""))) == []


@pytest.mark.parametrize("amount", [MASTERCARD, f"{AMEX}.00", f"-{VISA[:4]} {VISA[4:]}"])
def test_an_amount_that_is_a_card_number_is_refused_without_repeating_it(amount):
    text = STRIPE_HEADER + f"txn_1,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,{amount},0.00,-1.00,refund,re_1,,po_1,\n"
    with pytest.raises(SettlementFormatError) as refused:
        list(parse_stripe(io.StringIO(text, newline="")))
    assert "stripe line 2" in str(refused.value)
    assert no_card_data(str(refused.value))


@pytest.mark.parametrize(
    "amount",
    [
        "-99999999999999999999999.00",  # beyond 64 bits
        "-92233720368547758.08",  # 64 bits' smallest: its magnitude is not one
        "-10000000000000.00",  # a quadrillion minor units
        "-\uff11\uff12.00",  # full-width digits
        "-1\u00b2.00",  # a superscript: a digit to str.isdigit, not to int()
    ],
)
def test_an_amount_no_ledger_holds_is_refused_on_both_paths_with_its_line(amount):
    text = STRIPE_HEADER + f"txn_1,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,{amount},0.00,{amount},refund,re_1,,,\n"
    for read in (
        lambda: list(parse_stripe(io.StringIO(text, newline=""))),
        lambda: list(read_frames("stripe", io.BytesIO(text.encode()))),
    ):
        with pytest.raises(SettlementFormatError, match="stripe line 2"):
            read()


def test_the_largest_amount_a_line_may_carry_reads_the_same_on_both_paths():
    amount = "-9999999999999.99"
    text = STRIPE_HEADER + f"txn_1,2026-11-28 10:00:00,2026-11-30 00:00:00,eur,{amount},0.00,{amount},refund,re_1,,,\n"
    [line] = list(parse_stripe(io.StringIO(text, newline="")))
    [frame] = list(read_frames("stripe", io.BytesIO(text.encode())))
    assert (line.amount, line.net) == (999_999_999_999_999, -999_999_999_999_999)
    assert frame_lines(frame) == [line._replace(description="")]


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_bai2, "01,x\n02,y,z,1,261201,,USD\n03,ACCT,USD\n16,165,10000000000000000,Z,REF1,,TEXT/\n"),
        (parse_bai2, "01,x\n02,y,z,1,261201,,USD\n03,ACCT,USD\n16,165,1\u00b2,Z,REF1,,TEXT/\n"),
    ],
)
def test_a_bank_amount_no_ledger_holds_is_refused(parse, body):
    with pytest.raises(SettlementFormatError):
        list(parse(io.StringIO(body)))
