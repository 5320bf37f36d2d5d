"""The columnar engine gives exactly what the per-line parser and matcher give: same lines, same findings,
same state, whatever the blocks' boundaries and shapes."""

from __future__ import annotations

import io
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow.reconciliation import columnar as columnar_module
from refundflow.reconciliation.columnar import (
    ColumnarMatcher,
    RefundIndex,
    frame_lines,
    lines_frame,
    read_frames,
    refunds_frame,
)
from refundflow.reconciliation.engine import ExpectedRefund, SettlementMatcher, matcher_state
from refundflow.reconciliation.providers import SETTLEMENT_PARSERS, parse_stripe
from refundflow.reconciliation.records import LineKind, SettlementFormatError, SettlementLine

FIXTURES = Path(__file__).parents[2] / "fixtures" / "settlement"
HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,description,"
    "automatic_payout_id"
)


def per_line(text: str) -> list[SettlementLine]:
    return [line._replace(description="") for line in parse_stripe(io.StringIO(text, newline=""))]


def columnar(text: str, block_bytes: int) -> list[SettlementLine]:
    frames = list(read_frames("stripe", io.BytesIO(text.encode()), block_bytes=block_bytes))
    return [line for frame in frames for line in frame_lines(frame)]


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("stripe", "stripe_payout_reconciliation.csv"),
        ("adyen", "adyen_settlement_details.csv"),
        ("paypal", "paypal_settlement_STL-20261130.01.009.CSV"),
        ("generic", "generic_provider.csv"),
    ],
)
def test_every_provider_fixture_reads_the_same_lines(source, name):
    data = (FIXTURES / name).read_bytes()
    expected = [
        line._replace(description="")
        for line in SETTLEMENT_PARSERS[source](io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""))
    ]
    assert expected
    for block_bytes in (64, 1 << 20):
        frames = list(read_frames(source, io.BytesIO(data), block_bytes=block_bytes))
        assert [line for frame in frames for line in frame_lines(frame)] == expected


