"""Runs the functions of template.yaml in this process, the way Lambda would: one module per
function folder, a Lambda context, and errors reported as Lambda reports them (``errorType`` is the
exception's class name: the name the state machine retries and catches).

Variables whose value differs between functions (a platform function's ``PLATFORM``) cannot all live in this
process's environment: each function's own values are set while its module loads, which is when it reads them.

Every AWS API call a function makes while it runs is recorded (``LocalFunctions.aws_calls``), whichever
boto3 session or client makes it: the least-privilege test checks each against the function's IAM."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from botocore.client import BaseClient

from local.cfn import Stack
from refundflow.logs import logger as refundflow_logger


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 256
    timeout_seconds: int = 30
    aws_request_id: str = ""
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


class FunctionError(Exception):
    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("errorMessage", ""))
        self.payload = payload


_module_lock = threading.Lock()


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call made by a function: botocore's service name and operation, and its parameters."""

    function: str
    service: str
    operation: str
    params: dict[str, Any]


class _Running(threading.local):
    """The function running on this thread (a handler runs on the thread that invoked it)."""

    def __init__(self) -> None:
        self.stack: list[tuple[LocalFunctions, str]] = []


_running = _Running()
_original_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]


def _recording_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    if not _running.stack:
        return _original_api_call(client, operation_name, api_params)
    functions, logical_id = _running.stack[-1]
    call = AwsCall(logical_id, client.meta.service_model.service_name, operation_name, dict(api_params))
    with _module_lock:
        functions.aws_calls.append(call)
    result = _original_api_call(client, operation_name, api_params)
    if functions.after_calls:
        running, _running.stack = _running.stack, []  # what the listeners call is AWS's doing, not the function's
        try:
            for listener in functions.after_calls:
                listener(call)
        finally:
            _running.stack = running
    return result


BaseClient._make_api_call = _recording_api_call  # type: ignore[attr-defined]


class _LogKeys(threading.local):
    """The Logger keys of the function invocation running on this thread. On AWS every function is a process of its
    own; here they share one process and one Logger (``refundflow.logs``), whose keys Powertools keeps on its
    formatter: without this, an invocation on one thread logged another's ``function_name``, ``refund_id``...,
    and a function invoked from another (intake forwarding news) cleared its caller's."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] | None = None


_log_keys = _LogKeys()


def _keys_per_invocation(formatter: LambdaPowertoolsFormatter) -> None:
    """Give ``formatter`` a ``log_format`` per thread and per invocation (``_log_keys``), each starting from the keys
    it has now, as a fresh process's formatter would."""
    initial = dict(formatter.log_format)

    def current(_: LambdaPowertoolsFormatter) -> dict[str, Any]:
        if _log_keys.keys is None:
            _log_keys.keys = dict(initial)
        return _log_keys.keys

    def replace(_: LambdaPowertoolsFormatter, keys: dict[str, Any]) -> None:
        _log_keys.keys = keys

    kind = type(formatter)
    formatter.__class__ = type(f"PerInvocation{kind.__name__}", (kind,), {"log_format": property(current, replace)})
    vars(formatter).pop("log_format", None)


_formatter = refundflow_logger.registered_formatter
assert isinstance(_formatter, LambdaPowertoolsFormatter)  # refundflow.logs' RedactingFormatter
_keys_per_invocation(_formatter)


_environment_lock = threading.Lock()


