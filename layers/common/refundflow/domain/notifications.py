"""Telling people: the customer on issued / failed / completed, ops on anything that needs them.

Events carry no contact details: the address is read from the refund. Each (event, channel) is sent
once: a first-seen marker is written after the send, so an SQS redelivery after a successful send
does not e-mail twice, and a failed send is retried by the queue (then parked in its DLQ)."""

from __future__ import annotations

import json
from enum import StrEnum

from refundflow.events import ReconciliationEvent, RefundEvent
from refundflow.models import RefundOrigin
from refundflow.ports import Mailer, RefundStore


class Channel(StrEnum):
    CUSTOMER = "customer"
    OPS = "ops"


CUSTOMER_TEMPLATES = {
    "RefundIssued": "refund-issued",
    "RefundFailed": "refund-failed",
    "RefundCompleted": "refund-completed",
}
OPS_TEMPLATE = "ops-alert"


def notify(
    event: RefundEvent, channel: Channel, *, repository: RefundStore, mailer: Mailer, ops_email: str | None
) -> str | None:
    """Send what ``channel`` sends for ``event``; returns the message id, or None when nothing was due.

    Raises:
        TransientError: the mail service did not take the message (the queue retries it).
        NotFound: the refund does not exist.
    """
    marker = f"notify-{channel.value}"
    if repository.delivery_refund_id(marker, event.event_id) is not None:
        return None
    amount = str(event.amount) if event.amount else "the full amount"
    if channel is Channel.CUSTOMER:
        template = CUSTOMER_TEMPLATES.get(event.detail_type)
        if template is None:
            return None
        refund = repository.get(event.refund_id)
        if refund.origin is RefundOrigin.EXTERNAL:
            return None  # refunded outside refundflow: whoever made it told the customer, and no address is known
        reference = refund.order.order_id if refund.order else refund.source.reference
        recipient = refund.customer.email
        data = {
            "name": refund.customer.name or "there",
            "amount": amount,
            "reference": reference,
            "refund_id": refund.refund_id,
        }
    else:
        if not ops_email:
            return None
        template, recipient = OPS_TEMPLATE, ops_email
        data = {
            "event": event.detail_type,
            "refund_id": event.refund_id,
            "amount": amount,
            "status": event.status.value,
            "details": json.dumps(event.details, sort_keys=True, default=str)[:4000],
        }
    message_id = mailer.send(
        to=recipient, template=template, data=data, idempotency_key=f"{event.event_id}:{channel.value}"
    )
    repository.mark_delivery(marker, event.event_id, event.refund_id)
    return message_id


def notify_ops_of_mismatch(
    event: ReconciliationEvent, *, repository: RefundStore, mailer: Mailer, ops_email: str | None
) -> str | None:
    """Tell ops about a reconciliation mismatch that belongs to no refund of ours (once per event).

    Raises:
        TransientError: the mail service did not take the message (the queue retries it).
    """
    marker = f"notify-{Channel.OPS.value}"
    if not ops_email or repository.delivery_refund_id(marker, event.event_id) is not None:
        return None
    data = {
        "event": event.detail_type,
        "refund_id": "-",
        "amount": str(event.amount) if event.amount else "-",
        "status": event.match_class,
        "details": json.dumps(
            {"reference": event.reference, "file": event.file, "line_no": event.line_no, **event.details},
            sort_keys=True,
            default=str,
        )[:4000],
    }
    message_id = mailer.send(
        to=ops_email, template=OPS_TEMPLATE, data=data, idempotency_key=f"{event.event_id}:{Channel.OPS.value}"
    )
    repository.mark_delivery(marker, event.event_id, "-")
    return message_id
