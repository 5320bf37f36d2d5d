"""Verified provider webhooks: apply each delivery once, then resume any workflow waiting on it."""

from __future__ import annotations

from refundflow.domain.payments import apply_provider_event
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.waiting import WaitFor, resume_waiting
from refundflow.ports import ProviderEvent, RefundProvider, TaskCallbacks


def accept_provider_event(
    event: ProviderEvent, *, recorder: RefundRecorder, provider: RefundProvider, callbacks: TaskCallbacks
) -> bool:
    """Apply a verified provider event; returns True if the delivery was seen before (and ignored).

    A signature proves who could have sent a delivery, not that what it says is true: before any
    outcome that changes money or books is applied, the refund is read from ``provider`` and what
    the provider says is applied (see ``apply_provider_event``).

    The delivery is marked as seen only after it was applied, so a failure here (answered 5xx) lets
    the provider's retry apply it; applying is idempotent, so a concurrent duplicate is harmless.

    Raises:
        GuardUnavailable, TransientError: the store, the provider or the workflow could not be reached
            (answer 5xx: nothing was applied, the provider delivers again).
    """
    repository = recorder.repository
    platform = event.provider.value
    if repository.delivery_refund_id(platform, event.event_id) is not None:
        return True
    touched = apply_provider_event(event, recorder=recorder, provider=provider)
    for refund in touched:
        resume_waiting(refund, WaitFor.REFUND_OUTCOME, repository=repository, callbacks=callbacks)
    repository.mark_delivery(platform, event.event_id, touched[0].refund_id if touched else "-")
    return False
