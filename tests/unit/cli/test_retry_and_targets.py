"""What ``refundflow retry`` may do for each refund state, and how the CLI finds a deployed stack."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from refundflow_cli.commands.retry import BOOKS_RETRY, REDRIVE, plan
from refundflow_cli.errors import CliError, Exit, from_problem
from refundflow_cli.target import Settings, Target

RUNNING = {"status": "RUNNING"}
FAILED_AT_OUR_FAIL_STATE = {"status": "FAILED", "redriveStatus": "REDRIVABLE"}


def refund(status: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"refund_id": "rf_1", "status": status, "attention_reason": reason, "timeline": [], **extra}


@pytest.mark.parametrize(
    ("document", "execution", "action"),
    [
        (refund("NEEDS_ATTENTION", "books_rejected"), FAILED_AT_OUR_FAIL_STATE, BOOKS_RETRY),
        (refund("NEEDS_ATTENTION", "books_update_failed"), None, BOOKS_RETRY),
        (refund("NEEDS_ATTENTION", "books_pending"), {"status": "FAILED"}, BOOKS_RETRY),
        (
            refund("NEEDS_ATTENTION", "provider_outcome_unknown"),
            {"status": "ABORTED", "redriveStatus": "REDRIVABLE"},
            REDRIVE,
        ),
        (refund("REFUND_PENDING"), {"status": "TIMED_OUT"}, REDRIVE),
    ],
)
def test_retry_is_allowed_where_the_domain_can_resume(document: dict[str, Any], execution: Any, action: str) -> None:
    assert plan(document, execution).action == action


@pytest.mark.parametrize(
    ("document", "execution", "reason"),
    [
        (refund("COMPLETED"), None, "nothing to retry"),
        (refund("FAILED", failure={"code": "card_declined"}), None, "FAILED (card_declined), which is final"),
        (refund("REJECTED"), None, "which is final"),
        (refund("PENDING_APPROVAL"), RUNNING, "waits for an approver"),
        (refund("NEEDS_ATTENTION", "books_update_failed"), RUNNING, "retries the books by itself"),
        (refund("NEEDS_ATTENTION", "provider_outcome_unknown"), RUNNING, "polling the provider"),
        (refund("NEEDS_ATTENTION", "provider_reversed_refund"), None, "never retries this"),
        (refund("NEEDS_ATTENTION", "provider_amount_mismatch"), None, "never retries this"),
        (refund("NEEDS_ATTENTION", "outcome_unknown"), None, "a resend could pay twice"),
        (refund("NEEDS_ATTENTION", "outcome_not_reported"), RUNNING, "check at the provider"),
        (refund("REFUND_SUBMITTED"), RUNNING, "its workflow is running"),
        (refund("VALIDATED"), None, "no workflow execution"),
        (
            refund("REFUND_PENDING"),
            {
                "status": "FAILED",
                "redriveStatus": "NOT_REDRIVABLE",
                "redriveStatusReason": "Execution redrivable period exceeded",
            },
            "redrivable period exceeded",
        ),
    ],
)
def test_retry_is_refused_with_the_reason(document: dict[str, Any], execution: Any, reason: str) -> None:
    decided = plan(document, execution)
    assert decided.action is None
    assert reason in decided.reason


def test_a_deployed_stack_is_found_by_its_outputs_and_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    target = Target(Settings(stack_name="refundflow-prod", region="eu-west-1"))
    cloudformation = target._session().client("cloudformation", region_name="eu-west-1")
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "refundflow-prod",
                        "CreationTime": "2026-01-01T00:00:00Z",
                        "StackStatus": "UPDATE_COMPLETE",
                        "Outputs": [
                            {"OutputKey": "ApiUrl", "OutputValue": "https://abc.execute-api.eu-west-1.amazonaws.com"}
                        ],
                        "Parameters": [{"ParameterKey": "RefundRequestsSecretName", "ParameterValue": "refundflow/rr"}],
                    }
                ]
            },
            {"StackName": "refundflow-prod"},
        )
        monkeypatch.setattr(target, "_session", lambda: type("S", (), {"client": lambda *_a, **_k: cloudformation})())
        assert target.api_url == "https://abc.execute-api.eu-west-1.amazonaws.com"
        assert target.parameter("RefundRequestsSecretName") == "refundflow/rr"
        assert target.region == "eu-west-1"
    with pytest.raises(CliError) as missing:
        target.output("RefundsTableName")
    assert (missing.value.code, missing.value.exit_code) == ("missing_output", Exit.CONFIG)


def test_a_missing_stack_is_not_found() -> None:
    target = Target(Settings(stack_name="nope", region="eu-west-1"))
    cloudformation = target._session().client("cloudformation", region_name="eu-west-1")
    with Stubber(cloudformation) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id nope does not exist", 400)
        target._session = lambda: type("S", (), {"client": lambda *_a, **_k: cloudformation})()  # type: ignore[method-assign]
        with pytest.raises(CliError) as error:
            target.description  # noqa: B018
    assert (error.value.code, error.value.exit_code) == ("ValidationError", Exit.NOT_FOUND)


@pytest.mark.parametrize(
    ("status", "body", "code", "exit_code"),
    [
        (409, {"code": "not_pending_approval", "detail": "it is COMPLETED"}, "not_pending_approval", Exit.REFUSED),
        (404, {"code": "refund_not_found", "detail": "no refund"}, "refund_not_found", Exit.NOT_FOUND),
        (401, {"message": "Unauthorized"}, "http_401", Exit.REFUSED),  # API Gateway's own answer
        (503, None, "http_503", Exit.UNAVAILABLE),
    ],
)
def test_an_api_answer_becomes_the_problem_documents_code(status: int, body: Any, code: str, exit_code: Exit) -> None:
    error = from_problem(status, body, "approve rf_1")
    assert (error.code, error.exit_code) == (code, exit_code)
    assert error.message.startswith(f"approve rf_1: HTTP {status}")


def test_make_setup_installs_the_refundflow_console_script() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "refundflow"
    assert script.exists(), "make setup installs the console script (pyproject [project.scripts])"
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0
    for command in ("send", "refunds", "approve", "reject", "retry", "dlq", "events", "policy"):
        assert command in shown.stdout
    # a usage error is one line and exit 2, like every other error
    wrong = subprocess.run([str(script), "reject", "rf_1"], capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode == Exit.USAGE
    assert wrong.stderr.splitlines() == ["error[usage]: Missing option '--note'. (see `refundflow reject --help`)"]


def deployed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An Api on a deployed stack whose description is known (no CloudFormation call), with AWS credentials."""
    from refundflow_cli.api import Api

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    target = Target(Settings(stack_name="refundflow-prod", region="eu-west-1"))
    target.__dict__["description"] = {
        "Region": "eu-west-1",
        "Outputs": {"ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com"},
        "Parameters": {},
    }
    return Api(target)


