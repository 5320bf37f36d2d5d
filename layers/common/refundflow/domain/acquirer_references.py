"""The acquirer reference number (ARN) that comes days after the money, where no event announces it.

The card network gives a card refund its ARN some days after the refund (Stripe: "1-3 business days"; PayPal:
"after a few days"); the customer's bank can find the refund with it. Stripe tells with ``refund.updated``;
PayPal, Mollie, Shopify Payments and Braintree only show it on the refund when it is read again, and Adyen only in
its REFUND webhook (catalog ``payment.acquirer_reference``). So a schedule (``WatchAcquirerReferencesFunction``,
``AcquirerReferenceWatchRate``) lists the refunds COMPLETED within the cut-off that have neither an ARN nor a
reason why none will come (:func:`awaiting`, one index Query and one BatchGetItem: nothing is written on the
straight path for it), and has each one's own payment function read it (operation ``read_acquirer_reference``:
:func:`read_acquirer_reference`), which records it once (``RefundAcquirerReference``, through
``apply_provider_outcome`` as the webhook path does), or, once the cut-off has passed or for a reversal, records
once why not (``RefundAcquirerReferenceUnavailable``) so the refund is not read again. A platform that exposes none,
or only in its webhook, is never read: the view says why (:func:`reason_without_reference`), nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import Field

from refundflow import catalog, settings
from refundflow.domain.arrival import add_days, money_moved_at
from refundflow.domain.payments import _money_out, apply_provider_outcome
from refundflow.domain.recorder import RefundRecorder, step_result
from refundflow.models import Refund, StepResult
from refundflow.observability import logger
from refundflow.ports import AwaitedReference, RefundProvider, RefundStore

Clock = Callable[[], datetime]
READ_ACQUIRER_REFERENCE = "read_acquirer_reference"
ACQUIRER_REFERENCE_UNAVAILABLE = "RefundAcquirerReferenceUnavailable"
# Reasons recorded when no ARN will come.
REVERSAL = "reversed before settlement: the charge disappears from the customer's statement, no ARN is made"
NOT_EXPOSED = "{title} exposes no acquirer reference for a refund"
WEBHOOK_ONLY = "{title} gives the acquirer reference only in its refund webhook, and it carried none"
SPLIT_PARENT = "a split-tender refund has none of its own: each leg's refund has its own acquirer reference"
CUT_OFF = "{title} showed no acquirer reference within {days} business days of the refund"


class AcquirerReferenceSettings(settings.EnvModel):
    """How long a refund's ARN is waited for (business days after the money moved), then recorded as not available.
    A suggestion, not a documented value: Stripe says 1-3 business days, PayPal "a few days"."""

    cut_off_business_days: int = Field(default=10, ge=1, le=60, alias="ACQUIRER_REFERENCE_CUTOFF_BUSINESS_DAYS")


def _cut_off_passed(moved_at: datetime, now: datetime, days: int) -> bool:
    return now.date() > add_days(moved_at.date(), days, "business")


def read_acquirer_reference(
    refund_id: str, *, recorder: RefundRecorder, provider: RefundProvider, now: Clock | None = None
) -> StepResult:
    """Read the completed refund at its platform and record its ARN if the platform has it now; once the cut-off has
    passed (or when the platform will never give one), record why there is none. Does nothing to a refund whose ARN,
    or reason, is recorded already, or whose money has not moved.

    Raises:
        NotFound: no such refund. TransientError: the platform could not answer (the next run reads it again).
    """
    refund = recorder.repository.get(refund_id)
    if refund.acquirer_reference or refund.acquirer_reference_unavailable or not _money_out(refund):
        return step_result(refund)
    if refund.legs:
        return step_result(_unavailable(refund, SPLIT_PARENT, recorder=recorder))
    title = catalog.payment_platform(provider.name).title
    how = provider.capabilities.acquirer_reference
    if how == "none":
        return step_result(_unavailable(refund, NOT_EXPOSED.format(title=title), recorder=recorder))
    if how == "webhook" or refund.provider_refund_id is None:
        return step_result(_unavailable(refund, WEBHOOK_ONLY.format(title=title), recorder=recorder))
    read = provider.get_refund_with_reference(refund.provider_refund_id, refund.payment)
    if read.method == "void":
        return step_result(_unavailable(refund, REVERSAL, recorder=recorder))
    after = apply_provider_outcome(refund, read, recorder=recorder)
    if after.acquirer_reference:
        return step_result(after)
    days = settings.load(AcquirerReferenceSettings).cut_off_business_days
    moved_at = money_moved_at(recorder.repository.timeline(refund_id)) or refund.updated_at
    if _cut_off_passed(moved_at, (now or (lambda: datetime.now(UTC)))(), days):
        return step_result(_unavailable(after, CUT_OFF.format(title=title, days=days), recorder=recorder))
    return step_result(after)


def _unavailable(refund: Refund, reason: str, *, recorder: RefundRecorder) -> Refund:
    """Record once why the refund will have no ARN (the timeline says so; the re-read stops reading it)."""
    change = {"acquirer_reference_unavailable": reason}
    return recorder.note(
        refund, ACQUIRER_REFERENCE_UNAVAILABLE, actor="schedule:acquirer-references", details=change, changes=change
    )


def awaiting(store: RefundStore, *, now: Clock | None = None) -> list[AwaitedReference]:
    """The refunds to read again now: COMPLETED within the cut-off (plus three days, so a refund that crossed it since
    the last run still gets its reason recorded), with no ARN and no reason yet, at a platform whose refund can be
    read for it (catalog ``acquirer_reference`` read). The others are never read, and nothing is written for them:
    the refund view says why they have none (:func:`reason_without_reference`)."""
    days = settings.load(AcquirerReferenceSettings).cut_off_business_days
    # Business days to calendar days (weekends), and a run or two missed.
    since = (now or (lambda: datetime.now(UTC)))() - timedelta(days=days * 7 // 5 + 3)
    return [
        awaited
        for awaited in store.awaiting_acquirer_reference(since)
        if catalog.payment_capabilities(awaited.provider).acquirer_reference == "read"
    ]


def reason_without_reference(refund: Refund) -> str | None:
    """Why the refund has no ARN and will get none: the reason recorded (cut-off, reversal), or, for a platform that
    exposes none (or only in a webhook that carried none), that; None while one may still come."""
    if refund.acquirer_reference:
        return None
    if refund.acquirer_reference_unavailable:
        return refund.acquirer_reference_unavailable
    if refund.legs:
        return SPLIT_PARENT
    provider = refund.payment.provider.value
    how = catalog.payment_capabilities(provider).acquirer_reference
    title = catalog.payment_platform(provider).title
    if how == "none":
        return NOT_EXPOSED.format(title=title)
    if how == "webhook" and _money_out(refund):
        return WEBHOOK_ONLY.format(title=title)
    return None


def watch(store: RefundStore, read: Callable[[AwaitedReference], None], *, now: Clock | None = None) -> dict[str, int]:
    """One run of the schedule: each awaited refund read by its own payment function (``read``); a refund whose read
    fails is left for the next run (counted, logged), the others go on."""
    counts = {"awaiting": 0, "read": 0, "failed": 0}
    for awaited in awaiting(store, now=now):
        counts["awaiting"] += 1
        try:
            read(awaited)
            counts["read"] += 1
        except Exception:  # one platform's outage (or a refund gone) must not stop the others' refunds
            counts["failed"] += 1
            logger.exception(
                "acquirer reference not read this run",
                extra={"refund_id": awaited.refund_id, "platform": awaited.provider},
            )
    return counts
