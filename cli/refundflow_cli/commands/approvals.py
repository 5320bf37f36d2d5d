"""``refundflow approve ID`` / ``refundflow reject ID --note ...``: an approver's decision, then the refund followed."""

from __future__ import annotations

from typing import Annotated

import typer

from refundflow_cli.commands._shared import api_of
from refundflow_cli.errors import Exit
from refundflow_cli.follow import exit_code_for, follow
from refundflow_cli.output import JsonOption, console, emit_json, handled

ApproverOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Local stack only: SUBJECT:ROLE of the token its issuer mints (default operator:team_lead). "
        "On AWS the token is REFUNDFLOW_TOKEN, from your identity provider.",
    ),
]
FollowOption = Annotated[bool, typer.Option("--follow/--no-follow", help="Follow the refund until it stops again.")]
WaitOption = Annotated[float, typer.Option("--wait-seconds", help="How long to follow it.")]


def register(app: typer.Typer) -> None:
    app.command("approve")(approve)
    app.command("reject")(reject)


@handled
def approve(
    ctx: typer.Context,
    refund_id: Annotated[str, typer.Argument(help="A refund in PENDING_APPROVAL.")],
    note: Annotated[str | None, typer.Option(help="Why (kept in the audit trail; never card data).")] = None,
    approver: ApproverOption = None,
    wait: FollowOption = True,
    wait_seconds: WaitOption = 120.0,
    json_output: JsonOption = False,
) -> None:
    """Approve a refund waiting for approval (the policy checks the token's role), then follow it."""
    _decide(ctx, refund_id, "approve", note, approver, wait, wait_seconds, json_output)


@handled
def reject(
    ctx: typer.Context,
    refund_id: Annotated[str, typer.Argument(help="A refund in PENDING_APPROVAL.")],
    note: Annotated[str, typer.Option(help="Why it is rejected (required; kept in the audit trail).")],
    approver: ApproverOption = None,
    wait: FollowOption = True,
    wait_seconds: WaitOption = 60.0,
    json_output: JsonOption = False,
) -> None:
    """Reject a refund waiting for approval, with a note."""
    _decide(ctx, refund_id, "reject", note, approver, wait, wait_seconds, json_output)


def _decide(
    ctx: typer.Context,
    refund_id: str,
    decision: str,
    note: str | None,
    approver: str | None,
    wait: bool,
    wait_seconds: float,
    json_output: bool,
) -> None:
    api = api_of(ctx)
    before = api.refund(refund_id)
    seen = max((entry["seq"] for entry in before.get("timeline") or []), default=0)
    result = api.decide(refund_id, decision, note, api.approver_token(approver))
    if not json_output:
        console().print(f"{decision}d {refund_id} as {result['approver']} ({result['role']}): now {result['status']}")
    if not wait:
        if json_output:
            emit_json({"decision": result})
        return
    refund = follow(api, refund_id, timeout=wait_seconds, live=not json_output, since_seq=seen)
    code = exit_code_for(refund)
    if decision == "reject" and refund["status"] == "REJECTED":
        code = Exit.OK  # the rejection is what was asked for
    if json_output:
        emit_json({"decision": result, "refund": refund, "exit_code": int(code)})
    raise typer.Exit(int(code))
