"""``refundflow reconcile FILE`` (``make reconcile FILE=...``): reconcile a settlement file, and optionally
the bank statement that received its payouts, with the same engine the state machine runs.

It works on the local stack (``make local``: moto on REFUNDFLOW_AWS_PORT, default 4750) unless ``--stack``
names a deployed stack (its outputs and parameters say which table, bus and audit key; AWS credentials from
boto3's usual chain). Refunds that match move to SETTLED, mismatches go on the refunds' timelines and to ops,
exactly as when the file lands in the settlement bucket; running it again changes nothing.

Writes ``<report-dir>/<file>.reconciliation.csv`` (every line with its class) and ``.summary.txt``.
Exit codes: 0 done (mismatches are in the report, not an error), 2 the file cannot be read, 3 the stack
cannot be reached.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

from refundflow.errors import RefundflowError
from refundflow.reconciliation.apply import Applied, Run, apply_finding
from refundflow.reconciliation.bank import parse_bai2, parse_camt, parse_mt940
from refundflow.reconciliation.columnar import read_frames
from refundflow.reconciliation.engine import BankMatcher
from refundflow.reconciliation.providers import SETTLEMENT_PARSERS
from refundflow.reconciliation.records import BankLine, SettlementFormatError
from refundflow.reconciliation.report import CsvReport, summary_text
from refundflow.reconciliation.run import Summary, reconcile_frames
from refundflow_cli.errors import CliError

BANK_FORMATS = ("camt053", "camt054", "mt940", "bai2")


def guess_source(path: Path) -> str:
    """The provider from the path (``settlement/<source>/...`` or a provider's name in the file name)."""
    parts = [part.lower() for part in path.parts]
    for source in SETTLEMENT_PARSERS:
        if source in parts or source in path.name.lower():
            return source
    raise SystemExit(f"{path}: say which provider's settlement it is with --source ({', '.join(SETTLEMENT_PARSERS)})")


def guess_bank_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".xml"):
        return "camt054" if "054" in name else "camt053"
    if name.endswith((".sta", ".mt940", ".940")):
        return "mt940"
    if name.endswith((".bai", ".bai2")) or "bai2" in name:
        return "bai2"
    raise SystemExit(f"{path}: say which bank format it is with --bank-format ({', '.join(BANK_FORMATS)})")


def configure_local(endpoint: str | None, api_url: str | None = None) -> None:
    """Point this process at the local stack, found the way every CLI command finds it: its description at
    ``GET /_local/outputs`` on the local API (``--api-url``, default ``http://127.0.0.1:$REFUNDFLOW_PORT``), which
    names its AWS endpoint (moto; ``--endpoint`` overrides it), table, bus and secrets.

    Raises:
        CliError: no local stack answers there.
    """
    from refundflow_cli.target import Settings, Target

    description = Target(Settings.from_environment(api_url=api_url)).description
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", str(description.get("Region") or "us-east-1"))
    os.environ["AWS_ENDPOINT_URL"] = endpoint or str(description["AwsEndpointUrl"])
    _configure(description.get("Outputs", {}), description.get("Parameters", {}))


def configure_deployed(stack_name: str, cloudformation: Any | None = None) -> None:
    """Read a deployed stack's outputs and parameters (CloudFormation DescribeStacks)."""
    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation")
    described = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
    parameters = {item["ParameterKey"]: item["ParameterValue"] for item in described.get("Parameters", [])}
    _configure(outputs, parameters)


def _configure(outputs: dict[str, str], parameters: dict[str, str]) -> None:
    """The engine's settings, naming the stack's table, bus and audit key."""
    os.environ["REFUNDS_TABLE_NAME"] = outputs["RefundsTableName"]
    os.environ["EVENT_BUS_NAME"] = outputs["EventBusArn"].rsplit("/", 1)[-1]
    os.environ["AUDIT_KEY_SECRET_NAME"] = parameters["AuditKeySecretName"]


class CountingReader(io.RawIOBase):
    """A binary stream that reports how many bytes were read (the progress bar's measure)."""

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], None]) -> None:
        super().__init__()
        self._raw = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._on_read(len(data))
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


class Progress:
    """A progress bar over the bytes of the input (rich when it is installed, nothing otherwise)."""

    def __init__(self, total: int, description: str, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            try:
                from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
            except ImportError:  # the CLI still works without rich, just silently
                return
            self._bar = Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn()
            )
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)


def _bank_lines(path: Path, bank_format: str, stream: IO[bytes]) -> Iterator[BankLine]:
    if bank_format.startswith("camt"):
        yield from parse_camt(stream, source=bank_format)
        return
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    parser = parse_mt940 if bank_format == "mt940" else parse_bai2
    yield from parser(text)


