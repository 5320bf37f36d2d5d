"""The places where moto 5.2.5 needs help to run our real definitions, each small and tested
(tests/integration/local/test_moto_patches.py) so a moto upgrade that changes them fails loudly.

1. ``states:startExecution.sync:2``: moto's interpreter hands the task's PascalCase parameters
   (``StateMachineArn``, ``Input``) to boto3 unchanged and returns boto3's camelCase response
   (``output``), so the nested call fails. AWS's contract is PascalCase both ways; we translate.
2. The same integration polls the child execution every 0.5 s; locally 20 ms is plenty.
3. Lambda: moto's docker-less backend echoes the payload. We route invocations to the functions
   of template.yaml, run in-process, and report their exceptions the way Lambda does.
4. DynamoDB: moto backs up *every table a transaction touches* with a deep copy before it runs
   (slower with every item stored) and is not thread-safe while it does (a concurrent write breaks
   the copy: "dictionary changed size during iteration"). Requests are serialised, as DynamoDB's own
   isolation would order them, and a transaction backs up only the items it touches.
5. Task tokens: moto accepts SendTaskSuccess/SendTaskFailure again for a token whose task already
   resumed (a later answer can even replace the first one before the workflow reads it) or timed
   out, and SendTaskFailure for a finished execution. AWS answers ``TaskTimedOut``: the task is closed.
6. Distributed Map: moto's parser rejects ``ItemBatcher``, ``ReaderConfig.InputType: JSONL``, EXPRESS child
   executions and an integer ``ToleratedFailurePercentage``, and its
   ``ResultWriter`` writes a manifest without result files. :func:`local_definition` takes the batcher out
   of the definition (remembered per Map state name) and reads JSONL through the JSON reader;
   :func:`patch_distributed_map` groups the items into ``{"Items": [...], "BatchInput": {...}}`` as AWS
   does, reads JSON Lines, and writes ``SUCCEEDED_0.json`` (AWS's result-file shape) next to the manifest.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import moto

PINNED_MOTO = "5.2.6"


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
    callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = 0.02  # type: ignore[misc]


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

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]


def check_moto_version() -> None:
    if moto.__version__ != PINNED_MOTO:
        raise RuntimeError(
            f"the local stack's moto patches were written for moto {PINNED_MOTO}, found {moto.__version__}: "
            "re-check local/moto_patches.py and its tests before upgrading"
        )


_DYNAMODB_LOCK = threading.RLock()


def patch_dynamodb() -> None:
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoDBBackend, "_refundflow_patched", False):
        return
    real_deepcopy = copy.deepcopy

    def deepcopy_but_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else real_deepcopy(value, memo)

    models.copy = SimpleNamespace(deepcopy=deepcopy_but_tables)  # type: ignore[attr-defined,assignment]
    original_transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        touched: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for entry in transact_items:
            _, operation = next(iter(entry.items()))
            name = operation.get("TableName")
            if not name or name not in self.tables:
                continue
            table = self.tables[name]
            if "Key" in operation:
                key = operation["Key"]
            else:
                attributes = operation.get("Item", {})
                key = {table.hash_key_attr: attributes.get(table.hash_key_attr)}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attributes.get(table.range_key_attr)
            try:
                current = self.get_item(name, key)
            except Exception:
                continue
            touched.append((name, key, current.to_json()["Attributes"] if current else None))
        try:
            original_transact(self, transact_items)
        except Exception:
            for name, key, attributes in reversed(touched):
                if attributes is None:
                    self.delete_item(name, key)
                else:
                    self.put_item(name, attributes)
            raise

    def call_action(handler: Any) -> Any:
        with _DYNAMODB_LOCK:
            return original_call_action(handler)

    original_call_action = DynamoHandler.call_action
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoDBBackend._refundflow_patched = True  # type: ignore[attr-defined]


_TOKEN_LOCK = threading.Lock()


def refuse_spent_task_tokens() -> None:
    """A task token answers once: a second SendTaskSuccess/Failure gets ``TaskTimedOut``, as on AWS."""
    from moto.stepfunctions.parser.api import TaskTimedOut
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.eval.callback import callback

    closed = "Task Timed Out: the task of this token is already closed"

    manager = callback.CallbackPoolManager
    if getattr(manager, "_refundflow_patched", False):
        return
    original_notify = manager.notify
    original_evaluate = ExecutionState._evaluate_with_timeout

    # moto times a callback task out twice over the same TimeoutSeconds: the state's timer (EvalTimeoutError)
    # and the task's own wait for its token (CallbackTimeoutError, HeartbeatTimeoutError), on another thread.
    # Which one fires first is up to the scheduler (a heartbeat timeout is always the task's own): all close it.
    timed_out = (EvalTimeoutError, callback.CallbackTimeoutError, callback.HeartbeatTimeoutError)

    def evaluate_with_timeout(self: Any, env: Any) -> None:
        try:
            original_evaluate(self, env)
        except timed_out:
            # The state timed out: its task is closed, and so is its token, before any Catch moves on.
            token = (env.states.context_object.context_object_data.get("Task") or {}).get("Token")
            with _TOKEN_LOCK:
                endpoint = env.callback_pool_manager.get(token) if token else None
                if endpoint is not None and endpoint.consumer_error is None:
                    endpoint.report(callback.CallbackConsumerTimeout())
            raise

    def notify(self: Any, callback_id: str, outcome: Any) -> bool:
        with _TOKEN_LOCK:
            endpoint = self.get(callback_id)
            if endpoint is not None and (endpoint.consumer_error is not None or endpoint.get_outcome() is not None):
                raise TaskTimedOut(closed, exception_type="TaskTimedOut")
            answered: bool = original_notify(self, callback_id, outcome)
            return answered

    ExecutionState._evaluate_with_timeout = evaluate_with_timeout  # type: ignore[method-assign]
    manager.notify = notify  # type: ignore[method-assign]
    manager._refundflow_patched = True  # type: ignore[attr-defined]


# Map state name -> its ItemBatcher, taken out of the definition by local_definition (moto cannot parse it).
_BATCHERS: dict[str, dict[str, Any]] = {}


def _states_of(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name, state in definition.get("States", {}).items():
        found.append((name, state))
        for nested in (state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])):
            if isinstance(nested, dict):
                found += _states_of(nested)
    return found


def local_definition(definition: str) -> str:
    """The definition moto's interpreter runs: each Map's ``ItemBatcher`` removed (and remembered for
    :func:`patch_distributed_map`), ``InputType: JSONL`` read by the JSON reader (which reads lines)."""
    document = json.loads(definition)
    for name, state in _states_of(document):
        if state.get("Type") != "Map":
            continue
        batcher = state.pop("ItemBatcher", None)
        if batcher is not None:
            _BATCHERS[name] = batcher
        config = (state.get("ItemReader") or {}).get("ReaderConfig") or {}
        if config.get("InputType") == "JSONL":
            config["InputType"] = "JSON"
        # Its grammar knows only STANDARD child executions (it runs every batch in-process either way) and
        # no integer ToleratedFailurePercentage (0, the default, means the same as leaving it out).
        processor = (state.get("ItemProcessor") or {}).get("ProcessorConfig") or {}
        if processor.get("ExecutionType") == "EXPRESS":
            processor["ExecutionType"] = "STANDARD"
        if state.get("ToleratedFailurePercentage") == 0:
            del state["ToleratedFailurePercentage"]
    return json.dumps(document)


def _path_value(document: Any, path: str) -> Any:
    """A plain ``$.a.b`` reference path (all BatchInput uses here)."""
    value = document
    for part in path.removeprefix("$").strip(".").split("."):
        if part:
            value = value[part]
    return value


def _batch_input(template: dict[str, Any], state_input: Any) -> dict[str, Any]:
    return {
        (key[:-2] if key.endswith(".$") else key): (_path_value(state_input, value) if key.endswith(".$") else value)
        for key, value in template.items()
    }


def patch_distributed_map() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_output_transformer import (  # noqa: E501
        transformer_json,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as distributed,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer import result_writer_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3 as writer,
    )

    component = distributed.DistributedIterationComponent
    if getattr(component, "_refundflow_patched", False):
        return
    original_map_run = component._map_run
    original_json = transformer_json.ResourceOutputTransformerJson._eval_body

    def map_run(self: Any, env: Any, eval_input: Any) -> None:
        # AWS evaluates the ResultWriter's parameters against the Map state's input; moto, against the
        # results. Keep the input for write_parameters.
        env.refundflow_map_input = copy.deepcopy(env.states.get_input())
        batcher = _BATCHERS.get(eval_input.state_name)
        if batcher is not None:
            items = env.stack.pop()
            size = int(batcher.get("MaxItemsPerBatch") or len(items) or 1)
            batch_input = _batch_input(batcher.get("BatchInput", {}), env.states.get_input())
            env.stack.append(
                [
                    {"Items": items[start : start + size], "BatchInput": batch_input}
                    for start in range(0, len(items), size)
                ]
            )
        original_map_run(self, env, eval_input)

    def read_json_or_lines(self: Any, env: Any) -> None:
        reader_config = env.stack.pop()
        content: str = env.stack.pop()
        if not content.lstrip().startswith("["):
            content = json.dumps([json.loads(line) for line in content.splitlines() if line.strip()])
        env.stack.append(content)
        env.stack.append(reader_config)
        original_json(self, env)

    def write_results(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        outputs = env.stack.pop()
        s3 = writer.ResourceEvalS3._get_s3_client(resource_runtime_part, state_credentials)
        record = env.map_run_record_pool_manager.get_all().pop()
        prefix = parameters["Prefix"] if parameters["Prefix"] in ("", None) else parameters["Prefix"].rstrip("/") + "/"
        folder = f"{prefix or ''}{record.map_run_arn.split(':')[-1]}/"
        results = [{"Output": json.dumps(output), "Status": "SUCCEEDED"} for output in outputs]
        body = json.dumps(results).encode()
        s3.put_object(Bucket=parameters["Bucket"], Key=folder + "SUCCEEDED_0.json", Body=body)
        manifest = {
            "DestinationBucket": parameters["Bucket"],
            "MapRunArn": record.map_run_arn,
            "ResultFiles": {
                "FAILED": [],
                "PENDING": [],
                "SUCCEEDED": [{"Key": folder + "SUCCEEDED_0.json", "Size": len(body)}],
            },
        }
        s3.put_object(Bucket=parameters["Bucket"], Key=folder + "manifest.json", Body=json.dumps(manifest).encode())
        env.stack.append(
            {
                "MapRunArn": record.map_run_arn,
                "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": folder + "manifest.json"},
            }
        )

    def result_writer_eval(self: Any, env: Any) -> None:
        outputs = env.stack.pop()
        env.stack.append(outputs)
        env.stack.append(getattr(env, "refundflow_map_input", outputs))
        self.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.pop()
        env.stack.append(parameters)
        self.resource_eval.eval_resource(env=env)

    component._map_run = map_run  # type: ignore[method-assign]
    result_writer_decl.ResultWriter._eval_body = result_writer_eval  # type: ignore[method-assign]
    transformer_json.ResourceOutputTransformerJson._eval_body = read_json_or_lines  # type: ignore[method-assign]
    writer.ResourceEvalS3._handle_put_object = staticmethod(write_results)  # type: ignore[method-assign]
    component._refundflow_patched = True  # type: ignore[attr-defined]
