"""Stripe's payloads as we read them, and their reduction to the ports' models. Pure (pydantic and the
currency profile, no SDK): the connector and the webhook verification share it, and intake's cold start
never imports the ``stripe`` package.

Amounts go through Stripe's currency profile (its catalog entry): Stripe counts some currencies in another
unit than ISO 4217 (MGA whole ariary, ISK hundredths) and accepts three-decimal ones in steps of 10.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator

from refundflow.connectors.capabilities import payment_capabilities
from refundflow.currencies import CurrencyProfile
from refundflow.errors import RefundflowError
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.money import Money
from refundflow.observability import logger
from refundflow.ports import PaymentCapabilities, ProviderEvent, ProviderRefund, ProviderRefundStatus

PLATFORM = "stripe"
TITLE = "Stripe"
# The event types a merchant enables on refundflow's webhook endpoint (``enabled_events``: Stripe sends only those,
# docs.stripe.com/api/webhook_endpoints/create). Since API version 2024-10-28.acacia ``refund.created``,
# ``refund.updated`` and ``refund.failed`` are sent for every refund, a charge's included, with the refund object
# (docs.stripe.com/changelog/acacia/2024-10-28/refund-webhook-update): everything refundflow reads from refund news,
# a refund made in Stripe's Dashboard included. ``charge.refunded`` carries the charge without its refunds (since
# 2022-11-15) and would only repeat ``refund.created``'s news about the same refund, at the price of a second
# delivery per refund; an account whose events are older than 2024-10-28.acacia must enable it too (refundflow
# still reads it: the payment's open refunds). The payout events feed settlement (Reconciliation).
WEBHOOK_EVENTS = (
    "refund.created",
    "refund.updated",
    "refund.failed",
    "payout.paid",
    "payout.failed",
    "payout.reconciliation_completed",
)


def capabilities() -> PaymentCapabilities:
    """Stripe's capabilities, from its catalog entry."""
    return payment_capabilities(PLATFORM, TITLE)


def profile() -> CurrencyProfile:
    return capabilities().currencies


def to_stripe_amount(money: Money) -> tuple[int, str]:
    """``money`` as Stripe's ``(amount, currency)``: an integer in Stripe's unit, lowercase code.

    Raises:
        AmountNotRepresentable: not a Stripe currency, or not exactly representable in Stripe's unit and steps.
    """
    return profile().to_platform_units(money), money.currency.lower()


def from_stripe_amount(amount: int, currency: str) -> Money:
    """Stripe's ``(amount, currency)`` as our Money (exact inverse of :func:`to_stripe_amount`).

    Raises:
        AmountNotRepresentable: unknown or refused currency, or an amount ISO minor units cannot hold.
    """
    return profile().from_platform(amount, currency)


class _Payload(BaseModel):
    """Platform payloads: validated for what we read, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class StripeRefund(_Payload):
    id: str
    object: Literal["refund"]
    amount: StrictInt
    currency: str
    status: str | None = None
    charge: str | None = None
    payment_intent: str | None = None
    metadata: dict[str, str] | None = None
    failure_reason: str | None = None
    destination_details: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _names_a_payment(self) -> StripeRefund:
        if not (self.payment_intent or self.charge):
            raise ValueError("a refund without payment_intent and charge")
        return self

    @property
    def payment_id(self) -> str:
        return self.payment_intent or self.charge or ""


class StripeRefundList(_Payload):
    data: list[StripeRefund]


class StripeCharge(_Payload):
    id: str
    object: Literal["charge"]
    amount: StrictInt
    amount_captured: StrictInt
    amount_refunded: StrictInt
    captured: StrictBool
    currency: str
    status: str
    created: StrictInt | None = None
    payment_intent: str | None = None
    refunds: StripeRefundList | None = None


class StripePayoutPointer(_Payload):
    id: str = Field(pattern=r"^po_[A-Za-z0-9]{1,250}$")


class StripePayout(_Payload):
    """docs.stripe.com/api/payouts/object: ``status`` pending | in_transit | paid | failed | canceled;
    ``reconciliation_status`` ``completed`` once its balance transactions can be listed (``not_applicable`` for a
    manual payout, ``in_progress`` before); ``balance_transaction`` is the payout's own debit of the balance."""

    id: str
    object: Literal["payout"]
    amount: StrictInt
    currency: str
    status: str
    arrival_date: StrictInt | None = None
    automatic: StrictBool = True
    reconciliation_status: str | None = None
    balance_transaction: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class StripeBalanceTransaction(_Payload):
    """docs.stripe.com/api/balance_transactions/object: signed ``amount``/``net`` and ``fee`` in Stripe's unit,
    ``reporting_category`` (charge, refund, refund_failure, fee, payout...), ``source`` the object's id (or the
    object when expanded), ``created``/``available_on`` Unix seconds."""

    id: str
    object: Literal["balance_transaction"]
    amount: StrictInt
    fee: StrictInt
    net: StrictInt
    currency: str
    reporting_category: str
    type: str
    created: StrictInt
    available_on: StrictInt | None = None
    source: str | dict[str, Any] | None = None
    description: str | None = None

    @property
    def source_id(self) -> str:
        if isinstance(self.source, dict):
            return str(self.source.get("id") or "")
        return self.source or ""


