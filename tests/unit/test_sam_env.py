"""events/env.local.json (``sam local ... --env-vars``) is what local.sam_env generates from template.yaml, and it
only sets variables the template declares for each function (SAM ignores the others)."""

from __future__ import annotations

import json

from local import sam_env
from local.cfn import load_template


def test_the_env_file_is_up_to_date() -> None:
    assert sam_env.main(["--check"]) == 0, "run: python -m local.sam_env --write"


def test_it_names_every_function_and_only_variables_the_template_declares() -> None:
    template = load_template()
    declared_globally = set(template["Globals"]["Function"]["Environment"]["Variables"])
    functions = {
        key: value for key, value in template["Resources"].items() if value["Type"] == "AWS::Serverless::Function"
    }
    document = json.loads(sam_env.ENV_FILE.read_text())
    assert set(document) == set(functions)
    for logical_id, variables in document.items():
        own = set(functions[logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
        assert set(variables) == declared_globally | own, logical_id


def test_it_points_every_function_at_the_local_stack_from_inside_docker() -> None:
    document = json.loads(sam_env.ENV_FILE.read_text())
    assert "AWS_ENDPOINT_URL" in load_template()["Globals"]["Function"]["Environment"]["Variables"]
    for variables in document.values():
        assert variables["AWS_ENDPOINT_URL"] == "http://host.docker.internal:4750"
        assert variables["REFUNDS_TABLE_NAME"] == "refundflow-local-RefundsTable"
        assert all("127.0.0.1" not in value for value in variables.values())
    assert document["RefundStripeFunction"]["STRIPE_API_BASE"] == "http://host.docker.internal:3000/_sandbox/stripe"
