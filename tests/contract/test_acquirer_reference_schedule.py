"""The acquirer reference schedule in template.yaml: a parameterised rate, and a role that may list completed refunds
(the by-status index, their state items read in batch) and invoke the payment functions, nothing else (issue 17)."""

from __future__ import annotations

import re

from local.cfn import Stack
from refundflow import catalog
from tests.support.iam import Request, allowed, function_statements

STACK = Stack.from_template("refundflow")
FUNCTION = "WatchAcquirerReferencesFunction"
TABLE = STACK.arn("RefundsTable")


def test_it_runs_on_a_parameterised_rate_whose_default_is_allowed() -> None:
    properties = STACK.resources[FUNCTION]["Properties"]
    [event] = properties["Events"].values()
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", {"Ref": "AcquirerReferenceWatchRate"})
    parameter = STACK.template["Parameters"]["AcquirerReferenceWatchRate"]
    assert re.fullmatch(parameter["AllowedPattern"], parameter["Default"])
    assert not re.fullmatch(parameter["AllowedPattern"], "cron(0 * * * ? *)")
    assert STACK.function_environment(FUNCTION)["PLATFORM_FUNCTION_PREFIX"] == f"{STACK.name}-"


def test_it_may_list_and_invoke_the_payment_functions_and_nothing_more() -> None:
    statements = function_statements(STACK, FUNCTION)
    assert allowed(statements, Request("dynamodb:Query", f"{TABLE}/index/by-status"))
    assert allowed(statements, Request("dynamodb:BatchGetItem", TABLE))
    for operation in ("Query", "GetItem", "PutItem", "UpdateItem", "TransactWriteItems"):
        assert not allowed(statements, Request(f"dynamodb:{operation}", TABLE)), operation
    assert not allowed(statements, Request("dynamodb:Query", f"{TABLE}/index/by-customer"))
    for entry in catalog.catalog().platforms:
        for role in entry.roles:
            target = STACK.arn(entry.logical_id(role))
            assert allowed(statements, Request("lambda:InvokeFunction", target)) == (role == "payment"), entry.name
    assert not allowed(statements, Request("lambda:InvokeFunction", STACK.arn("NotifyFunction")))
    assert not allowed(statements, Request("events:PutEvents", STACK.arn("RefundsBus")))
