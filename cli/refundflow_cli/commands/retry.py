"""``refundflow retry ID``: book again, or redrive a stopped workflow, where the refund allows it; refused with
the reason otherwise.

What the domain allows today (refundflow.domain.failures / recorder):
- NEEDS_ATTENTION ``books_rejected`` (the books refused the credit note, or the automatic retries ran out): after
  the cause is fixed, run the books step again: a RefundSteps execution entered at ``after_refund``
  (UpdateInvoice; idempotent, keyed by the refund id). Success completes the refund; another refusal is one
  more ``BooksUpdateFailed`` entry and the refund stays where it was.
- NEEDS_ATTENTION ``books_pending`` (a webhook-only outcome came after the workflow stopped waiting): a books run
  books and completes it, as above.
- NEEDS_ATTENTION ``books_update_failed``: the workflow retries the books by itself every BooksRetryWaitSeconds
  (BOOKS_RETRY); refused while its execution runs, booked again as above if the execution stopped.
- NEEDS_ATTENTION ``provider_outcome_unknown``: the workflow polls the provider; refused while it runs.
- NEEDS_ATTENTION ``provider_reversed_refund`` / ``provider_amount_mismatch``: money moved differently from what
  was asked; a person settles it with the provider. Never retried.
- NEEDS_ATTENTION ``outcome_unknown`` (the platform can neither find the refund by our reference nor still
  remembers the idempotency key) / ``outcome_not_reported`` (a webhook-only platform never reported): whether
  money moved is unknown; a person checks at the provider. Never retried: a resend could pay twice.
- A refund still under way whose workflow execution stopped (FAILED, TIMED_OUT, ABORTED outside our own Fail
  states): Step Functions' RedriveExecution resumes it from the state that stopped, where Step Functions says
  it is redrivable.
- PENDING_APPROVAL waits for ``approve``/``reject``; COMPLETED, SETTLED, REJECTED and FAILED are final.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import botocore.exceptions
import typer

from refundflow_cli.commands._shared import api_of, target_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.follow import exit_code_for, follow
from refundflow_cli.output import JsonOption, console, emit_json, handled
from refundflow_cli.target import Target, aws_error

BOOKS_RETRY = "books_retry"
REDRIVE = "redrive"
RUNNING = "RUNNING"


@dataclass(frozen=True)
class Plan:
    action: str | None  # BOOKS_RETRY, REDRIVE or None (refused)
    reason: str


def register(app: typer.Typer) -> None:
    app.command("retry")(retry)


def plan(refund: dict[str, Any], execution: dict[str, Any] | None) -> Plan:
    """What ``retry`` may do for this refund, given its workflow execution (None: there is none)."""
    status = refund["status"]
    reason = refund.get("attention_reason")
    running = execution is not None and execution.get("status") == RUNNING
    failure = refund.get("failure") or {}
    if status in {"COMPLETED", "SETTLED"}:
        return Plan(None, f"the refund is {status}: nothing to retry")
    if status in {"REJECTED", "FAILED"}:
        code = f" ({failure['code']})" if failure.get("code") else ""
        return Plan(
            None,
            f"the refund is {status}{code}, which is final and released its reservation; "
            "send a new request if it is still owed",
        )
    if status == "PENDING_APPROVAL":
        return Plan(None, "the refund waits for an approver: `refundflow approve` or `refundflow reject`")
    if status == "NEEDS_ATTENTION":
        if reason in {"outcome_unknown", "outcome_not_reported"}:
            return Plan(
                None,
                f"{reason}: whether the provider refunded is unknown and cannot be found out automatically (no "
                "look-up by our reference, or no webhook came); check at the provider, a resend could pay twice",
            )
        if reason in {"provider_reversed_refund", "provider_amount_mismatch"}:
            return Plan(
                None,
                f"{reason}: the provider moved money differently from what was asked; "
                "settle it with the provider, refundflow never retries this",
            )
        if reason == "books_pending":
            return Plan(BOOKS_RETRY, "the provider's late news left the refund unbooked: booking it now")
        if reason == "books_rejected":
            return Plan(
                BOOKS_RETRY, "the books refused the credit note or the automatic retries ran out: booking again"
            )
        if reason == "books_update_failed":
            if running:
                return Plan(
                    None,
                    f"the workflow retries the books by itself ({books_failures(refund)} failed attempt(s) so far); "
                    "wait, or fix the books and let it retry",
                )
            return Plan(BOOKS_RETRY, "the books retry was stopped with the workflow: booking again")
        if reason == "provider_outcome_unknown":
            if running:
                return Plan(None, "the workflow is polling the provider for the refund's outcome")
            return _redrive_or_refuse(execution)
        return Plan(None, f"needs attention for {reason!r}, which has no automatic retry")
    if running:
        return Plan(None, f"the refund is {status} and its workflow is running")
    return _redrive_or_refuse(execution)


def books_failures(refund: dict[str, Any]) -> int:
    return sum(1 for entry in refund.get("timeline") or [] if entry["type"] == "BooksUpdateFailed") or 1


def _redrive_or_refuse(execution: dict[str, Any] | None) -> Plan:
    if execution is None:
        return Plan(None, "the refund has no workflow execution to redrive")
    if execution.get("redriveStatus") == "REDRIVABLE" or (
        "redriveStatus" not in execution and execution.get("status") in {"FAILED", "TIMED_OUT", "ABORTED"}
    ):
        return Plan(
            REDRIVE, f"its workflow execution stopped ({execution['status']}): redriving it from where it stopped"
        )
    why = execution.get("redriveStatusReason") or f"the execution is {execution.get('status')}"
    return Plan(None, f"the workflow cannot be redriven: {why}")


def _execution(target: Target, refund_id: str) -> dict[str, Any] | None:
    arn = target.output("RefundWorkflowArn").replace(":stateMachine:", ":execution:") + f":{refund_id}"
    sfn = target.client("stepfunctions")
    try:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return None
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, f"execution {refund_id}") from error
    return described


@handled
def retry(
    ctx: typer.Context,
    refund_id: Annotated[str, typer.Argument(help="The refund id (rf_...).")],
    check: Annotated[
        bool, typer.Option("--check", help="Only say what retry would do (exit 0 allowed, 6 refused).")
    ] = False,
    wait: Annotated[bool, typer.Option("--follow/--no-follow", help="Follow the refund afterwards.")] = True,
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", help="How long to follow it.")] = 120.0,
    json_output: JsonOption = False,
) -> None:
    """Book again (NEEDS_ATTENTION books_rejected), or redrive a stopped workflow, where the refund allows it."""
    target = target_of(ctx)
    api = api_of(ctx)
    refund = api.refund(refund_id)
    execution = _execution(target, refund_id)
    decided = plan(refund, execution)
    if decided.action is None:
        raise CliError("retry_not_allowed", f"{refund_id}: {decided.reason}", Exit.NOT_ALLOWED)
    if check:
        if json_output:
            emit_json({"refund_id": refund_id, "action": decided.action, "reason": decided.reason})
        else:
            console().print(f"{refund_id}: would {decided.action.replace('_', ' ')}: {decided.reason}")
        return
    seen = max((entry["seq"] for entry in refund.get("timeline") or []), default=0)
    started = _books_retry(target, refund) if decided.action == BOOKS_RETRY else _redrive(target, refund_id)
    if not json_output:
        console().print(f"{refund_id}: {decided.reason} ({started})")
    if not wait:
        if json_output:
            emit_json({"refund_id": refund_id, "action": decided.action, "reason": decided.reason, "started": started})
        return
    refund = follow(api, refund_id, timeout=wait_seconds, live=not json_output, since_seq=seen)
    code = exit_code_for(refund)
    if json_output:
        emit_json(
            {
                "refund_id": refund_id,
                "action": decided.action,
                "reason": decided.reason,
                "started": started,
                "refund": refund,
                "exit_code": int(code),
            }
        )
    raise typer.Exit(int(code))


def _books_retry(target: Target, refund: dict[str, Any]) -> str:
    """The books step again: a RefundSteps (Express) execution entered after the refund, with the step result the
    workflow's ResumeAfterRefund state hands it (its ``books`` names the books platform's function)."""
    refund_id = refund["refund_id"]
    invoice = refund.get("invoice") or {}
    if not invoice.get("system"):
        raise CliError("no_books", f"{refund_id} names no invoice: there is nothing to book", Exit.NOT_ALLOWED)
    step = {
        "refund_id": refund_id,
        "status": refund["status"],
        "outcome": "BOOKS_RETRY",
        "provider": (refund.get("payment") or {}).get("provider"),
        "books": invoice["system"],
    }
    name = f"{refund_id}-retry-{uuid.uuid4().hex[:12]}"
    try:
        started = target.client("stepfunctions").start_execution(
            stateMachineArn=target.output("RefundStepsArn"),
            name=name,
            input=json.dumps({"refund_id": refund_id, "entry": "after_refund", "step": step}),
        )
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, "start the books step") from error
    return f"execution {started['executionArn'].rsplit(':', 1)[-1]}"


def _redrive(target: Target, refund_id: str) -> str:
    if target.local:
        # moto answers RedriveExecution with a 500 ("not implemented"): say so instead of retrying it.
        raise CliError(
            "not_supported_locally",
            f"{refund_id}: the local stack's Step Functions (moto) has no RedriveExecution; redrive works on AWS",
            Exit.NOT_ALLOWED,
        )
    arn = target.output("RefundWorkflowArn").replace(":stateMachine:", ":execution:") + f":{refund_id}"
    try:
        redriven = target.client("stepfunctions").redrive_execution(executionArn=arn, clientToken=uuid.uuid4().hex)
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, f"redrive {refund_id}") from error
    return f"redriven at {redriven.get('redriveDate')}"
