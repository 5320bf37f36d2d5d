"""``refundflow dlq list|redrive``: the notification dead-letter queues (messages that failed 5 times, or events
EventBridge could not deliver).

Redrive methods: ``move-task`` is SQS's StartMessageMoveTask (back to the queue each message came from; the
default on AWS); ``copy`` receives each message, sends it to the DLQ's source queue and deletes it from the DLQ
(the default on the local stack: moto does not implement message move tasks). Notifications are deduplicated
per event and channel, so a redrive never e-mails twice.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from typing import Annotated, Any

import botocore.exceptions
import typer
from rich.progress import Progress
from rich.table import Table

from refundflow_cli.commands._shared import target_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.output import JsonOption, console, emit_json, handled
from refundflow_cli.target import Target, aws_error

dlq = typer.Typer(help="The notification dead-letter queues: list, peek, redrive.", no_args_is_help=True)
SUFFIX = "DeadLetterQueueUrl"
MOVE_TASK, COPY = "move-task", "copy"


def register(app: typer.Typer) -> None:
    app.add_typer(dlq, name="dlq")


def dead_letter_queues(target: Target) -> dict[str, str]:
    """Name (the output without its suffix, e.g. CustomerNotifications) -> queue URL, from the stack's outputs."""
    outputs: dict[str, str] = target.description.get("Outputs", {})
    return {key[: -len(SUFFIX)]: url for key, url in sorted(outputs.items()) if key.endswith(SUFFIX)}


def _pick(target: Target, name: str | None) -> dict[str, str]:
    queues = dead_letter_queues(target)
    if name is None:
        return queues
    if name not in queues:
        raise CliError("unknown_queue", f"no dead-letter queue {name!r} (known: {', '.join(queues)})", Exit.NOT_FOUND)
    return {name: queues[name]}


def _attribute(sqs: Any, url: str, name: str) -> str:
    try:
        return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[name])["Attributes"][name])
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, f"queue {url}") from error


def _describe(message: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        return {"message_id": message["MessageId"], "body": message["Body"][:200]}
    detail = body.get("detail") if isinstance(body, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    return {
        "message_id": message["MessageId"],
        "detail_type": body.get("detail-type") if isinstance(body, dict) else None,
        "refund_id": detail.get("refund_id"),
        "event_id": detail.get("event_id"),
        "receive_count": int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
    }


@dlq.command("list")
@handled
def list_queues(
    ctx: typer.Context,
    peek: Annotated[
        int,
        typer.Option(min=0, max=10, help="Also show up to this many messages of each queue (they stay in the queue)."),
    ] = 0,
    json_output: JsonOption = False,
) -> None:
    """Each dead-letter queue's depth (and, with --peek, what is in it)."""
    target = target_of(ctx)
    sqs = target.client("sqs")
    queues: list[dict[str, Any]] = []
    for name, url in dead_letter_queues(target).items():
        depth = int(_attribute(sqs, url, "ApproximateNumberOfMessages"))
        messages: list[dict[str, Any]] = []
        if peek and depth:
            received = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=peek, VisibilityTimeout=0, AttributeNames=["All"]
            )
            messages = [_describe(message) for message in received.get("Messages", [])]
        queues.append({"name": name, "url": url, "depth": depth, "messages": messages})
    if json_output:
        emit_json({"queues": queues})
        return
    table = Table(title="dead-letter queues")
    for column in ("queue", "messages", "peeked"):
        table.add_column(column, overflow="fold")
    for queue in queues:
        peeked = "\n".join(
            f"{item.get('detail_type')} {item.get('refund_id')} (received {item.get('receive_count')}x)"
            for item in queue["messages"]
        )
        table.add_row(queue["name"], str(queue["depth"]), peeked)
    console().print(table)


@dlq.command("redrive")
@handled
def redrive(
    ctx: typer.Context,
    queue: Annotated[
        str | None, typer.Argument(help="CustomerNotifications or OpsNotifications (default: both).")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(help=f"{MOVE_TASK} (SQS message move task; default on AWS) or {COPY} (default locally)."),
    ] = None,
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", help="How long to wait for a move task.")] = 300.0,
    json_output: JsonOption = False,
) -> None:
    """Send the messages of the dead-letter queue(s) back to the queue they came from, after fixing the cause."""
    target = target_of(ctx)
    chosen = method or (COPY if target.local else MOVE_TASK)
    if chosen not in {MOVE_TASK, COPY}:
        raise CliError("invalid_method", f"--method {chosen}: {MOVE_TASK} or {COPY}", Exit.USAGE)
    results = []
    for name, url in _pick(target, queue).items():
        moved = (
            _move_task(target, url, wait_seconds, quiet=json_output)
            if chosen == MOVE_TASK
            else _copy(target, url, quiet=json_output)
        )
        results.append({"name": name, "method": chosen, "moved": moved})
        if not json_output:
            console().print(f"{name}: {moved} message(s) sent back ({chosen})")
    if json_output:
        emit_json({"redriven": results})


def _copy(target: Target, url: str, *, quiet: bool) -> int:
    sqs = target.client("sqs")
    sources = sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", [])
    if len(sources) != 1:
        raise CliError(
            "no_single_source", f"{url} is the dead-letter queue of {len(sources)} queues, not one", Exit.NOT_ALLOWED
        )
    total = int(_attribute(sqs, url, "ApproximateNumberOfMessages"))
    moved = 0
    with Progress(console=console(), transient=True, disable=quiet) as progress:
        task = progress.add_task("redriving", total=total or None)
        while True:
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return moved
            for message in batch:
                attributes = message.get("MessageAttributes") or {}
                sqs.send_message(
                    QueueUrl=sources[0],
                    MessageBody=message["Body"],
                    **({"MessageAttributes": attributes} if attributes else {}),
                )
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
                progress.advance(task)


def _move_task(target: Target, url: str, wait_seconds: float, *, quiet: bool) -> int:
    sqs = target.client("sqs")
    arn = _attribute(sqs, url, "QueueArn")
    try:
        handle = sqs.start_message_move_task(SourceArn=arn)["TaskHandle"]
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, f"move task for {url}") from error
    deadline = time.monotonic() + wait_seconds
    with console().status(f"moving messages out of {arn}", spinner="dots") if not quiet else nullcontext():
        while True:
            tasks = sqs.list_message_move_tasks(SourceArn=arn, MaxResults=10).get("Results", [])
            mine = next((task for task in tasks if task.get("TaskHandle") == handle), tasks[0] if tasks else {})
            if mine.get("Status") in {"COMPLETED", "FAILED", "CANCELLED"}:
                if mine["Status"] != "COMPLETED":
                    raise CliError(
                        "move_task_" + mine["Status"].lower(),
                        f"{arn}: {mine.get('FailureReason', mine['Status'])}",
                        Exit.UNAVAILABLE,
                    )
                return int(mine.get("ApproximateNumberOfMessagesMoved", 0))
            if time.monotonic() > deadline:
                raise CliError(
                    "move_task_running", f"{arn}: the move task is still running (handle {handle})", Exit.TIMED_OUT
                )
            time.sleep(2)
