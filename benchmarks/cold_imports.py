"""Cold import of each function's handler on the layout ``sam build`` ships, against a bare ``import boto3``.

What a Lambda cold start imports is the build, not the source tree: the function's folder, its layer's
``python/`` folder and the runtime's own packages (boto3 and its dependencies, compiled by AWS), in that order,
every shipped module with its unchecked-hash bytecode (tools/lambda_bundle.py). The shipped build
(``.aws-sam/build``) holds aarch64 wheels this host cannot import, so this measures the same Makefiles built for
this host (``.aws-sam/host/build``, made by ``make bundle-check``) with ``.aws-sam/lambda-runtime`` as the runtime.
Before measuring, the build's own sources (each ``app.py``, the layer's ``refundflow``) are brought up to the
working tree and compiled the way the build does; a build missing or with dependencies other than the pins is
refused (build it with ``make bundle-check``).

Each figure is a fresh ``python3.13 -I -S -B`` process (no site-packages, no PYTHON* variables, nothing written:
Lambda's code folders are read-only) with the function's environment from the template and Lambda's own
variables (X-Ray's SDK, for one, skips its centralized sampler inside a Lambda), timing only the import (the
interpreter's start is excluded). Each run measures a bare ``import boto3`` and the handler, alternating which
goes first; the ratio is the handler's median over boto3's median of the same runs. Wall time and CPU time are
both given: on a loaded machine the CPU figure is the steadier one. Platform functions are measured with their
``PLATFORM``; ``with_first_use`` adds what a function imports on its first invocation (a platform's connector,
intake's inbound verifiers).

Usage: python -m benchmarks.cold_imports [--runs N] [--function NAME ...] [--role payment|books] [--python PATH]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from local.cfn import ROOT, Stack
from local.tools import constraint_pins, distributions, first_use_imports, lambda_environment, lambda_python
from refundflow import catalog

# argv: the module to import, the first-use modules (comma-separated), then the folders in Lambda's order.
PROBE = """
import importlib, json, sys, time
module, also, *folders = sys.argv[1:]
sys.path[:0] = folders
wall, cpu = time.perf_counter(), time.process_time()
importlib.import_module(module)
for name in filter(None, also.split(",")):
    importlib.import_module(name)
print(json.dumps({"ms": (time.perf_counter() - wall) * 1000, "cpu_ms": (time.process_time() - cpu) * 1000,
                  "modules": len(sys.modules)}))
