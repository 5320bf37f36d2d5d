"""Inbound platform news (webhooks), in two halves:

- intake (``forward_delivery``): a delivery already verified by the platform's ``InboundPlatform`` is split
  into its events; each new one is handed to the platform's own function through a ``NewsForwarder`` and
  marked seen only after that function applied it. Intake holds no API credentials and calls no platform.
- the platform's function (``apply_news``): reads the truth from the platform with its own credentials,
  applies it (``payments.apply_provider_event``), records the refunds made outside refundflow
  (``external.record_unclaimed``) and resumes a workflow waiting on the outcome.
"""

from __future__ import annotations

from typing import Any

from refundflow.domain.external import record_unclaimed
from refundflow.domain.payments import apply_provider_event
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.waiting import WaitFor, resume_waiting
from refundflow.errors import RefundflowError, TransientError
from refundflow.models import Refund
from refundflow.observability import logger
from refundflow.ports import (
    InboundDelivery,
    NewsForwarder,
    ProviderEvent,
    ProviderRefund,
    RefundProvider,
    ReturnNews,
    TaskCallbacks,
    TicketNews,
)


def forward_delivery(
    delivery: InboundDelivery, *, platform: str, recorder: RefundRecorder, forwarder: NewsForwarder
) -> bool:
    """Forward each event of a verified delivery not seen before; returns True when every event was a
    duplicate (or the delivery carried none).

    An event is marked seen only after its platform function applied it, so a failure here (answered
    5xx) leaves it unseen and the platform's retry forwards it again; applying is idempotent, so a
    concurrent duplicate is harmless.

    Raises:
        TransientError: an event could not be forwarded (nothing more is marked seen).
        RefundflowError: a help desk's ticket was refused by its function (not a valid refund request, card
            data, a source that may not ask): not marked seen, answered 4xx.
        GuardUnavailable: the store could not be reached.
    """
    repository = recorder.repository
    duplicate = True
    news: list[ProviderEvent | TicketNews | ReturnNews] = [*delivery.events, *delivery.tickets, *delivery.returns]
    for event in news:
        if repository.delivery_refund_id(platform, event.event_id) is not None:
            continue
        duplicate = False
        forwarder.forward(platform, event)
        repository.mark_delivery(platform, event.event_id, "-")
        logger.info("provider news forwarded", extra={"platform": platform, "provider_event_id": event.event_id})
    return duplicate


def forward_refusal(
    delivery: InboundDelivery, refused: RefundflowError, *, platform: str, forwarder: NewsForwarder
) -> None:
    """Intake refused a help desk's verified delivery (card data in it): each ticket it names is still told why, by
    the desk's own function, from news that carries the refusal and none of the body. Nothing is marked seen.

    Raises:
        TransientError: the function could not be reached (the delivery is answered 5xx and comes again).
    """
    for news in delivery.tickets:
        sanitized = news.model_copy(update={"payload": {}, "refused": refusal_document(refused)})
        try:
            forwarder.forward(platform, sanitized)
        except TransientError:
            raise
        except RefundflowError:
            pass  # the function answers with the refusal it was told: expected


def refusal_document(refused: RefundflowError) -> dict[str, Any]:
    """A client error as it travels between functions: type, code, message, the fields it names."""
    return {
        "type": type(refused).__name__,
        "code": refused.code,
        "message": refused.message,
        "errors": list(getattr(refused, "errors", None) or []),
    }


def apply_news(
    event: ProviderEvent, *, recorder: RefundRecorder, provider: RefundProvider, callbacks: TaskCallbacks
) -> list[Refund]:
    """Apply one forwarded event in the platform's own function: read the truth, apply it, resume any
    workflow waiting on a refund it settled. Returns the refunds it touched.

    Raises:
        TransientError: the platform, the store or the workflow could not be reached (the intake answers
            5xx and the platform delivers again).
    """
    unclaimed: list[ProviderRefund] = []
    touched = apply_provider_event(event, recorder=recorder, provider=provider, unclaimed=unclaimed)
    touched += record_unclaimed(event, unclaimed, recorder=recorder, provider=provider)
    for refund in touched:
        resume_waiting(refund, WaitFor.REFUND_OUTCOME, repository=recorder.repository, callbacks=callbacks)
    return touched
