"""``refundflow reconcile`` hands its arguments to the reconciliation runner (its options, its exit codes)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from refundflow_cli.app import app


def test_reconcile_is_a_refundflow_command_with_the_runners_options() -> None:
    # GIVEN the refundflow console app WHEN asked for reconcile's help THEN the runner's own options answer
    answer = CliRunner().invoke(app, ["reconcile", "--help"])
    assert answer.exit_code == 0
    assert "usage: refundflow reconcile" in answer.output
    assert "--bank" in answer.output
    assert "--stack" in answer.output


def test_reconcile_of_a_file_that_cannot_be_read_exits_2(tmp_path: Path) -> None:
    # GIVEN a settlement file that does not exist WHEN reconciled THEN the runner's "cannot be read" exit code
    arguments = ["reconcile", str(tmp_path / "missing-stripe-report.csv"), "--report-dir", str(tmp_path / "reports")]
    answer = CliRunner().invoke(app, [*arguments, "--no-progress"])
    assert answer.exit_code == 2
    assert "cannot read" in answer.output
    assert not (tmp_path / "reports").exists()  # refused before anything is written
