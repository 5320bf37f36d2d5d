"""The contract tests' guard for a missing spec: skip on a user's clone, fail in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract import conftest
from tests.contract.conftest import require_contracts


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    (tmp_path / "xero-accounting.yaml").write_text("openapi: 3.0.0\n")
    return tmp_path


def test_present_specs_are_used_in_and_outside_ci(specs: Path) -> None:
    # GIVEN the spec where it should be / WHEN the guard runs with and without CI / THEN it hands the folder back
    assert require_contracts(specs, {"CI": "true"}, "xero-accounting.yaml") == specs
    assert require_contracts(specs, {}, "xero-accounting.yaml") == specs


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_missing_specs_fail_the_run_in_ci(tmp_path: Path, ci: str) -> None:
    # GIVEN no specs folder, on a CI runner
    absent = tmp_path / "contracts"
    # WHEN the guard runs / THEN the test fails (not skips), naming the folder
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_contracts(absent, {"CI": ci}, "xero-accounting.yaml")


def test_a_missing_spec_file_fails_in_ci_even_when_the_folder_exists(specs: Path) -> None:
    # GIVEN the folder without the spec a test needs / THEN CI fails and names the file
    with pytest.raises(pytest.fail.Exception, match=r"square-connect\.json"):
        require_contracts(specs, {"CI": "true"}, "square-connect.json")


@pytest.mark.parametrize("environ", [{}, {"CI": "false"}, {"CI": ""}], ids=["unset", "false", "empty"])
def test_missing_specs_skip_on_a_users_clone_and_say_so(tmp_path: Path, environ: dict[str, str]) -> None:
    # GIVEN no specs folder outside CI / WHEN the guard runs / THEN the tests skip with the reason
    with pytest.raises(pytest.skip.Exception, match="skipped on this clone"):
        require_contracts(tmp_path / "contracts", environ, "xero-accounting.yaml")


def test_the_contracts_fixture_fails_in_ci_when_the_folder_moves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN CI=true and the shared folder somewhere else
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(conftest, "CONTRACTS", tmp_path / "nowhere")
    # WHEN the fixture every contract test uses is built / THEN it fails the test
    with pytest.raises(pytest.fail.Exception):
        conftest.contracts_dir.__wrapped__()  # type: ignore[attr-defined]


def test_the_contracts_fixture_skips_outside_ci_when_the_folder_moves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(conftest, "CONTRACTS", tmp_path / "nowhere")
    with pytest.raises(pytest.skip.Exception):
        conftest.contracts_dir.__wrapped__()  # type: ignore[attr-defined]
