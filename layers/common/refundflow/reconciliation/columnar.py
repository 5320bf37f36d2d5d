"""The columnar reconciliation engine: settlement lines as polars frames, classified with vectorised joins.

What production runs (the converter, each Distributed Map batch, the CLI) and what the benchmark times:

- :func:`read_frames` reads a settlement file as a stream of frames, one block of about ``block_bytes`` at a
  time (the file never has to fit in memory). A Stripe block of the plain shape (no quotes, one width,
  amounts in the currency's exact decimal shape) is parsed by polars' native CSV reader and converted column
  by column; any other block, and every other provider's report, goes through the exact per-line parsers of
  :mod:`refundflow.reconciliation.providers` (same lines, same errors).
- :class:`ColumnarMatcher` classifies each frame against a frame of our refunds (a hash join on the provider
  refund id) with the rules of :class:`~refundflow.reconciliation.engine.SettlementMatcher`, keeping what it
  must remember across frames (line keys and refund ids seen, payout nets) as polars series. Only the rows
  that must be recorded become :class:`Finding` objects.

``tests/unit/reconciliation/test_columnar.py`` checks both against the per-line parser and matcher.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import polars as pl

from refundflow.money import CURRENCY_EXPONENTS
from refundflow.reconciliation.engine import ExpectedRefund, Finding, MatchClass, SettlementMatcher
from refundflow.reconciliation.providers import (
    _STRIPE_COLUMNS,
    _STRIPE_KINDS,
    SETTLEMENT_PARSERS,
    _columns,
    _date,
    parse_stripe,
)
from refundflow.reconciliation.records import (
    LineKind,
    SettlementFormatError,
    SettlementLine,
    decimal_to_minor,
    mask_card_data,
    mask_line_id,
)

# A block of the file parsed at once: large enough for polars' reader to pay off, small enough that a block
# and its intermediate columns stay a few tens of MiB.
BLOCK_BYTES = 8 << 20
# Lines of a per-line parser (other providers, odd Stripe blocks) gathered into one frame.
FRAME_LINES = 65_536

LINES_SCHEMA: dict[str, Any] = {
    "source": pl.String,
    "line_no": pl.Int64,
    "line_id": pl.String,
    "kind": pl.String,
    "reference": pl.String,
    "amount": pl.Int64,
    "currency": pl.String,
    "fee": pl.Int64,
    "net": pl.Int64,
    "booked_on": pl.Date,
    "payout_id": pl.String,
}
REFUNDS_SCHEMA: dict[str, Any] = {
    "provider_refund_id": pl.String,
    "refund_id": pl.String,
    "ours_amount": pl.Int64,
    "ours_currency": pl.String,
}
_KINDS = {name: kind.value for name, kind in _STRIPE_KINDS.items()}
_DAY = re.compile(r"^[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}")


# ---------------------------------------------------------------------------------------------- frames


def lines_frame(lines: Sequence[SettlementLine]) -> pl.DataFrame:
    """Settlement lines (of any parser) as a frame of :data:`LINES_SCHEMA`."""
    columns = list(zip(*(line[:11] for line in lines), strict=True)) if lines else [() for _ in LINES_SCHEMA]
    data = {name: list(values) for name, values in zip(LINES_SCHEMA, columns, strict=True)}
    data["kind"] = [kind.value for kind in data["kind"]]
    return pl.DataFrame(data, schema=LINES_SCHEMA)


def frame_lines(frame: pl.DataFrame) -> list[SettlementLine]:
    """The frame's rows back as settlement lines (tests, and the rare caller that wants records)."""
    rows = frame.select(list(LINES_SCHEMA)).iter_rows()
    return [
        SettlementLine(source, line_no, line_id, LineKind(kind), reference, amount, currency, fee, net, booked, payout)
        for source, line_no, line_id, kind, reference, amount, currency, fee, net, booked, payout in rows
    ]


def refunds_frame(refunds: Iterable[ExpectedRefund]) -> pl.DataFrame:
    """Our refunds as the right side of the join."""
    rows = [(r.provider_refund_id, r.refund_id, r.amount, r.currency) for r in refunds]
    return pl.DataFrame(rows, schema=REFUNDS_SCHEMA, orient="row")


