"""The three places where moto 5.2.5 needs help to run our real definitions, each small and tested
(tests/integration/test_local_moto_patches.py) so a moto upgrade that changes them fails loudly.

1. ``states:startExecution.sync:2``: moto's interpreter hands the task's PascalCase parameters
   (``StateMachineArn``, ``Input``) to boto3 unchanged and returns boto3's camelCase response
   (``output``), so the nested call fails. AWS's contract is PascalCase both ways; we translate.
2. The same integration polls the child execution every 0.5 s; locally 20 ms is plenty.
3. Lambda: moto's docker-less backend echoes the payload. We route invocations to the functions
   of template.yaml, run in-process, and report their exceptions the way Lambda does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import moto

PINNED_MOTO = "5.2.5"


def _camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def _pascal(key: str) -> str:
    return key[:1].upper() + key[1:]


def patch_nested_executions() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn,
    )

    service = sfn.StateTaskServiceSfn
    if getattr(service, "_refundflow_patched", False):
        return
    original_parameters = service._normalise_parameters

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)
        for key in list(parameters):
            parameters[_camel(key)] = parameters.pop(key)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        if isinstance(response, dict):
            for key in list(response):
                response[_pascal(key)] = response.pop(key)

    service._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    service._normalise_response = normalise_response  # type: ignore[method-assign]
    service._refundflow_patched = True  # type: ignore[attr-defined]
    callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = 0.02  # type: ignore[attr-defined]


def route_lambda_invocations(invoke_json: Callable[[str, bytes], tuple[bytes, bool]]) -> None:
    """Send every Lambda invocation moto receives (direct or from Step Functions) to ``invoke_json``."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        raw = body.encode() if isinstance(body, str) else (body or b"")
        payload, failed = invoke_json(function_name, raw)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]


def check_moto_version() -> None:
    if moto.__version__ != PINNED_MOTO:
        raise RuntimeError(
            f"the local stack's moto patches were written for moto {PINNED_MOTO}, found {moto.__version__}: "
            "re-check local/moto_patches.py and its tests before upgrading"
        )
