"""Reconciliation on a 1,000,000-line settlement file: our streaming engine against a polars join and a pandas
merge doing the same matching on the same file, each in its own process (peak memory is the process's).

``python -m benchmarks.reconciliation [--lines N] [--seed S]`` prints JSON: rows per second, peak RSS and
precision / recall per class for each contender. polars and pandas come from benchmarks/requirements.txt
(never shipped to Lambda); a missing one is reported as not installed.

The file is a Stripe itemized payout reconciliation report with seeded mismatches of every class the engine
knows: amount and currency differences, refunds made outside refundflow, repeated line ids and refunds
settled twice, fee-only lines, late failures, payouts whose lines do not add up, and refunds of ours that
never appear (missing). The truth of every line is written beside the file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HEADER = (
    "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,"
    "description,automatic_payout_id,automatic_payout_effective_at\n"
)
SEEDED = 1_000  # lines of each mismatch class
LINES_PER_PAYOUT = 10_000
CONTENDERS = ("ours", "polars", "pandas")


def _money(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def generate(path: Path, lines: int, seed: int) -> dict[str, Any]:
    """Write the settlement file, our refunds (``refunds.csv``: id, provider id, amount, currency) and the
    truth: one class per line (``truth.txt``), the missing refunds and the payouts that do not add up."""
    rng = random.Random(seed)
    folder = path.parent
    kinds = (
        ["amount_differs"] * SEEDED
        + ["currency_differs"] * SEEDED
        + ["unexpected_in_settlement"] * SEEDED
        + ["duplicate_line"] * SEEDED
        + ["fee_only"] * SEEDED
        + ["late_failure"] * SEEDED
    )
    payouts = max(1, lines // LINES_PER_PAYOUT)
    ordinary = lines - len(kinds) - payouts
    kinds += ["matched" if rng.random() < 0.55 else "not_reconciled" for _ in range(ordinary)]
    rng.shuffle(kinds)
    # repeated lines and late failures need an earlier matched line: keep them after the first matched ones
    first_matched = kinds.index("matched")
    for index in range(first_matched + 1):
        if kinds[index] in ("duplicate_line", "late_failure"):
            kinds[index] = "not_reconciled"
    refunds: list[tuple[str, str, int, str]] = []
    payout_sums: Counter[str] = Counter()
    truth: list[str] = []
    matched_lines: list[tuple[str, str, int]] = []
    wrong_payouts: set[str] = {f"po_{n:06d}" for n in rng.sample(range(payouts), max(1, payouts // 10))}
    payout_every = max(1, len(kinds) // payouts)
    payout_no = 0
    with open(path, "w", encoding="utf-8") as out, open(folder / "refunds.csv", "w", encoding="utf-8") as ours:
        out.write(HEADER)
        ours.write("refund_id,provider_refund_id,amount,currency\n")
        for number, kind in enumerate(kinds):
            payout = f"po_{payout_no:06d}"
            line_id = f"txn_{number:08d}"
            amount = rng.randint(100, 50_000) if kind != "not_reconciled" else rng.randint(10_000, 200_000)
            category, source, currency, fee = "refund", f"re_{number:08d}", "eur", 0
            ours_amount: int | None = amount
            ours_currency = "EUR"
            if kind == "not_reconciled":
                category, source, ours_amount = "charge", f"ch_{number:08d}", None
            elif kind == "amount_differs":
                ours_amount = amount + rng.choice((-1, 1)) * rng.randint(1, 500)
            elif kind == "currency_differs":
                ours_currency = "USD"
            elif kind == "unexpected_in_settlement":
                source, ours_amount = f"re_outside_{number:08d}", None
            elif kind == "duplicate_line":
                line_id, source, amount = rng.choice(matched_lines)
                ours_amount = None
            elif kind == "fee_only":
                category, source, amount, fee, ours_amount = "fee", f"fee_{number:08d}", 0, rng.randint(1, 300), None
            elif kind == "late_failure":
                _, source, amount = rng.choice(matched_lines)
                category, ours_amount = "refund_failure", None
            sign = 1 if category in ("charge", "refund_failure") else -1
            gross, net = sign * amount, sign * amount - fee
            payout_sums[payout] += net
            out.write(
                f"{line_id},2026-11-28 10:00:00,2026-11-30 00:00:00,{currency},{_money(gross)},{_money(fee)},"
                f"{_money(net)},{category},{source},,{payout},2026-12-01 00:00:00\n"
            )
            truth.append(kind)
            if ours_amount is not None:
                refunds.append((f"rf_{number:08d}", source, ours_amount, ours_currency))
                if kind == "matched":
                    matched_lines.append((line_id, source, amount))
            if (number + 1) % payout_every == 0 and payout_no < payouts:
                announced = payout_sums[payout] + (rng.randint(1, 99) if payout in wrong_payouts else 0)
                out.write(
                    f"txn_p{payout_no:06d},2026-12-01 00:00:00,2026-12-01 00:00:00,eur,{_money(-announced)},0.00,"
                    f"{_money(-announced)},payout,{payout},STRIPE PAYOUT,,\n"
                )
                truth.append("payout")
                payout_no += 1
        missing = [f"re_missing_{n:06d}" for n in range(SEEDED)]
        for number, provider_id in enumerate(missing):
            refunds.append((f"rf_missing_{number:06d}", provider_id, rng.randint(100, 5_000), "EUR"))
        for refund in refunds:
            ours.write(",".join(str(value) for value in refund) + "\n")
    (folder / "truth.txt").write_text("\n".join(truth) + "\n")
    expected = {
        "missing_in_settlement": sorted(missing),
        "payout_amount_differs": sorted(wrong_payouts & {f"po_{n:06d}" for n in range(payout_no)}),
    }
    (folder / "truth_extra.json").write_text(json.dumps(expected))
    return {"lines": len(truth), "refunds_of_ours": len(refunds), "payouts": payout_no, "seeded_per_class": SEEDED}


# ---------------------------------------------------------------------------------------------- contenders


def run_ours(folder: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The engine production runs (``Reconciler.match_frame`` in the CLI and each Distributed Map batch, and
    the converter's reader): ``read_frames`` streams the file block by block, ``ColumnarMatcher.classify``
    joins each block with our refunds. Here our refunds come from a CSV into the in-memory index a batch
    builds from its DynamoDB look-up, all 551,000 at once."""
    import polars as pl

    from refundflow.reconciliation.columnar import CLASS_ENUM, ColumnarMatcher, RefundIndex, read_frames
    from refundflow.reconciliation.engine import MatchClass

    refunds = pl.read_csv(folder / "refunds.csv", schema_overrides={"amount": pl.Int64}).select(
        "provider_refund_id", "refund_id", ours_amount="amount", ours_currency="currency"
    )
    index = RefundIndex(refunds)
    matcher = ColumnarMatcher()
    # Each line's class as its index in the class enum (a payout line: one past the last), kept in polars and
    # made a list once at the end, as the polars contender does: the list then holds the same few strings, not
    # one string object per line, and the garbage collector does not walk a growing list block after block.
    names = (*CLASS_ENUM.categories.to_list(), "payout")
    line_class = (
        pl.when(pl.col("kind") == "payout")
        .then(pl.lit(len(names) - 1, dtype=pl.UInt32))
        .otherwise(pl.col("match_class").to_physical().cast(pl.UInt32))
    )
    codes: list[pl.Series] = []
    with open(folder / "settlement.csv", "rb") as stream:
        for frame in read_frames("stripe", stream):
            codes.append(matcher.classify(frame, index).select(line_class).to_series())
    classes = list(map(names.__getitem__, pl.concat([pl.Series([], dtype=pl.UInt32), *codes]).to_list()))
    extra: dict[str, list[str]] = {"missing_in_settlement": [], "payout_amount_differs": []}
    for finding in matcher.finish(refunds):
        if finding.match_class in (MatchClass.MISSING_IN_SETTLEMENT, MatchClass.PAYOUT_AMOUNT_DIFFERS):
            extra[finding.match_class.value].append(finding.reference)
    return classes, extra