def load_handler_module(folder: Path, unique_name: str, environment: Mapping[str, str] | None = None) -> ModuleType:
    """Import ``folder/app.py`` under a unique module name (every function's module is called app), with
    ``environment`` set while it loads (and the previous values back afterwards)."""
    spec = importlib.util.spec_from_file_location(unique_name, folder / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with _environment_lock:
        saved = {name: os.environ.get(name) for name in environment or {}}
        os.environ.update(environment or {})
        try:
            spec.loader.exec_module(module)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return module


def own_environments(stack: Stack) -> dict[str, dict[str, str]]:
    """Per function, the variables whose value differs between the template's functions (``PLATFORM``)."""
    environments = {
        logical_id: stack.function_environment(logical_id) for logical_id in stack.of_type("AWS::Serverless::Function")
    }
    values: dict[str, set[str]] = {}
    for environment in environments.values():
        for name, value in environment.items():
            values.setdefault(name, set()).add(value)
    conflicting = {name for name, seen in values.items() if len(seen) > 1}
    return {
        logical_id: {name: value for name, value in environment.items() if name in conflicting}
        for logical_id, environment in environments.items()
    }


class LocalFunctions:
    """The template's functions, invoked in-process, with invocation and cold-start counts.

    Like Lambda, a function handles one event at a time per execution environment: each concurrent
    invocation gets an idle copy of the handler module (a "container"), and a new copy is loaded (a
    cold start) when every copy is busy. Module-level state (a resolver's current event) stays
    per-container, as it does in Lambda."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._by_name: dict[str, str] = {}
        for logical_id in stack.of_type("AWS::Serverless::Function"):
            self._by_name[stack.physical_name(logical_id)] = logical_id
            self._by_name[stack.arn(logical_id)] = logical_id
            self._by_name[logical_id] = logical_id
        self._idle: dict[str, list[ModuleType]] = {}
        self.invocations: Counter[str] = Counter()
        self.cold_starts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.aws_calls: list[AwsCall] = []
        # Told of each AWS call a function made that succeeded: what AWS does on its own after some (an S3
        # object's "Object Created" event), the local stack does here.
        self.after_calls: list[Callable[[AwsCall], None]] = []
        self._own_environment = own_environments(stack)

    def logical_id(self, name_or_arn: str) -> str:
        key = name_or_arn.split(":$LATEST")[0]
        if key not in self._by_name:
            raise KeyError(f"no function {name_or_arn} in template.yaml")
        return self._by_name[key]

    def _acquire(self, logical_id: str) -> ModuleType:
        with _module_lock:
            idle = self._idle.setdefault(logical_id, [])
            if idle:
                return idle.pop()
            self.cold_starts[logical_id] += 1
            number = self.cold_starts[logical_id]
        folder = self.stack.function_folder(logical_id)
        return load_handler_module(folder, f"refundflow_fn_{logical_id}_{number}", self._own_environment[logical_id])

    def _release(self, logical_id: str, module: ModuleType) -> None:
        with _module_lock:
            self._idle[logical_id].append(module)

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Run the handler; raises FunctionError with Lambda's error payload when it raises."""
        logical_id = self.logical_id(name_or_arn)
        properties = self.stack.resources[logical_id]["Properties"]
        context = LambdaContext(
            function_name=self.stack.physical_name(logical_id),
            timeout_seconds=int(properties.get("Timeout", 30)),
            invoked_function_arn=self.stack.arn(logical_id),
        )
        self.invocations[logical_id] += 1
        module: ModuleType | None = None
        _running.stack.append((self, logical_id))
        callers_log_keys, _log_keys.keys = _log_keys.keys, None  # this invocation logs with its own keys
        try:
            module = self._acquire(logical_id)
            return module.lambda_handler(event, context)
        except Exception as error:
            self.errors[logical_id] += 1
            raise FunctionError(
                {
                    "errorMessage": str(error),
                    "errorType": type(error).__name__,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_exception(error)[-6:],
                }
            ) from error
        finally:
            _running.stack.pop()
            _log_keys.keys = callers_log_keys
            if module is not None:
                self._release(logical_id, module)

    def invoke_json(self, name_or_arn: str, body: bytes) -> tuple[bytes, bool]:
        """Moto's Lambda invoke in bytes: (payload, function_error)."""
        event = json.loads(body) if body else {}
        try:
            return json.dumps(self.invoke(name_or_arn, event)).encode(), False
        except FunctionError as error:
            return json.dumps(error.payload).encode(), True
