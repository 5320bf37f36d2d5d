"""Refunds made outside refundflow (in a provider's dashboard, by another tool), recorded from the provider's news.

A refund the news names that no refund of ours holds (``payments.apply_provider_event`` hands it over as
*unclaimed*) is read from the provider (a webhook-only platform cannot be read: its verified news is the only
account) and then, exactly once:
- if it is ours after all, it is applied to our refund: the platform echoes our reference when read, or it is
  the refund of ours on the payment that was sent and whose provider id is not stored yet (the webhook raced the
  step that stores it): found by our reference where the platform can, otherwise the news is refused for now
  (``TransientError``) and the platform delivers it again once the id is stored;
- otherwise it becomes a refund of origin ``external``, keyed by the provider's refund id, created in one
  transaction with the claim on that id and the correction of the payment's refundable balance: a redelivery,
  the second event about the same refund (``refund.created`` and ``charge.refunded``) or a retry after a crash
  finds it recorded and changes nothing. Its money is never refunded again by refundflow (the balance counts
  it), and its books follow ``EXTERNAL_REFUND_BOOKING`` (``payments.after_external_refund``).
A refund the provider reports failed or canceled moved no money and is not recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime

from refundflow import settings
from refundflow.domain.payments import AWAITING_PROVIDER, after_external_refund, apply_provider_outcome
from refundflow.domain.recorder import RefundRecorder
from refundflow.errors import ConcurrentModification, NotFound, ProviderRefundClaimed, TransientError
from refundflow.ids import derive_refund_id
from refundflow.models import (
    CustomerContact,
    InvoiceReference,
    PaymentReference,
    Refund,
    RefundOrigin,
    RefundReason,
    Reservation,
    ReservationState,
    SourceReference,
)
from refundflow.observability import logger
from refundflow.ports import ProviderEvent, ProviderRefund, ProviderRefundStatus, RefundProvider
from refundflow.status import RefundStatus

S = RefundStatus
RECORDED = "ExternalRefundRecorded"
# An external refund has no customer refundflow knows of: an address that can never receive mail (RFC 2606).
NO_CUSTOMER = "no-customer@external.invalid"
_ATTEMPTS = 5


def external_refund_id(provider: str, provider_refund_id: str) -> str:
    """The id of the refund recorded for a provider's refund: the same whatever event or retry records it."""
    return derive_refund_id(provider, f"external-refund:{provider_refund_id}")


def record_unclaimed(
    event: ProviderEvent, unclaimed: list[ProviderRefund], *, recorder: RefundRecorder, provider: RefundProvider
) -> list[Refund]:
    """Record (or hand to their refund of ours) the refunds of ``event`` that no refund holds; returns the
    refunds touched.

    Raises:
        TransientError: the provider could not be read, or a refund of ours on the payment may be this one
            and cannot be told apart yet (the delivery is retried).
    """
    touched: list[Refund] = []
    for news in {news.provider_refund_id: news for news in unclaimed}.values():
        refund = _record_one(event, news, recorder=recorder, provider=provider)
        if refund is not None:
            touched.append(refund)
    return touched


def _payment_of(event: ProviderEvent, news: ProviderRefund) -> PaymentReference:
    named = event.payment
    locator = named.locator if named is not None and named.payment_id == news.payment_id else {}
    return PaymentReference(provider=event.provider, payment_id=news.payment_id, locator=locator)


def _read(news: ProviderRefund, payment: PaymentReference, provider: RefundProvider) -> ProviderRefund | None:
    """The refund as the provider holds it (the news itself on a webhook-only platform)."""
    if provider.capabilities.outcome == "webhook_only":
        return news
    try:
        truth = provider.get_refund(news.provider_refund_id, payment)
    except NotFound:
        logger.warning("provider does not know the refund its news named", extra={"provider": provider.name})
        return None
    if truth.provider != news.provider or truth.payment_id != news.payment_id:
        logger.warning("provider's refund is of another payment than its news said", extra={"provider": provider.name})
        return None
    return truth


def _record_one(
    event: ProviderEvent, news: ProviderRefund, *, recorder: RefundRecorder, provider: RefundProvider
) -> Refund | None:
    payment = _payment_of(event, news)
    truth = _read(news, payment, provider)
    if truth is None:
        return None
    repository = recorder.repository
    if truth.refund_id is not None:
        # The platform echoes our reference when read: ours, whatever the news said.
        ours = repository.find(truth.refund_id)
        return _apply_to_ours(ours, truth, event, recorder=recorder)
    # Ours in flight first, then the id's owner: a refund of ours stores its provider id and leaves the
    # in-flight set in one transaction, so one of the two reads sees it.
    in_flight = _ours_in_flight(truth, payment, recorder=recorder, provider=provider)
    if in_flight is not None:
        return _apply_to_ours(in_flight, truth, event, recorder=recorder)
    owner = repository.provider_refund_owner(truth.provider_refund_id)
    if owner is not None:
        return _apply_to_ours(repository.find(owner), truth, event, recorder=recorder)
    if truth.status in {ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED}:
        return None  # no money moved: nothing to record
    return _create(truth, payment, event, recorder=recorder, provider=provider)


def _apply_to_ours(
    refund: Refund | None, truth: ProviderRefund, event: ProviderEvent, *, recorder: RefundRecorder
) -> Refund | None:
    if refund is None or refund.payment.provider is not event.provider:
        return None
    return apply_provider_outcome(refund, truth, recorder=recorder)


