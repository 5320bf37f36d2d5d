"""Telling people: the customer once per refund, through one channel; ops on anything that needs them.

The customer's message (:func:`customer_message`) is sent when the money is on its way (``RefundIssued``, with the
amount, the window in which the money usually arrives (refundflow.domain.arrival) and, if the provider already gave
it, the card network's reference (ARN) with what it is for), or, if the refund fails instead, that it failed and that
the team will be in touch. A refund that fails after its customer was told gets that correction too; an ARN that
comes days later (``RefundAcquirerReference``) makes one follow-up message with it. Completion (the credit note) is no
message. The channel, chosen per refund (:func:`customer_channel`):

1. ``ticket``: the refund came from a help desk with a public reply (catalog ``ticket.writes``): the desk's own
   function replies in the ticket (refundflow.domain.tickets); notify sends nothing;
2. ``webhook``: the merchant configured an outbound endpoint (for every source system, or for the refund's): one
   Standard Webhooks POST, signed, with the same ``webhook-id`` on every attempt (the queue retries, then its DLQ);
3. ``email``: otherwise one SES e-mail.

Events carry no contact details: the address is read from the refund. Each message is sent once per refund and
kind: a first-seen marker (``customer-message``, keyed ``<refund_id>:<kind>``) is written after the send, so a
redelivery or a second event of the same kind sends nothing, and a failed send is retried by the queue. Ops
e-mails are deduplicated per event."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from refundflow import catalog
from refundflow.domain.arrival import ExpectedArrival, refund_window
from refundflow.errors import InvalidRequest
from refundflow.events import ReconciliationEvent, RefundEvent
from refundflow.models import LegStatus, Refund, RefundOrigin, SplitLeg, TenderKind
from refundflow.money import Money
from refundflow.ports import Mailer, MerchantWebhook, RefundStore


class Channel(StrEnum):
    """The notification queue a message came from."""

    CUSTOMER = "customer"
    OPS = "ops"


class CustomerChannel(StrEnum):
    """How the customer hears about their refund."""

    TICKET = "ticket"
    WEBHOOK = "webhook"
    EMAIL = "email"


MessageKind = Literal["issued", "failed", "acquirer_reference"]
# The events the customer hears of, and the one message each makes.
CUSTOMER_MESSAGES: dict[str, MessageKind] = {
    "RefundIssued": "issued",
    "RefundFailed": "failed",
    "RefundAcquirerReference": "acquirer_reference",
}
CUSTOMER_TEMPLATES: dict[MessageKind, str] = {
    "issued": "refund-issued",
    "failed": "refund-failed",
    "acquirer_reference": "refund-acquirer-reference",
}
# What the ARN is, for a customer (Stripe, PayPal and Adyen help pages say the same in their words).
ARN_MEANING = "the number your bank can use to find the refund"
REVERSAL_WORDS = (
    "The payment was cancelled before it settled, so the charge simply disappears from your statement; there is no "
    "refund reference for it."
)
CUSTOMER_MESSAGE_MARKER = "customer-message"
OPS_TEMPLATE = "ops-alert"


def customer_channel(
    refund: Refund, *, reply_desks: frozenset[str], webhook: MerchantWebhook | None
) -> CustomerChannel:
    """The cheapest channel that reaches the refund's customer: its ticket, the merchant's endpoint, or e-mail."""
    if refund.source.ticket_id and refund.source_platform in reply_desks:
        return CustomerChannel.TICKET
    if webhook is not None and webhook.takes(refund.source.system):
        return CustomerChannel.WEBHOOK
    return CustomerChannel.EMAIL


def message_amount(event: RefundEvent, refund: Refund) -> Money | None:
    leg = reference_leg(event, refund)
    if leg is not None:
        return leg.amount
    return event.amount or refund.amount or refund.requested_amount


def reference_leg(event: RefundEvent, refund: Refund) -> SplitLeg | None:
    """The leg a split-tender parent's ``RefundAcquirerReference`` is about (``details.leg``: the parent speaks for
    its legs, each leg's ARN its own follow-up), or None for a refund's own ARN."""
    index = event.details.get("leg")
    if event.detail_type != "RefundAcquirerReference" or not isinstance(index, int) or isinstance(index, bool):
        return None
    return next((leg for leg in refund.legs if leg.index == index), None)


def message_key(event: RefundEvent, kind: MessageKind) -> str:
    """What a customer message is sent once for: ``<refund id>:<kind>``, and per leg for a split-tender parent's
    legs' ARNs (``<refund id>:acquirer_reference:leg-<index>``: each leg's reference comes on its own day)."""
    index = event.details.get("leg") if event.detail_type == "RefundAcquirerReference" else None
    return f"{event.refund_id}:{kind}" + (f":leg-{index}" if isinstance(index, int) else "")


def _reference_of(event: RefundEvent, refund: Refund) -> str | None:
    leg = reference_leg(event, refund)
    if leg is not None:
        return leg.acquirer_reference or str(event.details.get("acquirer_reference") or "") or None
    return refund.acquirer_reference


def refunded_legs(refund: Refund) -> list[SplitLeg]:
    """The legs of a split-tender refund that moved money (in leg order): what the customer is told of. A failed
    leg a remedy replaced is not listed; its replacement is."""
    return sorted((leg for leg in refund.legs if leg.status is LegStatus.SUCCEEDED), key=lambda leg: leg.index)


def leg_in_words(leg: SplitLeg, *, with_reference: bool = True) -> str:
    """Where one leg's money went, in plain words: ``60.00 EUR back to your card``, ``40.00 EUR as store credit you
    can use on your next order``, with its ARN where the leg has one (``with_reference``). The tender's kind and its
    provider's name only: never card data."""
    if leg.kind is TenderKind.STORE_CREDIT:
        return f"{leg.amount} as store credit you can use on your next order"
    where = {
        TenderKind.CARD: "back to your card",
        TenderKind.WALLET: f"back to your {_provider_title(leg)} account",
        TenderKind.BANK: "back to your bank account",
        TenderKind.BUY_NOW_PAY_LATER: f"back to your {_provider_title(leg)} purchase",
        TenderKind.GIFT_CARD: "back onto your gift card",
    }.get(leg.kind, "back to the payment method you used")
    if leg.acquirer_reference and with_reference:
        # The network's reference came with the money: said with the leg it belongs to.
        return f"{leg.amount} {where} (reference {leg.acquirer_reference}, {ARN_MEANING})"
    return f"{leg.amount} {where}"


