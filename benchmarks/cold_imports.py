"""Cold import time of each function's handler module, in fresh processes. Prints JSON.

Lambda zips built by ``sam build`` ship no .pyc (the layer is built with ``--no-compile``: bytecode for
CPython 3.13 cannot be made here), so the figure that matches a cold start is the one *without* a
bytecode cache; the *with* figure is a warm-disk reference. The interpreter's own start-up is excluded.

Platform functions come from the catalog: each is measured with its own ``PLATFORM`` and with its platform's
connector module imported too (what its first invocation loads: its SDK or the shared HTTP client).

Usage: python -m benchmarks.cold_imports [--runs N] [--role payment|books]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from local.cfn import Stack
from refundflow import catalog

PROBE = """
import importlib, importlib.util, json, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
for extra in sys.argv[2:]:
    importlib.import_module(extra)
print(json.dumps({"ms": (time.perf_counter() - started) * 1000, "modules": len(sys.modules)}))
"""


def measure(
    app: Path, *, bytecode: bool, runs: int, environment: dict[str, str] | None = None, extra: tuple[str, ...] = ()
) -> dict[str, float]:
    samples = []
    modules = 0
    own = environment or {}
    for _ in range(runs):
        environment = {**os.environ, **own, "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}
        with tempfile.TemporaryDirectory() as cache:
            if not bytecode:
                environment["PYTHONPYCACHEPREFIX"] = cache  # an empty cache: every module is compiled
                environment.pop("PYTHONDONTWRITEBYTECODE", None)
            else:
                environment.pop("PYTHONPYCACHEPREFIX", None)
                environment.pop("PYTHONDONTWRITEBYTECODE", None)
            output = subprocess.run(
                [sys.executable, "-c", PROBE, str(app), *extra],
                capture_output=True,
                text=True,
                env=environment,
                check=True,
            ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        samples.append(result["ms"])
        modules = result["modules"]
    return {"median_ms": round(statistics.median(samples), 1), "min_ms": round(min(samples), 1), "modules": modules}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_imports")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--role", choices=["payment", "books"], help="only the platform functions of this role")
    args = parser.parse_args(argv)
    stack = Stack.from_template("refundflow")
    platform_functions = {
        entry.logical_id(role): (entry, role) for entry in catalog.platforms() for role in entry.function_roles
    }
    results: dict[str, Any] = {}
    for logical_id in sorted(stack.of_type("AWS::Serverless::Function")):
        platform = platform_functions.get(logical_id)
        if args.role and (platform is None or platform[1] != args.role):
            continue
        app = stack.function_folder(logical_id) / "app.py"
        environment = {"PLATFORM": platform[0].name} if platform else {}
        name = platform[0].function_name(platform[1], "<stack>") if platform else app.parent.name
        measure(app, bytecode=True, runs=1, environment=environment)  # fill the cache for the warm figure
        results[name] = {
            "no_bytecode_cache": measure(app, bytecode=False, runs=max(args.runs // 2, 2), environment=environment),
            "bytecode_cache": measure(app, bytecode=True, runs=args.runs, environment=environment),
        }
        if platform:
            connector = (f"refundflow.platforms.{platform[0].name}.connector",)
            results[name]["with_connector"] = {
                "no_bytecode_cache": measure(
                    app, bytecode=False, runs=max(args.runs // 2, 2), environment=environment, extra=connector
                ),
                "bytecode_cache": measure(app, bytecode=True, runs=args.runs, environment=environment, extra=connector),
            }
    return {"benchmark": "cold_imports", "python": sys.version.split()[0], "functions": results}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
