"""Every AWS call a function made during the end-to-end suite is allowed by that function's IAM statements in
template.yaml (runs after the other end-to-end tests, so it checks what all of them made the functions do).

The local stack records each call a function makes while it runs (local/lambdas.py); tests/support/iam.py
maps it to the IAM actions, resources and condition keys AWS would authorise (a transaction needs each of
its items' actions) and evaluates the function's Allow and Deny statements.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from local.stack import DevStack
from refundflow import catalog
from tests.e2e.harness import E2EClient, Orders
from tests.support.iam import Requests, allowed, function_statements

pytestmark = pytest.mark.after_suite

# The straight-through path on the reference platforms and its status read: always exercised here. (ReserveAmount is
# not on it: the policy's approval holds the amount in its own write; a person's approval goes through ReserveAmount,
# and its calls are checked whenever a test on this worker made one.)
STRAIGHT_THROUGH = {
    "ReceiveWebhookFunction",
    "ValidateRefundFunction",
    "EvaluatePolicyFunction",
    catalog.platform("stripe").logical_id("payment"),
    catalog.platform("xero").logical_id("books"),
    "GetRefundFunction",
    "NotifyFunction",
}


def test_every_aws_call_a_function_made_is_allowed_by_its_iam(
    stack: DevStack, client: E2EClient, orders: Orders
) -> None:
    # GIVEN at least one straight-through refund read back through the status API, after the rest of the suite
    order = orders.paid(1500, name="least-privilege")
    refund = orders.settle(orders.submit(Orders.request(order, reason="damaged")))
    assert refund["status"] == "COMPLETED", refund
    assert client.refund(refund["refund_id"])["audit"]["keyed"]
    # WHEN every recorded call is checked against the calling function's statements
    requests = Requests(stack.stack)
    refused: dict[str, set[str]] = defaultdict(set)
    used: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    for call in list(stack.functions.aws_calls):
        statements = function_statements(stack.stack, call.function)
        for needed in requests.of(call.service, call.operation, call.params):
            used[call.function].add((needed.action, needed.resource))
            if not allowed(statements, needed):
                refused[call.function].add(f"{needed.action} on {needed.resource} {dict(needed.context)}")
    # THEN none is refused, and the check saw the functions of the straight-through path
    assert dict(refused) == {}
    assert set(used) >= STRAIGHT_THROUGH


def test_the_checker_refuses_what_a_function_may_not_do(stack: DevStack) -> None:
    # GIVEN the evaluator used above WHEN asked about calls outside the statements THEN it refuses them
    requests = Requests(stack.stack)
    table = stack.stack.physical_name("RefundsTable")
    rewrite = requests.of(
        "dynamodb", "UpdateItem", {"TableName": table, "Key": {"pk": {"S": "AUDIT#rf_1"}, "sk": {"S": "EVENT#1"}}}
    )
    delete_token = requests.of(
        "dynamodb", "DeleteItem", {"TableName": table, "Key": {"pk": {"S": "REFUND#rf_1"}, "sk": {"S": "WAIT#x"}}}
    )
    other_sender = requests.of(
        "ses", "SendTemplatedEmail", {"Source": "mallory@example.com", "Template": "t", "Destination": {}}
    )
    assert not allowed(function_statements(stack.stack, "HandleFailureFunction"), rewrite[0])
    assert not allowed(function_statements(stack.stack, "ValidateRefundFunction"), delete_token[0])
    assert allowed(function_statements(stack.stack, "RegisterWaitFunction"), delete_token[0])
    assert not allowed(function_statements(stack.stack, "NotifyFunction"), other_sender[0])