def legs_in_words(refund: Refund) -> str:
    """Every refunded leg of a split-tender refund, in plain words, joined (empty for a refund of one payment)."""
    return "; ".join(leg_in_words(leg) for leg in refunded_legs(refund))


def _provider_title(leg: SplitLeg) -> str:
    if leg.payment is None:  # store credit: refundflow's own ledger
        return "store credit"
    try:
        return catalog.platform(leg.payment.provider.value).title
    except InvalidRequest:  # not deployed here: its name will do
        return leg.payment.provider.value


def _legs_total(refund: Refund) -> Money | None:
    """What the refunded legs add up to: the amount a split refund's message names (so its parts always add up)."""
    legs = refunded_legs(refund)
    if not legs:
        return None
    total = Money.zero(legs[0].amount.currency)
    for leg in legs:
        total = total + leg.amount
    return total


def arrival_of(event: RefundEvent, refund: Refund) -> ExpectedArrival | None:
    """The window quoted in the refund's first message, counted from when its money moved (the event's moment);
    None for a reversal (the charge disappears instead) and for other messages."""
    if event.detail_type != "RefundIssued" or is_reversal(event):
        return None
    return refund_window(refund, event.occurred_at)


def is_reversal(event: RefundEvent) -> bool:
    """The provider voided the payment before settlement instead of refunding it."""
    return event.details.get("method") == "void"


