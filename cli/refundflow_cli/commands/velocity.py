"""``refundflow velocity backfill``: add the refunds stored before the velocity counters existed to them.

The counters (``CUSTOMER#<pseudonym>`` / ``DAY#<yyyy-mm-dd>``, README "velocity") count a refund in the
transaction of the write that changes what it counts for, and mark its STATE item (``vc``) in that transaction.
Refunds stored before the counters shipped carry no marker and join at their next write; the ones never written
again are what this command counts. Each refund is counted by ``RefundRepository.count_in_velocity``: its counter
update and its marker in one transaction, conditioned on the version read and on the marker's absence, so a
re-run, two runs at once or a crash midway count nothing twice (a crash loses at most the refund in flight, which
the next run counts).

It reads the whole table once (a Scan of STATE items without the marker, keys only), then each such refund
(one Query) and writes one transaction per refund.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import typer

from refundflow.adapters.dynamodb import VELOCITY_COUNTED, RefundRepository
from refundflow.errors import RefundflowError
from refundflow.models import VelocityContribution
from refundflow_cli.commands._shared import target_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.output import JsonOption, console, emit_json, error_console, handled

velocity = typer.Typer(help="The customers' velocity counters.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(velocity, name="velocity")


@dataclass
class Backfill:
    """What a backfill run found and did."""

    dry_run: bool
    items_scanned: int = 0  # every item the Scan read (what it is billed for)
    uncounted: int = 0  # STATE items without the marker
    counted: int = 0  # added to their customer's counters (or, in a dry run, would be)
    contributing_nothing: int = 0  # marked, adding nothing (rejected, failed, or no amount yet)
    skipped: int = 0  # counted meanwhile by their own write or another run, or gone
    amounts: dict[str, int] = field(default_factory=dict)  # minor units added per currency

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def uncounted_refund_ids(repository: RefundRepository, on_page: Callable[[int], None]) -> Iterator[str]:
    """The ids of the refunds whose STATE item lacks the marker: a Scan reading keys only, page by page
    (``on_page`` gets each page's number of items read)."""
    kwargs: dict[str, Any] = {
        "TableName": repository.table_name,
        "ProjectionExpression": "pk",
        "FilterExpression": "sk = :state AND begins_with(pk, :refund) AND attribute_not_exists(#counted)",
        "ExpressionAttributeNames": {"#counted": VELOCITY_COUNTED},
        "ExpressionAttributeValues": {":state": {"S": "STATE"}, ":refund": {"S": "REFUND#"}},
    }
    while True:
        page = repository.dynamodb.scan(**kwargs)
        on_page(int(page.get("ScannedCount", 0)))
        for item in page.get("Items", []):
            yield str(item["pk"]["S"]).removeprefix("REFUND#")
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def backfill(
    repository: RefundRepository, *, dry_run: bool = False, progress: Callable[[Backfill], None] = lambda _: None
) -> Backfill:
    """Count every refund not counted yet, once; ``progress`` is called after each Scan page and every 100
    refunds."""
    result = Backfill(dry_run=dry_run)

    def scanned(count: int) -> None:
        result.items_scanned += count
        progress(result)

    for refund_id in uncounted_refund_ids(repository, scanned):
        result.uncounted += 1
        refund = repository.find(refund_id)
        if refund is None:
            result.skipped += 1
            continue
        contribution = VelocityContribution.of(refund)
        if not dry_run and not repository.count_in_velocity(refund):
            result.skipped += 1
            continue
        if contribution is None:
            result.contributing_nothing += 1
        else:
            result.counted += 1
            currency = contribution.amount.currency
            result.amounts[currency] = result.amounts.get(currency, 0) + contribution.amount.minor_units
        if result.uncounted % 100 == 0:
            progress(result)
    return result


def _progress_line(result: Backfill) -> None:
    verb = "would count" if result.dry_run else "counted"
    error_console().print(
        f"velocity backfill: {result.items_scanned} items read, {result.uncounted} refunds not counted found, "
        f"{result.counted} {verb}",
        highlight=False,
    )


@velocity.command("backfill")
@handled
def backfill_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Find and report the refunds not counted yet; write nothing.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Add every refund stored before the velocity counters existed to its customer's counters, exactly once
    (safe to re-run, or to run again after a crash)."""
    target = target_of(ctx)
    repository = RefundRepository(target.output("RefundsTableName"), dynamodb=target.client("dynamodb"))
    try:
        result = backfill(repository, dry_run=dry_run, progress=(lambda _: None) if json_output else _progress_line)
    except RefundflowError as error:
        raise CliError(
            "store_unavailable",
            f"{target.name}: {error} (nothing is counted twice: run it again)",
            Exit.UNAVAILABLE,
        ) from error
    if json_output:
        emit_json({"backfill": result.as_dict()})
        return
    amounts = ", ".join(f"{minor} {currency}" for currency, minor in sorted(result.amounts.items())) or "nothing"
    verb = "would be counted" if dry_run else "counted"
    console().print(
        f"{target.name}: {result.uncounted} refund(s) were not in the velocity counters; {result.counted} "
        f"{verb} ({amounts} in minor units), {result.contributing_nothing} contribute nothing (rejected, failed "
        f"or without an amount){'' if dry_run else ' and were marked'}, {result.skipped} counted meanwhile. "
        f"{result.items_scanned} items read."
    )
