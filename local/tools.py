"""Generated artefacts and their gates: ``python -m local.tools statelint | openapi | diagrams``.

- statelint: both state machines, placeholders replaced with ARNs of the right shape.
- openapi: docs/openapi.json generated from the handlers' routes and models (Powertools), plus the
  signed request bodies the handlers parse themselves after verifying the signature.
- diagrams: the Mermaid state diagrams in README.md, generated from the ASL so they cannot drift.
``--write`` regenerates; ``--check`` fails when the committed file differs from what would be made.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from local.cfn import ROOT, Stack
from local.lambdas import load_handler_module

OPENAPI = ROOT / "docs" / "openapi.json"
README = ROOT / "README.md"


def substituted_definitions() -> dict[str, dict[str, Any]]:
    """Each state machine's ASL as deployed (substitutions resolved to ARNs of a placeholder stack)."""
    stack = Stack.from_template("refundflow")
    return {
        logical_id: json.loads(stack.definition(logical_id))
        for logical_id in stack.of_type("AWS::Serverless::StateMachine")
    }


def run_statelint() -> int:
    from statelint.cli import main as statelint

    failures = 0
    for logical_id, definition in substituted_definitions().items():
        with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as handle:
            json.dump(definition, handle)
        status = statelint([handle.name])
        print(f"statelint {logical_id}: {'ok' if status == 0 else 'FAILED'}")
        failures += status != 0
        Path(handle.name).unlink()
    return 1 if failures else 0


# ------------------------------------------------------------------ OpenAPI


def openapi_document() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    stack = Stack.from_template("refundflow")
    app = APIGatewayHttpResolver(enable_validation=True)
    signed_bodies: dict[str, Any] = {}
    for logical_id, resource in sorted(stack.of_type("AWS::Serverless::Function").items()):
        events = resource["Properties"].get("Events", {}).values()
        if not any(event["Type"] == "HttpApi" for event in events):
            continue
        folder = stack.function_folder(logical_id)
        module = load_handler_module(folder, f"refundflow_openapi_{folder.name}")
        app.include_router(module.router)
        signed_bodies.update(getattr(module, "SIGNED_REQUEST_BODIES", {}))
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="refundflow API",
            version="1.0.0",
            summary="Refund triggers, provider webhooks, the refund status API and approvals.",
            description=(
                "Generated from the handlers (functions/*/app.py) by `make openapi`; `make test` fails if it "
                "drifts. Signed routes verify the raw body before parsing it: their request bodies are "
                "documented here from the models the handlers parse them into."
            ),
        )
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path, model in signed_bodies.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
        operation = document["paths"][path]["post"]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    return document


def run_openapi(write: bool) -> int:
    rendered = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    if write:
        OPENAPI.parent.mkdir(exist_ok=True)
        OPENAPI.write_text(rendered)
        print(f"wrote {OPENAPI.relative_to(ROOT)}")
        return 0
    if not OPENAPI.exists() or OPENAPI.read_text() != rendered:
        print("docs/openapi.json is out of date: run `make openapi` and commit it", file=sys.stderr)
        return 1
    print("docs/openapi.json is up to date")
    return 0


# ------------------------------------------------------------------ Mermaid diagrams


def mermaid(definition: dict[str, Any]) -> str:
    """A Mermaid stateDiagram of an ASL definition: Next, Choice branches, Catch and End."""
    lines = ["stateDiagram-v2", "  direction TB", f"  [*] --> {definition['StartAt']}"]
    for name, state in definition["States"].items():
        kind = state["Type"]
        if kind == "Choice":
            lines.append(f"  state {name} <<choice>>")
            for choice in state.get("Choices", []):
                label = choice.get("StringEquals") or choice.get("Variable", "")
                lines.append(f"  {name} --> {choice['Next']}: {label}")
            if "Default" in state:
                lines.append(f"  {name} --> {state['Default']}: otherwise")
            continue
        if "Next" in state:
            lines.append(f"  {name} --> {state['Next']}")
        stops = "stopped or error" if "startExecution" in str(state.get("Resource", "")) else "error"
        for catch in state.get("Catch", []):
            errors = ", ".join(catch["ErrorEquals"]).replace("States.ALL", stops).replace("States.", "")
            lines.append(f"  {name} --> {catch['Next']}: {errors}")
        if state.get("End") or kind in {"Succeed", "Fail"}:
            lines.append(f"  {name} --> [*]")
    return "\n".join(lines)


def diagram_block(logical_id: str, definition: dict[str, Any]) -> str:
    begin = f"<!-- BEGIN {logical_id} (generated by make diagrams) -->"
    return f"{begin}\n```mermaid\n{mermaid(definition)}\n```\n<!-- END {logical_id} -->"


def rendered_readme() -> str:
    text = README.read_text()
    for logical_id, definition in substituted_definitions().items():
        begin, end = f"<!-- BEGIN {logical_id} ", f"<!-- END {logical_id} -->"
        if begin not in text:
            raise SystemExit(f"README.md has no block for {logical_id}: add '{begin}...' and '{end}' markers")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + diagram_block(logical_id, definition) + tail
    return text


def run_diagrams(write: bool) -> int:
    rendered = rendered_readme()
    if write:
        README.write_text(rendered)
        print("README.md diagrams regenerated")
        return 0
    if README.read_text() != rendered:
        print("README.md state diagrams are out of date: run `make diagrams` and commit", file=sys.stderr)
        return 1
    print("README.md state diagrams are up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.tools")
    parser.add_argument("tool", choices=["statelint", "openapi", "diagrams"])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.tool == "statelint":
        return run_statelint()
    if args.tool == "openapi":
        return run_openapi(write=args.write)
    return run_diagrams(write=args.write)


if __name__ == "__main__":
    sys.exit(main())
