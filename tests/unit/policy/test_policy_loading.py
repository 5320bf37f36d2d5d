"""Loading: a policy that could misbehave is refused with a message that names the rule and the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from policy_builders import MINIMAL_POLICY, policy_text

from refundflow.errors import ConfigurationError
from refundflow.policy import InvalidPolicy, Policy, cel_runtime, load_policy
from refundflow.policy.references import GLOBAL_FUNCTIONS, METHODS

GOOD_RULE = {"id": "big", "description": "Big", "when": "refund.amount > 100", "outcome": "approve"}


def rule(**fields: Any) -> dict[str, Any]:
    return {**GOOD_RULE, **fields}


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidPolicy) as caught:
        load_policy(text, source="test.yaml")
    assert caught.value.source == "test.yaml"
    return caught.value.problems


def test_packaged_default_policy_loads(default_policy: Policy) -> None:
    assert default_policy.version == "2026.12.1"
    assert default_policy.roles == ("agent", "team_lead", "finance")
    assert len(default_policy.rules) == 13


def test_minimal_policy_loads() -> None:
    policy = load_policy(MINIMAL_POLICY, source="test")
    assert [item.id for item in policy.rules] == ["big"]


def test_invalid_policy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"policy test\.yaml is invalid"):
        load_policy("rules: [", source="test.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("a: &anchor {x: 1}\nb: *anchor\n", "aliases are not allowed"),
    ],
)
def test_document_that_is_not_a_yaml_mapping_is_refused(text: str, expected: str) -> None:
    assert expected in problems_of(text)[0]


def test_unknown_top_level_field_is_named() -> None:
    assert problems_of(policy_text(colour="blue")) == ["document: unknown field 'colour'"]


def test_unknown_field_in_a_rule_names_the_rule() -> None:
    (problem,) = problems_of(policy_text(rules=[rule(priority=1)]))
    assert problem == "rule 'big' (rules[0]): unknown field 'priority'"


def test_bad_outcome_names_the_rule() -> None:
    (problem,) = problems_of(policy_text(rules=[rule(outcome="maybe")]))
    assert problem.startswith("rule 'big' (rules[0]) outcome:")


def test_missing_default_is_refused() -> None:
    text = policy_text()
    without_default = text[: text.index("default:")]
    (problem,) = problems_of(without_default)
    assert problem == "missing 'default': a policy must say what happens when no rule matches"


def test_duplicate_rule_ids_are_refused() -> None:
    problems = problems_of(policy_text(rules=[rule(), rule(when="refund.amount > 5")]))
    assert problems == ["rule 'big': duplicate rule id"]


def test_reserved_rule_id_is_refused() -> None:
    assert problems_of(policy_text(rules=[rule(id="default")])) == ["rule 'default': the id 'default' is reserved"]


def test_unknown_role_is_refused_in_rules_and_default() -> None:
    problems = problems_of(
        policy_text(
            rules=[rule(outcome="require_approval", role="manager")],
            default={"description": "d", "outcome": "require_approval", "role": "boss"},
        )
    )
    assert problems == [
        "rule 'big': unknown role 'manager' (roles: agent, team_lead, finance)",
        "default: unknown role 'boss' (roles: agent, team_lead, finance)",
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"outcome": "require_approval"}, "require_approval needs a role"),
        ({"outcome": "reject"}, "reject needs a reason_code"),
        ({"role": "agent"}, "role is only meaningful with require_approval"),
        (
            {"outcome": "reject", "reason_code": "no", "adjustments": ["x"]},
            "reject takes no adjustments",
        ),
    ],
)
def test_inconsistent_outcome_is_refused(fields: dict[str, Any], expected: str) -> None:
    (problem,) = problems_of(policy_text(rules=[rule(**fields)]))
    assert problem.startswith("rule 'big' (rules[0])")
    assert expected in problem


def test_cel_that_does_not_compile_names_the_rule() -> None:
    (problem,) = problems_of(policy_text(rules=[rule(when="refund.amount >")]))
    assert problem.startswith("rule 'big': 'when' is not valid CEL:")
    assert "Syntax error" in problem


def test_reserved_word_return_is_not_an_input_name() -> None:
    (problem,) = problems_of(policy_text(rules=[rule(when="return.received")]))
    assert "reserved identifier" in problem


def test_expression_longer_than_the_limit_is_refused_before_parsing() -> None:
    long_expression = " && ".join(["refund.amount > 1"] * 400)
    (problem,) = problems_of(policy_text(rules=[rule(when=long_expression)]))
    assert f"the limit is {cel_runtime.MAX_EXPRESSION_CHARS}" in problem


def test_non_bool_expression_is_refused() -> None:
    (problem,) = problems_of(policy_text(rules=[rule(when="refund.amount + 1")]))
    assert problem.startswith("rule 'big': 'when' must yield a bool, got int")


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("customer.score > 3", "unknown field 'customer.score'"),
        ("refund.amout > 1", "unknown field 'refund.amout' ('refund' has fields: amount,"),
        ("account.balance > 1", "unknown input 'account'"),
        ("params.limits['EUR'] > 1", "unknown field 'params.limits' ('params' has fields: limit)"),
        ("refund.lines.exists(l, l.colour == 'red')", "unknown field 'l.colour'"),
        ("lower(refund.reason) == 'x'", "unknown function 'lower()'"),
        ("refund.reason.lower() == 'x'", "unknown method 'lower()'"),
    ],
)
def test_unknown_input_field_or_function_is_refused_with_its_name(when: str, expected: str) -> None:
    problems = problems_of(policy_text(rules=[rule(when=when)]))
    assert any(problem.startswith("rule 'big': ") and expected in problem for problem in problems), problems


def test_unknown_field_behind_a_short_circuit_is_still_found() -> None:
    # GIVEN a typo the synthetic inputs would never reach (the left side is always false)
    (problem,) = problems_of(policy_text(rules=[rule(when="false && refund.amout > 1")]))
    assert "unknown field 'refund.amout'" in problem


def test_unguarded_optional_field_is_refused() -> None:
    # GIVEN a rule that reads days_since_delivery without checking the order was delivered
    (problem,) = problems_of(policy_text(rules=[rule(when="order.days_since_delivery > 30")]))
    # THEN the synthetic input without a delivery shows the rule would fail at runtime
    assert problem.startswith("rule 'big': 'when' fails on synthetic input")
    assert "days_since_delivery" in problem


def test_param_map_without_a_policy_currency_is_refused() -> None:
    # GIVEN a limit map that lacks KWD although the policy is written for KWD
    (problem,) = problems_of(policy_text(params={"limit": {"EUR": 1, "JPY": 1}}))
    assert problem.startswith("rule 'big': 'when' fails on synthetic input complete/KWD")


def test_unknown_adjustment_name_is_refused() -> None:
    (problem,) = problems_of(policy_text(rules=[rule(adjustments=["restock"])]))
    assert problem == "rule 'big': unknown adjustment 'restock' (adjustments: none defined)"


def test_fixed_amounts_must_cover_every_policy_currency() -> None:
    adjustments = {"label": {"kind": "shipping_deduction", "description": "Label", "amount": {"EUR": 500}}}
    (problem,) = problems_of(policy_text(adjustments=adjustments))
    assert problem == "adjustment 'label': amount has no amount for JPY, KWD"


def test_restocking_fee_needs_exactly_one_rate() -> None:
    adjustments = {"fee": {"kind": "restocking_fee", "description": "Fee"}}
    (problem,) = problems_of(policy_text(adjustments=adjustments))
    assert "exactly one of basis_points or per_unit" in problem


def test_float_params_are_refused() -> None:
    (problem,) = problems_of(policy_text(params={"limit": {"EUR": 100.5, "JPY": 1, "KWD": 1}}))
    assert "params.limit.EUR: 100.5 is a float" in problem


def test_quoted_numbers_are_not_coerced() -> None:
    adjustments = {"fee": {"kind": "restocking_fee", "description": "Fee", "basis_points": "1500"}}
    (problem,) = problems_of(policy_text(adjustments=adjustments))
    assert problem.startswith("adjustments.fee.restocking_fee.basis_points:")


def test_several_problems_are_reported_together() -> None:
    problems = problems_of(policy_text(rules=[rule(when="refund.amout > 1"), rule(id="other", when="1 +")]))
    assert len(problems) == 2


@pytest.mark.parametrize("function", sorted(GLOBAL_FUNCTIONS))
def test_every_allowed_function_exists_in_the_cel_core(function: str) -> None:
    calls = {
        "has": "has({'a': 1}.a)",
        "size": "size('ab') == 2",
        "int": "int('5') == 5",
        "uint": "uint(5) == 5u",
        "double": "double(1) == 1.0",
        "string": "string(1) == '1'",
        "bytes": "bytes('a') == b'a'",
        "timestamp": "timestamp('2025-01-01T00:00:00Z') < timestamp('2025-01-02T00:00:00Z')",
        "duration": "duration('1h') < duration('2h')",
        "dyn": "dyn(1) == 1",
        "type": "type(1) == int",
    }
    assert cel_runtime.evaluate(cel_runtime.compile_expression(calls[function]), cel_runtime.context({})) is True


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_allowed_method_exists_in_the_cel_core(method: str) -> None:
    calls = {
        "size": "'abc'.size() == 3",
        "contains": "'abc'.contains('b')",
        "startsWith": "'abc'.startsWith('a')",
        "endsWith": "'abc'.endsWith('c')",
        "matches": "'abc'.matches('^a')",
        "all": "[1, 2].all(x, x > 0)",
        "exists": "[1, 2].exists(x, x > 1)",
        "exists_one": "[1, 2].exists_one(x, x > 1)",
        "map": "[1, 2].map(x, x * 2) == [2, 4]",
        "filter": "[1, 2].filter(x, x > 1) == [2]",
    }
    assert cel_runtime.evaluate(cel_runtime.compile_expression(calls[method]), cel_runtime.context({})) is True


def test_cel_core_loads_without_the_packages_command_line_dependencies() -> None:
    # GIVEN a fresh interpreter (the CLI's typer/rich/prompt_toolkit cost ~150 ms of cold start)
    code = (
        "import sys\n"
        "from refundflow.policy import load_default_policy\n"
        "load_default_policy()\n"
        "print(sorted(name for name in ('typer', 'rich', 'prompt_toolkit', 'cel.cli') if name in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "layers" / "common")},
        check=True,
        timeout=60,
    )
    # THEN the policy loads with none of them imported
    assert completed.stdout.strip() == "[]"