def test_on_a_deployed_stack_the_status_api_is_called_with_sigv4(monkeypatch: pytest.MonkeyPatch) -> None:
    import responses

    api = deployed(monkeypatch)
    with responses.RequestsMock() as mocked:
        mocked.get("https://abc.execute-api.eu-west-1.amazonaws.com/refunds/rf_1", json={"refund_id": "rf_1"})
        assert api.refund("rf_1") == {"refund_id": "rf_1"}
        authorization = mocked.calls[0].request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization


def test_on_a_deployed_stack_approvals_need_the_identity_providers_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import responses

    api = deployed(monkeypatch)
    monkeypatch.delenv("REFUNDFLOW_TOKEN", raising=False)
    with pytest.raises(CliError) as missing:
        api.approver_token("lee:team_lead")  # the local issuer does not exist there
    assert (missing.value.code, missing.value.exit_code) == ("no_token", Exit.CONFIG)
    monkeypatch.setenv("REFUNDFLOW_TOKEN", "eyJ.token")
    with responses.RequestsMock() as mocked:
        mocked.post(
            "https://abc.execute-api.eu-west-1.amazonaws.com/refunds/rf_1/approval",
            json={
                "refund_id": "rf_1",
                "status": "APPROVED",
                "decision": "approve",
                "approver": "lee",
                "role": "team_lead",
            },
        )
        api.decide("rf_1", "approve", "ok", api.approver_token(None))
        sent = mocked.calls[0].request
    assert sent.headers["Authorization"] == "Bearer eyJ.token"
    assert json.loads(sent.body) == {"decision": "approve", "note": "ok"}


