"""refundflow reconcile: which parser a file gets, and where a deployed stack keeps its table, bus and key."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from refundflow_cli.reconcile import configure_deployed, guess_bank_format, guess_source


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("settlement/adyen/2026-11-30.csv", "adyen"),
        ("downloads/stripe_payout_reconciliation.csv", "stripe"),
        ("STL-20261130.01.009.CSV-paypal.csv", "paypal"),
    ],
)
def test_the_provider_comes_from_the_path(path: str, source: str) -> None:
    assert guess_source(Path(path)) == source


def test_an_unnamed_provider_must_be_given() -> None:
    with pytest.raises(SystemExit, match="--source"):
        guess_source(Path("report.csv"))


@pytest.mark.parametrize(
    ("name", "kind"),
    [("statement.xml", "camt053"), ("camt054_notification.xml", "camt054"), ("x.sta", "mt940"), ("y.bai2", "bai2")],
)
def test_the_bank_format_comes_from_the_name(name: str, kind: str) -> None:
    assert guess_bank_format(Path(name)) == kind


def test_a_deployed_stack_names_its_table_bus_and_audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN CloudFormation describing a deployed stack
    for name in ("REFUNDS_TABLE_NAME", "EVENT_BUS_NAME", "AUDIT_KEY_SECRET_NAME"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("cloudformation", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "refundflow-prod",
                    "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [
                        {"OutputKey": "RefundsTableName", "OutputValue": "refundflow-prod-RefundsTable-1ABC"},
                        {
                            "OutputKey": "EventBusArn",
                            "OutputValue": "arn:aws:events:eu-west-1:123456789012:event-bus/refunds-prod",
                        },
                    ],
                    "Parameters": [{"ParameterKey": "AuditKeySecretName", "ParameterValue": "refundflow/prod/audit"}],
                }
            ]
        },
        {"StackName": "refundflow-prod"},
    )
    # WHEN the CLI is pointed at it
    with stubber:
        configure_deployed("refundflow-prod", cloudformation=client)
    # THEN the engine's settings name that stack's resources
    assert os.environ["REFUNDS_TABLE_NAME"] == "refundflow-prod-RefundsTable-1ABC"
    assert os.environ["EVENT_BUS_NAME"] == "refunds-prod"
    assert os.environ["AUDIT_KEY_SECRET_NAME"] == "refundflow/prod/audit"


def test_an_unreachable_stack_is_exit_3_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from refundflow import wiring
    from refundflow_cli.reconcile import run

    # (the CLI points this process at the stack: put everything back afterwards)
    for name in ("AWS_ENDPOINT_URL", "REFUNDS_TABLE_NAME", "EVENT_BUS_NAME", "AUDIT_KEY_SECRET_NAME"):
        monkeypatch.setenv(name, os.environ.get(name, "unset"))
    # GIVEN a settlement and no local stack listening
    report = tmp_path / "stripe.csv"
    report.write_text(
        "balance_transaction_id,reporting_category,source_id,gross,fee,net,currency\n"
        "txn_1,refund,re_1,-1.00,0.00,-1.00,eur\n"
    )
    # WHEN the CLI runs THEN it says so and exits 3, no traceback
    status = run([str(report), "--api-url", "http://127.0.0.1:9", "--report-dir", str(tmp_path), "--no-progress"])
    wiring.reset()
    assert status == 3
    assert "make local" in capsys.readouterr().err
