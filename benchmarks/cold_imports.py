"""Cold import time of each function's handler module, in fresh processes. Prints JSON.

Lambda zips built by ``sam build`` ship no .pyc (the layer is built with ``--no-compile``: bytecode for
CPython 3.13 cannot be made here), so the figure that matches a cold start is the one *without* a
bytecode cache; the *with* figure is a warm-disk reference. The interpreter's own start-up is excluded.

Usage: python -m benchmarks.cold_imports [--runs N]
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

PROBE = """
import importlib.util, json, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({"ms": (time.perf_counter() - started) * 1000, "modules": len(sys.modules)}))
"""


def measure(app: Path, *, bytecode: bool, runs: int) -> dict[str, float]:
    samples = []
    modules = 0
    for _ in range(runs):
        environment = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}
        with tempfile.TemporaryDirectory() as cache:
            if not bytecode:
                environment["PYTHONPYCACHEPREFIX"] = cache  # an empty cache: every module is compiled
                environment.pop("PYTHONDONTWRITEBYTECODE", None)
            else:
                environment.pop("PYTHONPYCACHEPREFIX", None)
                environment.pop("PYTHONDONTWRITEBYTECODE", None)
            output = subprocess.run(
                [sys.executable, "-c", PROBE, str(app)], capture_output=True, text=True, env=environment, check=True
            ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        samples.append(result["ms"])
        modules = result["modules"]
    return {"median_ms": round(statistics.median(samples), 1), "min_ms": round(min(samples), 1), "modules": modules}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_imports")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    stack = Stack.from_template("refundflow")
    results: dict[str, Any] = {}
    for logical_id in sorted(stack.of_type("AWS::Serverless::Function")):
        app = stack.function_folder(logical_id) / "app.py"
        measure(app, bytecode=True, runs=1)  # fill the cache for the warm figure
        results[app.parent.name] = {
            "no_bytecode_cache": measure(app, bytecode=False, runs=max(args.runs // 2, 2)),
            "bytecode_cache": measure(app, bytecode=True, runs=args.runs),
        }
    return {"benchmark": "cold_imports", "python": sys.version.split()[0], "functions": results}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
