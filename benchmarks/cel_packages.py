"""Compare the Python CEL packages on what the policy engine needs; prints JSON.

    .venv/bin/python benchmarks/cel_packages.py [--python INTERPRETER] [--runs 7]

Candidates: ``cel-python`` (module ``celpy``, pure Python), ``common-expression-language`` (module ``cel``,
Rust core) imported as a package, and the same Rust core loaded alone the way
``refundflow.policy.cel_runtime`` does (without the package's CLI dependencies).

Every figure comes from fresh subprocesses of INTERPRETER (default: this one; point it at a venv that
has both packages to compare them): import time without .pyc for the packages (the standard library
keeps its .pyc, as in the Lambda runtime) and with .pyc (as pip installed them), compile time of the
rule set of ``default_policy.yaml`` (rules and adjustment conditions), and evaluation time over the
activations built from ``events/policy/*.json``. The results of both packages are cross-checked.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "layers" / "common" / "refundflow" / "policy" / "default_policy.yaml"
CEL_RUNTIME = ROOT / "layers" / "common" / "refundflow" / "policy" / "cel_runtime.py"
SAMPLES = ROOT / "events" / "policy"

IMPORTS = {
    "cel-python": "import celpy as cel_module",
    "common-expression-language": "import cel as cel_module",
    "common-expression-language (core only)": (
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('cel_runtime', {str(CEL_RUNTIME)!r})\n"
        "runtime = importlib.util.module_from_spec(spec); spec.loader.exec_module(runtime)\n"
        "cel_module = runtime.core()"
    ),
}

# Runs in the subprocess after the import: compile the rule set, evaluate it, print JSON.
WORKLOAD = r"""
import json, sys, time
data = json.load(open(sys.argv[1]))
expressions, activations, rounds = data["expressions"], data["activations"], data["rounds"]
is_celpy = cel_module.__name__ == "celpy"

def compile_all():
    if is_celpy:
        env = cel_module.Environment()
        return [env.program(env.compile(text)) for text in expressions]
    return [cel_module.compile(text) for text in expressions]

def context(activation):
    if is_celpy:
        return {name: cel_module.json_to_cel(value) for name, value in activation.items()}
    return cel_module.Context(activation)

def run(program, ctx):
    try:
        result = program.evaluate(ctx) if is_celpy else program.execute(ctx)
    except Exception as error:
        return "error: " + type(error).__name__
    return bool(result) if type(result).__name__ in ("bool", "BoolType") else repr(result)

started = time.perf_counter()
programs = compile_all()
first_compile = time.perf_counter() - started
started = time.perf_counter()
for _ in range(rounds["compile"]):
    compile_all()
compile_again = (time.perf_counter() - started) / rounds["compile"]

contexts = [context(activation) for activation in activations]
results = [[run(program, ctx) for program in programs] for ctx in contexts]
started = time.perf_counter()
for _ in range(rounds["evaluate"]):
    for ctx in contexts:
        for program in programs:
            run(program, ctx)
evaluations = rounds["evaluate"] * len(contexts) * len(programs)
per_evaluation = (time.perf_counter() - started) / evaluations
started = time.perf_counter()
for _ in range(rounds["evaluate"]):
    for activation in activations:
        ctx = context(activation)
        for program in programs:
            run(program, ctx)