def run_polars(folder: Path) -> tuple[list[str], dict[str, list[str]]]:
    import polars as pl

    lines = pl.read_csv(folder / "settlement.csv", infer_schema=False)
    refunds = pl.read_csv(folder / "refunds.csv", schema_overrides={"amount": pl.Int64})
    minor = pl.col("gross").str.replace(".", "", literal=True).cast(pl.Int64)
    frame = lines.with_row_index("row").with_columns(
        amount=minor.abs(),
        currency_upper=pl.col("currency").str.to_uppercase(),
        net_minor=pl.col("net").str.replace(".", "", literal=True).cast(pl.Int64),
        dup_line=pl.col("balance_transaction_id").is_first_distinct().not_(),
        is_refund=pl.col("reporting_category") == "refund",
    )
    first_refund = (
        frame.filter(pl.col("is_refund") & ~pl.col("dup_line"))
        .with_columns(first_ref=pl.col("source_id").is_first_distinct())
        .select("row", "first_ref")
    )
    joined = (
        frame.join(first_refund, on="row", how="left", maintain_order="left")
        .join(
            refunds.rename({"amount": "ours_amount", "currency": "ours_currency"}),
            left_on="source_id",
            right_on="provider_refund_id",
            how="left",
            maintain_order="left",
        )
        .with_columns(
            cls=pl.when(pl.col("reporting_category") == "payout")
            .then(pl.lit("payout"))
            .when(pl.col("dup_line"))
            .then(pl.lit("duplicate_line"))
            .when(pl.col("is_refund") & ~pl.col("first_ref"))
            .then(pl.lit("duplicate_line"))
            .when(pl.col("is_refund") & pl.col("refund_id").is_null())
            .then(pl.lit("unexpected_in_settlement"))
            .when(pl.col("is_refund") & (pl.col("currency_upper") != pl.col("ours_currency")))
            .then(pl.lit("currency_differs"))
            .when(pl.col("is_refund") & (pl.col("amount") != pl.col("ours_amount")))
            .then(pl.lit("amount_differs"))
            .when(pl.col("is_refund"))
            .then(pl.lit("matched"))
            .when(pl.col("reporting_category") == "refund_failure")
            .then(pl.lit("late_failure"))
            .when(pl.col("reporting_category") == "fee")
            .then(pl.lit("fee_only"))
            .otherwise(pl.lit("not_reconciled"))
        )
    )
    seen = joined.filter(pl.col("is_refund") & ~pl.col("dup_line")).select("source_id").unique()
    missing = refunds.join(seen, left_on="provider_refund_id", right_on="source_id", how="anti")
    sums = (
        joined.filter(pl.col("automatic_payout_id").is_not_null())
        .group_by("automatic_payout_id")
        .agg(pl.col("net_minor").sum())
    )
    announced = joined.filter(pl.col("reporting_category") == "payout").select(
        pl.col("source_id").alias("automatic_payout_id"), (-pl.col("net_minor")).alias("announced")
    )
    differs = announced.join(sums, on="automatic_payout_id", how="left").filter(
        pl.col("announced") != pl.col("net_minor")
    )
    return joined["cls"].to_list(), {
        "missing_in_settlement": missing["provider_refund_id"].to_list(),
        "payout_amount_differs": differs["automatic_payout_id"].to_list(),
    }


