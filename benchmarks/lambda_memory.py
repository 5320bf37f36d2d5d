"""Peak memory of each function, for right-sizing MemorySize: what a cold start holds plus what one invocation adds.

Two measurements, added up:

- **resident after the cold start**: a fresh ``python3.13 -I -S -B`` process per function imports its handler and
  what it imports on its first invocation (a platform's connector, intake's verifiers) on the layout ``sam build``
  ships (the function's folder, its layer's ``python/``, the runtime's boto3; ``--build``/``--runtime``, as
  ``benchmarks.cold_imports`` uses them), then reports its peak resident set (``VmHWM`` in ``/proc/self/status``).
  Without a build, the source tree on this interpreter's path is used (``layout`` says which).
- **what one invocation adds**: the straight-through workflow runs on the local stack (``benchmarks.workflow``'s
  refunds) with every handler call traced (``tracemalloc``: the peak of Python allocations during the call above
  what was allocated when it started); calls that overlapped another function's call are left out (the trace is
  process-wide), and the largest of the rest is the function's figure.

peak = resident after the cold start + the largest invocation + ``--runtime-allowance-mb`` (Lambda's runtime
interface client and the native allocations tracemalloc does not see; an assumption, stated in the output).
Functions the straight path does not invoke take the largest invocation measured for their role (payment,
books, ticket: the same kit code) or, with no role, the largest of all. The recommendation is
max(128, peak x ``--headroom`` rounded up to 64 MB), what template.yaml and tools/platforms.py set.

Usage: python -m benchmarks.lambda_memory [--refunds N] [--build DIR --runtime DIR] [--python PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local import lambdas
from local.cfn import ROOT, Stack
from local.stack import DevStack, LocalSettings
from local.tools import first_use_imports, lambda_environment, lambda_python
from refundflow import catalog

# VmHWM (/proc/self/status) is the process's own peak resident set: getrusage's ru_maxrss would carry the peak
# of the process that forked it across the exec.
PROBE = """
import importlib, json, sys
module, also, *folders = sys.argv[1:]
sys.path[:0] = folders
importlib.import_module(module)
for name in filter(None, also.split(",")):
    importlib.import_module(name)
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"max_rss_kb": peak_kb, "modules": len(sys.modules)}))
"""
MIN_MEMORY_MB = 128  # Lambda's smallest MemorySize
MEMORY_STEP_MB = 64


def recommended_memory_mb(peak_mb: float, headroom: float) -> int:
    return max(MIN_MEMORY_MB, math.ceil(peak_mb * headroom / MEMORY_STEP_MB) * MEMORY_STEP_MB)


def function_roles(stack: Stack) -> dict[str, str]:
    """Platform function -> its role (payment, books, ticket), from the catalog."""
    return {
        entry.logical_id(role): role
        for entry in catalog.platforms()
        for role in entry.function_roles
        if entry.logical_id(role) in stack.resources
    }


# ---------------------------------------------------------------------------------------------- cold start


def cold_start_rss(
    stack: Stack, logical_id: str, python: str, build: Path | None, runtime: Path | None
) -> dict[str, Any]:
    properties = {**stack.template.get("Globals", {}).get("Function", {}), **stack.resources[logical_id]["Properties"]}
    module = str(properties["Handler"]).rpartition(".")[0]
    if build is not None and runtime is not None:
        layers = [layer["Ref"] for layer in properties.get("Layers", [])]
        folders = [build / logical_id, *(build / layer / "python" for layer in layers), runtime]
        command = [python, "-I", "-S", "-B", "-c", PROBE]
    else:
        folders = [stack.function_folder(logical_id), ROOT / "layers/common"]
        command = [sys.executable, "-B", "-c", PROBE]
    environment = lambda_environment(stack, logical_id)
    also = ",".join(first_use_imports(logical_id))
    result = subprocess.run(
        [*command, module, also, *map(str, folders)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        if build is not None:  # a build older than the tree (a module it lacks): measure the source tree instead
            return cold_start_rss(stack, logical_id, python, None, None)
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "mb": round(measured["max_rss_kb"] / 1024, 1),
        "modules": measured["modules"],
        "layout": "build" if build is not None else "source tree",
    }


# ---------------------------------------------------------------------------------------------- invocations


class InvocationPeaks:
    """The largest tracemalloc peak of each function's calls that overlapped no other call."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.overlapped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._active = 0
        self._generation = 0  # bumped whenever a call starts: a call that sees it move overlapped another
        self._original: Callable[..., Any] | None = None

    def start(self) -> InvocationPeaks:
        tracemalloc.start()
        original = lambdas.LocalFunctions.invoke
        self._original = original
        peaks = self

        def traced(functions: lambdas.LocalFunctions, name_or_arn: str, event: Any) -> Any:
            logical_id = functions.logical_id(name_or_arn)
            with peaks._lock:
                peaks._active += 1
                peaks._generation += 1
                generation = peaks._generation
                alone = peaks._active == 1
                if alone:
                    tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
            try:
                return original(functions, name_or_arn, event)
            finally:
                with peaks._lock:
                    peak = tracemalloc.get_traced_memory()[1]
                    peaks._active -= 1
                    if alone and peaks._generation == generation:
                        peaks.calls[logical_id] = peaks.calls.get(logical_id, 0) + 1
                        peaks.peaks[logical_id] = max(peaks.peaks.get(logical_id, 0), peak - before)
                    else:
                        peaks.overlapped[logical_id] = peaks.overlapped.get(logical_id, 0) + 1

        lambdas.LocalFunctions.invoke = traced  # type: ignore[method-assign,assignment]
        return self

    def stop(self) -> None:
        if self._original is not None:
            lambdas.LocalFunctions.invoke = self._original  # type: ignore[method-assign]
        tracemalloc.stop()