class StripeEventData(_Payload):
    object: dict[str, Any]


class StripeEvent(_Payload):
    id: str
    object: Literal["event"]
    type: str
    created: StrictInt
    data: StripeEventData


P = TypeVar("P", bound=_Payload)

# Stripe's refund statuses (docs.stripe.com/api/refunds/object#refund_object-status). A refund that
# needs the customer's action has not moved money yet, so it counts as pending.
_STATUSES = {
    "pending": ProviderRefundStatus.PENDING,
    "requires_action": ProviderRefundStatus.PENDING,
    "succeeded": ProviderRefundStatus.SUCCEEDED,
    "failed": ProviderRefundStatus.FAILED,
    "canceled": ProviderRefundStatus.CANCELED,
}
FINAL_FAILURES = {ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED}


def refund_status(value: str | None) -> ProviderRefundStatus:
    """Our status for a Stripe refund status.

    An unknown status (a future Stripe addition) is treated as pending: the refund exists, and
    pending keeps the amount reserved until a webhook or a poll says how it ended.
    """
    status = _STATUSES.get(value or "")
    if status is None:
        logger.warning("unknown Stripe refund status, treated as pending", extra={"stripe_status": value})
        return ProviderRefundStatus.PENDING
    return status


def provider_refund(refund: StripeRefund) -> ProviderRefund:
    return ProviderRefund(
        provider=PaymentProvider.STRIPE,
        provider_refund_id=refund.id,
        payment_id=refund.payment_id,
        amount=from_stripe_amount(refund.amount, refund.currency),
        status=refund_status(refund.status),
        refund_id=(refund.metadata or {}).get("refund_id"),
        failure_reason=refund.failure_reason,
        acquirer_reference=acquirer_reference(refund),
        method="void" if is_reversal(refund) else "refund",
    )


def is_reversal(refund: StripeRefund) -> bool:
    """Stripe reversed the card charge instead of refunding it (``destination_details.card.type`` ``reversal``: "The
    type of refund. This can be refund, reversal, or pending", docs.stripe.com/api/refunds/object): the charge
    disappears from the customer's statement and no ARN is made (support.stripe.com, "How to trace a refund using
    ARNs and STANs")."""
    card = ((refund.destination_details or {}).get("card")) or {}
    return isinstance(card, dict) and card.get("type") == "reversal"


ARN = re.compile(r"[A-Za-z0-9]{6,40}")


def acquirer_reference(refund: StripeRefund) -> str | None:
    """The card refund's acquirer reference number, once Stripe has it (docs.stripe.com/api/refunds/object:
    ``destination_details.card.reference``, with ``reference_status`` ``available`` and ``reference_type``
    ``acquirer_reference_number``; ``pending`` until the network assigns it, ``unavailable`` for some networks)."""
    card = ((refund.destination_details or {}).get("card")) or {}
    if not isinstance(card, dict) or card.get("reference_status") != "available":
        return None
    if card.get("reference_type") not in (None, "acquirer_reference_number"):
        return None
    reference = card.get("reference")
    return reference if isinstance(reference, str) and ARN.fullmatch(reference) else None


def provider_event(event: StripeEvent) -> ProviderEvent:
    """The refunds and payment an event is about, by the type of object it carries."""
    obj = event.data.object
    kind = obj.get("object")
    refunds: list[ProviderRefund] = []
    payment_id: str | None = None
    payout_id: str | None = None
    if kind == "refund":
        refund = provider_refund(StripeRefund.model_validate(obj))
        refunds.append(refund)
        payment_id = refund.payment_id
    elif kind == "charge":
        charge = StripeCharge.model_validate(obj)
        payment_id = charge.payment_intent or charge.id
        # Since API 2022-11-15 a charge no longer embeds its refunds; older versions still do.
        refunds.extend(provider_refund(refund) for refund in (charge.refunds.data if charge.refunds else []))
    elif kind == "payment_intent" and isinstance(obj.get("id"), str):
        payment_id = obj["id"]
    elif kind == "payout":
        # payout.paid, payout.failed, payout.reconciliation_completed (docs.stripe.com/api/events/types): a pointer
        # only; Stripe's function reads the payout and its balance transactions.
        payout_id = StripePayoutPointer.model_validate(obj).id
    return ProviderEvent(
        provider=PaymentProvider.STRIPE,
        event_id=event.id,
        event_type=event.type,
        occurred_at=datetime.fromtimestamp(event.created, tz=UTC),
        refunds=refunds,
        payment=PaymentReference(provider=PaymentProvider.STRIPE, payment_id=payment_id) if payment_id else None,
        payout_id=payout_id,
    )


def parse(model: type[P], data: Any, *, on_error: type[RefundflowError]) -> P:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise on_error(
            f"unexpected Stripe {model.__name__.removeprefix('Stripe').lower()}: {first_error(error)}",
            platform=PLATFORM,
        ) from error


def first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc']) or 'body'}: {first['msg']}"
