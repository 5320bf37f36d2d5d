"""template.yaml and the two state machines agree with each other and with the code: every placeholder is
substituted, every function a workflow calls may be invoked by it, every error name the workflows retry or
catch is one the code raises, every task is retried and caught, and the IAM stays least-privilege."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.cfn import ROOT, Stack
from refundflow import errors

STACK = Stack.from_template("refundflow")
MACHINES = STACK.of_type("AWS::Serverless::StateMachine")
FUNCTIONS = STACK.of_type("AWS::Serverless::Function")
LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# Raised by Powertools idempotency when the same key is running elsewhere (the step is retried).
LIBRARY_ERRORS = {"IdempotencyAlreadyInProgressError"}
OUR_ERRORS = {
    name for name, value in inspect.getmembers(errors, inspect.isclass) if issubclass(value, errors.RefundflowError)
}


def raw_definition(logical_id: str) -> str:
    return (ROOT / MACHINES[logical_id]["Properties"]["DefinitionUri"]).read_text()


def states(logical_id: str) -> dict[str, dict[str, Any]]:
    definition: dict[str, dict[str, Any]] = json.loads(STACK.definition(logical_id))["States"]
    return definition


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(logical_id: str) -> None:
    # GIVEN a state machine's ASL and its DefinitionSubstitutions
    used = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", raw_definition(logical_id)))
    declared = set(MACHINES[logical_id]["Properties"].get("DefinitionSubstitutions", {}))
    # THEN they are the same set
    assert used == declared


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_a_workflow_may_invoke_exactly_the_functions_it_calls(logical_id: str) -> None:
    # GIVEN the functions the ASL's tasks name
    called = {
        arn.rsplit(":", 1)[1]
        for state in states(logical_id).values()
        for arn in [str(state.get("Parameters", {}).get("FunctionName", ""))]
        if arn
    }
    allowed = {
        STACK.physical_name(str(policy["LambdaInvokePolicy"]["FunctionName"]["Ref"]))
        for policy in MACHINES[logical_id]["Properties"]["Policies"]
        if isinstance(policy, dict) and "LambdaInvokePolicy" in policy
    }
    # THEN the state machine's role may invoke those and no others
    assert called == allowed


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_every_error_name_the_workflow_handles_is_one_that_is_raised(logical_id: str) -> None:
    # GIVEN every ErrorEquals of every Retry and Catch
    names = {
        name
        for state in states(logical_id).values()
        for handler in [*state.get("Retry", []), *state.get("Catch", [])]
        for name in handler["ErrorEquals"]
    }
    # THEN each is a States.* error, a Lambda service error, a Step Functions integration error or ours
    unknown = {
        name
        for name in names
        if not name.startswith(("States.", "StepFunctions."))
        and name not in LAMBDA_ERRORS | LIBRARY_ERRORS | OUR_ERRORS
    }
    assert not unknown


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_every_lambda_task_retries_lambda_service_errors_with_jitter_and_is_caught(logical_id: str) -> None:
    for name, state in states(logical_id).items():
        if state["Type"] != "Task" or "lambda:invoke" not in state["Resource"]:
            continue
        # THEN the Lambda service errors are retried with backoff and full jitter
        lambda_retry = [retry for retry in state.get("Retry", []) if set(retry["ErrorEquals"]) == LAMBDA_ERRORS]
        assert lambda_retry, f"{name} does not retry Lambda service errors"
        assert lambda_retry[0]["BackoffRate"] > 1
        assert lambda_retry[0]["JitterStrategy"] == "FULL"
        # AND anything else is caught (a catch-all), except in the child's own failure handler
        if name != "HandleFailure":
            assert any("States.ALL" in catch["ErrorEquals"] for catch in state.get("Catch", [])), name


def test_a_straight_through_refund_ends_in_the_parents_first_state() -> None:
    # GIVEN the parent workflow WHEN the child completes THEN the first state ends the execution
    first = json.loads(STACK.definition("RefundWorkflowStateMachine"))
    start = first["States"][first["StartAt"]]
    assert start["Resource"].endswith("startExecution.sync:2")
    assert start.get("End") is True
    # AND the child only succeeds when the refund is complete
    child = states("RefundStepsStateMachine")
    succeed = [name for name, state in child.items() if state["Type"] == "Succeed"]
    assert succeed == ["Completed"]


def test_every_function_has_its_handler_build_and_requirements() -> None:
    for logical_id in FUNCTIONS:
        folder = STACK.function_folder(logical_id)
        assert (folder / "app.py").is_file(), logical_id
        assert (folder / "requirements.txt").is_file(), logical_id
        assert "build-%" in (folder / "Makefile").read_text(), logical_id
        assert FUNCTIONS[logical_id]["Metadata"]["BuildMethod"] == "makefile", logical_id


def test_functions_run_python_313_on_arm64() -> None:
    function_globals = STACK.template["Globals"]["Function"]
    assert (function_globals["Runtime"], function_globals["Architectures"]) == ("python3.13", ["arm64"])
    for logical_id, resource in FUNCTIONS.items():
        assert "Runtime" not in resource["Properties"], f"{logical_id} overrides the runtime"


def test_no_full_access_policy_and_no_wildcard_resource_outside_log_delivery() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert "FullAccess" not in text
    for logical_id, resource in {**FUNCTIONS, **MACHINES}.items():
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                if statement.get("Resource") == "*":
                    assert all(action.startswith("logs:") for action in statement["Action"]), logical_id


def test_the_openapi_document_lists_exactly_the_template_routes() -> None:
    routes = {
        (event["Properties"]["Method"].lower(), event["Properties"]["Path"])
        for resource in FUNCTIONS.values()
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    documented = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert documented == routes


def test_secrets_are_referenced_by_name_never_inlined() -> None:
    assert not STACK.of_type("AWS::SecretsManager::Secret")
    for logical_id, resource in FUNCTIONS.items():
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            assert not re.search(r"(sk|rk)_(live|test)_|whsec_", str(value)), f"{logical_id}.{name}"


def test_the_readme_documents_both_commands() -> None:
    readme = Path(ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme
