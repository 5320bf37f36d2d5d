"""Contract fixtures: where the official API specs are, and what happens when they are not there.

The specs live beside the repository (``../shared/contracts``), never inside it. On a user's clone without
them the contract tests skip and say why; in CI (``CI`` set to true, as GitHub Actions, GitLab and most
runners do) a missing spec fails the run instead, so a broken checkout can never pass the gate by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.conftest import CONTRACTS

_TRUE = {"1", "true", "yes", "on"}


def running_in_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() in _TRUE


def require_contracts(directory: Path, environ: Mapping[str, str], *names: str) -> Path:
    """``directory`` when it holds every spec in ``names``; otherwise fail in CI, skip elsewhere.

    Raises:
        pytest.fail.Exception: a spec is missing and ``CI`` is true.
        pytest.skip.Exception: a spec is missing outside CI.
    """
    missing = [name for name in names if not (directory / name).is_file()] if directory.is_dir() else list(names)
    if not directory.is_dir() or missing:
        what = f"official API specs not found at {directory}" + (f" (missing {', '.join(missing)})" if missing else "")
        if running_in_ci(environ):
            pytest.fail(f"{what}: CI=true, so the contract tests must run; check out ../shared beside the repository")
        pytest.skip(f"{what}: contract tests skipped on this clone (in CI, with CI=true, this fails the run)")
    return directory


@pytest.fixture
def contracts_dir() -> Path:
    """The official specs (``../shared/contracts``) the contract tests validate against."""
    return require_contracts(CONTRACTS, os.environ, "xero-accounting.yaml")