per_decision = (time.perf_counter() - started) / (rounds["evaluate"] * len(activations))
print(json.dumps({
    "first_compile_ms": first_compile * 1e3,
    "compile_ms": compile_again * 1e3,
    "evaluation_us": per_evaluation * 1e6,
    "decision_us": per_decision * 1e6,
    "results": results,
}))
"""

IMPORT_ONLY = (
    "import time\nstarted = time.perf_counter()\n{import_code}\nprint((time.perf_counter() - started) * 1e3)\n"
)


def _workload_input(folder: Path) -> dict[str, Any]:
    """The rule set and realistic activations, built with the engine itself."""
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    import yaml

    from refundflow.policy.cli import load_samples

    document = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    expressions = [rule["when"] for rule in document["rules"]]
    expressions += [spec["when"] for spec in document.get("adjustments", {}).values() if spec.get("when")]
    activations = [
        {**sample.policy_input().activation(), "params": document["params"]} for sample in load_samples(SAMPLES)
    ]
    return {"expressions": expressions, "activations": activations}


def _run(python: str, code: str, argv: list[str], env: dict[str, str]) -> str:
    completed = subprocess.run(
        [python, "-c", code, *argv], capture_output=True, text=True, env=env, check=False, timeout=600
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed")
    return completed.stdout.strip().splitlines()[-1]


def _pycache_without_packages(python: str, code: str, base_env: dict[str, str], prefix: Path) -> dict[str, str]:
    """An environment whose .pyc cache holds the standard library only, as on a Lambda without .pyc.

    One run fills a PYTHONPYCACHEPREFIX; the mirrors of site-packages and of this repository are then
    removed, so every later run compiles the packages from source and never writes them back.
    """
    env = {**base_env, "PYTHONPYCACHEPREFIX": str(prefix)}
    _run(python, code, [], env)
    paths = _run(python, "import sysconfig; p = sysconfig.get_paths(); print(p['purelib'], p['platlib'])", [], base_env)
    for path in {*paths.split(), str(ROOT)}:
        shutil.rmtree(prefix / Path(path).relative_to("/"), ignore_errors=True)
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def _import_times(
    python: str, import_code: str, runs: int, base_env: dict[str, str], scratch: Path
) -> dict[str, float]:
    code = IMPORT_ONLY.format(import_code=import_code)
    env_cold = _pycache_without_packages(python, code, base_env, scratch / f"pycache-{abs(hash(import_code))}")
    _run(python, code, [], base_env)  # makes sure the installed packages have their own .pyc
    cold = [float(_run(python, code, [], env_cold)) for _ in range(runs)]
    warm = [float(_run(python, code, [], base_env)) for _ in range(runs)]
    return {
        "import_ms_without_pyc_median": round(statistics.median(cold), 1),
        "import_ms_without_pyc_min": round(min(cold), 1),
        "import_ms_with_pyc_median": round(statistics.median(warm), 1),
        "import_ms_with_pyc_min": round(min(warm), 1),
    }


def measure(python: str, runs: int) -> dict[str, Any]:
    workload = _workload_input(SAMPLES)
    workload["rounds"] = {"compile": 3, "evaluate": 20}
    base_env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    report: dict[str, Any] = {
        "python": _run(python, "import sys; print(sys.version.split()[0])", [], base_env),
        "machine": platform.machine(),
        "rules": len(workload["expressions"]),
        "activations": len(workload["activations"]),
        "packages": {},
    }
    outcomes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workload_path = str(Path(scratch) / "workload.json")
        Path(workload_path).write_text(json.dumps(workload), encoding="utf-8")
        for name, import_code in IMPORTS.items():
            try:
                figures: dict[str, Any] = _import_times(python, import_code, runs, base_env, Path(scratch))
                run = json.loads(_run(python, f"{import_code}\n{WORKLOAD}", [workload_path], base_env))
            except RuntimeError as error:
                report["packages"][name] = {"error": str(error)}
                continue
            outcomes[name] = run.pop("results")
            figures.update({key: round(value, 2) for key, value in run.items()})
            report["packages"][name] = figures
    if len(outcomes) > 1:
        reference_name, reference = next(iter(outcomes.items()))
        report["disagreements"] = {
            name: sum(a != b for rows in zip(reference, results, strict=True) for a, b in zip(*rows, strict=True))
            for name, results in outcomes.items()
            if name != reference_name
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the environment to measure")
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per import figure")
    arguments = parser.parse_args()
    print(json.dumps(measure(arguments.python, arguments.runs), indent=2))


if __name__ == "__main__":
    main()