def read_frames(source: str, binary: IO[bytes], *, block_bytes: int = BLOCK_BYTES) -> Iterator[pl.DataFrame]:
    """The settlement file of ``source`` as frames of :data:`LINES_SCHEMA`, in file order, streamed.

    Raises:
        SettlementFormatError: a missing column, an invalid amount or currency (the per-line parsers' errors).
        UnicodeDecodeError: not UTF-8.
    """
    if source == "stripe":
        yield from _read_ahead(_stripe_frames(binary, block_bytes))
        return
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    yield from _frames_of(SETTLEMENT_PARSERS[source](text))


def _read_ahead(frames: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """``frames``, the next one read and parsed on a second thread while the caller works on this one (polars
    releases the GIL: the two cores each do one). At most two blocks are in memory."""
    with ThreadPoolExecutor(1, thread_name_prefix="settlement-reader") as pool:
        pending = pool.submit(next, frames, None)
        while (frame := pending.result()) is not None:
            pending = pool.submit(next, frames, None)
            yield frame


def _frames_of(lines: Iterable[SettlementLine]) -> Iterator[pl.DataFrame]:
    batch: list[SettlementLine] = []
    for line in lines:
        batch.append(line)
        if len(batch) == FRAME_LINES:
            yield lines_frame(batch)
            batch = []
    if batch:
        yield lines_frame(batch)


def _stripe_frames(binary: IO[bytes], block_bytes: int) -> Iterator[pl.DataFrame]:
    header = binary.readline()
    if header.startswith(b"\xef\xbb\xbf"):
        header = header[3:]
    if not header.strip():
        return
    names = next(csv.reader([header.decode("utf-8")]))
    col = _columns(names, _STRIPE_COLUMNS, ("line_id", "category", "source", "gross", "currency"), where="stripe")
    line_no = 2
    while block := _block(binary, block_bytes):
        frame = _stripe_native(block, col, line_no, len(names))
        if frame is None:
            text = (header + block).decode("utf-8")
            lines = list(parse_stripe(io.StringIO(text, newline=""), first_line_no=line_no))
            rows = sum(1 for _ in csv.reader(io.StringIO(block.decode("utf-8"), newline="")))
            frame = lines_frame(lines)
        else:
            rows = frame.height
        line_no += rows
        if frame.height:
            yield frame


def _block(binary: IO[bytes], size: int) -> bytes:
    """About ``size`` bytes of whole CSV rows: cut after a line end outside any quoted field (the quotes seen
    so far are even: a CSV escapes a quote inside a field by doubling it)."""
    block = binary.read(size)
    if not block:
        return block
    if not block.endswith(b"\n"):
        block += binary.readline()
    while b'"' in block and block.count(b'"') % 2:
        more = binary.readline()
        if not more:
            break
        block += more
    return block


def _stripe_native(block: bytes, col: dict[str, int], line_no: int, width: int) -> pl.DataFrame | None:
    """A plain block parsed natively, or None for the per-line rules (quotes, blank or ragged lines, a gross or
    net amount of another shape, several currency exponents in one block).

    Columns of few distinct values (currency, category, day, payout, fee) are mapped value by value with the
    per-line parser's own functions, so they mean exactly what they mean there; gross and net amounts are
    checked against the currency's plain decimal shape and converted natively."""
    # A blank line needs no search of its own (a two-byte search costs as much as reading the block): polars
    # reads it as a row of empty cells, and an empty gross amount fails the shape check below.
    if b'"' in block or b"\r" in block or b"\0" in block:
        return None
    wanted = sorted(set(col.values()))
    try:
        raw = pl.read_csv(
            block,
            has_header=False,
            infer_schema=False,
            empty_string_is_null=False,
            quote_char=None,
            columns=wanted,
            new_columns=[f"c{i}" for i in range(width)],
        )
    except pl.exceptions.PolarsError:
        return None  # not UTF-8: the per-line parser reports it precisely
    # polars reads every line as a row, a blank one too (as empty cells, which the amount shape check below
    # refuses), pads a short line with empty cells and drops a long line's extra ones without a word: the commas
    # say whether every line had its fields.
    if block.count(b",") != raw.height * (width - 1) or raw.null_count().sum_horizontal().item():
        return None  # a line with another number of fields

    def cell(name: str) -> pl.Expr:
        return pl.col(f"c{col[name]}")

    def distinct(name: str) -> list[str]:
        return raw.get_column(f"c{col[name]}").unique().to_list()

    def mapped(cells: pl.Expr, mapping: dict[str, Any], dtype: pl.DataType) -> pl.Expr:
        """``cells`` through ``mapping`` (every distinct text to its value), the cheapest way that gives the
        same column: one value for all, the texts themselves, or a look-up per cell."""
        values = set(mapping.values())
        if len(values) == 1:
            return pl.lit(values.pop(), dtype=dtype)
        if all(value == text or (value is None and text == "") for text, value in mapping.items()):
            return pl.when(cells != "").then(cells) if "" in mapping and mapping[""] is None else cells
        return cells.replace_strict(mapping, return_dtype=dtype)

    currencies = {text: text.strip().upper() for text in distinct("currency")}
    exponents = {CURRENCY_EXPONENTS.get(code) for code in currencies.values()}
    if len(exponents) != 1 or None in exponents:
        return None
    exponent = exponents.pop()
    assert exponent is not None
    where = "stripe"
    fee: pl.Expr = pl.lit(0, pl.Int64)
    if "fee" in col:  # few distinct fees: each converted once by the per-line rules (errors included)
        code = next(iter(currencies.values()))
        try:
            fees = {text: decimal_to_minor(text, code, where=where) if text else 0 for text in distinct("fee")}
        except SettlementFormatError:
            return None
        fee = mapped(cell("fee"), fees, pl.Int64())
    # At most 15 digits in all: below MAX_MINOR_UNITS (a longer amount, leading zeros too, goes to the per-line
    # rules, which refuse one beyond it), so no cast or sign change can overflow.
    whole = 15 - exponent
    shape = rf"^-?[0-9]{{1,{whole}}}$" if exponent == 0 else rf"^-?[0-9]{{1,{whole}}}\.[0-9]{{{exponent}}}$"
    checks = [cell("gross").str.contains(shape)]
    if "net" in col:
        checks.append((cell("net") == "") | cell("net").str.contains(shape))
    if not raw.select(pl.all_horizontal(checks).all()).item():
        return None

    def minor(text: pl.Expr) -> pl.Expr:
        return (text.str.replace(".", "", literal=True) if exponent else text).cast(pl.Int64)

    gross = minor(cell("gross"))
    net = pl.when(cell("net") == "").then(gross - fee).otherwise(minor(cell("net"))) if "net" in col else gross - fee
    kinds = {
        text: (_STRIPE_KINDS.get(text) or _STRIPE_KINDS.get(text.strip().lower(), LineKind.OTHER)).value
        for text in distinct("category")
    }
    booked: pl.Expr = pl.lit(None, pl.Date)
    if "created" in col:
        day = cell("created").str.slice(0, 10)
        days = {text: _date(text) for text in raw.select(day.unique()).to_series().to_list()}
        booked = mapped(day, days, pl.Date())
    payout: pl.Expr = pl.lit(None, pl.String)
    if "payout" in col:
        payouts = {text: mask_card_data(text.strip()) or None for text in distinct("payout")}
        payout = mapped(cell("payout"), payouts, pl.String())
    try:
        frame = raw.select(
            source=pl.lit("stripe"),
            line_no=pl.int_range(line_no, line_no + raw.height, dtype=pl.Int64),
            line_id=cell("line_id").str.strip_chars(),
            kind=mapped(cell("category"), kinds, pl.String()),
            reference=cell("source").str.strip_chars(),
            amount=gross.abs(),
            currency=mapped(cell("currency"), currencies, pl.String()),
            fee=fee,
            net=net,
            booked_on=booked,
            payout_id=payout,
            suspect=_may_hold_card_data(cell("line_id")) | _may_hold_card_data(cell("source")),
        )
    except pl.exceptions.InvalidOperationError:
        return None  # an amount beyond 64 bits: the per-line parser says which
    return _masked(frame)


# Card data in a text column (records.mask_card_data): a card number is 13 or more digits (of any script) in a
# run that no letter breaks, a security code follows one of these words (in any case: Python's case-insensitive
# match also takes the dotless and dotted i and the long s for i and s, so a cell holding one is looked at too).
# A cell that has neither cannot hold any; the few that may are masked by the exact rules. Two vectorised scans
# instead of a Python call per cell.
_RUN_OF_13_DIGITS = r"\d[^A-Za-z]{11,}\d"
_SECURITY_CODE_WORDS = ["cvv", "cvc", "csc", "cid", "cav2", "security", "\u0131", "\u0130", "\u017f"]


def _may_hold_card_data(cells: pl.Expr) -> pl.Expr:
    return cells.str.contains(_RUN_OF_13_DIGITS) | cells.str.contains_any(
        _SECURITY_CODE_WORDS, ascii_case_insensitive=True
    )


def _masked(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` without its ``suspect`` column, card data masked in the line ids and references it flags."""
    suspect = frame.get_column("suspect")
    frame = frame.drop("suspect")
    if not suspect.any():
        return frame
    rows = suspect.arg_true()
    line_ids = frame.get_column("line_id").gather(rows).to_list()
    line_nos = frame.get_column("line_no").gather(rows).to_list()
    references = frame.get_column("reference").gather(rows).to_list()
    return frame.with_columns(
        frame.get_column("line_id").scatter(rows, list(map(mask_line_id, line_ids, line_nos))),
        frame.get_column("reference").scatter(rows, list(map(mask_card_data, references))),
    )


# ---------------------------------------------------------------------------------------------- matching

_REFUND, _FAILURE = LineKind.REFUND.value, LineKind.REFUND_FAILURE.value
_CHARGE, _FEE, _PAYOUT = LineKind.CHARGE.value, LineKind.FEE.value, LineKind.PAYOUT.value
_DETAILS = {
    MatchClass.UNEXPECTED_IN_SETTLEMENT.value: "no refund of ours has this id",
    MatchClass.AMOUNT_DIFFERS.value: "amount",
    MatchClass.LATE_FAILURE.value: "the provider reversed the refund",
    MatchClass.FEE_ONLY.value: "a fee with no refund or payment",
}
_CLASSES = {match_class.value: match_class for match_class in MatchClass}


CLASS_ENUM = pl.Enum([match_class.value for match_class in MatchClass])


def _class(match_class: MatchClass) -> pl.Expr:
    return pl.lit(match_class.value, dtype=CLASS_ENUM)


# The per-line engine's rules (engine.SettlementMatcher.match), as expressions built once.
_KIND, _AMOUNT, _FEE_COL = pl.col("kind"), pl.col("amount"), pl.col("fee")
_KEY = pl.concat_str(pl.col("source"), pl.lit("#"), pl.col("line_id")).alias("key")
_SETTLES = ((_KIND == _REFUND) & pl.col("dup_line").not_()).alias("settles")
_FIRST_REF = pl.col("settles") & pl.when(pl.col("settles")).then(pl.col("reference")).is_first_distinct()
_IS_REFUND = _KIND == _REFUND
_MATCH_CLASS = (
    pl.when(pl.col("dup_line"))
    .then(_class(MatchClass.DUPLICATE_LINE))
    .when(_IS_REFUND & pl.col("first_ref").not_())
    .then(_class(MatchClass.DUPLICATE_LINE))
    .when(_IS_REFUND & pl.col("refund_id").is_null())
    .then(_class(MatchClass.UNEXPECTED_IN_SETTLEMENT))
    .when(_IS_REFUND & (pl.col("currency") != pl.col("ours_currency")))
    .then(_class(MatchClass.CURRENCY_DIFFERS))
    .when(_IS_REFUND & (pl.col("ours_amount") != _AMOUNT))
    .then(_class(MatchClass.AMOUNT_DIFFERS))
    .when(_IS_REFUND)
    .then(_class(MatchClass.MATCHED))
    .when((_KIND == _CHARGE) & ((_AMOUNT != 0) | (_FEE_COL == 0)))
    .then(_class(MatchClass.NOT_RECONCILED))
    .when(_KIND == _FAILURE)
    .then(_class(MatchClass.LATE_FAILURE))
    .when((_KIND == _FEE) | ((_AMOUNT == 0) & (_FEE_COL != 0)))
    .then(_class(MatchClass.FEE_ONLY))
    .otherwise(_class(MatchClass.NOT_RECONCILED))
    .alias("match_class")
)
_CLASS = pl.col("match_class")
_OUTPUTS = (
    pl.when(_KIND.is_in([_REFUND, _FAILURE])).then(pl.col("refund_id")).alias("refund_id"),
    pl.when(MatchClass.AMOUNT_DIFFERS.value == _CLASS)
    .then(_AMOUNT - pl.col("ours_amount"))
    .otherwise(0)
    .alias("difference"),
    pl.when(MatchClass.FEE_ONLY.value == _CLASS).then(_FEE_COL.abs()).otherwise(_AMOUNT).alias("amount"),
)


def _in_set(values: pl.Series, seen: set[str], *, add: bool = True) -> pl.Series:
    """Which of ``values`` were in ``seen`` (then, with ``add``, adds them all to it)."""
    texts = values.to_list()
    hits = seen.intersection(texts)
    if add:
        seen.update(texts)
    if not hits:
        return pl.repeat(False, values.len(), dtype=pl.Boolean, eager=True)
    return values.is_in(pl.Series(list(hits), dtype=pl.String).implode()).fill_null(False)


def _hashes(values: pl.Series) -> pl.Series:
    """64-bit hashes of ``values`` (polars' own, stable within the process: nothing keeps them longer)."""
    return values.hash()


# Past this many strings remembered as columns, a frame's scan of them costs more than Python's hash set would.
COLUMNS_UP_TO = 8_000_000


class Remembered:
    """Strings seen in earlier frames (line keys, settled refund ids), asked about one frame at a time.

    A set grows over the whole file, and polars keeps no hash table from one frame to the next. Two ways:

    - in ``strings``, a Python set, when a :class:`SettlementMatcher` shares it (a batch's state, which the
      run's summary reads): each frame's strings become Python objects, looked up and added;
    - as polars columns of (hash, string), frame by frame, when only this matcher reads them: a frame's strings
      are hashed, one scan picks the remembered hashes equal to one of them, and only those are compared with
      the frame's strings (exact: equal strings have equal hashes; a collision only adds a comparison). No
      Python object per line. The scan grows with what is remembered (1M lines in 32K-line frames: about
      0.06 s in all; 4M: 0.4 s), so past :data:`COLUMNS_UP_TO` strings the rest of the file goes to the set.

    :meth:`sync` copies the columns into ``strings`` (for a reader of the state); strings added to the set from
    outside are taken into the columns at the next frame.
    """

    def __init__(self, strings: set[str], *, columns: bool) -> None:
        self.strings = strings
        self._columns = columns
        self._blocks: list[pl.DataFrame] = []
        self._remembered = 0  # rows in _blocks
        self._synced = 0  # blocks copied into strings
        self._set_size = -1  # len(strings) when we last looked (-1: not yet)

    def seen(self, values: pl.Series, *, add: bool = True) -> pl.Series:
        """Which of ``values`` were remembered before (then, with ``add``, remembers them all)."""
        if not self._columns:
            return _in_set(values, self.strings, add=add)
        self._take_outside()
        hashes = _hashes(values)
        if self._blocks:
            remembered = pl.concat(self._blocks, rechunk=False)
            candidates = remembered.filter(pl.col("h").is_in(hashes.implode())).get_column("s")
            hit = values.is_in(candidates.implode()).fill_null(False)
        else:
            hit = pl.repeat(False, values.len(), dtype=pl.Boolean, eager=True)
        if add:
            self._append(values.filter(hit.not_()), hashes.filter(hit.not_()))
            if self._remembered > COLUMNS_UP_TO:
                self.sync()
                self._columns, self._blocks, self._remembered = False, [], 0
        return hit

    def _append(self, values: pl.Series, hashes: pl.Series | None = None) -> None:
        if values.len():
            block = pl.DataFrame({"h": _hashes(values) if hashes is None else hashes, "s": values})
            self._blocks.append(block)
            self._remembered += block.height

    def _copy_to_set(self) -> None:
        for block in self._blocks[self._synced :]:
            self.strings.update(block.get_column("s").to_list())
        self._synced = len(self._blocks)

    def _take_outside(self) -> None:
        """Strings added to ``strings`` from outside (the set is longer than we left it) become the columns:
        the set, once it holds the columns too (rare: a state absorbed from elsewhere)."""
        if len(self.strings) == self._set_size:
            return
        self._copy_to_set()
        self._blocks, self._remembered, self._synced = [], 0, 0
        self._append(pl.Series("s", list(self.strings), dtype=pl.String))
        self._synced = len(self._blocks)
        self._set_size = len(self.strings)

    def sync(self) -> None:
        """``strings`` holds every remembered string."""
        if self._columns:
            self._take_outside()
            self._copy_to_set()
            self._set_size = len(self.strings)


_LOOKED_UP = ("refund_id", "ours_amount", "ours_currency")


class RefundIndex:
    """Our refunds by provider refund id, sorted once: a frame's references are looked up by binary search
    (the in-memory counterpart of the table's index). The ids are distinct (a look-up returns one refund per
    provider refund id)."""

    def __init__(self, refunds: pl.DataFrame) -> None:
        self.frame = refunds.select(list(REFUNDS_SCHEMA)).sort("provider_refund_id")
        self._ids = self.frame["provider_refund_id"]
        self._looked_up = self.frame.select(_LOOKED_UP)

    def lookup(self, references: pl.Series) -> pl.DataFrame:
        """``refund_id``, ``ours_amount``, ``ours_currency`` for each reference (nulls when not ours)."""
        size = self._ids.len()
        if not size:
            return pl.DataFrame(
                {name: pl.Series(name, [None] * references.len(), dtype) for name, dtype in REFUNDS_SCHEMA.items()}
            ).drop("provider_refund_id")
        at = self._ids.search_sorted(references, side="left").clip(0, size - 1)
        hit = (self._ids.gather(at) == references).fill_null(False)
        return self._looked_up[at].select(pl.when(hit).then(pl.col(name)).alias(name) for name in _LOOKED_UP)


class ColumnarMatcher:
    """Classify frames of settlement lines (see the module docstring).

    ``state`` is the per-line engine's state (line keys and refund ids seen, payout nets and announcements),
    kept up to date frame by frame: ``finish``, the batch state and the per-line engine all read it. A matcher
    given a ``state`` shares its sets (a batch, whose state the run's summary merges: small frames); one that
    makes its own remembers the strings as columns (:class:`Remembered`: large frames, and a file of them) and
    fills its state's sets when ``state`` is read.
    """

    def __init__(self, state: SettlementMatcher | None = None) -> None:
        columns = state is None
        self._state = SettlementMatcher({}) if state is None else state
        self._lines = Remembered(self._state.seen_lines, columns=columns)
        self._refunds = Remembered(self._state.seen_refunds, columns=columns)

    @property
    def state(self) -> SettlementMatcher:
        self._lines.sync()
        self._refunds.sync()
        return self._state

    def classify(self, frame: pl.DataFrame, refunds: RefundIndex) -> pl.DataFrame:
        """``frame`` (:data:`LINES_SCHEMA`) with ``key``, ``match_class``, ``refund_id``, ``difference``,
        ``dup_line`` and ``amount`` (a fee-only line's is its fee) by the per-line engine's rules, in order."""
        keys = frame.select(_KEY).to_series()
        dup_line = keys.is_first_distinct().not_() | self._lines.seen(keys)
        settles = (frame.get_column("kind") == _REFUND) & dup_line.not_()
        references = frame.get_column("reference")
        refs = references.filter(settles).unique()
        earlier = refs.filter(self._refunds.seen(refs))
        work_plan = (
            pl.concat([frame, refunds.lookup(references)], how="horizontal")
            .lazy()
            .with_columns(key=keys, dup_line=dup_line, settles=settles)
            .with_columns(first_ref=_FIRST_REF & pl.col("reference").is_in(earlier.implode()).not_())
            .with_columns(_MATCH_CLASS)
            .with_columns(_OUTPUTS)
        )
        # What the matcher remembers of the frame, planned with the classification and run in the same collect
        # (polars runs the plans side by side and the classification once):
        # - the nets of the lines that name a payout, per payout and currency, in the order the pairs first
        #   appear (a payout's first row is its first line's currency, as in the per-line engine);
        # - the payout lines that announce their payout (not a repeat, nor a fee without an amount).
        nets_plan = (
            frame.lazy()
            .filter(pl.col("payout_id").is_not_null() & (pl.col("kind") != _PAYOUT))
            .group_by("payout_id", "currency", maintain_order=True)
            .agg(pl.col("net").sum())
        )
        announced_plan = work_plan.filter(
            (pl.col("kind") == _PAYOUT) & (pl.col("match_class") == MatchClass.NOT_RECONCILED.value)
        ).select("reference", "currency", "net", "line_no", "booked_on")
        work, nets_by_payout, announced = pl.collect_all([work_plan, nets_plan, announced_plan])
        self._remember(nets_by_payout, announced)
        return work

    def _remember(self, nets_by_payout: pl.DataFrame, announced: pl.DataFrame) -> None:
        for payout_id, currency, net in nets_by_payout.iter_rows():
            nets = self._state._payout(payout_id, currency).nets
            nets[currency] = nets.get(currency, 0) + net
        for reference, currency, net, line_no, booked_on in announced.iter_rows():
            payout = self._state._payout(reference, currency)
            payout.announced, payout.currency, payout.line_no, payout.booked_on = -net, currency, line_no, booked_on

    @staticmethod
    def findings(classified: pl.DataFrame) -> list[Finding]:
        """Every row of a classified frame as a :class:`Finding` (what the batch applies)."""
        rows = classified.select(
            "key",
            "match_class",
            "reference",
            "amount",
            "currency",
            "refund_id",
            "difference",
            "line_no",
            "dup_line",
            "ours_currency",
            "payout_id",
        ).iter_rows()
        return [_finding(*row) for row in rows]

    def finish(self, expected: pl.DataFrame | Iterable[ExpectedRefund] = ()) -> list[Finding]:
        """Refunds of ``expected`` no line settled (missing) and announced payouts that do not add up."""
        if not isinstance(expected, pl.DataFrame):
            return self.state.finish(expected)
        missing = expected.filter(self._refunds.seen(expected.get_column("provider_refund_id"), add=False).not_())
        findings = [
            Finding(
                key=f"refund#{refund_id}",
                match_class=MatchClass.MISSING_IN_SETTLEMENT,
                reference=reference,
                amount=amount,
                currency=currency,
                refund_id=refund_id,
                detail="no settlement line for this refund",
            )
            for reference, refund_id, amount, currency in missing.select(list(REFUNDS_SCHEMA)).iter_rows()
        ]
        return findings + self._state.finish(())


def _finding(
    key: str,
    match_class: str,
    reference: str,
    amount: int,
    currency: str,
    refund_id: str | None,
    difference: int,
    line_no: int,
    dup_line: bool,
    ours_currency: str | None,
    payout_id: str | None,
) -> Finding:
    if match_class == MatchClass.DUPLICATE_LINE.value:
        detail = "line id seen before in this file" if dup_line else "refund settled by an earlier line"
    elif match_class == MatchClass.CURRENCY_DIFFERS.value:
        detail = f"ours {ours_currency}, settled {currency}"
    else:
        detail = _DETAILS.get(match_class, "")
    return Finding(
        key, _CLASSES[match_class], reference, amount, currency, refund_id, difference, line_no, detail, payout_id
    )


def check_frame(frame: pl.DataFrame) -> None:
    """Raises: SettlementFormatError: not a frame of :data:`LINES_SCHEMA`."""
    if dict(frame.schema) != LINES_SCHEMA:
        raise SettlementFormatError(f"not a settlement lines frame: {dict(frame.schema)}")