def run_pandas(folder: Path) -> tuple[list[str], dict[str, list[str]]]:
    import numpy as np
    import pandas as pd

    lines = pd.read_csv(folder / "settlement.csv", dtype=str, keep_default_na=False)
    refunds = pd.read_csv(folder / "refunds.csv", dtype={"amount": "int64"}, keep_default_na=False)
    lines["amount"] = lines["gross"].str.replace(".", "", regex=False).astype("int64").abs()
    lines["net_minor"] = lines["net"].str.replace(".", "", regex=False).astype("int64")
    lines["dup_line"] = lines["balance_transaction_id"].duplicated()
    is_refund = lines["reporting_category"] == "refund"
    lines["first_ref"] = False
    candidates = is_refund & ~lines["dup_line"]
    lines.loc[candidates, "first_ref"] = ~lines.loc[candidates, "source_id"].duplicated()
    merged = lines.merge(
        refunds.rename(columns={"amount": "ours_amount", "currency": "ours_currency"}),
        left_on="source_id",
        right_on="provider_refund_id",
        how="left",
    )
    refund = merged["reporting_category"] == "refund"
    conditions = [
        merged["reporting_category"] == "payout",
        merged["dup_line"],
        refund & ~merged["first_ref"].astype(bool),
        refund & merged["refund_id"].isna(),
        refund & (merged["currency"].str.upper() != merged["ours_currency"]),
        refund & (merged["amount"] != merged["ours_amount"]),
        refund,
        merged["reporting_category"] == "refund_failure",
        merged["reporting_category"] == "fee",
    ]
    choices = [
        "payout",
        "duplicate_line",
        "duplicate_line",
        "unexpected_in_settlement",
        "currency_differs",
        "amount_differs",
        "matched",
        "late_failure",
        "fee_only",
    ]
    classes = np.select(conditions, choices, default="not_reconciled")
    seen = set(merged.loc[refund & ~merged["dup_line"], "source_id"])
    missing = refunds.loc[~refunds["provider_refund_id"].isin(seen), "provider_refund_id"]
    with_payout = merged[merged["automatic_payout_id"] != ""]
    sums = with_payout.groupby("automatic_payout_id")["net_minor"].sum()
    announced = -merged[merged["reporting_category"] == "payout"].set_index("source_id")["net_minor"]
    differs = [payout for payout, amount in announced.items() if sums.get(payout) != amount]
    return list(classes), {"missing_in_settlement": list(missing), "payout_amount_differs": differs}


