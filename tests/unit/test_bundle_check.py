"""The bundle check's logic (local/tools.py): what makes two builds differ, what counts as pinned, and that a
handler is imported with nothing on its path but the folders Lambda would give it."""

from __future__ import annotations

import sys
from pathlib import Path

from local.tools import bundle_problems, canonical_name, constraint_pins, distributions, import_problem


def bundle(folder: Path, *dists: str) -> Path:
    """A bundle folder holding the given ``name-version`` distributions (their dist-info folders)."""
    for dist in dists:
        (folder / f"{dist}.dist-info").mkdir(parents=True)
    return folder


def test_distributions_are_read_from_dist_info_names_and_compared_by_canonical_name(tmp_path: Path) -> None:
    # GIVEN a bundle with PyYAML installed under its normalised dist-info name
    folder = bundle(tmp_path, "pyyaml-6.0.3", "aws_lambda_powertools-3.37.0", "certifi-2026.10.19.post1")

    # THEN names compare as PEP 503 says, whatever their spelling in constraints.txt
    assert distributions(folder) == {
        "pyyaml": "6.0.3",
        "aws-lambda-powertools": "3.37.0",
        "certifi": "2026.10.19.post1",
    }
    assert canonical_name("PyYAML") == "pyyaml"
    assert canonical_name("AWS_Lambda.Powertools") == "aws-lambda-powertools"


def test_a_pinned_build_alike_on_both_platforms_has_no_problems(tmp_path: Path) -> None:
    shipped = bundle(tmp_path / "arm", "requests-2.32.5", "pyyaml-6.0.3")
    host = bundle(tmp_path / "x86", "requests-2.32.5", "pyyaml-6.0.3")

    assert bundle_problems(shipped, host, {"requests": "2.32.5", "pyyaml": "6.0.3"}) == []


def test_a_distribution_on_one_platform_only_is_a_problem(tmp_path: Path) -> None:
    # GIVEN a wheel that resolved for x86_64 but not for aarch64
    shipped = bundle(tmp_path / "arm", "requests-2.32.5")
    host = bundle(tmp_path / "x86", "requests-2.32.5", "pyyaml-6.0.3")

    # THEN the host build's imports would prove nothing about the shipped one
    assert bundle_problems(shipped, host, {"requests": "2.32.5", "pyyaml": "6.0.3"}) == [
        "pyyaml missing shipped, 6.0.3 on the host"
    ]


def test_a_version_other_than_the_constraints_is_a_problem(tmp_path: Path) -> None:
    # GIVEN a function build that resolved requests without the constraints (as the webhook function did)
    shipped = bundle(tmp_path / "arm", "requests-2.34.2", "stripe-16.1.0")
    host = bundle(tmp_path / "x86", "requests-2.34.2", "stripe-16.1.0")

    # THEN it is reported, as is a distribution constraints.txt does not pin at all
    assert bundle_problems(shipped, host, {"requests": "2.32.5"}) == [
        "requests 2.34.2 is not the version constraints.txt pins (2.32.5)",
        "stripe 16.1.0 is not the version constraints.txt pins (none)",
    ]


def test_constraint_pins_skip_comments(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# header\nPyYAML==6.0.3\n\nrequests==2.32.5  # why\n")

    assert constraint_pins(constraints) == {"pyyaml": "6.0.3", "requests": "2.32.5"}


def test_a_handler_imports_from_its_folders_alone(tmp_path: Path) -> None:
    # GIVEN a handler that needs a module of its layer
    (tmp_path / "function").mkdir()
    (tmp_path / "function" / "app.py").write_text(
        "from shared import answer\n\n\ndef lambda_handler(event, context):\n    return answer\n"
    )
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "shared.py").write_text("answer = 42\n")

    # WHEN it is imported with the function and the layer on the path
    problem = import_problem(sys.executable, "app.lambda_handler", [tmp_path / "function", tmp_path / "layer"], {})

    # THEN it imports; without the layer it does not
    assert problem is None
    missing = import_problem(sys.executable, "app.lambda_handler", [tmp_path / "function"], {})
    assert missing == "ModuleNotFoundError: No module named 'shared'"


def test_a_handler_cannot_lean_on_the_interpreters_site_packages(tmp_path: Path) -> None:
    # GIVEN a handler importing a package this test environment has installed (pytest) but no bundle ships
    (tmp_path / "app.py").write_text("import pytest\n\n\ndef lambda_handler(event, context):\n    return None\n")

    # WHEN it is imported by the check's interpreter
    problem = import_problem(sys.executable, "app.lambda_handler", [tmp_path], {})

    # THEN site-packages are not on the path: the import fails as it would in Lambda
    assert problem == "ModuleNotFoundError: No module named 'pytest'"


def test_a_handler_name_that_is_not_callable_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("lambda_handler = None\n")

    assert import_problem(sys.executable, "app.lambda_handler", [tmp_path], {}) == (
        "app.lambda_handler is not callable"
    )