def customer_message(
    kind: MessageKind,
    refund: Refund,
    amount: Money | None,
    *,
    arrival: ExpectedArrival | None = None,
    reversal: bool = False,
    leg: SplitLeg | None = None,
) -> str:
    """The customer's message in words (the ticket's public reply; the SES templates say the same). A split-tender
    refund's ``issued`` message lists every leg and its total."""
    reference = refund.order.order_id if refund.order else refund.source.reference
    how_much = str(amount) if amount else "the full amount"
    greeting = f"Hello {refund.customer.name or 'there'},"
    total = _legs_total(refund)
    if kind == "issued":
        if total is not None:
            body = f"we have refunded {total} for {reference}: {legs_in_words(refund)}."
        else:
            body = f"we have refunded {how_much} for {reference} to your original payment method."
        if reversal:
            body += f" {REVERSAL_WORDS}"
        else:
            body += f" {arrival.sentence() if arrival else 'It usually shows up within 5-10 business days.'}"
            if refund.acquirer_reference:
                body += f" If it has not, the refund's reference is {refund.acquirer_reference}: {ARN_MEANING}."
            else:
                body += " If it has not by then, we can give you the reference your bank can find it with."
    elif kind == "acquirer_reference":
        what = leg_in_words(leg, with_reference=False) if leg is not None else how_much
        arn = leg.acquirer_reference if leg is not None else refund.acquirer_reference
        body = (
            f"your refund of {what} for {reference} now has its reference at the card network: "
            f"{arn}. It is {ARN_MEANING} (the acquirer reference number, ARN): if the money "
            "has not shown up yet, give it to your bank."
        )
    else:
        body = (
            f"we could not refund {how_much} for {reference} to your original payment method. Our team has been "
            "told and will contact you."
        )
    return f"{greeting} {body} Refund id: {refund.refund_id}."


def event_message(kind: MessageKind, event: RefundEvent, refund: Refund) -> str:
    """The customer's message for ``event`` (its window counted from the event's moment)."""
    return customer_message(
        kind,
        refund,
        message_amount(event, refund),
        arrival=arrival_of(event, refund),
        reversal=is_reversal(event),
        leg=reference_leg(event, refund),
    )


def merchant_webhook_body(
    kind: MessageKind, event: RefundEvent, refund: Refund, amount: Money | None
) -> dict[str, Any]:
    """The Standard Webhooks payload (``type``, ``timestamp``, ``data``): the same bytes on every attempt."""
    arrival = arrival_of(event, refund)
    return {
        "type": f"refund.{kind}",
        "timestamp": event.occurred_at.isoformat(),
        "data": {
            "refund_id": refund.refund_id,
            "status": event.status.value,
            "amount": None if amount is None else {"minor_units": amount.minor_units, "currency": amount.currency},
            "order_id": refund.order.order_id if refund.order else None,
            "source": {"system": refund.source.system, "reference": refund.source.reference},
            "customer": refund.customer.model_dump(mode="json", exclude_none=True),
            "provider_refund_id": refund.provider_refund_id,
            "acquirer_reference": _reference_of(event, refund),
            "expected_arrival": None if arrival is None else arrival.model_dump(mode="json"),
            "message": event_message(kind, event, refund),
            **_webhook_legs(refund),
            **_webhook_reference_leg(event, refund),
        },
    }


def _webhook_reference_leg(event: RefundEvent, refund: Refund) -> dict[str, Any]:
    """``data.leg``: which leg of a split-tender refund a ``refund.acquirer_reference`` is about (absent otherwise)."""
    leg = reference_leg(event, refund)
    if leg is None:
        return {}
    return {
        "leg": {
            "index": leg.index,
            "kind": leg.kind.value,
            "amount": {"minor_units": leg.amount.minor_units, "currency": leg.amount.currency},
            "provider": leg.payment.provider.value if leg.payment is not None else None,
            "provider_refund_id": leg.provider_refund_id,
            "words": leg_in_words(leg),
        }
    }


def _webhook_legs(refund: Refund) -> dict[str, Any]:
    """A split-tender refund's ``data.legs`` (absent for a refund of one payment): each refunded leg's amount in
    minor units, kind, provider (None: store credit), provider refund id and words. Never card data."""
    legs = refunded_legs(refund)
    if not legs:
        return {}
    return {
        "legs": [
            {
                "index": leg.index,
                "kind": leg.kind.value,
                "amount": {"minor_units": leg.amount.minor_units, "currency": leg.amount.currency},
                "provider": leg.payment.provider.value if leg.payment is not None else None,
                "provider_refund_id": leg.provider_refund_id,
                "words": leg_in_words(leg),
            }
            for leg in legs
        ]
    }


def webhook_message_id(refund_id: str, kind: MessageKind, leg: int | None = None) -> str:
    """The ``webhook-id`` of a refund's message: one per refund and kind (and leg, for a split-tender parent's legs'
    ARNs), whatever event or attempt sends it."""
    return f"msg_{refund_id}_{kind}" + (f"_leg-{leg}" if leg is not None else "")


