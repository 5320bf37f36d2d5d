"""``refundflow refunds list|show``: refunds by status (the ``by-status`` index, paginated; a Scan of the table for
the statuses that sparse index leaves out) and one refund in full."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import botocore.exceptions
import typer
from rich.table import Table

from refundflow.adapters.dynamodb import INDEXED_STATUSES, plain_values, refund_id_of
from refundflow.status import RefundStatus
from refundflow_cli.commands._shared import api_of, parse_moment, target_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.output import JsonOption, console, emit_json, handled, money, refund_panel, status_text
from refundflow_cli.target import aws_error

refunds = typer.Typer(help="List refunds by status; show one refund in full.", no_args_is_help=True)
DEFAULT_STATUSES = [RefundStatus.NEEDS_ATTENTION, RefundStatus.PENDING_APPROVAL]


def register(app: typer.Typer) -> None:
    app.add_typer(refunds, name="refunds")


def _encode_token(keys: dict[str, Any]) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(keys, sort_keys=True).encode()).decode() if keys else None


def _decode_token(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error) as error:
        raise CliError("invalid_page_token", "--next is not a token this command printed", Exit.USAGE) from error
    return decoded


@refunds.command("list")
@handled
def list_refunds(
    ctx: typer.Context,
    status: Annotated[
        list[RefundStatus] | None,
        typer.Option(
            "--status",
            "-s",
            help="Repeat for several; default NEEDS_ATTENTION and PENDING_APPROVAL.",
            case_sensitive=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="In the status since (for a status the by-status index leaves out: last changed) at or after:"
            " 30m, 6h, 7d or an ISO 8601 date-time."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many per status per page.")] = 50,
    next_page: Annotated[str | None, typer.Option("--next", help="The token the previous page printed.")] = None,
    every_page: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Refunds in the given statuses, newest arrival in the status first, from the ``by-status`` index (keys only:
    each page's refunds are then read from the table in one BatchGetItem). The statuses that sparse index leaves out
    (those a refund passes through on its way) are found by a paginated Scan of the whole table, filtered: every
    item is read, so such a listing costs about 1 read unit per 8 KB of the table: for a rare look, not a dashboard."""
    target = target_of(ctx)
    statuses = status or DEFAULT_STATUSES
    moment = parse_moment(since, option="--since")
    table_name = target.output("RefundsTableName")
    dynamodb = target.client("dynamodb")
    pending = _decode_token(next_page)
    rows: list[dict[str, Any]] = []
    following: dict[str, Any] = {}
    for wanted in statuses:
        if next_page and wanted.value not in pending:
            continue  # that status was exhausted on an earlier page
        start = pending.get(wanted.value)
        while True:
            page = _page(dynamodb, table_name, wanted, moment, limit, start)
            rows.extend(plain_values(item) for item in page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start or not every_page:
                break
        if start:
            following[wanted.value] = start
    rows.sort(key=lambda row: str(_in_status_since(row)), reverse=True)
    token = _encode_token(following)
    summaries = [_summary(row) for row in rows]
    if json_output:
        emit_json({"refunds": summaries, "next": token})
        return
    table = Table(
        title=f"refunds {', '.join(s.value for s in statuses)}" + (f" since {moment.isoformat()}" if moment else "")
    )
    table.add_column("refund", no_wrap=True)
    for column in ("status", "age", "in status since", "amount", "why", "payment"):
        table.add_column(column, overflow="fold")
    for summary in summaries:
        table.add_row(
            summary["refund_id"],
            status_text(summary["status"]),
            _duration(summary["age_seconds"]),
            summary["in_status_since"],
            summary["amount"],
            summary["why"],
            summary["payment"],
        )
    out = console()
    out.print(table)
    out.print(f"{len(summaries)} refund(s)" + (f"; next page: --next {token}" if token else ""))


def _moment(since: datetime) -> str:
    # Sort keys and updated_at hold UTC ("Z", microseconds when non-zero): compare at the microsecond.
    return since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _page(
    dynamodb: Any, table: str, status: RefundStatus, since: datetime | None, limit: int, start: Any
) -> dict[str, Any]:
    """One page of the refunds in ``status`` as STATE items: from the by-status index (``limit`` entries, then
    their items in one BatchGetItem), or for a status it leaves out, from Scan requests until ``limit`` are
    found or the table ends (every match of the last request is kept: a page may hold more)."""
    try:
        if status not in INDEXED_STATUSES:
            return _scanned(dynamodb, table, status, since, limit, start)
        condition = "gsi1pk = :pk"
        values: dict[str, Any] = {":pk": {"S": f"STATUS#{status.value}"}}
        if since is not None:
            condition += " AND gsi1sk >= :since"
            values[":since"] = {"S": _moment(since)}
        kwargs: dict[str, Any] = {
            "TableName": table,
            "IndexName": "by-status",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        page: dict[str, Any] = dynamodb.query(**kwargs)
        items = _states(dynamodb, table, [refund_id_of(entry) for entry in page.get("Items", [])])
        # The index is eventually consistent: a refund that has left the status since is not listed.
        listed = [item for item in items if item.get("status", {}).get("S") == status.value]
        return {
            "Items": listed,
            **({"LastEvaluatedKey": page["LastEvaluatedKey"]} if "LastEvaluatedKey" in page else {}),
        }
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, f"table {table}") from error
    except botocore.exceptions.BotoCoreError as error:
        raise CliError("aws_unreachable", f"DynamoDB: {error}", Exit.UNAVAILABLE) from error


def _scanned(
    dynamodb: Any, table: str, status: RefundStatus, since: datetime | None, limit: int, start: Any
) -> dict[str, Any]:
    condition = "sk = :state AND #status = :status"
    values: dict[str, Any] = {":state": {"S": "STATE"}, ":status": {"S": status.value}}
    if since is not None:
        condition += " AND updated_at >= :since"
        values[":since"] = {"S": _moment(since)}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": condition,
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": values,
    }
    if start:
        kwargs["ExclusiveStartKey"] = start
    items: list[dict[str, Any]] = []
    while True:
        page: dict[str, Any] = dynamodb.scan(**kwargs)
        items += page.get("Items", [])
        following = page.get("LastEvaluatedKey")
        if not following or len(items) >= limit:
            return {"Items": items, **({"LastEvaluatedKey": following} if following else {})}
        kwargs["ExclusiveStartKey"] = following


