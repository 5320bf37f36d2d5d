"""What the intake handler leaves out of its cold import (README, Cost per refund; benchmarks/cold_imports.py
measures it): no web framework (its own receiver, not Powertools' resolver package), no YAML parser, no requests or
sqlite3 patched in by X-Ray (requests is traced once something imports it), no model validator built before a request
needs it; and what every request needs loaded at init, X-Ray patching botocore before any client exists. Imported in a
fresh interpreter with Lambda's variables, so Powertools' Tracer is enabled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


# What loading the handler loaded: a refund request's whole path, and nothing only other routes need.
LOADED_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
print(json.dumps({
    "resolvers": sorted(name for name in sys.modules if name.startswith("aws_lambda_powertools.event_handler")),
    "heavy": sorted(
        name for name in ("pydantic", "pydantic_core", "aws_xray_sdk", "wrapt", "yaml", "requests", "sqlite3")
        if name in sys.modules
    ),
    "refundflow": sorted(name for name in sys.modules if name.startswith("refundflow")),
}))
"""


def import_intake(probe: str = PROBE) -> dict[str, object]:
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


def test_intake_loads_a_refund_requests_path_and_no_model_tracer_or_web_framework() -> None:
    # WHEN the intake handler is loaded as Lambda's init would
    found = import_intake(LOADED_PROBE)

    # THEN no part of Powertools' event handler is imported (its package imports every resolver: AppSync, Bedrock...)
    assert found["resolvers"] == []
    # AND no pydantic, no X-Ray SDK (nor wrapt), no YAML parser, no requests: a refund request needs none of them
    assert found["heavy"] == []
    # AND a refund request's whole path is loaded at init (burst CPU); the other routes' work waits for them
    loaded = set(found["refundflow"])  # type: ignore[arg-type]
    assert {"refundflow.request_intake", "refundflow.request_check", "refundflow.adapters.request_store"} <= loaded
    assert not loaded & {"refundflow.intake_routes", "refundflow.models", "refundflow.observability", "refundflow.api"}
