"""``refundflow send [FILE.json] [flags]``: sign and post a refund request as a source system, then follow it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from refundflow.api import RefundRequestBody
from refundflow.money import Money, MoneyError
from refundflow_cli.commands._shared import api_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.follow import exit_code_for, follow
from refundflow_cli.output import JsonOption, console, emit_json, handled, refund_panel


def register(app: typer.Typer) -> None:
    app.command("send")(send)


@handled
def send(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(
            help="A refund request body (JSON, as POST /refund-requests takes it); flags fill in or override.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    payment_id: Annotated[str | None, typer.Option(help="The provider's payment id (Stripe: pi_...).")] = None,
    provider: Annotated[str, typer.Option(help="Payment provider.")] = "stripe",
    amount: Annotated[
        str | None, typer.Option(help="Amount in major units, e.g. 42.00 (omit: all that is refundable).")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 currency of --amount.")] = None,
    reason: Annotated[str | None, typer.Option(help="damaged, product_return, wrong_item, ...")] = None,
    email: Annotated[str | None, typer.Option(help="The customer's e-mail.")] = None,
    name: Annotated[str | None, typer.Option(help="The customer's name.")] = None,
    reference: Annotated[str | None, typer.Option(help="The source system's reference (default CLI-<random>).")] = None,
    invoice_id: Annotated[
        str | None, typer.Option(help="The invoice to credit in the books (no credit note without it).")
    ] = None,
    books: Annotated[str, typer.Option(help="The books system of --invoice-id.")] = "xero",
    source: Annotated[
        str | None,
        typer.Option(envvar="REFUNDFLOW_SOURCE_SYSTEM", help="Source system that signs (local default: curl)."),
    ] = None,
    delivery_id: Annotated[str | None, typer.Option(help="webhook-id of the delivery (default: a new one).")] = None,
    wait: Annotated[bool, typer.Option("--follow/--no-follow", help="Follow the refund until it stops.")] = True,
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", help="How long to follow it.")] = 120.0,
    json_output: JsonOption = False,
) -> None:
    """Sign (Standard Webhooks, as the source system) and post a refund request; print the refund id and follow
    it to a final status with a live timeline."""
    api = api_of(ctx)
    body = _body(file, payment_id, provider, amount, currency, reason, email, name, reference)
    if invoice_id:
        body["invoice"] = {"system": books, "invoice_id": invoice_id}
    signer = source or (body.get("source") or {}).get("system") or api.default_source()
    body.setdefault("source", {})["system"] = signer
    body["source"].setdefault("reference", f"CLI-{uuid.uuid4().hex[:12]}")
    try:
        RefundRequestBody.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()[:5]
        )
        raise CliError("invalid_request", f"the refund request is not valid: {problems}", Exit.USAGE) from error
    accepted = api.request_refund(body, source=signer, delivery_id=delivery_id)
    refund_id = accepted["refund_id"]
    if not json_output:
        seen = "duplicate of an earlier request" if accepted.get("duplicate") else "new"
        console().print(f"refund [bold]{refund_id}[/bold] {accepted['status']} ({seen}, signed as {signer})")
    if not wait:
        if json_output:
            emit_json({"accepted": accepted})
        return
    refund = follow(api, refund_id, timeout=wait_seconds, live=not json_output)
    code = exit_code_for(refund)
    if json_output:
        emit_json({"accepted": accepted, "refund": refund, "exit_code": int(code)})
    else:
        _say_where_it_stopped(refund, code)
    raise typer.Exit(int(code))


def _say_where_it_stopped(refund: dict[str, Any], code: Exit) -> None:
    out = console()
    if code is Exit.TIMED_OUT:
        out.print(refund_panel(refund))
        out.print(f"still {refund['status']}: `refundflow refunds show {refund['refund_id']}` to look again")
    elif code is Exit.WAITING_FOR_PERSON:
        refund_id = refund["refund_id"]
        if refund["status"] == "PENDING_APPROVAL":
            hint = f"`refundflow approve {refund_id}` or `refundflow reject {refund_id} --note ...`"
        else:
            hint = f"`refundflow retry {refund_id} --check` says whether a retry can fix it"
        out.print(f"waiting for a person ({refund['status']}): {hint}")


def _body(
    file: Path | None,
    payment_id: str | None,
    provider: str,
    amount: str | None,
    currency: str | None,
    reason: str | None,
    email: str | None,
    name: str | None,
    reference: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as error:
            raise CliError("invalid_json", f"{file}: not JSON ({error})", Exit.USAGE) from error
        if not isinstance(loaded, dict):
            raise CliError("invalid_json", f"{file}: a refund request is a JSON object", Exit.USAGE)
        body = loaded
    if payment_id:
        body["payment"] = {"provider": provider, "payment_id": payment_id}
    if amount is not None:
        if not currency:
            raise CliError("missing_currency", "--amount needs --currency", Exit.USAGE)
        try:
            body["amount"] = Money.from_decimal_string(amount, currency.upper()).model_dump(mode="json")
        except (MoneyError, ValueError) as error:
            raise CliError("invalid_amount", f"--amount {amount} {currency}: {error}", Exit.USAGE) from error
    if reason:
        body["reason"] = reason
    if email or name:
        customer = body.setdefault("customer", {})
        if email:
            customer["email"] = email
        if name:
            customer["name"] = name
    if reference:
        body.setdefault("source", {})["reference"] = reference
    if not body:
        raise CliError("nothing_to_send", "give a FILE.json or at least --payment-id, --reason and --email", Exit.USAGE)
    return body
