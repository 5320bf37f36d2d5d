"""The payment look-up waits out a provider outage (issue 6, item 8): the outcome handle_failure reports
is routed by the Standard parent to a Wait, then back into the straight-through child, and the child's
look-up still retries transient errors itself before giving up to the catch path."""

from __future__ import annotations

import json
from typing import Any

from local.cfn import Stack
from refundflow.domain.failures import LOOKUP_RETRY

STACK = Stack.from_template("refundflow")


def states(logical_id: str) -> dict[str, dict[str, Any]]:
    definition: dict[str, dict[str, Any]] = json.loads(STACK.definition(logical_id))["States"]
    return definition


def test_the_parent_waits_then_runs_the_steps_again_on_a_lookup_retry() -> None:
    # GIVEN the Standard parent
    parent = states("RefundWorkflowStateMachine")
    # WHEN it routes the outcome handle_failure gives a look-up that found the provider unreachable
    [route] = [choice for choice in parent["RouteOutcome"]["Choices"] if choice.get("StringEquals") == LOOKUP_RETRY]
    wait = parent[route["Next"]]
    # THEN it waits the books-retry interval of the execution's timing, then starts the child from the top
    assert wait["Type"] == "Wait"
    assert wait["SecondsPath"] == "$.timing.books_retry_wait_seconds"
    rerun = parent[wait["Next"]]
    assert rerun["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert rerun["Parameters"]["Input"]["entry"] == "start"
    assert any(catch["Next"] == "ResolveOutcome" for catch in rerun["Catch"])


def test_the_child_look_up_retries_transient_errors_then_hands_them_to_the_catch_path() -> None:
    # GIVEN the Express child's Stripe look-up
    lookup = states("RefundStepsStateMachine")["LookUpPayment"]
    # THEN transient errors are retried in place, and what is left goes to HandleFailure (which decides
    # between LOOKUP_RETRY and FAILED)
    retried = {name for retry in lookup["Retry"] for name in retry["ErrorEquals"]}
    assert "TransientError" in retried
    assert [catch["Next"] for catch in lookup["Catch"]] == ["HandleFailure"]
