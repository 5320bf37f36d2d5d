"""Everything that touches the payment provider and the refundable balance: workflow steps
LookUp<Provider>Payment, ReserveAmount, RefundWith<Provider> and Poll<Provider>Refund, and the
provider's webhooks. The provider is always called with the idempotency key derived from the refund
id, and a retry after an unknown outcome looks the refund up before sending anything again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from refundflow.adapters.dynamodb import TransactItem
from refundflow.connectors.registry import ensure_representable
from refundflow.domain.recorder import (
    AMOUNT_MISMATCH,
    BOOKS_REJECTED,
    BOOKS_UPDATE_FAILED,
    OUTCOME_UNKNOWN,
    PROVIDER_REVERSED,
    RefundRecorder,
    step_result,
)
from refundflow.errors import (
    AlreadyDoneError,
    ConcurrentModification,
    IllegalTransition,
    NotFound,
    PolicyViolation,
    RejectedError,
)
from refundflow.ids import idempotency_key
from refundflow.models import FailureRecord, Refund, Reservation, ReservationState, StepResult
from refundflow.money import Money
from refundflow.observability import logger
from refundflow.ports import ProviderEvent, ProviderRefund, ProviderRefundRequest, ProviderRefundStatus, RefundProvider
from refundflow.status import RefundStatus

S = RefundStatus
# A refund whose provider outcome is still open: the statuses a provider webhook may resolve.
AWAITING_PROVIDER = frozenset({S.REFUND_SUBMITTED, S.REFUND_PENDING})
MONEY_OUT = frozenset({S.REFUNDED, S.INVOICE_UPDATED, S.COMPLETED, S.SETTLED})
# Nothing of the payment is left to refund: everything captured is refunded (by us or outside) or reserved.
NOTHING_REFUNDABLE = "nothing_refundable"


def _money_out(refund: Refund) -> bool:
    """The provider confirmed the refund (and nothing has reversed it yet)."""
    return refund.status in MONEY_OUT or (
        refund.status is S.NEEDS_ATTENTION and refund.attention_reason in {BOOKS_UPDATE_FAILED, BOOKS_REJECTED}
    )


def _awaiting_provider(refund: Refund) -> bool:
    return refund.status in AWAITING_PROVIDER or (
        refund.status is S.NEEDS_ATTENTION and refund.attention_reason == OUTCOME_UNKNOWN
    )


def refund_key(refund: Refund) -> str:
    return idempotency_key(refund.refund_id, "refund")


# ---------------------------------------------------------------------------- LookUp<Provider>Payment


def look_up_payment(refund_id: str, *, recorder: RefundRecorder, provider: RefundProvider) -> StepResult:
    """Read the payment at the provider, open its refundable balance and fix the amount asked for.

    The provider's own refunded amount bounds what remains: money refunded outside refundflow (in the
    provider's dashboard, by another tool) is never refunded again, and never booked.

    Raises:
        NotFound: the provider does not know the payment.
        PolicyViolation: currency mismatch, or nothing left to refund (``nothing_refundable``).
        InvalidRequest: the amount cannot be represented by the provider or the books.
        TransientError, RejectedError: from the provider.
    """
    repository = recorder.repository
    refund = repository.get(refund_id)
    if refund.status is not S.VALIDATED or refund.amount is not None:
        return recorder.replay(refund)
    payment = provider.get_payment(refund.payment.payment_id)
    requested = refund.requested_amount
    if requested is not None and requested.currency != payment.captured.currency:
        raise PolicyViolation(
            f"refund in {requested.currency} for a payment in {payment.captured.currency}", code="currency_mismatch"
        )
    balance = repository.limit_to_provider(payment)
    if not balance.remaining.is_positive():
        where = payment.provider.value
        why = (
            f"all {payment.captured} captured is already refunded at {where}"
            if payment.refunded >= payment.captured
            else f"{payment.refunded} of {payment.captured} is refunded at {where}, the rest by refunds under way"
        )
        raise PolicyViolation(f"nothing is left to refund on this payment: {why}", code=NOTHING_REFUNDABLE)
    amount = requested or balance.remaining
    ensure_representable(amount, refund.payment, refund.invoice)
    refund = recorder.note(
        refund,
        "PaymentLookedUp",
        actor=f"provider:{provider.provider.value}",
        details={
            "captured": balance.captured.model_dump(mode="json"),
            "refunded": balance.refunded.model_dump(mode="json"),
            "refunded_at_provider": payment.refunded.model_dump(mode="json"),
            "reserved": balance.reserved.model_dump(mode="json"),
            "remaining": balance.remaining.model_dump(mode="json"),
            "amount": amount.model_dump(mode="json"),
        },
        changes={"amount": amount, **({"failure": None} if refund.lookup_attempts else {})},
    )
    return step_result(refund, "PAYMENT_FOUND")


# ---------------------------------------------------------------------------- ReserveAmount


def reserve_amount(
    refund_id: str, *, recorder: RefundRecorder, today: Callable[[], datetime] | None = None
) -> StepResult:
    """Take the approved amount out of the payment's remaining balance, in one transaction with the
    refund's audit entry: two concurrent refunds can never both get the last euro.

    Raises:
        InsufficientRefundableAmount: less remains than the refund needs (nothing is reserved).
        InvalidRequest: the amount cannot be represented by the provider or the books (nothing is reserved).
        IllegalTransition: the refund has no amount to reserve.
    """
    repository = recorder.repository
    refund = repository.get(refund_id)
    if refund.status is not S.APPROVED or refund.reservation is not None:
        return recorder.replay(refund, "RESERVED" if refund.reservation else None)
    if refund.amount is None:
        raise IllegalTransition(f"{refund_id}: no amount to reserve")
    # The policy may have adjusted the amount (fees, caps): check it again before anything is held.
    ensure_representable(refund.amount, refund.payment, refund.invoice)
    day = (today or (lambda: datetime.now(UTC)))().date()
    refund = recorder.note(
        refund,
        "AmountReserved",
        actor="step:ReserveAmount",
        details={"amount": refund.amount.model_dump(mode="json")},
        changes={"reservation": Reservation(amount=refund.amount, state=ReservationState.HELD, day=day)},
        extra=[repository.reserve(refund, refund.amount), repository.add_to_daily_total(refund.amount, day)],
    )
    return step_result(refund, "RESERVED")


def release_items(recorder: RefundRecorder, refund: Refund) -> tuple[dict[str, object], list[TransactItem]]:
    """The changes and items that give a held reservation back (exactly once: the refund's version
    condition makes a second release impossible)."""
    reservation = refund.reservation
    if reservation is None or reservation.state is not ReservationState.HELD:
        return {}, []
    repository = recorder.repository
    negative = Money.of(-reservation.amount.minor_units, reservation.amount.currency)
    return (
        {"reservation": reservation.model_copy(update={"state": ReservationState.RELEASED})},
        [repository.release(refund, reservation.amount), repository.add_to_daily_total(negative, reservation.day)],
    )


# ---------------------------------------------------------------------------- RefundWith<Provider>


def issue_refund(refund_id: str, *, recorder: RefundRecorder, provider: RefundProvider) -> StepResult:
    """Submit the refund to the provider (once), or resume a submission whose outcome is unknown.

    Raises:
        TransientError: retry the step; the same idempotency key is used.
        OutcomeUnknownError: retry the step; it looks the refund up before sending again.
        RejectedError: the provider refused, or the payment was already fully refunded outside
            refundflow (``nothing_refundable``); the catch path fails the refund and releases the amount.
        IllegalTransition: no reservation is held.
    """
    refund = recorder.repository.get(refund_id)
    if refund.status is S.APPROVED:
        if refund.reservation is None or refund.reservation.state is not ReservationState.HELD:
            raise IllegalTransition(f"{refund_id}: refund attempted without a held reservation")
        refund = recorder.move(
            refund,
            S.REFUND_SUBMITTED,
            actor=f"provider:{provider.provider.value}",
            details={"idempotency_key": refund_key(refund), "amount": _money(refund.amount)},
        )
        return _submit(refund, recorder=recorder, provider=provider, first_attempt=True)
    if refund.status is S.REFUND_SUBMITTED or (_awaiting_provider(refund) and not refund.provider_refund_id):
        return _submit(refund, recorder=recorder, provider=provider, first_attempt=False)
    return recorder.replay(refund)


def poll_refund(refund_id: str, *, recorder: RefundRecorder, provider: RefundProvider) -> StepResult:
    """No webhook came in time: ask the provider where the refund stands (or finish submitting it)."""
    refund = recorder.repository.get(refund_id)
    if not _awaiting_provider(refund):
        return recorder.replay(refund)
    if refund.provider_refund_id is None:
        return _submit(refund, recorder=recorder, provider=provider, first_attempt=False)
    return provider_outcome_step(refund, provider.get_refund(refund.provider_refund_id), recorder=recorder)


def _submit(refund: Refund, *, recorder: RefundRecorder, provider: RefundProvider, first_attempt: bool) -> StepResult:
    assert refund.amount is not None
    existing: ProviderRefund | None = None
    if refund.provider_refund_id:
        existing = provider.get_refund(refund.provider_refund_id)
    elif not first_attempt:
        existing = provider.find_refund(refund.refund_id, refund.payment.payment_id)
    if existing is None:
        request = ProviderRefundRequest(
            refund_id=refund.refund_id,
            payment_id=refund.payment.payment_id,
            amount=refund.amount,
            reason=refund.reason,
            idempotency_key=refund_key(refund),
            metadata={"refund_id": refund.refund_id, "source_reference": refund.source.reference},
        )
        try:
            existing = provider.create_refund(request)
        except AlreadyDoneError as error:
            existing = provider.find_refund(refund.refund_id, refund.payment.payment_id)
            if existing is None:
                # Fully refunded, but not by us (between our look-up and now): this refund moved no
                # money, so it is neither refunded nor booked; the catch path fails it and releases
                # the reservation, and the next look-up sees the provider's figures.
                raise RejectedError(
                    f"the payment is already fully refunded at {refund.payment.provider.value}, not by refundflow: "
                    f"{error.message}",
                    code=NOTHING_REFUNDABLE,
                    platform=error.platform,
                ) from error
    return provider_outcome_step(refund, existing, recorder=recorder)


def _consume_items(recorder: RefundRecorder, refund: Refund) -> tuple[dict[str, object], list[TransactItem]]:
    reservation = refund.reservation
    if reservation is None or reservation.state is not ReservationState.HELD:
        return {}, []
    return (
        {"reservation": reservation.model_copy(update={"state": ReservationState.CONSUMED})},
        [recorder.repository.consume(refund, reservation.amount)],
    )


def provider_outcome_step(refund: Refund, provider_refund: ProviderRefund, *, recorder: RefundRecorder) -> StepResult:
    """Move the refund to what the provider reports (see ``apply_provider_outcome``)."""
    return step_result(apply_provider_outcome(refund, provider_refund, recorder=recorder))


def apply_provider_outcome(refund: Refund, provider_refund: ProviderRefund, *, recorder: RefundRecorder) -> Refund:
    """Move the refund to what the provider reports and return it as stored. Only forward moves are
    applied, so late or out-of-order webhooks change nothing; a concurrent writer makes us re-read and
    re-apply."""
    for _ in range(3):
        try:
            return _apply_once(refund, provider_refund, recorder=recorder)
        except ConcurrentModification:
            refund = recorder.repository.get(refund.refund_id)
    raise ConcurrentModification(f"{refund.refund_id}: could not apply the provider's outcome")


def _apply_once(refund: Refund, provider_refund: ProviderRefund, *, recorder: RefundRecorder) -> Refund:
    actor = f"provider:{provider_refund.provider.value}"
    known = {
        "provider_refund_id": provider_refund.provider_refund_id,
        "provider_status": provider_refund.status.value,
    }
    details = {**known, "amount": _money(provider_refund.amount)}
    status = provider_refund.status
    if status is ProviderRefundStatus.SUCCEEDED and _awaiting_provider(refund):
        if refund.amount is not None and provider_refund.amount != refund.amount:
            # Cannot happen with an idempotency key bound to the amount; if it does, a person decides
            # what the books and the balance should say (the reservation stays held).
            logger.error("provider refunded another amount", extra={"refund_id": refund.refund_id})
            return recorder.move(
                refund,
                S.NEEDS_ATTENTION,
                actor=actor,
                details={**details, "expected_amount": _money(refund.amount)},
                changes={**known, "attention_reason": AMOUNT_MISMATCH},
            )
        changes, extra = _consume_items(recorder, refund)
        return recorder.move(
            refund,
            S.REFUNDED,
            actor=actor,
            details=details,
            changes={**known, **changes, "attention_reason": None},
            extra=extra,
        )
    if status is ProviderRefundStatus.PENDING and (
        refund.status is S.REFUND_SUBMITTED or (refund.status is S.NEEDS_ATTENTION and _awaiting_provider(refund))
    ):
        return recorder.move(
            refund, S.REFUND_PENDING, actor=actor, details=details, changes={**known, "attention_reason": None}
        )
    if status in {ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED}:
        failure = FailureRecord(
            code=provider_refund.failure_reason or f"refund_{status.value}",
            message=f"{provider_refund.provider.value} reports the refund {status.value}",
            platform=provider_refund.provider.value,
        )
        if _awaiting_provider(refund):
            changes, extra = release_items(recorder, refund)
            return recorder.move(
                refund,
                S.FAILED,
                actor=actor,
                details=details,
                changes={**known, **changes, "failure": failure},
                extra=extra,
            )
        if _money_out(refund) and refund.provider_refund_id == provider_refund.provider_refund_id:
            # The refund had succeeded and was reversed: the money is back with the merchant, the
            # amount is refundable again, and no books update is attempted until a person looks.
            assert refund.amount is not None
            changes = {**known, "failure": failure, "attention_reason": PROVIDER_REVERSED}
            extra = [recorder.repository.unconsume(refund, refund.amount)]
            if refund.status is S.NEEDS_ATTENTION:
                return recorder.note(
                    refund,
                    "ProviderReversedRefund",
                    actor=actor,
                    details=details,
                    changes=changes,
                    extra=extra,
                    event="RefundNeedsAttention",
                )
            return recorder.move(refund, S.NEEDS_ATTENTION, actor=actor, details=details, changes=changes, extra=extra)
    return refund


def _money(amount: Money | None) -> dict[str, object] | None:
    return amount.model_dump(mode="json") if amount else None


# ---------------------------------------------------------------------------- provider webhooks


def apply_provider_event(event: ProviderEvent, *, recorder: RefundRecorder, provider: RefundProvider) -> list[Refund]:
    """Apply a verified provider webhook to the refunds it is about; returns the refunds it touched.

    A delivery is news, not truth: anyone holding the signing secret can sign one, and providers
    deliver out of order and retry for days. So the event only says *which* of our refunds to look
    at; each one is read from the provider (by the provider refund id we stored, or found by our
    reference) and what the provider says is applied. An older event arriving after a newer one
    reads the same current truth, and only forward moves are applied.

    Refunds not made by refundflow are ignored (they show up in reconciliation). An event that
    carries no refund objects (``charge.refunded`` in current API versions) looks at our refunds on
    that payment whose outcome is still open.

    Raises:
        TransientError: the provider could not be read now (nothing was applied; answer 5xx so
            the provider delivers again).
    """
    repository = recorder.repository
    candidates: dict[str, Refund] = {}
    for news in event.refunds:
        refund = repository.find(news.refund_id) if news.refund_id else None
        if refund is None:
            logger.info("provider refund not made by refundflow", extra={"provider_refund_id": news.provider_refund_id})
            continue
        if _awaiting_provider(refund) or _money_out(refund):
            candidates.setdefault(refund.refund_id, refund)
    if not event.refunds and event.payment_id:
        for refund in repository.refunds_for_payment(event.provider, event.payment_id):
            if _awaiting_provider(refund):
                candidates.setdefault(refund.refund_id, refund)
    touched: list[Refund] = []
    for refund in candidates.values():
        truth = _read_at_provider(refund, provider)
        if truth is not None:
            touched.append(apply_provider_outcome(refund, truth, recorder=recorder))
    return touched


def _read_at_provider(refund: Refund, provider: RefundProvider) -> ProviderRefund | None:
    """Our refund as the provider holds it now, or None if the provider has none."""
    if not refund.provider_refund_id:
        return provider.find_refund(refund.refund_id, refund.payment.payment_id)
    try:
        return provider.get_refund(refund.provider_refund_id)
    except NotFound:
        # The id came from the provider's own answer: a provider that no longer knows it (another
        # account's key?) is for a person to look at; the refund is left as it is.
        logger.error("provider does not know our refund", extra={"refund_id": refund.refund_id})
        return None