def run(argv: list[str] | None = None, *, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="refundflow reconcile", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="the provider's settlement report (CSV)")
    parser.add_argument("--source", choices=sorted(SETTLEMENT_PARSERS), help="whose report (default: from the path)")
    parser.add_argument("--bank", type=Path, help="a bank statement that received the report's payouts")
    parser.add_argument("--bank-format", choices=BANK_FORMATS, help="its format (default: from its name)")
    parser.add_argument("--stack", help="a deployed stack's name (default: the local stack)")
    parser.add_argument(
        "--api-url",
        help="the local stack's API, where it describes itself (default: http://127.0.0.1:$REFUNDFLOW_PORT)",
    )
    parser.add_argument("--endpoint", help="the local stack's AWS endpoint (default: the one the local stack names)")
    parser.add_argument("--report-dir", type=Path, default=Path("reports"), help="where the report goes")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    unreadable = [path for path in (args.file, args.bank) if path is not None and not os.access(path, os.R_OK)]
    if unreadable or not args.file.is_file():
        print(f"refundflow reconcile: cannot read {(unreadable or [args.file])[0]}", file=sys.stderr)
        return 2

    source = args.source or guess_source(args.file)
    if args.stack:
        configure_deployed(args.stack)
    else:
        try:
            configure_local(args.endpoint, args.api_url)
        except CliError as error:
            print(f"refundflow reconcile: {error}", file=sys.stderr)
            return 3
    from refundflow import settings, wiring

    settings.load.cache_clear()
    wiring.reset()
    recorder = wiring.recorder()
    correlation = f"cli-{uuid.uuid4().hex[:12]}"
    run_info = Run(file=f"cli/{source}/{args.file.name}", correlation_id=correlation, source=source)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    csv_path = args.report_dir / f"{args.file.name}.reconciliation.csv"
    summary_path = args.report_dir / f"{args.file.name}.summary.txt"
    show = not args.no_progress and out.isatty()
    try:
        with open(csv_path, "w", newline="", encoding="utf-8") as csv_out:
            report = CsvReport(csv_out)
            total = args.file.stat().st_size
            with Progress(total, f"reconciling {args.file.name}", show) as progress, open(args.file, "rb") as raw:
                counted = io.BufferedReader(CountingReader(raw, progress.advance))
                reconciler = reconcile_frames(
                    read_frames(source, counted),
                    run_info,
                    repository=recorder.repository,
                    recorder=recorder,
                    publisher=recorder.publisher,
                    batch_size=args.batch_size,
                    on_batch=report.write,
                )
            summary = reconciler.summary
            if args.bank:
                summary = _reconcile_bank(args, reconciler.matcher.announced_payouts(), run_info, report, summary)
    except UnicodeDecodeError as error:
        print(
            f"refundflow reconcile: not UTF-8 text ({error}); the lines before it were reconciled: fix the file and "
            "run it again (nothing is recorded twice)",
            file=sys.stderr,
        )
        return 2
    except SettlementFormatError as error:
        print(f"refundflow reconcile: {error}", file=sys.stderr)
        return 2
    except RefundflowError as error:
        where = args.stack or os.environ.get("AWS_ENDPOINT_URL", "the local stack")
        print(f"refundflow reconcile: {error} ({where}: is it running? `make local`)", file=sys.stderr)
        return 3
    text_summary = summary_text(summary.as_dict(), title=f"Reconciliation of {args.file.name} ({source})")
    summary_path.write_text(text_summary, encoding="utf-8")
    out.write(text_summary)
    out.write(f"\nreport: {csv_path}\nsummary: {summary_path}\n")
    return 0


def _reconcile_bank(
    args: argparse.Namespace, payouts: dict[str, tuple[int, str]], run_info: Run, report: CsvReport, summary: Summary
) -> Summary:
    from refundflow import wiring

    recorder = wiring.recorder()
    bank_format = args.bank_format or guess_bank_format(args.bank)
    bank_run = Run(file=f"cli/bank/{args.bank.name}", correlation_id=run_info.correlation_id)
    matcher = BankMatcher(payouts)

    def apply(findings: list[Any]) -> list[Applied]:
        applied = [
            apply_finding(
                finding, bank_run, repository=recorder.repository, recorder=recorder, publisher=recorder.publisher
            )
            for finding in findings
        ]
        for item in applied:
            summary.add(item)
        report.write(applied)
        return applied

    with open(args.bank, "rb") as stream:
        for line in _bank_lines(args.bank, bank_format, stream):
            summary.lines += 1
            apply([matcher.match(line)])
    apply(matcher.finish())
    return summary


def main() -> None:
    raise SystemExit(run())


if __name__ == "__main__":
    main()
