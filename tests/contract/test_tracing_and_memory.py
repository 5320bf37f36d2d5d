"""template.yaml's production settings for cost: the X-Ray sampling rule covers every service of the stack at the
rate its parameters give, and the functions that wait on HTTP are sized below the steps, as the memory benchmark
recommends."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.lambda_memory import recommended_memory_mb
from local.cfn import Stack
from refundflow import catalog
from tools.platforms import ROLE_MEMORY_MB

STACK = Stack.from_template("refundflow")
FUNCTIONS = STACK.of_type("AWS::Serverless::Function")
GLOBAL_MEMORY = STACK.template["Globals"]["Function"]["MemorySize"]


def memory(logical_id: str) -> int:
    return int(FUNCTIONS[logical_id]["Properties"].get("MemorySize", GLOBAL_MEMORY))


def test_the_sampling_rule_samples_the_stacks_services_at_the_parameters_rate() -> None:
    (rule,) = STACK.of_type("AWS::XRay::SamplingRule").values()
    sampling = rule["Properties"]["SamplingRule"]
    assert sampling["FixedRate"] == {"Ref": "TracingSampleRate"}
    assert sampling["ReservoirSize"] == {"Ref": "TracingReservoirPerSecond"}
    assert sampling["RuleName"] == {"Ref": "TracingSamplingRuleName"}
    assert sampling["ServiceName"] == {"Fn::Sub": "${AWS::StackName}-*"}
    assert {sampling[key] for key in ("ServiceType", "Host", "HTTPMethod", "URLPath", "ResourceARN")} == {"*"}
    parameters = STACK.template["Parameters"]
    rate = parameters["TracingSampleRate"]
    assert (rate["Default"], rate["MinValue"], rate["MaxValue"]) == (0.05, 0, 1)
    assert parameters["LogLevel"]["Default"] == "INFO"
    assert STACK.template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {
        "Ref": "LogLevel"
    }


def _explicit_name(resource: dict[str, Any]) -> Any:
    properties = resource["Properties"]
    return properties.get("FunctionName", properties.get("Name"))


@pytest.mark.parametrize(
    "logical_id",
    sorted(
        logical_id
        for logical_id, resource in STACK.resources.items()
        if resource["Type"] in {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}
        and _explicit_name(resource) is not None
    ),
)
def test_every_named_function_and_state_machine_matches_the_sampling_rule(logical_id: str) -> None:
    # (CloudFormation names the others "<stack name>-<logical id>-<suffix>": they match too)
    name = _explicit_name(STACK.resources[logical_id])
    assert isinstance(name, dict)
    assert str(name["Fn::Sub"]).startswith("${AWS::StackName}-")


def test_the_functions_that_wait_on_http_are_sized_below_the_steps() -> None:
    platform_functions = {
        entry.logical_id(role): role
        for entry in catalog.platforms()
        for role in entry.function_roles
        if entry.logical_id(role) in FUNCTIONS
    }
    assert platform_functions
    for logical_id, role in platform_functions.items():
        assert memory(logical_id) == ROLE_MEMORY_MB[role] < GLOBAL_MEMORY, logical_id
    assert memory("NotifyFunction") < GLOBAL_MEMORY
    for step in ("ValidateRefundFunction", "EvaluatePolicyFunction", "ReserveAmountFunction", "ReceiveWebhookFunction"):
        assert memory(step) == GLOBAL_MEMORY
    assert all(128 <= memory(logical_id) <= 10_240 for logical_id in FUNCTIONS)


@pytest.mark.parametrize(
    ("peak_mb", "recommended"),
    [(10.0, 128), (64.0, 128), (64.1, 192), (86.7, 192), (96.0, 192), (96.1, 256), (300.0, 640)],
)
def test_the_recommendation_is_twice_the_peak_in_64_mb_steps_and_at_least_128(peak_mb: float, recommended: int) -> None:
    assert recommended_memory_mb(peak_mb, headroom=2.0) == recommended