def test_a_listed_refund_says_how_old_it_is() -> None:
    from datetime import UTC, datetime

    from refundflow_cli.commands.refunds import _duration, _summary

    row = {
        "refund_id": "rf_1",
        "status": "PENDING_APPROVAL",
        "created_at": "2026-12-06T01:00:00Z",
        "updated_at": "2026-12-06T01:00:02.5Z",
        "requested_amount": {"minor_units": 12000, "currency": "EUR"},
        "payment": {"provider": "stripe", "payment_id": "pi_1"},
        "policy": {"required_role": "agent"},
    }
    summary = _summary(row, now=datetime(2026, 12, 6, 3, 30, 5, tzinfo=UTC))
    assert (summary["age_seconds"], summary["amount"], summary["why"]) == (9005, "120.00 EUR", "needs agent")
    assert [_duration(s) for s in (9005, 59, 61, 90000, None)] == ["2h 30m", "59s", "1m 1s", "1d 1h", "-"]


def test_a_redrive_on_the_local_stack_is_refused_in_one_line_because_moto_has_no_redrive() -> None:
    from refundflow_cli.commands.retry import _redrive

    with pytest.raises(CliError) as refused:
        _redrive(Target(Settings()), "rf_1")  # no stack name: the local stack; nothing is called
    assert (refused.value.code, refused.value.exit_code) == ("not_supported_locally", Exit.NOT_ALLOWED)


def test_a_deployed_stacks_resources_are_listed_page_by_page(monkeypatch: pytest.MonkeyPatch) -> None:
    target = Target(Settings(stack_name="refundflow-prod", region="eu-west-1"))
    cloudformation = target._session().client("cloudformation", region_name="eu-west-1")

    def summary(logical_id: str, kind: str, physical: str) -> dict[str, Any]:
        return {
            "LogicalResourceId": logical_id,
            "ResourceType": kind,
            "PhysicalResourceId": physical,
            "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
            "ResourceStatus": "CREATE_COMPLETE",
        }

    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/refundflow-prod-books-xero-external-dlq"
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "list_stack_resources",
            {
                "StackResourceSummaries": [
                    summary("BooksXeroExternalRefundsDeadLetterQueue", "AWS::SQS::Queue", queue)
                ],
                "NextToken": "page-2",
            },
            {"StackName": "refundflow-prod"},
        )
        stub.add_response(
            "list_stack_resources",
            {"StackResourceSummaries": [summary("OpsNotificationsRule", "AWS::Events::Rule", "refunds|ops-rule")]},
            {"StackName": "refundflow-prod", "NextToken": "page-2"},
        )
        monkeypatch.setattr(target, "_session", lambda: type("S", (), {"client": lambda *_a, **_k: cloudformation})())
        monkeypatch.setattr(Target, "region", property(lambda _self: "eu-west-1"))
        resources = target.stack_resources()
    assert resources == [
        {
            "LogicalResourceId": "BooksXeroExternalRefundsDeadLetterQueue",
            "ResourceType": "AWS::SQS::Queue",
            "PhysicalResourceId": queue,
        },
        {
            "LogicalResourceId": "OpsNotificationsRule",
            "ResourceType": "AWS::Events::Rule",
            "PhysicalResourceId": "refunds|ops-rule",
        },
    ]


def test_a_local_stack_without_its_resource_list_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    target = Target(Settings())
    monkeypatch.setattr(Target, "description", property(lambda _self: {"Outputs": {}}))
    with pytest.raises(CliError) as error:
        target.stack_resources()
    assert (error.value.code, error.value.exit_code) == ("missing_resources", Exit.CONFIG)