def _states(dynamodb: Any, table: str, refund_ids: list[str]) -> list[dict[str, Any]]:
    """The refunds' STATE items, in the order named (BatchGetItem: at most 1,000 ids, a page's ``--limit``)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(refund_ids), 100):
        request: dict[str, Any] = {
            table: {
                "Keys": [
                    {"pk": {"S": f"REFUND#{rid}"}, "sk": {"S": "STATE"}} for rid in refund_ids[start : start + 100]
                ]
            }
        }
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            found.update({refund_id_of(item): item for item in response.get("Responses", {}).get(table, [])})
            request = response.get("UnprocessedKeys") or {}
    return [found[refund_id] for refund_id in refund_ids if refund_id in found]


def _in_status_since(row: dict[str, Any]) -> Any:
    """When the refund entered its status: by-status's sort key (``<moment>#<refund id>``); the last change
    for a status that index leaves out."""
    key = row.get("gsi1sk")
    return str(key).split("#", 1)[0] if key else row.get("updated_at")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def _age_seconds(created_at: Any, now: datetime) -> int | None:
    try:
        created = datetime.fromisoformat(str(created_at))
    except ValueError:
        return None
    return max(int((now - created).total_seconds()), 0)


def _summary(row: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    payment = row.get("payment") or {}
    failure = row.get("failure") or {}
    policy = row.get("policy") or {}
    why = (
        row.get("attention_reason")
        or failure.get("code")
        or (
            f"needs {policy['required_role']}"
            if row.get("status") == "PENDING_APPROVAL" and policy.get("required_role")
            else ""
        )
    )
    return {
        "refund_id": row["refund_id"],
        "status": row["status"],
        "updated_at": row.get("updated_at"),
        "in_status_since": _in_status_since(row),
        "created_at": row.get("created_at"),
        "age_seconds": _age_seconds(row.get("created_at"), now or datetime.now(UTC)),
        "amount": money(row.get("amount") or row.get("requested_amount")),
        "why": why,
        "payment": f"{payment.get('provider')} {payment.get('payment_id')}",
        "attention_reason": row.get("attention_reason"),
        "required_role": policy.get("required_role"),
    }


@refunds.command("show")
@handled
def show(
    ctx: typer.Context,
    refund_id: Annotated[str, typer.Argument(help="The refund id (rf_...).")],
    json_output: JsonOption = False,
) -> None:
    """Amounts, references, policy decision, approval, documents, the timeline, and the audit chain verified.
    Exits 13 when the audit chain does not verify."""
    refund = api_of(ctx).refund(refund_id)
    if json_output:
        emit_json(refund)
    else:
        console().print(refund_panel(refund))
    if not (refund.get("audit") or {}).get("intact", False):
        raise typer.Exit(int(Exit.AUDIT_BROKEN))
