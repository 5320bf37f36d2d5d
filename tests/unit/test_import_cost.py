"""What the intake handler leaves out of its cold import (README, Cost per refund; benchmarks/cold_imports.py
measures it): at load its own receiver only (no Powertools, X-Ray, boto3 or pydantic), the rest with the first
request (at init where Lambda initializes ahead of requests); and then no YAML parser, no requests or sqlite3 patched
in by X-Ray (requests is traced once something imports it), no model validator built before a request needs it.
Imported in a fresh interpreter with Lambda's variables, so Powertools' Tracer is enabled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
from refundflow import models, observability
loaded = sorted(name for name in ("yaml", "requests", "sqlite3") if name in sys.modules)
built_at_import = models.RefundRequestBody.__pydantic_complete__
models.RefundRequestBody.model_json_schema()
import requests
print(json.dumps({
    "requests_traced": hasattr(requests.Session.request, "__wrapped__"),
    "loaded": loaded,
    "tracer_enabled": not observability.tracer.disabled,
    "built_at_import": built_at_import,
    "built_on_use": models.RefundRequestBody.__pydantic_complete__,
    "refund_built": models.Refund.__pydantic_complete__,
}))
"""


# Loading the handler: its receiver only. Then what the first request loads first (app._observed).
THIN_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
HEAVY = ("pydantic", "aws_lambda_powertools", "aws_xray_sdk", "boto3", "botocore", "refundflow.intake_routes")
at_load = sorted(name for name in HEAVY if name in sys.modules)
app._observed()
from refundflow import observability
import botocore.client
print(json.dumps({
    "at_load": at_load,
    "after_first_request": sorted(name for name in HEAVY if name in sys.modules),
    "tracer_enabled": not observability.tracer.disabled,
    "botocore_traced": hasattr(botocore.client.BaseClient._make_api_call, "__wrapped__"),
}))
"""


def import_intake(probe: str = PROBE, **variables: str) -> dict[str, object]:
    environment = {
        **os.environ,
        # this worktree's layer first (the virtualenv's .pth file may name another checkout's)
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers/common"), str(ROOT)]),
        "AWS_LAMBDA_FUNCTION_NAME": "refundflow-ReceiveWebhookFunction",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions/receive_webhook"),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    environment.pop("POWERTOOLS_TRACE_DISABLED", None)
    environment.pop("AWS_SAM_LOCAL", None)
    environment.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    environment.update(variables)
    result = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "functions/receive_webhook/app.py")],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_intake_cold_import_leaves_out_yaml_requests_sqlite_and_unused_validators() -> None:
    # WHEN the intake handler is imported as Lambda would, its Tracer enabled
    found = import_intake()

    # THEN X-Ray patched only what every function uses, the catalog's YAML parser waits for the catalog, and
    # models build their validators when first used, not at import
    assert found["tracer_enabled"] is True
    assert found["loaded"] == []
    assert found["built_at_import"] is False
    assert found["built_on_use"] is True
    assert found["refund_built"] is False
    # AND requests is traced as soon as something imports it (the shared HTTP client, an SDK), as patch_all did
    assert found["requests_traced"] is True


HEAVY = ["aws_lambda_powertools", "aws_xray_sdk", "boto3", "botocore", "pydantic", "refundflow.intake_routes"]


def test_loading_intake_imports_its_receiver_only_and_the_first_request_loads_the_rest() -> None:
    # WHEN the intake handler is loaded on demand, as Lambda's default initialization does
    found = import_intake(THIN_PROBE, AWS_LAMBDA_INITIALIZATION_TYPE="on-demand")

    # THEN no Powertools (resolver, Logger, Tracer, Metrics), X-Ray, boto3 or pydantic is imported at load
    assert found["at_load"] == []
    # AND the first request loads them all before anything is verified or stored, X-Ray patching botocore
    assert found["after_first_request"] == HEAVY
    assert found["tracer_enabled"] is True
    assert found["botocore_traced"] is True


@pytest.mark.parametrize("initialization", ["provisioned-concurrency", "snap-start"])
def test_an_environment_initialized_ahead_of_its_requests_loads_everything_at_init(initialization: str) -> None:
    # WHEN Lambda initializes the environment before any request comes (provisioned concurrency, SnapStart)
    found = import_intake(THIN_PROBE, AWS_LAMBDA_INITIALIZATION_TYPE=initialization)

    # THEN everything loads then: no request pays for it
    assert found["at_load"] == HEAVY
    assert found["tracer_enabled"] is True
