"""A payment platform's payout news (Stripe ``payout.paid``, ``payout.failed``, ``payout.reconciliation_completed``)
turned into settlement records for reconciliation, in the platform's own function.

The news is only a pointer: the payout is read from the platform (a :class:`PayoutReader`). A payout that has
settled (paid, its records complete) has its records written, page by page through a file on the function's
ephemeral storage, as the platform's own settlement report under ``settlement/<platform>/payouts/<payout id>.csv``
in the settlement drop. That object's "Object Created" event starts ``ReconciliationStateMachine`` exactly as a
dropped report does: the same parser, matching classes and effects (``matched``: ``COMPLETED -> SETTLED``;
``refund_failure``: ``late_failure``; the payout's lines checked against its total).

Exactly once per payout: the report is put only if absent (``If-None-Match: *``), so a redelivered event, the
payout's other events, or a retry after a crash write it once and start one run; a run repeated anyway changes
nothing (reconciliation's first-seen markers). A failed or canceled payout writes no report (its money never
reached the bank): it is a ``payout_not_found`` mismatch for ops, once per payout.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from pydantic import Field

from refundflow.adapters.s3 import S3Files
from refundflow.domain.recorder import RefundRecorder
from refundflow.errors import NotFound
from refundflow.observability import logger
from refundflow.ports import EventPublisher, PayoutReader, PayoutStatus, ProviderEvent, RefundStore
from refundflow.reconciliation.apply import Run, apply_finding
from refundflow.reconciliation.engine import Finding, MatchClass
from refundflow.settings import EnvModel

# The settlement drop's prefix (reconciliation.pipeline.SETTLEMENT_PREFIX, not imported: the payment function does
# not load the pipeline's parsers).
SETTLEMENT_PREFIX = "settlement/"


def payout_report_key(platform: str, payout_id: str) -> str:
    """``settlement/stripe/payouts/po_123.csv``: under the platform's settlement source, so the converter reads it
    with that platform's parser."""
    return f"{SETTLEMENT_PREFIX}{platform}/payouts/{payout_id}.csv"


class PayoutSettings(EnvModel):
    """A payment function with ``settlement_news``: the settlement drop it writes payout reports to."""

    settlement_bucket_name: str = Field(min_length=1, alias="SETTLEMENT_BUCKET_NAME")


def apply_payout_news(
    event: ProviderEvent,
    *,
    platform: str,
    reader: PayoutReader | None,
    files: S3Files,
    bucket: str,
    repository: RefundStore,
    recorder: RefundRecorder,
    publisher: EventPublisher,
) -> dict[str, Any] | None:
    """Record the payout the news names (see the module docstring); None when the news names none.

    A payout the platform does not know (news of another account, or forged with a leaked secret) is news the
    platform refutes: nothing is written and the delivery is answered as taken (``"status": "unknown"``), as for a
    refund the platform does not show; a 5xx would only have the platform deliver it again for days.

    Raises:
        TransientError: the platform or S3 could not answer (the platform delivers again; nothing was written).
    """
    if event.payout_id is None:
        return None
    if reader is None:
        logger.warning("payout news from a platform whose payouts cannot be read", extra={"platform": platform})
        return {"payout_id": event.payout_id, "status": "unreadable"}
    try:
        payout = reader.get_payout(event.payout_id)
    except NotFound:
        logger.warning("payout news about a payout the platform does not know", extra={"payout_id": event.payout_id})
        return {"payout_id": event.payout_id, "status": "unknown"}
    key = payout_report_key(platform, payout.payout_id)
    if payout.status is PayoutStatus.PENDING:
        return {"payout_id": payout.payout_id, "status": payout.status.value}
    if payout.status is PayoutStatus.FAILED:
        finding = Finding(
            key=f"payout#{payout.payout_id}",
            match_class=MatchClass.PAYOUT_NOT_FOUND,
            reference=payout.payout_id,
            amount=payout.amount.minor_units,
            currency=payout.amount.currency,
            detail=f"{platform} payout {payout.failure or 'failed'}: its money did not reach the bank",
        )
        run = Run(file=key, correlation_id=event.event_id, source=platform)
        applied = apply_finding(finding, run, repository=repository, recorder=recorder, publisher=publisher)
        return {"payout_id": payout.payout_id, "status": payout.status.value, "outcome": applied.outcome.value}
    handle, path = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            lines = reader.write_payout_report(payout, out)
        written = files.put_file_if_absent(path, bucket, key)
    finally:
        os.unlink(path)
    logger.info(
        "payout settlement report" + (" written" if written else " already there"),
        extra={"payout_id": payout.payout_id, "settlement_file": key, "lines": lines},
    )
    return {"payout_id": payout.payout_id, "status": payout.status.value, "file": key, "written": written}
