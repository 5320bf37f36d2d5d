"""``python -m refundflow.policy check``: exit codes, decisions printed, expectations checked."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from policy_builders import MINIMAL_POLICY

from refundflow.policy.cli import EXIT_INVALID_POLICY, EXIT_OK, EXIT_SAMPLES_FAILED, main

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_POLICY = ROOT / "layers" / "common" / "refundflow" / "policy" / "default_policy.yaml"
SAMPLES = ROOT / "events" / "policy"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_default_policy_meets_every_sample_expectation() -> None:
    # WHEN the packaged policy is checked against the sample refunds
    code, out, _ = run("check", str(DEFAULT_POLICY), "--samples", str(SAMPLES), "--expect")
    # THEN it passes and prints each decision with its rule, amount and explanation
    assert code == EXIT_OK
    assert "18 samples, all expectations met" in out
    assert "above_auto_approve_limit_restocking: require_approval by agent [rule above_auto_approve_limit]" in out
    assert "200.00 EUR -> 164.05 EUR" in out
    assert "Policy 2026.12.1: rule 'goodwill' matched" in out


def test_invalid_policy_file_exits_1_and_lists_the_problems(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(MINIMAL_POLICY.replace("refund.amount > params", "refund.amout > params"), encoding="utf-8")
    code, _, err = run("check", str(broken), "--samples", str(SAMPLES))
    assert code == EXIT_INVALID_POLICY
    assert f"INVALID {broken}" in err
    assert "unknown field 'refund.amout'" in err


def test_missing_policy_file_exits_1(tmp_path: Path) -> None:
    code, _, err = run("check", str(tmp_path / "nope.yaml"))
    assert code == EXIT_INVALID_POLICY
    assert "cannot read" in err


def test_unmet_expectation_exits_2(tmp_path: Path) -> None:
    # GIVEN a sample whose expectation the policy does not meet
    sample = json.loads((SAMPLES / "policy_fraud_claim.json").read_text(encoding="utf-8"))
    sample["expect"] = {"outcome": "approve", "rule_id": "auto_approve"}
    (tmp_path / "policy_fraud_claim.json").write_text(json.dumps(sample), encoding="utf-8")
    # WHEN checked with --expect, and without
    with_expect = run("check", str(DEFAULT_POLICY), "--samples", str(tmp_path), "--expect")
    without_expect = run("check", str(DEFAULT_POLICY), "--samples", str(tmp_path))
    # THEN only the check with expectations fails, naming what differs
    assert with_expect[0] == EXIT_SAMPLES_FAILED
    assert "EXPECTATION FAILED: outcome require_approval, expected approve" in with_expect[1]
    assert without_expect[0] == EXIT_OK


def test_invalid_sample_exits_2(tmp_path: Path) -> None:
    (tmp_path / "policy_bad.json").write_text('{"name": "bad"}', encoding="utf-8")
    code, _, err = run("check", str(DEFAULT_POLICY), "--samples", str(tmp_path))
    assert code == EXIT_SAMPLES_FAILED
    assert "policy_bad.json" in err


def test_policy_alone_is_validated_without_samples(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(MINIMAL_POLICY, encoding="utf-8")
    code, out, _ = run("check", str(policy))
    assert code == EXIT_OK
    assert "version test.1, 1 rules + default" in out


@pytest.mark.parametrize(("policy", "expected"), [(DEFAULT_POLICY, EXIT_OK), (Path(__file__), EXIT_INVALID_POLICY)])
def test_module_entry_point_returns_the_exit_code(policy: Path, expected: int) -> None:
    # GIVEN the command as the Makefile runs it
    completed = subprocess.run(
        [sys.executable, "-m", "refundflow.policy", "check", str(policy), "--samples", str(SAMPLES), "--expect"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "layers" / "common")},
        check=False,
        timeout=60,
    )
    assert completed.returncode == expected, completed.stderr