def _ours_in_flight(
    truth: ProviderRefund, payment: PaymentReference, *, recorder: RefundRecorder, provider: RefundProvider
) -> Refund | None:
    """Our refund on the payment that was sent and has no provider id stored yet, if it is ``truth``.

    Only a payment whose balance holds a reservation can have one (the balance is read consistently; the index
    of the payment's refunds may lag it). Raises TransientError when one may be ``truth`` and the platform cannot
    find it by our reference, or when the index does not show every reservation yet."""
    repository = recorder.repository
    balance = repository.get_balance(payment.provider, payment.payment_id)
    if balance is None or not balance.reserved.is_positive():
        return None
    open_refunds = repository.open_refunds_for_payment(payment.provider, payment.payment_id)
    held = sum(
        refund.reservation.amount.minor_units
        for refund in open_refunds
        if refund.reservation is not None and refund.reservation.state is ReservationState.HELD
    )
    unnamed = [
        refund
        for refund in open_refunds
        if not refund.provider_refund_id
        and (refund.status in AWAITING_PROVIDER or refund.status is S.NEEDS_ATTENTION)
        and refund.reservation is not None
        and refund.reservation.state is ReservationState.HELD
    ]
    if held < balance.reserved.minor_units:
        raise TransientError(
            f"a reservation on {payment.payment_id} is not visible yet: refund {truth.provider_refund_id} may be ours",
            code="external_refund_undecided",
            platform=provider.name,
        )
    if not unnamed:
        return None
    if not provider.capabilities.find_by_reference:
        raise TransientError(
            f"a refund of ours on {payment.payment_id} was sent and its provider id is not stored yet: "
            f"refund {truth.provider_refund_id} may be it",
            code="external_refund_undecided",
            platform=provider.name,
        )
    for refund in unnamed:
        found = provider.find_refund(refund.refund_id, refund.payment)
        if found is not None and found.provider_refund_id == truth.provider_refund_id:
            return refund
    return None


def _create(
    truth: ProviderRefund,
    payment: PaymentReference,
    event: ProviderEvent,
    *,
    recorder: RefundRecorder,
    provider: RefundProvider,
) -> Refund | None:
    repository = recorder.repository
    refund_id = external_refund_id(provider.name, truth.provider_refund_id)
    held = truth.status is ProviderRefundStatus.PENDING
    invoice = _invoice_of(payment, recorder=recorder)
    now = datetime.now(UTC)
    draft = Refund(
        refund_id=refund_id,
        status=S.REFUND_PENDING if held else S.REFUNDED,
        version=1,
        created_at=now,
        updated_at=now,
        payment=payment,
        requested_amount=truth.amount,
        amount=truth.amount,
        reason=RefundReason.OTHER,
        customer=CustomerContact(email=NO_CUSTOMER),
        source=SourceReference(system=provider.name, reference=truth.provider_refund_id),
        source_platform=provider.name,
        invoice=invoice,
        request_fingerprint=refund_id,
        correlation_id=event.event_id,
        origin=RefundOrigin.EXTERNAL,
        reservation=Reservation(
            amount=truth.amount, state=ReservationState.HELD if held else ReservationState.CONSUMED, day=now.date()
        ),
        provider_refund_id=truth.provider_refund_id,
        provider_status=truth.status.value,
    )
    actor = f"provider:{provider.name}"
    details = {
        "provider_refund_id": truth.provider_refund_id,
        "provider_status": truth.status.value,
        "amount": truth.amount.model_dump(mode="json"),
        "event_id": event.event_id,
        "event_type": event.event_type,
    }
    for _ in range(_ATTEMPTS):
        try:
            created = repository.create(
                draft,
                actor=actor,
                delivery=None,
                details=details,
                entry_type=RECORDED,
                extra=[repository.count_external_refund(draft, truth.amount, held=held)],
            )
        except ProviderRefundClaimed:
            # One of ours took the id meanwhile: it is that refund's news.
            owner = repository.provider_refund_owner(truth.provider_refund_id)
            return _apply_to_ours(repository.find(owner) if owner else None, truth, event, recorder=recorder)
        except ConcurrentModification:
            continue  # the balance changed while we read it: read it again
        stored = created.refund
        if not created.created:
            # Recorded before (a redelivery, the other event of the same refund): move it on if the news is newer.
            return apply_provider_outcome(stored, truth, recorder=recorder)
        logger.info("refund made outside refundflow recorded", extra={"refund_id": refund_id})
        recorder.republish(stored)
        if held:
            return stored
        return after_external_refund(stored, recorder=recorder, actor=actor)
    raise ConcurrentModification(f"could not record external refund {truth.provider_refund_id}")


def _invoice_of(payment: PaymentReference, *, recorder: RefundRecorder) -> InvoiceReference | None:
    """The invoice the payment paid, as refundflow's own latest refund of it names it (None: none known, or the
    merchant books no external refund). Read only when an external refund is first recorded."""
    if settings.load(settings.ExternalRefundSettings).booking == "none":
        return None
    refunds = recorder.repository.refunds_for_payment(payment.provider, payment.payment_id)
    named = [refund for refund in refunds if refund.invoice is not None and refund.origin is RefundOrigin.REFUNDFLOW]
    return max(named, key=lambda refund: refund.created_at).invoice if named else None
