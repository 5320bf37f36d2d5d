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

Its ticket: when refundflow's own latest refund of the payment came from a help desk ticket, the external refund
is linked to that ticket (its ``source.ticket_id`` and ``source_platform``), so the help desk's write-back
subscription writes its events there as for any refund of that ticket. No customer message is sent for it.

Its books (:func:`book_external_refund`): the books platform's own function, fed by its queue with external
refunds' ``RefundIssued`` events (bus -> queue with DLQ -> function: a reaction, not a workflow branch), books
the credit document with the same step as our refunds (``books.update_invoice``: the books' idempotency key and
find-by-reference, so exactly once) and completes the refund. A failure is resolved as the workflow resolves
one (``failures.handle_failure``): ``books_update_failed`` is retried (the queue delivers it again),
``books_rejected`` waits for a person (``refundflow retry`` books it again).
"""

from __future__ import annotations

from datetime import UTC, datetime

from refundflow import catalog, settings
from refundflow.domain.books import update_invoice
from refundflow.domain.failures import handle_failure
from refundflow.domain.payments import AWAITING_PROVIDER, after_external_refund, apply_provider_outcome
from refundflow.domain.recorder import BOOKS_UPDATE_FAILED, RefundRecorder
from refundflow.errors import (
    ConcurrentModification,
    NotFound,
    ProviderRefundClaimed,
    RefundflowError,
    TransientError,
    error_class,
)
from refundflow.events import RefundEvent
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
from refundflow.ports import BooksConnector, ProviderEvent, ProviderRefund, ProviderRefundStatus, RefundProvider
from refundflow.status import RefundStatus

S = RefundStatus
RECORDED = "ExternalRefundRecorded"
NOT_BOOKED = "ExternalRefundNotBooked"
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
    ours = _latest_of_ours(payment, recorder=recorder)
    invoice = _invoice_of(ours)
    ticket = ours if ours is not None and ours.source.ticket_id and ours.source_platform in _help_desks() else None
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
        source=SourceReference(
            system=provider.name,
            reference=truth.provider_refund_id,
            ticket_id=ticket.source.ticket_id if ticket is not None else None,
        ),
        source_platform=ticket.source_platform if ticket is not None else provider.name,
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


def _latest_of_ours(payment: PaymentReference, *, recorder: RefundRecorder) -> Refund | None:
    """refundflow's own latest refund of the payment (the one that names its invoice, if any does): its invoice
    is the one the external refund's credit document goes on, and its ticket is told. Read only when an external
    refund is first recorded."""
    refunds = recorder.repository.refunds_for_payment(payment.provider, payment.payment_id)
    ours = [refund for refund in refunds if refund.origin is RefundOrigin.REFUNDFLOW]
    if not ours:
        return None
    named = [refund for refund in ours if refund.invoice is not None]
    return max(named or ours, key=lambda refund: refund.created_at)


def _help_desks() -> set[str]:
    return set(catalog.names("ticket"))


def _invoice_of(ours: Refund | None) -> InvoiceReference | None:
    """The invoice the payment paid, as refundflow's own latest refund of it names it (None: none known, or the
    merchant books no external refund)."""
    if settings.load(settings.ExternalRefundSettings).booking == "none" or ours is None:
        return None
    return ours.invoice


def book_external_refund(
    event: RefundEvent, *, recorder: RefundRecorder, books: BooksConnector, max_attempts: int
) -> Refund | None:
    """Book the credit document of the refund made outside refundflow that ``event`` announces, exactly once,
    and complete it; returns the refund as stored (None: the event is not one to book).

    Raises:
        TransientError: the books could not be reached (or the store was busy); the refund is NEEDS_ATTENTION
            ``books_update_failed`` with the books' words, and the event is delivered again to retry.
    """
    if event.origin is not RefundOrigin.EXTERNAL or event.books is None:
        return None
    try:
        update_invoice(event.refund_id, recorder=recorder, books=books)
    except RefundflowError as error:
        # What the workflow's catch path does for a books failure: the same reasons, the same bound.
        handle_failure(
            event.refund_id, _error_name(error), str(error), recorder=recorder, max_books_attempts=max_attempts
        )
        refund = recorder.repository.get(event.refund_id)
        logger.warning(
            "credit document of a refund made outside refundflow not booked",
            extra={"refund_id": refund.refund_id, "code": error.code, "reason": refund.attention_reason},
        )
        if refund.attention_reason == BOOKS_UPDATE_FAILED:
            raise TransientError(
                f"the books could not record the credit note of {refund.refund_id} yet "
                f"(attempt {refund.books_attempts} of {max_attempts}): it is tried again",
                code="external_refund_books_retry",
                platform=event.books,
                retry_after_seconds=getattr(error, "retry_after_seconds", None),
            ) from error
        return recorder.note(
            refund,
            NOT_BOOKED,
            actor=f"books:{event.books}",
            details={"books": _not_booked_words(refund, error)},
        )
    return recorder.repository.get(event.refund_id)


def _not_booked_words(refund: Refund, error: RefundflowError) -> str:
    """What the accountant reads on the timeline when the books refused the credit note for good."""
    assert refund.invoice is not None
    return (
        f"This refund of {refund.amount} was made outside refundflow "
        f"({refund.payment.provider.value} refund {refund.provider_refund_id}). Its credit note against invoice "
        f"{refund.invoice.invoice_id} could not be booked in {refund.invoice.system.value}: {error.message[:300]} "
        f"Correct it in {refund.invoice.system.value}, then `refundflow retry {refund.refund_id}` books it "
        "(never twice: the books are asked for our reference first)."
    )


def _error_name(error: RefundflowError) -> str:
    """The name of the nearest error class the catch path knows (a connector's own subclass counts as its base)."""
    for cls in type(error).__mro__:
        if error_class(cls.__name__) is cls:
            return cls.__name__
    return RefundflowError.__name__
