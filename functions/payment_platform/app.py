"""Every payment platform's own function, ``<stack>-refund-<name>`` (one per payment platform of the catalog, its
``PLATFORM`` in the environment, its own SDK, secret and IAM): the workflows' LookUpPayment, RefundWithProvider
and PollRefundOutcome states, the acquirer reference schedule's re-read (``read_acquirer_reference``), a
split-tender refund's ``read_payment`` of one of its tenders, and the news the intake function forwards
from the platform's webhooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import catalog, settings, wiring
from refundflow.adapters.idempotency import run_once
from refundflow.adapters.news import APPLY_NEWS
from refundflow.adapters.s3 import S3Files
from refundflow.domain import acquirer_references, inbound, payments, split_tenders
from refundflow.errors import RefundflowError
from refundflow.models import ProviderStepInput, ReadPaymentInput, StepResult
from refundflow.observability import logger, metrics, tracer
from refundflow.ports import ProviderEvent
from refundflow.reconciliation import payouts
from refundflow.status import RefundStatus

PLATFORM = settings.own_platform()
OPERATIONS: dict[str, Callable[..., StepResult]] = {
    "look_up_payment": payments.look_up_payment,
    "refund": payments.issue_refund,
    "poll_refund": payments.poll_refund,
    # The schedule's re-read of a completed refund's acquirer reference (WatchAcquirerReferencesFunction).
    acquirer_references.READ_ACQUIRER_REFERENCE: acquirer_references.read_acquirer_reference,
}

# Only the money-moving call is held to one run at a time (and replayed), and only on a platform that takes no
# idempotency key. Elsewhere the step is idempotent by its own writes: the conditional move to REFUND_SUBMITTED
# before anything is sent, then a send under the refund's one key, which the platform never turns into a second
# refund while it remembers the key (hours to days, a duplicate invocation comes seconds later; Stripe answers one
# still in flight with a 409, retried: docs.stripe.com/idempotency). The lock's record cost a put and an update per
# refund. A poll must see fresh news.
GUARDED = {"refund"}


def resume_split_parent(parent_refund_id: str, leg_status: RefundStatus) -> None:
    """A split-tender leg moved: its parent is moved by its legs and resumed now (refundflow.domain.split_tenders).
    Best effort: the leg's own step is done whatever happens here; the parent's poll finds the legs anyway."""
    try:
        split_tenders.after_leg(parent_refund_id, leg_status, recorder=wiring.recorder(), callbacks=wiring.callbacks())
    except RefundflowError as error:
        logger.warning("split-tender parent not resumed: its poll will", extra={"code": error.code})


def needs_lock(operation: str) -> bool:
    return operation in GUARDED and not catalog.payment_capabilities(PLATFORM).idempotency.supported


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(platform=PLATFORM)
    if event.get("operation") == APPLY_NEWS:
        # What refundflow.adapters.news sends: {"operation": "apply_news", "platform", "event": ProviderEvent}.
        wiring.ensure_own_platform(PLATFORM, str(event.get("platform")))
        news = ProviderEvent.model_validate(event.get("event"))
        logger.append_keys(provider_event_id=news.event_id, provider_event_type=news.event_type)
        if news.payout_id is not None:
            # A payout's news (Stripe payout.*): its settlement records go to reconciliation's settlement drop.
            recorder = wiring.recorder()
            payout = payouts.apply_payout_news(
                news,
                platform=PLATFORM,
                reader=wiring.payout_reader(PLATFORM),
                files=S3Files(),
                bucket=settings.load(payouts.PayoutSettings).settlement_bucket_name,
                repository=recorder.repository,
                recorder=recorder,
                publisher=recorder.publisher,
            )
            return {"platform": PLATFORM, "event_id": news.event_id, "refunds": [], "payout": payout}
        touched = inbound.apply_news(
            news, recorder=wiring.recorder(), provider=wiring.provider(PLATFORM), callbacks=wiring.callbacks()
        )
        for refund in touched:
            if refund.parent_refund_id is not None:
                resume_split_parent(refund.parent_refund_id, refund.status)
        return {"platform": PLATFORM, "event_id": news.event_id, "refunds": [refund.refund_id for refund in touched]}
    if event.get("operation") == "read_payment":
        # A split-tender refund's look-up (functions/split_tender) reads this platform's tender.
        read = ReadPaymentInput.model_validate(event)
        wiring.ensure_own_platform(PLATFORM, read.payment.provider.value)
        tender = payments.read_payment(read.payment, recorder=wiring.recorder(), provider=wiring.provider(PLATFORM))
        return tender.model_dump(mode="json")
    task = ProviderStepInput.model_validate(event)
    logger.append_keys(refund_id=task.refund_id, operation=task.operation)
    operation = OPERATIONS[task.operation]

    def run() -> dict[str, Any]:
        provider = wiring.provider(PLATFORM)
        result = operation(task.refund_id, recorder=wiring.recorder(), provider=provider)
        if result.parent_refund_id is not None:
            resume_split_parent(result.parent_refund_id, result.status)
        return result.model_dump(mode="json")

    if needs_lock(task.operation):
        return run_once(f"{task.refund_id}:{PLATFORM}:{task.operation}", run, context)
    return run()
