"""Every Lambda build is pinned: each pip install the layer and function Makefiles run (as `sam build` runs
them) takes constraints.txt, and every requirement they ship is pinned to the version constraints.txt holds,
which is what the tests ran against."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from local.cfn import ROOT, Stack
from local.tools import canonical_name, constraint_pins

STACK = Stack.from_template("refundflow")
PINS = constraint_pins(ROOT / "constraints.txt")
BUILDS = {
    **{logical_id: STACK.function_folder(logical_id) for logical_id in STACK.of_type("AWS::Serverless::Function")},
    **{
        logical_id: ROOT / resource["Properties"]["ContentUri"]
        for logical_id, resource in STACK.of_type("AWS::Serverless::LayerVersion").items()
    },
}
SHIPPED_REQUIREMENTS = sorted(
    [*ROOT.glob("functions/*/requirements.txt"), *ROOT.glob("layers/common/requirements*.txt")]
)


def make_dry_run(folder: Path, logical_id: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """The commands `sam build` would run for one artefact (make -n, in the artefact's folder)."""
    assignments = [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(
        ["make", "-n", "-s", f"build-{logical_id}", "ARTIFACTS_DIR=/artefacts", *assignments],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("logical_id", sorted(BUILDS))
def test_every_pip_install_of_a_lambda_build_takes_the_constraints(logical_id: str) -> None:
    # GIVEN the artefact's Makefile, run as `make sam-build` runs it
    # WHEN make prints what it would run
    run = make_dry_run(
        BUILDS[logical_id],
        logical_id,
        REFUNDFLOW_CONSTRAINTS="/repo/constraints.txt",
        LAMBDA_PYTHON="/usr/bin/python3.13",
    )

    # THEN every pip install is constrained, for Lambda's platform and Python
    assert run.returncode == 0, run.stderr
    installs = [line for line in run.stdout.splitlines() if "pip install" in line]
    assert installs, f"{logical_id} installs nothing: its layer or handler would ship without dependencies"
    for line in installs:
        command = line[line.index("python3 -m pip install") :].split(";")[0]
        arguments = shlex.split(command)
        assert arguments[arguments.index("-c") + 1] == "/repo/constraints.txt", line
        assert arguments[arguments.index("--platform") + 1] == "manylinux2014_aarch64", line
        assert arguments[arguments.index("--python-version") + 1] == "3.13", line
    # and the bundle is finished (runtime packages dropped, bytecode compiled) by the Python 3.13 given
    assert "/usr/bin/python3.13" in run.stdout, run.stdout
    assert "tools/lambda_bundle.py" in run.stdout, run.stdout


@pytest.mark.parametrize("logical_id", sorted(BUILDS))
def test_a_lambda_build_without_the_constraints_refuses_to_run(logical_id: str) -> None:
    # GIVEN a plain `sam build`, which does not say where constraints.txt is
    # WHEN the artefact's Makefile runs
    run = make_dry_run(BUILDS[logical_id], logical_id)

    # THEN it stops before installing anything unpinned, saying how to build
    assert run.returncode != 0
    assert "REFUNDFLOW_CONSTRAINTS is not set" in run.stderr
    assert "pip install" not in run.stdout


@pytest.mark.parametrize("path", SHIPPED_REQUIREMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_what_the_lambdas_ship_is_pinned_to_what_the_tests_ran(path: Path) -> None:
    # GIVEN the requirements a layer or function build installs
    requirements = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]

    # THEN each one is pinned, to the version in constraints.txt (the .venv the tests ran in)
    for requirement in filter(None, requirements):
        name, separator, version = requirement.partition("==")
        assert separator, f"{requirement} is not pinned"
        assert PINS.get(canonical_name(name)) == version, f"{requirement}: constraints.txt pins {PINS.get(name)}"
