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


# What loading the handler loaded: every request's needs, and no resolver.
LOADED_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
import botocore.client
from refundflow import observability
print(json.dumps({
    "loaded": sorted(name for name in sys.modules if name.startswith("aws_lambda_powertools.event_handler")),
    "routes_loaded": "refundflow.intake_routes" in sys.modules,
    "tracer_enabled": not observability.tracer.disabled,
    "botocore_traced": hasattr(botocore.client.BaseClient._make_api_call, "__wrapped__"),
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


def test_intake_loads_what_every_request_needs_and_no_web_framework() -> None:
    # WHEN the intake handler is loaded as Lambda's init would
    found = import_intake(LOADED_PROBE)

    # THEN no part of Powertools' event handler is imported (its package imports every resolver: AppSync, Bedrock...)
    assert found["loaded"] == []
    # AND what every request needs is loaded at init (burst CPU), X-Ray patching botocore before any client exists
    assert found["routes_loaded"] is True
    assert found["tracer_enabled"] is True
    assert found["botocore_traced"] is True
