"""Command groups of ``refundflow``, one module each.

To add one: write ``commands/reconcile.py`` with a
``register(app: typer.Typer)`` that adds its command(s) with ``@handled`` and a ``json_output: JsonOption``
parameter, then list the module in ``MODULES`` below.
"""

from __future__ import annotations

import typer

from refundflow_cli.commands import (
    approvals,
    dlq,
    events,
    policy,
    reconcile,
    refunds,
    retry,
    send,
    store_credit,
    velocity,
)

MODULES = (send, refunds, approvals, retry, dlq, events, policy, reconcile, velocity, store_credit)


def register(app: typer.Typer) -> None:
    for module in MODULES:
        module.register(app)
