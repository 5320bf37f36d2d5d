"""The three steps of the reconciliation state machine, as domain functions the handlers call:

1. :func:`convert`: the settlement file that landed under ``settlement/<source>/`` is parsed as a stream
   and written as JSON Lines (one :func:`line_to_json` record per line) under ``work/``;
2. :func:`match_batch`: each Distributed Map batch (``Items`` + ``BatchInput``) is matched and applied;
3. :func:`summarize`: the batches' results (written by the Map's ResultWriter) are merged, refunds missing
   from the file and payouts that do not add up are applied, and the summary is written under ``reports/``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

from refundflow.adapters.s3 import S3Files
from refundflow.domain.recorder import RefundRecorder
from refundflow.errors import RejectedError
from refundflow.ports import AnnouncedPayout, BankCredit, EventPublisher, KeptBankLine, RefundStore
from refundflow.reconciliation.apply import Applied, Run, apply_finding
from refundflow.reconciliation.engine import (
    BankMatcher,
    Finding,
    MatchClass,
    absorb_state,
    line_key,
    matcher_state,
)
from refundflow.reconciliation.providers import SETTLEMENT_PARSERS
from refundflow.reconciliation.records import (
    BankLine,
    SettlementFormatError,
    bank_from_json,
    bank_to_json,
    line_from_json,
)
from refundflow.reconciliation.run import Reconciler, Summary

SETTLEMENT_PREFIX = "settlement/"
WORK_PREFIX = "work/"
REPORTS_PREFIX = "reports/"


class UnreadableSettlement(RejectedError):
    """The file is not under a known ``settlement/<source>/`` prefix, or its parser refused it."""

    code = "settlement_unreadable"


BANK = "bank"
BANK_FORMATS = ("camt053", "camt054", "mt940", "bai2")
# How long after its settlement a payout may take to reach the bank before a statement counts it as missing.
PAYOUT_GRACE = timedelta(days=3)


def source_of(key: str) -> str:
    """``settlement/stripe/2026-11-30.csv`` -> ``stripe``; ``settlement/bank/camt053/x.xml`` -> ``bank``.

    Raises:
        UnreadableSettlement: not under ``settlement/<source>/`` (or ``settlement/bank/<format>/``).
    """
    parts = key.split("/")
    if len(parts) >= 4 and parts[0] + "/" == SETTLEMENT_PREFIX and parts[1] == BANK and parts[2] in BANK_FORMATS:
        return BANK
    if len(parts) < 3 or parts[0] + "/" != SETTLEMENT_PREFIX or parts[1] not in SETTLEMENT_PARSERS:
        known = "|".join(SETTLEMENT_PARSERS)
        raise UnreadableSettlement(f"{key}: expected settlement/<{known}>/<file> or settlement/bank/<format>/<file>")
    return parts[1]


def _bank_records(key: str, binary: IO[bytes]) -> Iterator[dict[str, object]]:
    from refundflow.reconciliation import bank  # lxml, mt-940, bai2: the converter's own dependencies

    bank_format = key.split("/")[2]
    if bank_format.startswith("camt"):
        lines = bank.parse_camt(binary, source=bank_format)
    else:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        lines = bank.parse_mt940(text) if bank_format == "mt940" else bank.parse_bai2(text)
    return (bank_to_json(line) for line in lines)


def _write_lines(source: str, key: str, binary: IO[bytes], out: IO[bytes]) -> int:
    """The file's lines as JSON Lines (:func:`line_to_json` records) into ``out``; returns how many.
    A provider's report goes through the columnar reader (polars writes each block's records natively)."""
    count = 0
    if source == BANK:
        for record in _bank_records(key, binary):
            out.write(json.dumps(record, separators=(",", ":")).encode())
            out.write(b"\n")
            count += 1
        return count
    from refundflow.reconciliation.columnar import read_frames  # polars: the converter's own dependency

    for frame in read_frames(source, binary):
        frame.write_ndjson(out)
        count += frame.height
    return count


def convert(bucket: str, key: str, *, files: S3Files, correlation_id: str) -> dict[str, Any]:
    """Parse the settlement as a stream into a JSON Lines file on local disk, then upload it.

    Raises:
        UnreadableSettlement: unknown source, or a line its parser refuses.
        NotFound, TransientError: S3.
    """
    source = source_of(key)
    handle, path = tempfile.mkstemp(suffix=".jsonl")
    count = 0
    try:
        with os.fdopen(handle, "wb") as out, files.open_binary(bucket, key) as stream:
            count = _write_lines(source, key, stream, out)
        lines_key = f"{WORK_PREFIX}{key}.jsonl"
        files.upload_file(path, bucket, lines_key)
    except (SettlementFormatError, UnicodeDecodeError) as error:
        raise UnreadableSettlement(str(error)) from error
    finally:
        os.unlink(path)
    return {
        "bucket": bucket,
        "file": key,
        "source": source,
        "lines_key": lines_key,
        "lines": count,
        "correlation_id": correlation_id,
        "results_prefix": f"{WORK_PREFIX}{key}.results",
    }


def _run(batch_input: Mapping[str, Any]) -> Run:
    return Run(
        file=str(batch_input["file"]),
        correlation_id=str(batch_input.get("correlation_id") or batch_input["file"]),
        source=str(batch_input["source"]),
    )


def match_batch(
    items: list[dict[str, Any]],
    batch_input: Mapping[str, Any],
    *,
    repository: RefundStore,
    recorder: RefundRecorder,
    publisher: EventPublisher,
) -> dict[str, Any]:
    """Match and apply one batch; return its summary and what the run's summary needs to finish.

    Raises:
        UnreadableSettlement: an item that is not a converted settlement line.
        ConcurrentModification, GuardUnavailable, TransientError: the store or the bus (the batch is retried;
            every line already applied is found by its marker and left as it is).
    """
    if batch_input["source"] == BANK:
        return _match_bank_batch(
            items, _run(batch_input), repository=repository, recorder=recorder, publisher=publisher
        )
    try:
        lines = [line_from_json(item) for item in items]
    except SettlementFormatError as error:
        raise UnreadableSettlement(str(error)) from error
    reconciler = Reconciler(_run(batch_input), repository, recorder, publisher)
    reconciler.match_batch(lines)
    return {
        "summary": reconciler.summary.as_dict(),
        "state": matcher_state(reconciler.matcher),
        "last_booked": reconciler.last_booked.isoformat() if reconciler.last_booked else None,
    }


def _match_bank_batch(
    items: list[dict[str, Any]],
    run: Run,
    *,
    repository: RefundStore,
    recorder: RefundRecorder,
    publisher: EventPublisher,
) -> dict[str, Any]:
    """Bank lines against every payout the settlements announced; a credited payout keeps a marker."""
    try:
        lines = [bank_from_json(item) for item in items]
    except SettlementFormatError as error:
        raise UnreadableSettlement(str(error)) from error
    matcher = BankMatcher(
        {payout.reference: (payout.amount, payout.currency) for payout in repository.announced_payouts()}
    )
    summary = Summary()
    last: date | None = None
    for line in lines:
        summary.lines += 1
        if line.booked_on:
            last = max(last or line.booked_on, line.booked_on)
        finding = _credited_once(matcher.match(line), line, run, repository=repository)
        summary.add(apply_finding(finding, run, repository=repository, recorder=recorder, publisher=publisher))
        if finding.match_class in (MatchClass.MATCHED, MatchClass.PAYOUT_AMOUNT_DIFFERS):
            repository.record_bank_credit(_bank_credit(finding, line, run.file))
        elif finding.match_class is MatchClass.NOT_RECONCILED:
            # No payout announced so far explains it: its settlement may land later (see explain_kept_lines).
            repository.keep_bank_line(KeptBankLine(finding.key, run.file, bank_to_json(line)))
    return {"summary": summary.as_dict(), "state": {}, "last_booked": last.isoformat() if last else None}


def explain_kept_lines(
    payouts: Mapping[str, tuple[int, str]],
    run: Run,
    *,
    repository: RefundStore,
    recorder: RefundRecorder,
    publisher: EventPublisher,
) -> list[Applied]:
    """Bank lines kept because no payout explained them (their statement landed first), matched against the
    ``payouts`` a settlement has just announced: a line that credits one is applied as the statement's own
    line would have been (matched, or ``payout_amount_differs``) and forgotten; the others stay kept.

    Once only: the finding has its own marker (``<line>#payout``), the payout its "credited" marker, and the
    kept line is forgotten last, so a retry after a crash finds the markers and changes nothing; a payout a
    statement already credited makes the kept line a duplicate credit."""
    kept = repository.kept_bank_lines() if payouts else []
    if not kept:
        return []
    matcher = BankMatcher(payouts)
    matcher.found.update(ref for ref in payouts if repository.get_reconciliation_marker(_credited(ref)) is not None)
    applied: list[Applied] = []
    for item in kept:
        try:
            line = bank_from_json(item.record)
        except SettlementFormatError:
            repository.forget_bank_line(item.key)  # not a line this version wrote: nothing to explain it with
            continue
        finding = matcher.match(line)
        if finding.match_class is MatchClass.NOT_RECONCILED:
            continue
        bank_run = Run(file=item.file, correlation_id=run.correlation_id, source=BANK)
        rematched = finding._replace(key=f"{finding.key}#payout", detail=finding.detail or f"explained by {run.file}")
        applied.append(
            apply_finding(rematched, bank_run, repository=repository, recorder=recorder, publisher=publisher)
        )
        if finding.match_class in (MatchClass.MATCHED, MatchClass.PAYOUT_AMOUNT_DIFFERS):
            repository.record_bank_credit(_bank_credit(finding, line, item.file))
        repository.forget_bank_line(item.key)
    return applied


def _credited(reference: str) -> str:
    return f"payout#{reference}#credited"


def _credited_once(finding: Finding, line: BankLine, run: Run, *, repository: RefundStore) -> Finding:
    """A payout is credited once: a line of another statement (or another line) crediting a payout an earlier
    statement credited is a ``duplicate_line`` naming that credit, for ops, never a second match (the matcher knows
    only this statement's lines; a re-run of the statement that credited it finds its own line and matches again).
    One read per line that credits a payout."""
    if finding.match_class not in (MatchClass.MATCHED, MatchClass.PAYOUT_AMOUNT_DIFFERS):
        return finding
    earlier = repository.get_reconciliation_marker(_credited(finding.reference))
    if earlier is None or (earlier.file, earlier.line_no) == (run.file, line.line_no):
        return finding
    detail = f"payout already credited by {earlier.file} line {earlier.line_no}"
    return finding._replace(match_class=MatchClass.DUPLICATE_LINE, difference=0, detail=detail)


def _bank_credit(finding: Finding, line: BankLine, file: str) -> BankCredit:
    """The bank line that credited the payout ``finding`` names, whole: the trace's last hop."""
    return BankCredit(
        payout_id=finding.reference,
        file=file,
        line_no=line.line_no,
        line_key=line_key(line),
        match_class=finding.match_class.value,
        amount=line.amount,
        currency=line.currency,
        direction=line.direction.value,
        booked_on=line.booked_on,
    )


def summarize(
    run_input: Mapping[str, Any],
    result_writer: Mapping[str, Any],
    *,
    files: S3Files,
    repository: RefundStore,
    recorder: RefundRecorder,
    publisher: EventPublisher,
) -> dict[str, Any]:
    """Merge the batches' results, apply what only the whole file tells (missing refunds, payouts that do
    not add up) and write the summary to ``reports/<file>.summary.json``.

    Raises:
        NotFound, TransientError: S3; ConcurrentModification, GuardUnavailable, TransientError: the store.
    """
    run = _run(run_input)
    reconciler = Reconciler(run, repository, recorder, publisher)
    bucket = str(result_writer["Bucket"])
    manifest = files.read_json(bucket, str(result_writer["Key"]))
    batches = 0
    for result_file in manifest.get("ResultFiles", {}).get("SUCCEEDED", []):
        for execution in files.read_json(bucket, str(result_file["Key"])):
            output = json.loads(execution["Output"])
            batches += 1
            reconciler.summary.merge(output["summary"])
            absorb_state(reconciler.matcher, output["state"])
            if output.get("last_booked"):
                booked = datetime.fromisoformat(output["last_booked"]).astimezone(UTC)
                reconciler.last_booked = max(reconciler.last_booked or booked, booked)
    if run.source == BANK:
        _payouts_not_credited(reconciler, run, repository=repository, recorder=recorder, publisher=publisher)
    else:
        reconciler.finish()
        dates = reconciler.matcher.announced_payout_dates()
        announced = reconciler.matcher.announced_payouts()
        for reference, (amount, currency) in announced.items():
            repository.announce_payout(AnnouncedPayout(reference, amount, currency, dates.get(reference), run.file))
        for item in explain_kept_lines(announced, run, repository=repository, recorder=recorder, publisher=publisher):
            reconciler.summary.add(item)
    summary = {"file": run.file, "source": run.source, "batches": batches, **reconciler.summary.as_dict()}
    files.put_json(str(run_input["bucket"]), f"{REPORTS_PREFIX}{run.file}.summary.json", summary)
    return summary


def _payouts_not_credited(
    reconciler: Reconciler, run: Run, *, repository: RefundStore, recorder: RefundRecorder, publisher: EventPublisher
) -> None:
    """Payouts settled more than the grace period before the statement's last booking that no statement
    credited: ``payout_not_found`` (once per payout)."""
    if reconciler.last_booked is None:
        return
    cutoff = reconciler.last_booked.date() - PAYOUT_GRACE
    for payout in repository.announced_payouts():
        if payout.booked_on is None or payout.booked_on > cutoff:
            continue
        if repository.get_reconciliation_marker(_credited(payout.reference)) is not None:
            continue
        finding = Finding(
            key=f"payout#{payout.reference}",
            match_class=MatchClass.PAYOUT_NOT_FOUND,
            reference=payout.reference,
            amount=payout.amount,
            currency=payout.currency,
            detail=f"settled on {payout.booked_on} in {payout.file}; no bank statement credits it",
        )
        applied = apply_finding(finding, run, repository=repository, recorder=recorder, publisher=publisher)
        reconciler.summary.add(applied)
