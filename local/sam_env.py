"""``python -m local.sam_env --write | --check``: events/env.local.json, the ``--env-vars`` file for
``sam local invoke`` and ``sam local start-api`` (Docker) that points every function at the local stack
(``make local``): its AWS endpoint (moto on port 4750) for DynamoDB, Step Functions, EventBridge, SQS,
Secrets Manager and SES, and its sandboxes (port 3000) for Stripe and Xero, with the local stack's resource
names. From inside a container the host is ``host.docker.internal`` (on Linux also pass
``--add-host host.docker.internal:host-gateway``).

Generated from template.yaml (each function's declared variables, resolved as the local stack resolves
them), so it cannot drift: ``--check`` (run by the unit tests) fails when the file differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from local.cfn import ROOT, Stack
from local.stack import STACK_NAME, LocalSettings, local_parameters

ENV_FILE = ROOT / "events" / "env.local.json"
DOCKER_HOST = "host.docker.internal"
API_PORT, AWS_PORT = 3000, 4750


def sam_env_document() -> dict[str, Any]:
    parameters = local_parameters(
        f"http://{DOCKER_HOST}:{API_PORT}", LocalSettings(api_port=API_PORT, aws_port=AWS_PORT)
    )
    stack = Stack.from_template(STACK_NAME, parameters)
    document: dict[str, Any] = {}
    for logical_id in sorted(stack.of_type("AWS::Serverless::Function")):
        environment = stack.function_environment(logical_id)
        environment["AWS_ENDPOINT_URL"] = f"http://{DOCKER_HOST}:{AWS_PORT}"
        document[logical_id] = dict(sorted(environment.items()))
    return document


def render() -> str:
    return json.dumps(sam_env_document(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.sam_env", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    arguments = parser.parse_args(argv)
    if arguments.write:
        ENV_FILE.write_text(render())
        print(f"wrote {ENV_FILE.relative_to(ROOT)}")
        return 0
    if not ENV_FILE.exists() or ENV_FILE.read_text() != render():
        print("events/env.local.json is out of date: run `python -m local.sam_env --write`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