def notify(
    event: RefundEvent,
    channel: Channel,
    *,
    repository: RefundStore,
    mailer: Mailer,
    ops_email: str | None,
    webhook: MerchantWebhook | None = None,
    reply_desks: frozenset[str] = frozenset(),
) -> str | None:
    """Send what ``channel`` sends for ``event``; returns the message id, or None when nothing was due here (not
    a customer message, sent before, or the ticket's public reply tells the customer).

    Raises:
        TransientError: the mail service or the merchant's endpoint did not take the message (the queue retries it).
        NotFound: the refund does not exist.
    """
    if channel is Channel.CUSTOMER:
        return _tell_customer(event, repository=repository, mailer=mailer, webhook=webhook, reply_desks=reply_desks)
    marker = f"notify-{channel.value}"
    if not ops_email or repository.delivery_refund_id(marker, event.event_id) is not None:
        return None
    details = event.details if event.parent_refund_id is None else {**event.details, "leg_of": event.parent_refund_id}
    data = {
        "event": event.detail_type,
        "refund_id": event.refund_id,
        "amount": str(event.amount) if event.amount else "the full amount",
        "status": event.status.value,
        "details": json.dumps(details, sort_keys=True, default=str)[:4000],
    }
    message_id = mailer.send(
        to=ops_email, template=OPS_TEMPLATE, data=data, idempotency_key=f"{event.event_id}:{channel.value}"
    )
    repository.mark_delivery(marker, event.event_id, event.refund_id)
    return message_id


def _tell_customer(
    event: RefundEvent,
    *,
    repository: RefundStore,
    mailer: Mailer,
    webhook: MerchantWebhook | None,
    reply_desks: frozenset[str],
) -> str | None:
    kind = CUSTOMER_MESSAGES.get(event.detail_type)
    if kind is None or event.parent_refund_id is not None:
        return None  # a split-tender refund's leg: the parent's message tells the customer of every leg
    key = message_key(event, kind)
    if repository.delivery_refund_id(CUSTOMER_MESSAGE_MARKER, key) is not None:
        return None
    refund = repository.get(event.refund_id)
    if refund.origin is RefundOrigin.EXTERNAL:
        return None  # refunded outside refundflow: whoever made it told the customer, and no address is known
    if refund.parent_refund_id is not None:
        return None  # a leg (an event published before events named the parent)
    amount = message_amount(event, refund)
    how = customer_channel(refund, reply_desks=reply_desks, webhook=webhook)
    if how is CustomerChannel.TICKET:
        return None
    if how is CustomerChannel.WEBHOOK and webhook is not None:
        leg = reference_leg(event, refund)
        message_id = webhook_message_id(refund.refund_id, kind, leg.index if leg is not None else None)
        webhook.send(message_id=message_id, body=merchant_webhook_body(kind, event, refund, amount))
    else:
        data = {
            "name": refund.customer.name or "there",
            "amount": str(amount) if amount else "the full amount",
            "reference": refund.order.order_id if refund.order else refund.source.reference,
            "refund_id": refund.refund_id,
            **_email_words(kind, event, refund),
        }
        total = _legs_total(refund)
        if kind == "issued":
            # SES refuses to render a template whose variables are not all in the data (a Rendering Failure), so
            # ``legs`` is always sent: empty (false for the template's {{#if legs}}) for a refund of one payment.
            data["legs"] = legs_in_words(refund)
            if total is not None:
                data["amount"] = str(total)
        message_id = mailer.send(
            to=refund.customer.email, template=CUSTOMER_TEMPLATES[kind], data=data, idempotency_key=key
        )
    repository.mark_delivery(CUSTOMER_MESSAGE_MARKER, key, refund.refund_id)
    return message_id


def _email_words(kind: MessageKind, event: RefundEvent, refund: Refund) -> dict[str, str]:
    """The SES templates' sentences that depend on the refund: when the money arrives, and its ARN."""
    if kind == "acquirer_reference":
        return {"acquirer_reference": _reference_of(event, refund) or "", "meaning": ARN_MEANING}
    if kind != "issued":
        return {}
    arrival = arrival_of(event, refund)
    if is_reversal(event):
        when = REVERSAL_WORDS
    else:
        when = arrival.sentence() if arrival else "It usually shows up within 5-10 business days."
    trace = (
        f"If it has not, the refund's reference is {refund.acquirer_reference}: {ARN_MEANING}."
        if refund.acquirer_reference and not is_reversal(event)
        else ""
    )
    return {"arrival": when, "trace": trace}


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
