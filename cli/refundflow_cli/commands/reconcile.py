"""``refundflow reconcile FILE [--bank FILE] ...``: reconcile a settlement report (and the bank statement that
received its payouts) with the engine the reconciliation state machine runs; see refundflow_cli.reconcile."""

from __future__ import annotations

import typer

from refundflow_cli.reconcile import run


def register(app: typer.Typer) -> None:
    app.command(
        "reconcile",
        help="Reconcile a settlement file (and --bank statement): refunds found move to SETTLED, mismatches reach "
        "ops; writes a CSV of every line with its class and a summary. Options: refundflow reconcile --help.",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(reconcile)


def reconcile(context: typer.Context) -> None:
    # Its options are the reconciliation runner's own (argparse, with its progress bar and exit codes 0/2/3).
    raise typer.Exit(run(list(context.args)))