"""
LAYER_PACKAGE = "refundflow"


class StaleBuild(RuntimeError):
    """The build cannot be brought up to the working tree without pip: build it again."""


def _same_tree(source: Path, built: Path) -> bool:
    """Whether ``built`` holds exactly the files of ``source`` (``__pycache__`` aside), byte for byte."""

    def files(root: Path) -> set[Path]:
        return {
            path.relative_to(root) for path in root.rglob("*") if path.is_file() and "__pycache__" not in path.parts
        }

    if not built.is_dir():
        return False
    names = files(source)
    return names == files(built) and all(filecmp.cmp(source / name, built / name, shallow=False) for name in names)


def _finish(python: str, folder: Path, prefix: str) -> None:
    """The build's last step (tools/lambda_bundle.py): compile the folder for the Lambda's Python."""
    subprocess.run([python, str(ROOT / "tools/lambda_bundle.py"), str(folder), "--prefix", prefix], check=True)


def refresh_build(build: Path, stack: Stack, logical_ids: list[str], python: str) -> tuple[list[str], dict[str, str]]:
    """Bring the build's own sources up to the working tree, as the Makefiles copy and compile them: the folders
    changed, and the functions that cannot be measured, with why (missing, or a dependency not at its pin).

    Raises:
        StaleBuild: the layer is missing, or a dependency of it is not at its pin.
    """
    changed: list[str] = []
    layer = build / "CommonLayer" / "python"
    if not layer.is_dir():
        raise StaleBuild(f"{layer} is missing")
    for requirements in [ROOT / "layers/common/requirements.txt", ROOT / "layers/common/requirements-nodeps.txt"]:
        _check_pins(layer, requirements)
    source = ROOT / "layers/common" / LAYER_PACKAGE
    if not _same_tree(source, layer / LAYER_PACKAGE):
        shutil.rmtree(layer / LAYER_PACKAGE, ignore_errors=True)
        shutil.copytree(source, layer / LAYER_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        _finish(python, layer, "/opt/python")
        changed.append("CommonLayer")
    unbuilt: dict[str, str] = {}
    for logical_id in logical_ids:
        folder = build / logical_id
        app = stack.function_folder(logical_id) / "app.py"
        platform = stack.function_environment(logical_id).get("PLATFORM")
        requirement_files = [app.parent / "requirements.txt", app.parent / f"requirements-{platform}.txt"]
        pins = [pin for path in requirement_files if path.is_file() for pin in constraint_pins(path)]
        if not folder.is_dir() and not pins:  # the Makefile copies app.py and compiles it, nothing to install
            folder.mkdir(parents=True)
        try:
            if not folder.is_dir():
                raise StaleBuild(f"{folder} is missing")
            for requirements in requirement_files:
                if requirements.is_file():
                    _check_pins(folder, requirements)
        except StaleBuild as stale:
            unbuilt[logical_id] = f"{stale} (make bundle-check builds it)"
            continue
        if not (folder / "app.py").is_file() or not filecmp.cmp(app, folder / "app.py", shallow=False):
            shutil.copy2(app, folder / "app.py")
            _finish(python, folder, "/var/task")
            changed.append(logical_id)
    return changed, unbuilt


def _check_pins(folder: Path, requirements: Path) -> None:
    installed = distributions(folder)
    for name, version in constraint_pins(requirements).items():
        if installed.get(name) != version:
            raise StaleBuild(f"{folder}: {name} {installed.get(name) or 'missing'}, {requirements.name} pins {version}")


def compile_runtime(runtime: Path, python: str) -> None:
    """The stand-in runtime compiled, like the real one (AWS ships boto3 with its bytecode)."""
    if not (runtime / "boto3").is_dir():
        raise StaleBuild(f"{runtime} has no boto3 (make bundle-check installs it)")
    subprocess.run([python, "-m", "compileall", "-q", str(runtime)], check=True, stdout=subprocess.DEVNULL)


def probe(python: str, module: str, folders: list[Path], environment: dict[str, str], also: tuple[str, ...]) -> Any:
    command = [python, "-I", "-S", "-B", "-c", PROBE, module, ",".join(also), *map(str, folders)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{module} does not import: {(result.stderr or result.stdout).strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(samples: list[dict[str, Any]], bare: list[dict[str, Any]]) -> dict[str, Any]:
    wall = statistics.median(sample["ms"] for sample in samples)
    cpu = statistics.median(sample["cpu_ms"] for sample in samples)
    return {
        "median_ms": round(wall, 1),
        "cpu_median_ms": round(cpu, 1),
        "modules": samples[-1]["modules"],
        "ratio": round(wall / statistics.median(sample["ms"] for sample in bare), 2),
        "cpu_ratio": round(cpu / statistics.median(sample["cpu_ms"] for sample in bare), 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_imports")
    parser.add_argument("--runs", type=int, default=5, help="runs per function (median of them)")
    parser.add_argument("--function", action="append", help="a function folder or logical id (repeatable)")
    parser.add_argument("--role", choices=["payment", "books"], help="only the platform functions of this role")
    parser.add_argument("--build", type=Path, default=ROOT / ".aws-sam/host/build", help="the host build")
    parser.add_argument("--runtime", type=Path, default=ROOT / ".aws-sam/lambda-runtime", help="Lambda's packages")
    parser.add_argument("--python", help="a Python 3.13 (default: LAMBDA_PYTHON, python3.13 or pyenv's)")
    args = parser.parse_args(argv)
    python = lambda_python(args.python or os.environ.get("LAMBDA_PYTHON"))
    if python is None:
        parser.error("no Python 3.13 found: give --python")
    stack = Stack.from_template("refundflow")
    functions = stack.of_type("AWS::Serverless::Function")
    platform_functions = {
        entry.logical_id(role): (entry, role) for entry in catalog.platforms() for role in entry.function_roles
    }
    selected = [
        logical_id
        for logical_id in sorted(functions)
        if (not args.role or platform_functions.get(logical_id, (None, None))[1] == args.role)
        and (not args.function or {logical_id, stack.function_folder(logical_id).name} & set(args.function))
    ]
    try:
        refreshed, unbuilt = refresh_build(args.build, stack, selected, python)
        compile_runtime(args.runtime, python)
    except StaleBuild as stale:  # no build to measure: said, not raised (`make benchmarks` runs the others)
        return {"benchmark": "cold_imports", "error": f"{stale} (make bundle-check builds it)"}
    function_globals = stack.template.get("Globals", {}).get("Function", {})
    results: dict[str, Any] = {}
    all_bare: list[dict[str, Any]] = []
    for logical_id in [logical_id for logical_id in selected if logical_id not in unbuilt]:
        properties = {**function_globals, **functions[logical_id]["Properties"]}
        module = str(properties["Handler"]).rpartition(".")[0]
        layers = [layer["Ref"] for layer in properties.get("Layers", [])]
        folders = [args.build / logical_id, *(args.build / layer / "python" for layer in layers), args.runtime]
        environment = lambda_environment(stack, logical_id)
        first_use = first_use_imports(logical_id)
        bare: list[dict[str, Any]] = []
        handler: list[dict[str, Any]] = []
        with_first_use: list[dict[str, Any]] = []
        for run in range(args.runs):
            measurements = [
                (bare, "boto3", [args.runtime], ()),
                (handler, module, folders, ()),
                *([(with_first_use, module, folders, first_use)] if first_use else []),
            ]
            for samples, name, path, also in measurements if run % 2 == 0 else reversed(measurements):
                samples.append(probe(python, name, path, environment, also))
        all_bare += bare
        platform = platform_functions.get(logical_id)
        name = platform[0].function_name(platform[1], "<stack>") if platform else stack.function_folder(logical_id).name
        results[name] = summary(handler, bare)
        if with_first_use:
            results[name]["with_first_use"] = summary(with_first_use, bare)
    return {
        "benchmark": "cold_imports",
        "python": python,
        "layout": str(args.build),
        "refreshed": refreshed,
        "runs": args.runs,
        "boto3": {
            "median_ms": round(statistics.median(sample["ms"] for sample in all_bare), 1) if all_bare else None,
            "cpu_median_ms": round(statistics.median(sample["cpu_ms"] for sample in all_bare), 1) if all_bare else None,
        },
        "functions": results,
        "not_measured": unbuilt,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
