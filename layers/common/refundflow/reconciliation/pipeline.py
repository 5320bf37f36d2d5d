"""The three steps of the reconciliation state machine, as domain functions the handlers call:

1. :func:`convert`: the settlement file that landed under ``settlement/<source>/`` is parsed as a stream
   and written as JSON Lines (one :func:`line_to_json` record per line) under ``work/``;
2. :func:`match_batch`: each Distributed Map batch (``Items`` + ``BatchInput``) is matched and applied;
3. :func:`summarize`: the batches' results (written by the Map's ResultWriter) are merged, refunds missing
   from the file and payouts that do not add up are applied, and the summary is written under ``reports/``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from refundflow.adapters.s3 import S3Files
from refundflow.domain.recorder import RefundRecorder
from refundflow.errors import RejectedError
from refundflow.ports import EventPublisher, RefundStore
from refundflow.reconciliation.apply import Run
from refundflow.reconciliation.engine import absorb_state, matcher_state
from refundflow.reconciliation.providers import SETTLEMENT_PARSERS
from refundflow.reconciliation.records import SettlementFormatError, line_from_json, line_to_json
from refundflow.reconciliation.run import Reconciler

SETTLEMENT_PREFIX = "settlement/"
WORK_PREFIX = "work/"
REPORTS_PREFIX = "reports/"


class UnreadableSettlement(RejectedError):
    """The file is not under a known ``settlement/<source>/`` prefix, or its parser refused it."""

    code = "settlement_unreadable"


def source_of(key: str) -> str:
    """``settlement/stripe/2026-11-30.csv`` -> ``stripe``.

    Raises:
        UnreadableSettlement: not under ``settlement/<source>/`` with a source we parse.
    """
    parts = key.split("/")
    if len(parts) < 3 or parts[0] + "/" != SETTLEMENT_PREFIX or parts[1] not in SETTLEMENT_PARSERS:
        raise UnreadableSettlement(f"{key}: expected settlement/<{'|'.join(SETTLEMENT_PARSERS)}>/<file>")
    return parts[1]


def convert(bucket: str, key: str, *, files: S3Files, correlation_id: str) -> dict[str, Any]:
    """Parse the settlement as a stream into a JSON Lines file on local disk, then upload it.

    Raises:
        UnreadableSettlement: unknown source, or a line its parser refuses.
        NotFound, TransientError: S3.
    """
    source = source_of(key)
    parser = SETTLEMENT_PARSERS[source]
    handle, path = tempfile.mkstemp(suffix=".jsonl")
    count = 0
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out, files.open_text(bucket, key) as stream:
            for line in parser(stream):
                out.write(json.dumps(line_to_json(line), separators=(",", ":")))
                out.write("\n")
                count += 1
        lines_key = f"{WORK_PREFIX}{key}.jsonl"
        files.upload_file(path, bucket, lines_key)
    except SettlementFormatError as error:
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
    reconciler.finish()
    summary = {"file": run.file, "source": run.source, "batches": batches, **reconciler.summary.as_dict()}
    files.put_json(str(run_input["bucket"]), f"{REPORTS_PREFIX}{run.file}.summary.json", summary)
    return summary
