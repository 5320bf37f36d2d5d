"""``refundflow dlq list|redrive``: the stack's dead-letter queues (messages a consumer failed on too often, or
events EventBridge could not deliver to a target).

Which queues are dead-letter queues is discovered from the stack itself, not from a list: every SQS queue of the
stack (CloudFormation ``ListStackResources``; the local stack serves the same list) that another queue's
``RedrivePolicy`` names as its ``deadLetterTargetArn``, and every queue an EventBridge rule target of the stack
names in its ``DeadLetterConfig`` (``ListTargetsByRule``). New queues (a platform's external-refund or help-desk
queues) are found without changing the CLI.

Redrive methods: ``move-task`` is SQS's StartMessageMoveTask (back to the queue each message came from; the
default on AWS for a queue that is some queue's redrive target); ``copy`` receives each message, sends it back
and deletes it from the DLQ (the default on the local stack, where moto implements no message move tasks, and
for a queue only EventBridge dead-letters into: SQS's move tasks redrive only from queues that are DLQs of other
SQS queues). ``copy`` sends a message EventBridge dead-lettered to the target it names in its ``TARGET_ARN``
attribute, any other message to the DLQ's one source queue. Notifications are deduplicated per event and
channel, so a redrive never e-mails twice.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Annotated, Any

import botocore.exceptions
import typer
from rich.progress import Progress
from rich.table import Table

from refundflow_cli.commands._shared import target_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.output import JsonOption, console, emit_json, handled
from refundflow_cli.target import Target, aws_error

dlq = typer.Typer(help="The stack's dead-letter queues: list, peek, redrive.", no_args_is_help=True)
MOVE_TASK, COPY = "move-task", "copy"
# Message attributes EventBridge adds to an event it dead-letters (EventBridge User Guide, "Using dead-letter
# queues to process undelivered events"): the target it could not deliver to, among others.
EVENTBRIDGE_ATTRIBUTES = frozenset(
    {"RULE_ARN", "TARGET_ARN", "ERROR_CODE", "ERROR_MESSAGE", "EXHAUSTED_RETRY_CONDITION", "RETRY_ATTEMPTS"}
)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq, name="dlq")


@dataclass(frozen=True)
class DeadLetterQueue:
    """A dead-letter queue of the stack and what sends to it."""

    name: str  # its logical id without "DeadLetterQueue" (or "Queue"): CustomerNotifications, BooksXeroExternalRefunds
    url: str
    arn: str
    sources: tuple[str, ...]  # URLs of the queues whose RedrivePolicy names it
    dead_lettered_targets: tuple[str, ...]  # ARNs of the rule targets EventBridge dead-letters into it

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "sources": list(self.sources),
            "dead_lettered_targets": list(self.dead_lettered_targets),
        }


def _short_name(logical_id: str) -> str:
    for suffix in ("DeadLetterQueue", "Queue"):
        if logical_id.endswith(suffix) and logical_id != suffix:
            return logical_id[: -len(suffix)]
    return logical_id


def dead_letter_queues(target: Target) -> dict[str, DeadLetterQueue]:
    """Name -> the stack's dead-letter queues, discovered from its resources (see the module's docstring)."""
    resources = target.stack_resources()
    sqs = target.client("sqs")
    queues = {
        item["LogicalResourceId"]: item["PhysicalResourceId"]
        for item in resources
        if item["ResourceType"] == "AWS::SQS::Queue"
    }
    logical_of_arn: dict[str, str] = {}
    url_of_arn: dict[str, str] = {}
    redrive_sources: dict[str, list[str]] = {}  # DLQ ARN -> source queue URLs
    for logical_id, url in sorted(queues.items()):
        attributes = _attributes(sqs, url, ["QueueArn", "RedrivePolicy"])
        logical_of_arn[attributes["QueueArn"]] = logical_id
        url_of_arn[attributes["QueueArn"]] = url
        if attributes.get("RedrivePolicy"):
            dead_letter_arn = str(json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"])
            redrive_sources.setdefault(dead_letter_arn, []).append(url)
    dead_lettered: dict[str, list[str]] = {}  # DLQ ARN -> rule target ARNs
    events = target.client("events")
    for item in resources:
        if item["ResourceType"] != "AWS::Events::Rule":
            continue
        bus, _, rule = item["PhysicalResourceId"].rpartition("|")
        for rule_target in _rule_targets(events, rule, bus or None):
            configured = (rule_target.get("DeadLetterConfig") or {}).get("Arn")
            if configured:
                dead_lettered.setdefault(str(configured), []).append(str(rule_target["Arn"]))
    found: dict[str, DeadLetterQueue] = {}
    for arn in sorted(set(redrive_sources) | set(dead_lettered)):
        if arn not in logical_of_arn:
            continue  # a queue of another stack: not ours to list or redrive
        name = _short_name(logical_of_arn[arn])
        found[name] = DeadLetterQueue(
            name=name,
            url=url_of_arn[arn],
            arn=arn,
            sources=tuple(sorted(redrive_sources.get(arn, []))),
            dead_lettered_targets=tuple(sorted(set(dead_lettered.get(arn, [])))),
        )
    return dict(sorted(found.items()))


def _rule_targets(events: Any, rule: str, bus: str | None) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"Rule": rule, **({"EventBusName": bus} if bus else {})}
    targets: list[dict[str, Any]] = []
    try:
        while True:
            page = events.list_targets_by_rule(**kwargs)
            targets.extend(page.get("Targets", []))
            if not page.get("NextToken"):
                return targets
            kwargs["NextToken"] = page["NextToken"]
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, f"rule {rule}") from error


def _pick(target: Target, name: str | None) -> dict[str, DeadLetterQueue]:
    queues = dead_letter_queues(target)
    if name is None:
        return queues
    if name not in queues:
        raise CliError("unknown_queue", f"no dead-letter queue {name!r} (known: {', '.join(queues)})", Exit.NOT_FOUND)
    return {name: queues[name]}


def _attributes(sqs: Any, url: str, names: list[str]) -> dict[str, str]:
    try:
        return {
            key: str(value)
            for key, value in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes", {}).items()
        }
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, f"queue {url}") from error


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
    for dead_letters in dead_letter_queues(target).values():
        url = dead_letters.url
        depth = int(_attributes(sqs, url, ["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"])
        messages: list[dict[str, Any]] = []
        if peek and depth:
            received = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=peek, VisibilityTimeout=0, AttributeNames=["All"]
            )
            messages = [_describe(message) for message in received.get("Messages", [])]
        queues.append({**dead_letters.as_dict(), "depth": depth, "messages": messages})
    if json_output:
        emit_json({"queues": queues})
        return
    table = Table(title="dead-letter queues")
    for column in ("queue", "messages", "sent back to", "peeked"):
        table.add_column(column, overflow="fold")
    for queue in queues:
        peeked = "\n".join(
            f"{item.get('detail_type')} {item.get('refund_id')} (received {item.get('receive_count')}x)"
            for item in queue["messages"]
        )
        back = [url.rsplit("/", 1)[-1] for url in queue["sources"]]
        back += [f"{arn.rsplit(':', 1)[-1]} (EventBridge)" for arn in queue["dead_lettered_targets"]]
        table.add_row(queue["name"], str(queue["depth"]), "\n".join(dict.fromkeys(back)), peeked)
    console().print(table)


@dlq.command("redrive")
@handled
def redrive(
    ctx: typer.Context,
    queue: Annotated[
        str | None,
        typer.Argument(help="A dead-letter queue's name as `dlq list` shows it (default: every one)."),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help=f"{MOVE_TASK} (SQS message move task; default on AWS) or {COPY} (default locally, and for a queue "
            "only EventBridge dead-letters into)."
        ),
    ] = None,
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", help="How long to wait for a move task.")] = 300.0,
    json_output: JsonOption = False,
) -> None:
    """Send the messages of the dead-letter queue(s) back where they came from, after fixing the cause."""
    target = target_of(ctx)
    if method is not None and method not in {MOVE_TASK, COPY}:
        raise CliError("invalid_method", f"--method {method}: {MOVE_TASK} or {COPY}", Exit.USAGE)
    results = []
    for name, dead_letters in _pick(target, queue).items():
        chosen = method or (COPY if target.local or not dead_letters.sources else MOVE_TASK)
        if chosen == MOVE_TASK and not dead_letters.sources:
            raise CliError(
                "move_task_unsupported",
                f"{name}: only EventBridge dead-letters into it and SQS moves messages back only to SQS source "
                f"queues: use --method {COPY}",
                Exit.NOT_ALLOWED,
            )
        if chosen == MOVE_TASK:
            moved, left = _move_task(target, dead_letters.url, wait_seconds, quiet=json_output), 0
        else:
            moved, left = _copy(target, dead_letters, quiet=json_output)
        results.append({"name": name, "method": chosen, "moved": moved, "left": left})
        if not json_output:
            console().print(
                f"{name}: {moved} message(s) sent back ({chosen})"
                + (f", {left} left: no queue of the stack to send them to" if left else "")
            )
    if json_output:
        emit_json({"redriven": results})


def _destination(message: dict[str, Any], queue: DeadLetterQueue, url_of_target: dict[str, str]) -> str | None:
    """Where ``copy`` sends a message back: the target EventBridge names in ``TARGET_ARN`` (a queue of the stack),
    else the DLQ's source queue when it has exactly one."""
    attributes = message.get("MessageAttributes") or {}
    named = (attributes.get("TARGET_ARN") or {}).get("StringValue")
    if named:
        return url_of_target.get(str(named))
    return queue.sources[0] if len(queue.sources) == 1 else None


