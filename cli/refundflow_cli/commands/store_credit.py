"""``refundflow store-credit show CUSTOMER``: a customer's store credit kept by refundflow, balances and entries.

CUSTOMER is the customer id the refund requests carried, or the e-mail address when they carried none (any case),
or a key as stored (``id:…`` / ``email:…``). It reads the refunds table (``STORE_CREDIT#<digest>`` items, consistent
reads); it changes nothing: redeeming store credit at checkout is the shop's business.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from refundflow.adapters.store_credit import DynamoStoreCreditLedger
from refundflow.domain.store_credit import lookup_key
from refundflow.errors import RefundflowError
from refundflow.ports import StoreCreditLedger
from refundflow_cli.commands._shared import target_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.output import JsonOption, console, emit_json, handled

store_credit = typer.Typer(help="Store credit kept by refundflow (split refunds' store-credit legs).")


def register(app: typer.Typer) -> None:
    app.add_typer(store_credit, name="store-credit", no_args_is_help=True)


def store_credit_report(ledger: StoreCreditLedger, customer: str) -> dict[str, Any]:
    """The customer's key, balance per currency credited, and entries oldest first, JSON-ready."""
    key = lookup_key(customer)
    entries = ledger.entries(key)
    currencies = sorted({entry.amount.currency for entry in entries})
    return {
        "customer_key": key,
        "balances": [ledger.balance(key, currency).model_dump() for currency in currencies],
        "entries": [entry.model_dump(mode="json") for entry in entries],
    }


@store_credit.command("show")
@handled
def show(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer id, e-mail address, or stored key (id:… / email:…).")],
    json_output: JsonOption = False,
) -> None:
    """A customer's store-credit balances and the entries that made them."""
    target = target_of(ctx)
    ledger = DynamoStoreCreditLedger(target.output("RefundsTableName"), dynamodb=target.client("dynamodb"))
    try:
        report = store_credit_report(ledger, customer)
    except RefundflowError as error:
        raise CliError("store_unavailable", f"{target.name}: {error}", Exit.UNAVAILABLE) from error
    if json_output:
        emit_json({"store_credit": report})
        return
    out = console()
    if not report["entries"]:
        out.print(f"{target.name}: no store credit for {report['customer_key']}")
        return
    balances = ", ".join(f"{item['minor_units']} {item['currency']}" for item in report["balances"])
    out.print(f"{target.name}: store credit of {report['customer_key']}: {balances} (minor units)")
    table = Table("created at", "entry", "amount", "refund", "note")
    for entry in report["entries"]:
        amount = entry["amount"]
        table.add_row(
            entry["created_at"],
            entry["entry_id"],
            f"{amount['minor_units']} {amount['currency']}",
            entry["refund_id"],
            entry["note"],
        )
    out.print(table)