row = st.tuples(
    st.sampled_from(["txn_1", "txn_2", "txn_3", " txn_4 "]),
    st.sampled_from(["2026-11-28 10:00:00", "2026/11/29", "", "2026-02-30"]),
    st.sampled_from(["eur", "EUR", " usd", "jpy"]),
    st.sampled_from(["-25.00", "10.50", "1000", "-3.5", "1,234.50", "0.00", "7"]),
    st.sampled_from(["0.00", "", "0.30", "1"]),
    st.sampled_from(["", "-25.00", "9.70"]),
    st.sampled_from(["refund", "charge", "fee", "payout", "refund_failure", " Refund ", "adjustment"]),
    st.sampled_from(["re_1", "re_2", " ch_1", "po_1"]),
    st.sampled_from(["", "plain", '"quoted, with comma"', '"two\nlines"']),
    st.sampled_from(["po_1", "", " po_2 "]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(row, max_size=25), st.sampled_from([1, 40, 300, 1 << 16]))
def test_generated_stripe_reports_read_the_same_as_line_by_line(rows, block_bytes):
    # GIVEN reports mixing plain blocks with quotes, blank lines, odd amounts, currencies and dates
    text = HEADER + "\n" + "".join(",".join(cells) + "\n" for cells in rows)
    # WHEN both readers read it THEN they give the same lines, or both refuse it with the same error
    try:
        expected = per_line(text)
    except SettlementFormatError as error:
        with pytest.raises(SettlementFormatError, match=str(error).split(":")[0]):
            columnar(text, block_bytes)
        return
    assert columnar(text, block_bytes) == expected


def test_a_plain_report_is_read_natively_in_blocks_with_its_line_numbers(monkeypatch):
    # the per-line parser is not used for plain blocks
    monkeypatch.setattr("refundflow.reconciliation.columnar.parse_stripe", None)
    body = "".join(
        f"txn_{n},2026-11-28 10:00:00,eur,-{n}.00,0.00,-{n}.00,refund,re_{n},,po_1\n" for n in range(1, 2001)
    )
    frames = list(read_frames("stripe", io.BytesIO((HEADER + "\n" + body).encode()), block_bytes=4096))
    assert len(frames) > 10
    lines = [line for frame in frames for line in frame_lines(frame)]
    assert [line.line_no for line in lines] == list(range(2, 2002))
    assert lines[-1] == SettlementLine(
        "stripe", 2001, "txn_2000", LineKind.REFUND, "re_2000", 200000, "EUR", 0, -200000, date(2026, 11, 28), "po_1"
    )


def test_a_bad_amount_in_a_plain_block_is_refused_with_its_line():
    body = (
        "t1,2026-11-28,eur,-1.00,0.00,-1.00,refund,re_1,,po_1\nt2,2026-11-28,eur,-1.005,0.00,-1.00,refund,re_2,,po_1\n"
    )
    with pytest.raises(SettlementFormatError, match="stripe line 3"):
        columnar(HEADER + "\n" + body, 1 << 16)


# ---------------------------------------------------------------------------------------------- matching

OURS = [
    ExpectedRefund("r-1", "re_1", 2500, "EUR", "COMPLETED"),
    ExpectedRefund("r-2", "re_2", 1000, "EUR", "COMPLETED"),
    ExpectedRefund("r-3", "re_3", 700, "JPY", "COMPLETED"),
    ExpectedRefund("r-9", "re_9", 50, "EUR", "COMPLETED"),
]

settlement_line = st.builds(
    lambda line_id, kind, reference, amount, currency, fee, payout: SettlementLine(
        "stripe", 0, line_id, kind, reference, amount, currency, fee, -amount - fee, None, payout
    ),
    st.sampled_from([f"t{n}" for n in range(8)]),
    st.sampled_from(list(LineKind)),
    st.sampled_from(["re_1", "re_2", "re_3", "re_x", "po_1", "po_2"]),
    st.sampled_from([0, 700, 1000, 2500, 3000]),
    st.sampled_from(["EUR", "JPY"]),
    st.sampled_from([0, 0, 30]),
    st.sampled_from([None, "po_1", "po_2"]),
)


@contextmanager
def remembering(way: str):
    """A matcher remembering what it saw one of the ways it can (columnar.Remembered)."""
    with pytest.MonkeyPatch.context() as patch:
        if way == "colliding hashes":  # every string has the same hash: only the exact comparison tells them apart
            patch.setattr(
                columnar_module, "_hashes", lambda values: pl.repeat(7, values.len(), dtype=pl.UInt64, eager=True)
            )
        if way == "columns, then a set":  # past 3 remembered strings the rest goes to the set
            patch.setattr(columnar_module, "COLUMNS_UP_TO", 3)
        yield ColumnarMatcher(SettlementMatcher({})) if way == "a shared set" else ColumnarMatcher()


WAYS = ["columns", "a shared set", "colliding hashes", "columns, then a set"]


@pytest.mark.parametrize("way", WAYS)
@settings(max_examples=150, deadline=None)
@given(lines=st.lists(settlement_line, max_size=40), frame_size=st.integers(1, 12))
def test_the_columnar_matcher_finds_what_the_per_line_matcher_finds(way, lines, frame_size):
    lines = [line._replace(line_no=n) for n, line in enumerate(lines, start=2)]
    per_line_matcher = SettlementMatcher({refund.provider_refund_id: refund for refund in OURS})
    expected = [per_line_matcher.match(line) for line in lines]
    expected_tail = per_line_matcher.finish(OURS)

    with remembering(way) as matcher:
        # the refunds a batch looks up: only those its lines name
        found = []
        for start in range(0, len(lines), frame_size):
            frame = lines_frame(lines[start : start + frame_size])
            named = set(frame["reference"].to_list())
            index = RefundIndex(refunds_frame(refund for refund in OURS if refund.provider_refund_id in named))
            found += ColumnarMatcher.findings(matcher.classify(frame, index))
        assert found == expected
        assert matcher.finish(OURS) == expected_tail
        assert matcher_state(matcher.state) == matcher_state(per_line_matcher)
        # the whole-frame form of finish (the benchmark's) says the same
        columns = pl.DataFrame(
            [(r.provider_refund_id, r.refund_id, r.amount, r.currency) for r in OURS],
            schema=["provider_refund_id", "refund_id", "ours_amount", "ours_currency"],
            orient="row",
        )
        assert matcher.finish(columns) == expected_tail
        assert matcher_state(matcher.state) == matcher_state(per_line_matcher)  # finishing changed nothing


@pytest.mark.parametrize("way", WAYS)
def test_what_the_state_was_told_from_outside_counts_as_seen(way):
    # GIVEN a matcher that has seen one frame, and whose state is then told of a line and a refund seen
    # elsewhere (a batch's state absorbed)
    first = lines_frame([SettlementLine("stripe", 2, "t1", LineKind.REFUND, "re_2", 1000, "EUR", 0, -1000, None)])
    second = lines_frame(
        [
            SettlementLine("stripe", 3, "t1", LineKind.REFUND, "re_3", 700, "JPY", 0, -700, None),
            SettlementLine("stripe", 4, "t7", LineKind.REFUND, "re_1", 2500, "EUR", 0, -2500, None),
            SettlementLine("stripe", 5, "t8", LineKind.REFUND, "re_9", 50, "EUR", 0, -50, None),
            SettlementLine("stripe", 6, "t9", LineKind.REFUND, "re_2", 1000, "EUR", 0, -1000, None),
        ]
    )
    index = RefundIndex(refunds_frame(OURS))
    with remembering(way) as matcher:
        matcher.classify(first, index)
        matcher.state.seen_refunds.add("re_1")
        matcher.state.seen_lines.add("stripe#t8")
        classes = [
            (finding.reference, finding.match_class.value)
            for finding in matcher.findings(matcher.classify(second, index))
        ]
    # THEN the line id seen in the first frame, the refund and the line the state was told of are repeats
    assert classes == [
        ("re_3", "duplicate_line"),
        ("re_1", "duplicate_line"),
        ("re_9", "duplicate_line"),
        ("re_2", "duplicate_line"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        "t1,2026-11-28,eur,-1.00,0.00,-1.00,refund,re_1,,po_1\n\nt2,2026-11-28,eur,-2.00,0.00,-2.00,refund,re_2,,po_1\n",
        # a blank line balanced by a line with extra fields: the comma count alone does not see it
        "t1,2026-11-28,eur,-1.00,0.00,-1.00,refund,re_1,x,po_1,,,,,,,,,,\n\nt2,2026-11-28,eur,-2.00,0.00,-2.00,refund,re_2,,po_1\n",
        # blank lines last in the block (polars reads each as a row of empty cells)
        "t1,2026-11-28,eur,-1.00,0.00,-1.00,refund,re_1,,po_1\n\n\n",
        "t1,2026-11-28,eur,-1.00,0.00,-1.00,refund,re_1,,po_1\n\nt2,2026-11-28,eur,-2.00,0.00,-2.00,refund,re_2,,po_1\n\n",
    ],
)
def test_a_blank_line_in_a_plain_block_reads_as_line_by_line(body):
    text = HEADER + "\n" + body
    try:
        expected = per_line(text)
    except SettlementFormatError as error:
        with pytest.raises(SettlementFormatError, match=str(error).split(":")[0]):
            columnar(text, 1 << 16)
        return
    assert columnar(text, 1 << 16) == expected


def test_finish_on_a_frame_counts_refunds_the_state_saw_elsewhere():
    # GIVEN a matcher whose state already knew re_1 as settled (a batch's state absorbed before)
    state = SettlementMatcher({})
    state.seen_refunds.add("re_1")
    matcher = ColumnarMatcher(state)
    frame = lines_frame([SettlementLine("stripe", 2, "t2", LineKind.REFUND, "re_2", 1000, "EUR", 0, -1000, None)])
    matcher.classify(frame, RefundIndex(refunds_frame(OURS)))
    columns = refunds_frame(OURS)
    # THEN neither re_1 nor re_2 is missing, whichever way finish is asked
    missing = {finding.reference for finding in matcher.finish(columns)}
    assert missing == {"re_3", "re_9"}
    assert missing == {finding.reference for finding in matcher.finish(OURS)}