RUNNERS = {"ours": run_ours, "polars": run_polars, "pandas": run_pandas}
# What each contender imports, imported before its clock starts (as interpreter start is left out): a module's
# import is a cold start's cost, not the matching's.
IMPORTS = {
    "ours": ("polars", "refundflow.reconciliation.columnar"),
    "polars": ("polars",),
    "pandas": ("numpy", "pandas"),
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(name: str, folder: Path) -> dict[str, Any]:
    for module in IMPORTS[name]:
        importlib.import_module(module)
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    classes, extra = RUNNERS[name](folder)
    seconds = time.perf_counter() - started
    cpu_seconds = _cpu_seconds() - cpu_before
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": round(seconds, 3),
        # CPU time of the run on every core (polars runs threads), interpreter start and imports left out:
        # steadier than wall time on a busy machine, and what the work costs.
        "cpu_seconds": round(cpu_seconds, 3),
        "rows_per_second": round(len(classes) / seconds),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        **scores(folder, classes, extra),
    }


def scores(folder: Path, classes: list[str], extra: dict[str, list[str]]) -> dict[str, Any]:
    """Precision and recall per class against the truth (lines, missing refunds, payouts)."""
    truth = (folder / "truth.txt").read_text().split()
    true_extra = json.loads((folder / "truth_extra.json").read_text())
    names = sorted(set(truth) | set(classes) | set(true_extra) - {"payout", "not_reconciled"})
    result: dict[str, dict[str, float | int]] = {}
    for name in names:
        if name in ("payout", "not_reconciled"):
            continue
        expected: set[str | int]
        found: set[str | int]
        if name in true_extra:
            expected, found = set(true_extra[name]), set(extra.get(name, []))
        else:
            expected = {index for index, value in enumerate(truth) if value == name}
            found = {index for index, value in enumerate(classes) if value == name}
        hits = len(expected & found)
        result[name] = {
            "expected": len(expected),
            "found": len(found),
            "precision": round(hits / len(found), 6) if found else (1.0 if not expected else 0.0),
            "recall": round(hits / len(expected), 6) if expected else 1.0,
        }
    return {"lines_scored": len(classes), "classes": result}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--runs", type=int, default=5, help="runs of each contender, interleaved")
    parser.add_argument("--worker", choices=CONTENDERS)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.folder)
    with tempfile.TemporaryDirectory(prefix="refundflow-recon-bench-") as folder:
        path = Path(folder) / "settlement.csv"
        started = time.perf_counter()
        generated = generate(path, args.lines, args.seed)
        generated["generate_seconds"] = round(time.perf_counter() - started, 1)
        generated["file_mib"] = round(path.stat().st_size / 2**20, 1)
        results: dict[str, Any] = {"file": generated, "runs": args.runs}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
        for _ in range(args.runs):  # interleaved: the machine's noise falls on every contender alike
            for name in CONTENDERS:
                if name in results:
                    continue  # skipped or failed once: not run again
                command = [sys.executable, "-m", "benchmarks.reconciliation", "--worker", name, "--folder", folder]
                completed = subprocess.run(command, capture_output=True, text=True, check=False)
                if completed.returncode != 0:
                    missing = "ModuleNotFoundError" in completed.stderr
                    error = completed.stderr.strip().splitlines()[-1:] if completed.stderr else ["failed"]
                    results[name] = (
                        {"skipped": "not installed (benchmarks/requirements.txt)"} if missing else {"error": error[0]}
                    )
                    continue
                runs[name].append(json.loads(completed.stdout))
        for name, done in runs.items():
            if done:
                results[name] = _summary(done)
        if "seconds" in results.get("polars", {}):
            for measure in ("seconds", "cpu_seconds"):
                results[f"polars_over_ours_{measure}_median"] = round(
                    results["polars"][measure]["median"] / results["ours"][measure]["median"], 3
                )
        return results


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and min of wall and CPU time over the runs, the largest peak, and the scores (every run's must
    be the same: the last one is shown, and ``scores_identical`` says whether they all were)."""
    summary: dict[str, Any] = {}
    for measure in ("seconds", "cpu_seconds", "rows_per_second"):
        values = [run[measure] for run in runs]
        summary[measure] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    summary["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    summary["scores_identical"] = all(run["classes"] == runs[-1]["classes"] for run in runs)
    summary["lines_scored"] = runs[-1]["lines_scored"]
    summary["classes"] = runs[-1]["classes"]
    return summary


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
