"""The local stack's moto patches (local/moto_patches.py), checked on the stack's own moto with tiny
state machines, so a moto upgrade that changes what they rely on fails here, not in a refund:

- ``states:startExecution.sync:2`` runs a child EXPRESS workflow to completion and hands the parent
  AWS's PascalCase answer (``$.Output`` parsed, ``$.Status``); a child that fails surfaces as
  ``States.TaskFailed`` with the child's own error and cause inside (what HandleFailure unwraps);
- a Lambda task's error, raised by one of template.yaml's functions run in-process, is caught by its
  ``errorType`` name (the names the real workflows retry and catch);
- ``.waitForTaskToken`` resumes on ``SendTaskSuccess`` and refuses a second use of the token;
- DynamoDB transactions are all-or-nothing and isolated under concurrent requests (the guard that
  keeps two refunds from reserving the same euro);
- a Distributed Map reads a JSON Lines object from S3, hands its items to the processor in
  ``{"Items", "BatchInput"}`` batches of ``MaxItemsPerBatch`` and writes AWS-shaped result files.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local import moto_patches
from local.stack import DevStack
from tests.e2e.harness import acquire_stack, release_stack

ROLE = "arn:aws:iam::123456789012:role/refundflow-moto-patch-check"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    yield acquire_stack()
    release_stack()


def machine(stack: DevStack, definition: dict[str, Any], kind: str = "STANDARD") -> str:
    name = f"patch-check-{uuid.uuid4().hex[:10]}"
    created = stack.client("stepfunctions").create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE, type=kind
    )
    return str(created["stateMachineArn"])


def run(stack: DevStack, state_machine_arn: str, payload: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    execution_arn = sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(payload))["executionArn"]
    return finished(stack, execution_arn, timeout)


def finished(stack: DevStack, execution_arn: str, timeout: float = 20.0) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{execution_arn} still running after {timeout}s"
        time.sleep(0.05)


def entered_states(stack: DevStack, execution_arn: str) -> list[str]:
    history = stack.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    return [
        event["stateEnteredEventDetails"]["name"] for event in history["events"] if "stateEnteredEventDetails" in event
    ]


def sync_parent(child_arn: str) -> dict[str, Any]:
    return {
        "StartAt": "RunChild",
        "States": {
            "RunChild": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {
                    "StateMachineArn": child_arn,
                    "Name.$": "States.Format('child-{}', States.UUID())",
                    "Input": {"value.$": "$.value"},
                },
                "ResultSelector": {
                    "answer.$": "$.Output.answer",
                    "echo.$": "$.Output.echo",
                    "status.$": "$.Status",
                    "child.$": "$.ExecutionArn",
                },
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ChildFailed"}],
                "End": True,
            },
            "ChildFailed": {"Type": "Pass", "End": True},
        },
    }


def test_sync_child_express_execution_answers_in_pascal_case(stack: DevStack) -> None:
    # GIVEN an EXPRESS child that answers, and a STANDARD parent that runs it with startExecution.sync:2
    child = machine(
        stack,
        {
            "StartAt": "Answer",
            "States": {"Answer": {"Type": "Pass", "Parameters": {"answer": 42, "echo.$": "$.value"}, "End": True}},
        },
        kind="EXPRESS",
    )
    parent = machine(stack, sync_parent(child))
    # WHEN the parent runs
    described = run(stack, parent, {"value": "hello"})
    # THEN it waited for the child and read its parsed output and status under AWS's PascalCase names
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert (output["answer"], output["echo"], output["status"]) == (42, "hello", "SUCCEEDED")
    assert ":child-" in output["child"]


def test_failed_sync_child_surfaces_as_task_failed_with_its_own_error_inside(stack: DevStack) -> None:
    # GIVEN an EXPRESS child that ends in a Fail state with its own error name and cause
    failing = {
        "StartAt": "Stop",
        "States": {"Stop": {"Type": "Fail", "Error": "RefundSteps.PROBE", "Cause": "stopped on purpose"}},
    }
    parent = machine(stack, sync_parent(machine(stack, failing, kind="EXPRESS")))
    # WHEN the parent runs it
    described = run(stack, parent, {"value": "x"})
    # THEN the parent catches States.TaskFailed whose cause is the child's description, error and cause included
    assert described["status"] == "SUCCEEDED", described
    error = json.loads(described["output"])["error"]
    assert error["Error"] == "States.TaskFailed"
    child = json.loads(error["Cause"])
    assert (child["Status"], child["Error"], child["Cause"]) == ("FAILED", "RefundSteps.PROBE", "stopped on purpose")
    assert entered_states(stack, described["executionArn"]) == ["RunChild", "ChildFailed"]


def test_lambda_error_is_caught_by_its_error_type_name(stack: DevStack) -> None:
    # GIVEN a task that runs template.yaml's ValidateRefund function for a refund that does not exist
    function_arn = stack.stack.arn("ValidateRefundFunction")
    definition = {
        "StartAt": "Validate",
        "States": {
            "Validate": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_arn, "Payload": {"refund_id.$": "$.refund_id"}},
                "Catch": [
                    {"ErrorEquals": ["TransientError"], "ResultPath": "$.error", "Next": "WrongCatch"},
                    {"ErrorEquals": ["NotFound"], "ResultPath": "$.error", "Next": "CaughtByName"},
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "WrongCatch"},
                ],
                "End": True,
            },
            "CaughtByName": {"Type": "Pass", "End": True},
            "WrongCatch": {"Type": "Fail", "Error": "WrongCatch"},
        },
    }
    invocations = stack.functions.invocations["ValidateRefundFunction"]
    # WHEN it runs
    described = run(stack, machine(stack, definition), {"refund_id": f"rf_{uuid.uuid4().hex}"})
    # THEN the function really ran in-process, and its exception's class name is the error the Catch matched
    assert stack.functions.invocations["ValidateRefundFunction"] == invocations + 1
    assert described["status"] == "SUCCEEDED", described
    error = json.loads(described["output"])["error"]
    assert error["Error"] == "NotFound"
    assert json.loads(error["Cause"])["errorType"] == "NotFound"
    assert entered_states(stack, described["executionArn"]) == ["Validate", "CaughtByName"]


def test_task_token_resumes_once_and_is_refused_afterwards(stack: DevStack) -> None:
    # GIVEN a workflow parked on .waitForTaskToken (its token handed out through a queue), then holding 2 s
    sqs = stack.client("sqs")
    queue = sqs.create_queue(QueueName=f"patch-check-tokens-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    definition = {
        "StartAt": "Park",
        "States": {
            "Park": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                "TimeoutSeconds": 60,
                "Next": "Hold",
            },
            "Hold": {"Type": "Wait", "Seconds": 2, "End": True},
        },
    }
    sfn = stack.client("stepfunctions")
    execution_arn = sfn.start_execution(stateMachineArn=machine(stack, definition), input="{}")["executionArn"]
    token = _token_from(stack, queue)
    assert sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
    # WHEN the answer comes
    sfn.send_task_success(taskToken=token, output=json.dumps({"decision": "approve"}))
    # THEN a second answer on the same token is refused at once, while the workflow still runs
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=token, output=json.dumps({"decision": "reject"}))
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_failure(taskToken=token, error="Late", cause="too late")
    # AND the workflow resumed with the first answer only
    described = finished(stack, execution_arn)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"decision": "approve"}
    # AND the token stays refused once the execution is over
    with pytest.raises((sfn.exceptions.TaskTimedOut, sfn.exceptions.InvalidToken)):
        sfn.send_task_failure(taskToken=token, error="Late", cause="too late")


@pytest.mark.parametrize(
    "timeouts",
    [
        {"TimeoutSeconds": 1},
        # moto's own wait for the token times out here, not the state's timer (what a busy machine also causes)
        {"TimeoutSeconds": 300, "HeartbeatSeconds": 1},
    ],
    ids=["task-timeout", "heartbeat-timeout"],
)
def test_token_of_a_timed_out_task_is_refused(stack: DevStack, timeouts: dict[str, int]) -> None:
    # GIVEN a task that waited 1 s for its token (or a heartbeat), timed out, and was caught; the workflow went on
    # to a second task that hands its own token out and waits for the test (state, not time: no race with a
    # busy machine)
    sqs = stack.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    parked = sqs.create_queue(QueueName=f"patch-check-timeout-{suffix}")["QueueUrl"]
    moved_on = sqs.create_queue(QueueName=f"patch-check-moved-on-{suffix}")["QueueUrl"]
    definition = {
        "StartAt": "Park",
        "States": {
            "Park": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": parked, "MessageBody": {"token.$": "$$.Task.Token"}},
                **timeouts,
                "Catch": [
                    {
                        "ErrorEquals": ["States.HeartbeatTimeout", "States.Timeout"],
                        "ResultPath": "$.error",
                        "Next": "MovedOn",
                    }
                ],
                "End": True,
            },
            "MovedOn": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": moved_on,
                    "MessageBody": {"token.$": "$$.Task.Token", "error.$": "$.error.Error"},
                },
                "TimeoutSeconds": 300,
                "End": True,
            },
        },
    }
    sfn = stack.client("stepfunctions")
    execution_arn = sfn.start_execution(stateMachineArn=machine(stack, definition), input="{}")["executionArn"]
    token = _token_from(stack, parked)
    # (the second token only exists once the first task timed out and its Catch moved on)
    moved_on_message = _message_from(stack, moved_on, timeout=60)
    # (AWS names a missed heartbeat States.HeartbeatTimeout, moto States.Timeout: both are timeouts)
    assert moved_on_message["error"] in {"States.Timeout", "States.HeartbeatTimeout"}
    assert sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
    # WHEN the answer to the first task comes late, while the workflow has moved on and still runs
    # THEN it is refused: the task is closed (what lets a late webhook know it resumed nothing)
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=token, output=json.dumps({"late": True}))
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_failure(taskToken=token, error="Late", cause="too late")
    # AND the workflow goes on with the answers it is really waiting for, not the late one
    sfn.send_task_success(taskToken=moved_on_message["token"], output=json.dumps({"resumed": "MovedOn"}))
    described = finished(stack, execution_arn, timeout=60)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"resumed": "MovedOn"}
    assert entered_states(stack, execution_arn) == ["Park", "MovedOn"]


# ---------------------------------------------------------------------------- DynamoDB transactions


@pytest.fixture
def books(stack: DevStack) -> str:
    """A scratch table with one balance of 100 to reserve from."""
    name = f"patch-check-books-{uuid.uuid4().hex[:8]}"
    dynamodb = stack.client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=name, Item={"pk": {"S": "BALANCE"}, "remaining": {"N": "100"}})
    return name


def reservation(table: str, key: str, amount: int, *, missing_ok: bool = True) -> list[dict[str, Any]]:
    """Take ``amount`` from the balance and record it, in one transaction (what ReserveAmount does)."""
    return [
        {
            "Update": {
                "TableName": table,
                "Key": {"pk": {"S": "BALANCE"}},
                "UpdateExpression": "SET remaining = remaining - :amount",
                "ConditionExpression": "remaining >= :amount",
                "ExpressionAttributeValues": {":amount": {"N": str(amount)}},
            }
        },
        {
            "Put": {
                "TableName": table,
                "Item": {"pk": {"S": key}, "amount": {"N": str(amount)}},
                **({"ConditionExpression": "attribute_not_exists(pk)"} if missing_ok else {}),
            }
        },
    ]


def test_concurrent_conditional_transactions_never_overdraw(stack: DevStack, books: str) -> None:
    # GIVEN a balance of 100, and twenty clients that each want to reserve 30 at the same moment
    barrier = threading.Barrier(20)
    outcomes: list[bool] = []

    def reserve(index: int) -> None:
        dynamodb = stack.client("dynamodb")
        barrier.wait(timeout=10)
        try:
            dynamodb.transact_write_items(TransactItems=reservation(books, f"RESERVATION#{index}", 30))
            outcomes.append(True)
        except dynamodb.exceptions.TransactionCanceledException:
            outcomes.append(False)

    # WHEN they all run
    threads = [threading.Thread(target=reserve, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN exactly three got their 30, the balance says 10, and only their three records exist
    assert outcomes.count(True) == 3
    assert len(outcomes) == 20
    items = stack.client("dynamodb").scan(TableName=books)["Items"]
    balance = next(item for item in items if item["pk"]["S"] == "BALANCE")
    assert balance["remaining"]["N"] == "10"
    assert len([item for item in items if item["pk"]["S"].startswith("RESERVATION#")]) == 3


def test_transactions_stay_whole_while_other_writes_hit_the_table(stack: DevStack, books: str) -> None:
    # GIVEN a table with a few hundred items, clients reserving 1 at a time, and others adding items meanwhile
    dynamodb = stack.client("dynamodb")
    for batch in range(16):
        dynamodb.batch_write_item(
            RequestItems={
                books: [
                    {"PutRequest": {"Item": {"pk": {"S": f"OLD#{batch}#{index}"}, "pad": {"S": "x" * 200}}}}
                    for index in range(25)
                ]
            }
        )
    failures: list[str] = []
    committed: list[int] = []

    def reserve(worker: int) -> None:
        dynamodb = stack.client("dynamodb")
        for attempt in range(12):
            try:
                dynamodb.transact_write_items(TransactItems=reservation(books, f"RESERVATION#{worker}#{attempt}", 1))
                committed.append(1)
            except Exception as error:  # a 500 from moto is the failure this patch prevents
                failures.append(f"{type(error).__name__}: {str(error)[:120]}")

    def write(worker: int) -> None:
        dynamodb = stack.client("dynamodb")
        for index in range(40):
            dynamodb.put_item(TableName=books, Item={"pk": {"S": f"OTHER#{worker}#{index}"}, "pad": {"S": "x" * 200}})

    # WHEN both kinds of writes run at once
    threads = [threading.Thread(target=reserve, args=(index,)) for index in range(6)]
    threads += [threading.Thread(target=write, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # THEN every transaction committed whole: no server error, and the balance matches the records
    assert failures == []
    items = stack.client("dynamodb").scan(TableName=books)["Items"]
    balance = next(item for item in items if item["pk"]["S"] == "BALANCE")
    reserved = [item for item in items if item["pk"]["S"].startswith("RESERVATION#")]
    assert len(reserved) == len(committed) == 72
    assert int(balance["remaining"]["N"]) == 100 - 72


def test_cancelled_transaction_leaves_no_partial_write(stack: DevStack, books: str) -> None:
    # GIVEN a transaction whose second item is fine but whose first item's condition fails
    dynamodb = stack.client("dynamodb")
    items = reservation(books, "RESERVATION#too-big", 150)
    # WHEN it is written
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=items)
    # THEN nothing of it happened: the record does not exist and the balance is untouched
    assert "Item" not in dynamodb.get_item(TableName=books, Key={"pk": {"S": "RESERVATION#too-big"}})
    assert dynamodb.get_item(TableName=books, Key={"pk": {"S": "BALANCE"}})["Item"]["remaining"]["N"] == "100"
    # AND when the first item passes but the second fails, the first is rolled back too
    dynamodb.put_item(TableName=books, Item={"pk": {"S": "RESERVATION#taken"}, "amount": {"N": "1"}})
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=reservation(books, "RESERVATION#taken", 40))
    assert dynamodb.get_item(TableName=books, Key={"pk": {"S": "BALANCE"}})["Item"]["remaining"]["N"] == "100"


def _message_from(stack: DevStack, queue: str, timeout: float = 20.0) -> dict[str, Any]:
    sqs = stack.client("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            body: dict[str, Any] = json.loads(messages[0]["Body"])
            return body
    raise AssertionError(f"no message on {queue} within {timeout}s")


def _token_from(stack: DevStack, queue: str) -> str:
    return str(_message_from(stack, queue)["token"])


# ---------------------------------------------------------------- Distributed Map (reconciliation)


def distributed_map(bucket: str) -> dict[str, Any]:
    return {
        "StartAt": "Batches",
        "States": {
            "Batches": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSONL"},
                    "Parameters": {"Bucket": bucket, "Key.$": "$.key"},
                },
                "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"fixed": "yes", "tag.$": "$.tag"}},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "Count",
                    "States": {
                        "Count": {
                            "Type": "Pass",
                            "Parameters": {
                                "ids.$": "$.Items[*].id",
                                "tag.$": "$.BatchInput.tag",
                                "fixed.$": "$.BatchInput.fixed",
                            },
                            "End": True,
                        }
                    },
                },
                "ToleratedFailurePercentage": 0,
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": bucket, "Prefix.$": "$.results"},
                },
                "ResultPath": "$.written",
                "End": True,
            }
        },
    }


def test_moto_still_refuses_the_distributed_map_fields_the_patch_takes_out(stack: DevStack) -> None:
    with pytest.raises(Exception, match=r"ASLParserException|InvalidDefinition"):
        machine(stack, distributed_map(stack.settlement_bucket()))


def test_distributed_map_batches_json_lines_and_writes_aws_shaped_results(stack: DevStack) -> None:
    # GIVEN five JSON Lines items in S3 and a Distributed Map batching them by two
    bucket = stack.settlement_bucket()
    s3 = stack.client("s3")
    key = f"work/patch-check/{uuid.uuid4().hex}.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body="".join(json.dumps({"id": i}) + "\n" for i in range(5)).encode())
    arn = machine(stack, json.loads(moto_patches.local_definition(json.dumps(distributed_map(bucket)))))
    # WHEN it runs
    described = run(stack, arn, {"key": key, "tag": "t-1", "results": "work/patch-check/results"})
    # THEN it succeeds, and its ResultWriter names the manifest of what each batch returned
    assert described["status"] == "SUCCEEDED", described
    written = json.loads(described["output"])["written"]["ResultWriterDetails"]
    assert written["Key"].startswith("work/patch-check/results/")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=written["Key"])["Body"].read())
    (result_file,) = manifest["ResultFiles"]["SUCCEEDED"]
    results = json.loads(s3.get_object(Bucket=bucket, Key=result_file["Key"])["Body"].read())
    outputs = [json.loads(result["Output"]) for result in results]
    # AND the items arrived in batches of two with the BatchInput, static and from the state input
    assert sorted(output["ids"] for output in outputs) == [[0, 1], [2, 3], [4]]
    assert {(output["tag"], output["fixed"]) for output in outputs} == {("t-1", "yes")}
    assert {result["Status"] for result in results} == {"SUCCEEDED"}