def run_workflow(refunds: int) -> InvocationPeaks:
    from benchmarks.meters import Meter
    from benchmarks.workflow import Bench

    with DevStack(LocalSettings(api_port=0, aws_port=0)) as stack:
        bench = Bench(stack, Meter())
        bench.run_one(bench.prepare(-1))  # the cold starts (module loads) are measured by the fresh processes
        bodies = [bench.prepare(index) for index in range(refunds)]
        peaks = InvocationPeaks().start()
        try:
            for body in bodies:
                bench.run_one(body)
            time.sleep(3)  # let the notifier drain its queue: its invocation belongs to the refund
        finally:
            peaks.stop()
    return peaks


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lambda_memory")
    parser.add_argument("--refunds", type=int, default=4)
    parser.add_argument("--build", type=Path, default=ROOT / ".aws-sam/host/build")
    parser.add_argument("--runtime", type=Path, default=ROOT / ".aws-sam/lambda-runtime")
    parser.add_argument("--python", help="a Python 3.13 for the cold-start probes (default: python3.13 or pyenv's)")
    parser.add_argument("--headroom", type=float, default=2.0)
    parser.add_argument("--runtime-allowance-mb", type=float, default=10.0)
    parser.add_argument("--function", action="append", help="only these logical ids (default: every function)")
    args = parser.parse_args(argv)
    stack = Stack.from_template("refundflow-local")
    python = lambda_python(args.python)
    use_build = python is not None and args.build.is_dir() and args.runtime.is_dir()
    functions = args.function or sorted(stack.of_type("AWS::Serverless::Function"))
    roles = function_roles(stack)
    cold = {
        logical_id: cold_start_rss(
            stack,
            logical_id,
            python or sys.executable,
            args.build if use_build else None,
            args.runtime if use_build else None,
        )
        for logical_id in functions
    }
    peaks = run_workflow(args.refunds)
    measured_mb = {logical_id: peak / 2**20 for logical_id, peak in peaks.peaks.items()}
    by_role: dict[str, float] = {}
    for logical_id, mb in measured_mb.items():
        role = roles.get(logical_id)
        if role:
            by_role[role] = max(by_role.get(role, 0.0), mb)
    largest = max(measured_mb.values(), default=0.0)
    results: dict[str, Any] = {}
    for logical_id in functions:
        if "mb" not in cold[logical_id]:
            results[logical_id] = {"cold_start": cold[logical_id]}
            continue
        if logical_id in measured_mb:
            invocation, basis = measured_mb[logical_id], "measured"
        elif roles.get(logical_id) in by_role:
            invocation, basis = by_role[roles[logical_id]], f"largest measured {roles[logical_id]} function"
        else:
            invocation, basis = largest, "largest measured function"
        peak = cold[logical_id]["mb"] + invocation + args.runtime_allowance_mb
        configured = {
            **stack.template.get("Globals", {}).get("Function", {}),
            **stack.resources[logical_id]["Properties"],
        }
        results[logical_id] = {
            "cold_start_rss_mb": cold[logical_id]["mb"],
            "modules": cold[logical_id]["modules"],
            "cold_start_layout": cold[logical_id]["layout"],
            "largest_invocation_mb": round(invocation, 2),
            "invocation_basis": basis,
            "calls_measured": peaks.calls.get(logical_id, 0),
            "estimated_peak_mb": round(peak, 1),
            "recommended_memory_mb": recommended_memory_mb(peak, args.headroom),
            "template_memory_mb": configured.get("MemorySize"),
        }
    return {
        "benchmark": "lambda_memory",
        "layout": str(args.build) if use_build else "source tree (no sam build found)",
        "python": python if use_build else sys.executable,
        "refunds": args.refunds,
        "assumptions": {
            "headroom": args.headroom,
            "runtime_allowance_mb": args.runtime_allowance_mb,
            "minimum_mb": MIN_MEMORY_MB,
            "step_mb": MEMORY_STEP_MB,
        },
        "functions": results,
        "overlapped_calls_left_out": peaks.overlapped,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
