"""``refundflow refunds list|show|trace``: refunds by status (the ``by-status`` index, paginated; a Scan of the table
for the statuses that sparse index leaves out), one refund in full, and a refund's trace from ticket to bank line (or
from a bank line or payout back to its refunds)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import botocore.exceptions
import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from refundflow.adapters.dynamodb import INDEXED_STATUSES, plain_values, refund_id_of
from refundflow.status import RefundStatus
from refundflow_cli.commands._shared import api_of, parse_moment, target_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.output import (
    JsonOption,
    audit_line,
    console,
    emit_json,
    handled,
    money,
    refund_panel,
    status_text,
)
from refundflow_cli.target import aws_error

refunds = typer.Typer(
    help="List refunds by status; show one refund in full; trace one from ticket to bank line.", no_args_is_help=True
)
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


@refunds.command("trace")
@handled
def trace(
    ctx: typer.Context,
    refund_id: Annotated[str | None, typer.Argument(help="The refund id (rf_...).")] = None,
    bank_line: Annotated[
        str | None,
        typer.Option(
            "--bank-line",
            metavar="FILE:LINE",
            help="Which refunds are in this bank statement line: its key in the settlement drop and its line number.",
        ),
    ] = None,
    payout: Annotated[
        str | None, typer.Option("--payout", metavar="ID", help="Which refunds this payout carried.")
    ] = None,
    after: Annotated[
        str | None, typer.Option("--after", help="A payout's refunds after this line key (the previous page's next).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Every hop of a refund with its id, time and actor: the request and who approved it, the policy decision, the
    provider refund and its ARN, the credit document, the settlement line, the payout and the bank line that
    credited it; a missing hop says which and why. With --bank-line or --payout, from the other end: the payout and
    every refund it carried, each with its trace summary. Exits 13 when an audit chain does not verify."""
    given = [name for name, value in (("ID", refund_id), ("--bank-line", bank_line), ("--payout", payout)) if value]
    if len(given) != 1:
        raise CliError("usage", "give one of a refund ID, --bank-line FILE:LINE or --payout ID", Exit.USAGE)
    api = api_of(ctx)
    if refund_id:
        document = api.refund_trace(refund_id)
        intact = bool((document.get("audit") or {}).get("intact"))
        render: Any = lambda: trace_panel(document)  # noqa: E731
    else:
        if bank_line:
            file, _, line = bank_line.rpartition(":")
            if not file or not line.isdigit():
                raise CliError("usage", f"--bank-line takes FILE:LINE, got {bank_line!r}", Exit.USAGE)
            document = api.bank_line_trace(file, int(line), after)
            payout_document = document["payout"]
        else:
            assert payout is not None
            document = payout_document = api.payout_trace(payout, after)
        intact = all(item.get("audit_intact") is not False for item in payout_document["refunds"])
        render = lambda: payout_panel(payout_document, bank_line=bank_line)  # noqa: E731
    if json_output:
        emit_json(document)
    else:
        console().print(render())
    if not intact:
        raise typer.Exit(int(Exit.AUDIT_BROKEN))


def _fact(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"minor_units", "currency"}:
        return money(value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={_fact(item)}" for key, item in value.items() if item is not None)
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def hops_text(hops: list[dict[str, Any]], *, indent: str = "") -> Text:
    """One heading line per hop (number, name, ok / -- missing / !! disagrees, when, who, audit entry), then its
    facts one per line, and why it is missing: readable at any terminal width, every id whole."""
    text = Text()
    for number, hop in enumerate(hops, start=1):
        missing = hop.get("missing")
        if hop["present"] and not missing:
            mark = Text("ok", style="green")
        else:
            mark = Text("!!" if hop["present"] else "--", style="bold red" if hop["present"] else "yellow")
        text.append(f"{indent}{number}. {hop['hop']:<16} ", style="bold")
        text.append(mark)
        when = str(hop.get("at") or "").replace("T", " ")[:23]
        who = str(hop.get("actor") or "")
        seq = f"(audit #{hop['audit_seq']})" if hop.get("audit_seq") else ""
        text.append("  " + "  ".join(part for part in (when, who, seq) if part) + "\n")
        if missing:
            match_class = f" ({missing['match_class']})" if missing.get("match_class") else ""
            text.append(f"{indent}     {missing['code']}{match_class}: {missing['reason']}\n", style="yellow")
        for key, value in (hop.get("facts") or {}).items():
            if value is None or value in ({}, []):
                continue
            text.append(f"{indent}     {key}: {_fact(value)}\n")
    return text


def trace_panel(trace: dict[str, Any]) -> Group:
    """The refund's hops, each leg's, what is missing, and the audit verdict."""
    head = Text.assemble(
        (trace["refund_id"], "bold"),
        "  ",
        status_text(trace["status"]),
        f"  {money(trace.get('amount'))}",
        f"  leg of {trace['parent_refund_id']}" if trace.get("parent_refund_id") else "",
    )
    parts: list[Any] = [head, hops_text(trace["hops"])]
    for leg in trace.get("legs") or []:
        title = f"leg {leg['index']}: {leg['kind']} {money(leg['amount'])} {leg['status']} {leg.get('refund_id') or ''}"
        parts += [Text(title.strip(), style="bold"), hops_text(leg["hops"], indent="  ")]
        if leg.get("audit"):
            parts.append(audit_line(leg["audit"]))
    missing = trace.get("missing") or []
    parts.append(
        Text("every hop is there", style="green") if trace["complete"] else Text("missing: " + "; ".join(missing))
    )
    parts.append(audit_line(trace["audit"]))
    return Group(*parts)


def payout_panel(payout: dict[str, Any], *, bank_line: str | None) -> Group:
    """The payout, its bank line, and one row per refund it carried with its trace summary."""
    title = f"bank line {bank_line} -> payout {payout['payout_id']}" if bank_line else f"payout {payout['payout_id']}"
    hops = [payout["bank_line"], payout["payout"]] if bank_line else [payout["payout"], payout["bank_line"]]
    parts: list[Any] = [Text(title, style="bold"), hops_text(hops), Text("refunds it carried", style="bold")]
    for item in payout["refunds"]:
        source = item.get("source") or {}
        line = item.get("line") or {}
        summary = Text("complete", style="green") if item["complete"] else Text("; ".join(item["missing"]), "yellow")
        if item.get("audit_intact") is False:
            summary.append("; AUDIT CHAIN BROKEN", style="bold red")
        ticket = f" ticket {source['ticket_id']}" if source.get("ticket_id") else ""
        parts.append(
            Text.assemble(
                (item["refund_id"], "bold"),
                "  ",
                status_text(str(item.get("status") or "-")),
                f"  {money(item['amount'])}  {item['match_class']}\n",
                f"     line: {line.get('file')}:{line.get('line_no')} ({line.get('line')})\n",
                f"     source: {source.get('system')} {source.get('reference')}{ticket}\n",
                "     trace: ",
                summary,
            )
        )
    parts.append(
        Text(
            f"{len(payout['refunds'])} refund(s)" + (f"; more: --after {payout['next']}" if payout.get("next") else "")
        )
    )
    return Group(*parts)
