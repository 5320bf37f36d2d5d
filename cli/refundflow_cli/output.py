"""Terminal output (rich) and ``--json`` output, and the wrapper that turns errors into one line and an exit code."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, ParamSpec

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from refundflow.money import Money
from refundflow_cli.errors import CliError, Exit

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of tables.")]

P = ParamSpec("P")

SUCCESS = {"COMPLETED", "SETTLED"}
UNSUCCESSFUL = {"REJECTED", "FAILED"}
FOR_A_PERSON = {"PENDING_APPROVAL", "NEEDS_ATTENTION"}
# Waits for the returned goods (days, not seconds): following stops there too.
FOR_THE_GOODS = {"AWAITING_RETURN"}
STATUS_STYLE = {
    **dict.fromkeys(SUCCESS, "green"),
    **dict.fromkeys(UNSUCCESSFUL, "red"),
    **dict.fromkeys(FOR_A_PERSON | FOR_THE_GOODS, "yellow"),
}


def console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


def handled(command: Callable[P, None]) -> Callable[P, None]:
    """Every command: a CliError (or an interrupt) becomes one line ``error[code]: message`` on stderr (or
    ``{"error": {...}}`` on stdout with --json) and its documented exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except CliError as error:
            fail(error, as_json=bool(kwargs.get("json_output")))
        except KeyboardInterrupt:
            fail(CliError("interrupted", "interrupted", Exit.ERROR), as_json=bool(kwargs.get("json_output")))

    return run


def fail(error: CliError, *, as_json: bool) -> NoReturn:
    if as_json:
        emit_json(error.document())
    else:
        error_console().print(Text(f"error[{error.code}]: {error.message}", style="red"))
    raise typer.Exit(int(error.exit_code))


# ------------------------------------------------------------------ refunds


def money(value: dict[str, Any] | None) -> str:
    return str(Money.model_validate(value)) if value else "-"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, "cyan"))


def _detail(value: Any) -> str:
    """A detail value as a person reads it: amounts as "42.00 EUR", objects as key=value."""
    if isinstance(value, dict) and set(value) == {"minor_units", "currency"}:
        return money(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_detail(item)}" for key, item in value.items() if item is not None) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_detail(item) for item in value) + "]"
    return str(value)


def _clock(at: Any) -> str:
    """The time of day of an ISO 8601 timestamp, to the millisecond (the date is in the refund's header)."""
    text = str(at)
    time_part = text.partition("T")[2] or text
    return time_part[:12]


def timeline_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="timeline", title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("entry", no_wrap=True)
    table.add_column("actor", overflow="fold", max_width=28)
    table.add_column("details", overflow="fold", ratio=1)
    for entry in entries:
        kind: str | Text = str(entry["type"])
        if entry.get("to_status") and entry.get("to_status") != entry.get("from_status"):
            kind = Text(f"-> {entry['to_status']}", style=STATUS_STYLE.get(str(entry["to_status"]), "cyan"))
        details = entry.get("details") or {}
        table.add_row(
            str(entry["seq"]),
            _clock(entry["at"]),
            kind,
            str(entry["actor"]),
            ", ".join(f"{key}={_detail(value)}" for key, value in details.items() if value is not None)[:240],
        )
    return table


def audit_line(audit: dict[str, Any]) -> Text:
    if audit.get("intact"):
        keyed = "keyed" if audit.get("keyed") else "not keyed (entries before the audit key)"
        return Text(f"audit chain verified: {audit.get('entries')} entries, {keyed}", style="green")
    return Text(f"AUDIT CHAIN BROKEN at entry {audit.get('broken_at_seq')}: {audit.get('problem')}", style="bold red")


def refund_panel(refund: dict[str, Any]) -> Group:
    """Amounts, references, policy decision, approval, documents, failure, timeline and the audit verdict."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    payment = refund.get("payment") or {}
    source = refund.get("source") or {}
    rows: list[tuple[str, Any]] = [
        ("status", status_text(refund["status"])),
        (
            "requested",
            money(refund.get("requested_amount")) if refund.get("requested_amount") else "all that is refundable",
        ),
        ("refund", money(refund.get("amount"))),
        ("reason", refund.get("reason")),
        ("payment", f"{payment.get('provider')} {payment.get('payment_id')}"),
        (
            "source",
            f"{source.get('system')} {source.get('reference')}"
            + (f" ticket {source['ticket_id']}" if source.get("ticket_id") else ""),
        ),
        ("created / updated", f"{refund.get('created_at')} / {refund.get('updated_at')}"),
    ]
    if refund.get("order_id"):
        rows.append(("order", refund["order_id"]))
    invoice = refund.get("invoice")
    if invoice:
        rows.append(("invoice", " ".join(str(value) for value in invoice.values() if value)))
    policy = refund.get("policy")
    if policy:
        role = f" by {policy['required_role']}" if policy.get("required_role") else ""
        rows.append(
            ("policy", f"{policy['outcome']}{role} (rule {policy['rule_id']}, version {policy['policy_version']})")
        )
        if policy.get("explanation"):
            rows.append(("", policy["explanation"]))
    approval = refund.get("approval")
    if approval:
        note = f": {approval['note']}" if approval.get("note") else ""
        who = f"{approval['approver']} ({approval['role']}, {approval['channel']})"
        rows.append(("approval", f"{approval['decision']} by {who} at {approval['decided_at']}{note}"))
    if refund.get("provider_refund_id"):
        rows.append(("provider refund", f"{refund['provider_refund_id']} ({refund.get('provider_status') or '-'})"))
    document = refund.get("credit_document")
    if document:
        rows.append(
            (
                "credit note",
                f"{document['system']} {document.get('credit_note_number') or document['credit_note_id']}: "
                f"{money(document['total'])}, allocated {money(document['allocated_to_invoice'])}, "
                f"cash {money(document['cash_refunded'])}",
            )
        )
    if refund.get("attention_reason"):
        rows.append(("needs attention", Text(str(refund["attention_reason"]), style="yellow")))
    failure = refund.get("failure")
    if failure:
        platform = f"[{failure['platform']}] " if failure.get("platform") else ""
        rows.append(("failure", Text(f"{platform}{failure['code']}: {failure['message']}", style="red")))
    for label, value in rows:
        facts.add_row(label, value if isinstance(value, Text) else str(value))
    return Group(
        Panel(facts, title=f"refund {refund['refund_id']}", title_align="left"),
        timeline_table(refund.get("timeline") or []),
        audit_line(refund.get("audit") or {}),
    )