def _copy(target: Target, queue: DeadLetterQueue, *, quiet: bool) -> tuple[int, int]:
    """(messages sent back, messages left in the DLQ because nothing of the stack is where they came from)."""
    sqs = target.client("sqs")
    url_of_target = {
        arn: sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
        for arn in queue.dead_lettered_targets
        if arn.split(":")[2:3] == ["sqs"]
    }
    total = int(_attributes(sqs, queue.url, ["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"])
    moved = left = 0
    with Progress(console=console(), transient=True, disable=quiet) as progress:
        task = progress.add_task("redriving", total=total or None)
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue.url, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return moved, left
            for message in batch:
                destination = _destination(message, queue, url_of_target)
                if destination is None:
                    left += 1  # stays (visible again after 60 s) for a person to look at
                    continue
                # What EventBridge added when it gave up is not part of the message the target expects.
                attributes = {
                    key: value
                    for key, value in (message.get("MessageAttributes") or {}).items()
                    if key not in EVENTBRIDGE_ATTRIBUTES
                }
                sqs.send_message(
                    QueueUrl=destination,
                    MessageBody=message["Body"],
                    **({"MessageAttributes": attributes} if attributes else {}),
                )
                sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
                progress.advance(task)


def _move_task(target: Target, url: str, wait_seconds: float, *, quiet: bool) -> int:
    sqs = target.client("sqs")
    arn = _attributes(sqs, url, ["QueueArn"])["QueueArn"]
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
