"""Following a refund to where it stops: a final status, or a status that waits for a person."""

from __future__ import annotations

import time
from typing import Any

from rich.live import Live

from refundflow_cli.api import Api
from refundflow_cli.errors import Exit
from refundflow_cli.output import FOR_A_PERSON, FOR_THE_GOODS, SUCCESS, UNSUCCESSFUL, console, refund_panel

# NEEDS_ATTENTION reasons the workflow resolves by itself (books retried, provider polled): keep following.
AUTOMATIC_REASONS = {"books_update_failed", "provider_outcome_unknown"}
POLL_SECONDS = 0.5


def stopped(refund: dict[str, Any]) -> bool:
    status = refund["status"]
    if status in SUCCESS or status in UNSUCCESSFUL:
        return True
    if status == "NEEDS_ATTENTION":
        return refund.get("attention_reason") not in AUTOMATIC_REASONS
    return status in FOR_A_PERSON or status in FOR_THE_GOODS


def exit_code_for(refund: dict[str, Any]) -> Exit:
    status = refund["status"]
    if status in SUCCESS:
        return Exit.OK
    if status in UNSUCCESSFUL:
        return Exit.REFUND_UNSUCCESSFUL
    if stopped(refund):
        return Exit.WAITING_FOR_PERSON
    return Exit.TIMED_OUT


def follow(api: Api, refund_id: str, *, timeout: float, live: bool, since_seq: int = 0) -> dict[str, Any]:
    """Poll ``GET /refunds/{id}`` until the refund stops or ``timeout`` runs out; with ``live``, redraw its
    panel and timeline as entries arrive. A refund that is already past ``since_seq`` entries and stopped
    is returned at once."""
    deadline = time.monotonic() + timeout
    refund = api.refund(refund_id)
    if not live:
        while not _done(refund, since_seq) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            refund = api.refund(refund_id)
        return refund
    with Live(refund_panel(refund), console=console(), refresh_per_second=4, transient=False) as view:
        while not _done(refund, since_seq) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            refund = api.refund(refund_id)
            view.update(refund_panel(refund))
    console().line()
    return refund


def _done(refund: dict[str, Any], since_seq: int) -> bool:
    entries = refund.get("timeline") or []
    newest = max((entry["seq"] for entry in entries), default=0)
    return newest > since_seq and stopped(refund)
