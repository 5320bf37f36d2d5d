"""Everything that touches the payment provider and the refundable balance: workflow steps LookUpPayment,
ReserveAmount, RefundWithProvider and PollRefund, and the provider's news (webhooks).

The domain acts on the provider's capabilities (``RefundProvider.capabilities``), never on its name:
- the refund goes out under an idempotency key derived from the refund id where the platform takes one;
- after an unknown outcome, a platform that can find our refund by reference is asked before anything is
  sent again; one that cannot is sent the same request under the same key while the platform still
  remembers the key (``key_lifetime_hours`` since REFUND_SUBMITTED); otherwise a person decides
  (NEEDS_ATTENTION ``outcome_unknown``): nothing is ever sent twice blind;
- a webhook-only platform is never polled: when its outcome does not come within the workflow's bounded
  wait, the refund needs a person (``outcome_not_reported``), and late news still resolves it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from refundflow import settings
from refundflow.domain.deployment import ensure_representable
from refundflow.domain.intake import create_requested
from refundflow.domain.recorder import (
    AMOUNT_MISMATCH,
    BOOKS_PENDING,
    BOOKS_REJECTED,
    BOOKS_UPDATE_FAILED,
    EXTERNAL_REFUND_UNBOOKED,
    OUTCOME_NOT_REPORTED,
    OUTCOME_UNKNOWN,
    OUTCOME_UNRESOLVED,
    PROVIDER_REVERSED,
    SPLIT,
    RefundRecorder,
    step_result,
)
from refundflow.domain.validation import validated_move
from refundflow.errors import (
    AlreadyDoneError,
    ConcurrentModification,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    OutcomeUnknownError,
    PaymentNotKnown,
    PolicyViolation,
    RejectedError,
)
from refundflow.ids import idempotency_key
from refundflow.models import (
    FailureRecord,
    LegStatus,
    PaymentReference,
    Refund,
    RefundOrigin,
    Reservation,
    ReservationState,
    StepResult,
    TenderPayment,
)
from refundflow.money import Money
from refundflow.observability import logger
from refundflow.ports import (
    PaymentCapabilities,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
    RefundProvider,
    RefundStore,
    RequestedRefund,
    StatusMove,
    StoreWrite,
)
from refundflow.status import RefundStatus

Clock = Callable[[], datetime]

S = RefundStatus
# A refund whose provider outcome is still open: the statuses a provider webhook may resolve.
AWAITING_PROVIDER = frozenset({S.REFUND_SUBMITTED, S.REFUND_PENDING})
# The card network's reference for a paid refund became known (audit entry and bus event).
ACQUIRER_REFERENCE = "RefundAcquirerReference"
AMOUNT_RESERVED = "AmountReserved"
MONEY_OUT = frozenset({S.REFUNDED, S.INVOICE_UPDATED, S.COMPLETED, S.SETTLED})
# Nothing of the payment is left to refund: everything captured is refunded (by us or outside) or reserved.
NOTHING_REFUNDABLE = "nothing_refundable"


def _money_out(refund: Refund) -> bool:
    """The provider confirmed the refund (and nothing has reversed it yet)."""
    return refund.status in MONEY_OUT or (
        refund.status is S.NEEDS_ATTENTION
        and refund.attention_reason in {BOOKS_UPDATE_FAILED, BOOKS_REJECTED, BOOKS_PENDING}
    )


# Attention reasons under which the provider's outcome is still open: news may resolve them.
OPEN_OUTCOME_REASONS = frozenset({OUTCOME_UNKNOWN, OUTCOME_UNRESOLVED, OUTCOME_NOT_REPORTED})


def _awaiting_provider(refund: Refund) -> bool:
    return refund.status in AWAITING_PROVIDER or (
        refund.status is S.NEEDS_ATTENTION and refund.attention_reason in OPEN_OUTCOME_REASONS
    )


def refund_key(refund: Refund) -> str:
    return idempotency_key(refund.refund_id, "refund")


# ---------------------------------------------------------------------------- LookUp<Provider>Payment


def look_up_payment(refund_id: str, *, recorder: RefundRecorder, provider: RefundProvider) -> StepResult:
    """Read the payment at the provider, open its refundable balance and fix the amount asked for.

    The provider's own refunded amount bounds what remains: money refunded outside refundflow (in the
    provider's dashboard, by another tool) is never refunded again, and never booked. A platform that
    cannot be read (``payment_lookup`` false) is not asked: what its verified news reported of the payment
    (recorded by ``apply_news``) is the only source, never the amount the request asks for.

    The first step of a request whose provider the request intake named (the execution's input): the refund is
    made from the stored request, validated and looked up in one write (:func:`_make_and_look_up`).

    Raises:
        NotFound: the provider does not know the payment, or there is no such refund or request.
        PolicyViolation: currency mismatch, or nothing left to refund (``nothing_refundable``).
        InvalidRequest: the amount cannot be represented by the provider or the books; a request this deployment
            cannot carry out (as ValidateRefund).
        PaymentNotKnown: a platform that cannot be read has not reported the payment yet (a TransientError:
            the look-up is retried later, then the refund is rejected ``payment_not_known``).
        TransientError, RejectedError: from the provider.
    """
    found = recorder.repository.find_refund_or_request(refund_id)
    if found is None:
        raise NotFound(f"refund {refund_id} does not exist")
    if isinstance(found, RequestedRefund):
        return _make_and_look_up(found, recorder=recorder, provider=provider)
    refund = found
    if refund.status is not S.VALIDATED or refund.amount is not None:
        return recorder.replay(refund)
    looked_up = _looked_up(refund, recorder=recorder, provider=provider)
    assert looked_up.note is not None
    refund = recorder.note(
        refund, looked_up.note, actor=looked_up.actor, details=looked_up.details, changes=looked_up.changes
    )
    return step_result(refund, "PAYMENT_FOUND")


def _make_and_look_up(requested: RequestedRefund, *, recorder: RefundRecorder, provider: RefundProvider) -> StepResult:
    """A stored request's refund made by the look-up: VALIDATED and ``PaymentLookedUp`` in its creation's own write
    (``domain.intake.create_requested``), where ValidateRefund's invocation and write, then the look-up's, did it.

    Whatever stops it first leaves the refund made as far as it got, so that the step's retry, or the catch path,
    finds a refund: one this deployment cannot carry out is made RECEIVED (the catch path rejects it, as after
    ValidateRefund); one whose look-up failed is made VALIDATED (retried, or rejected, as any look-up).
    """
    asked = SPLIT if requested.refund.tenders else requested.refund.payment.provider.value
    try:
        if asked != provider.name:  # a start that named another platform than the request's: refused, as misrouted
            raise InvalidRequest(f"this is {provider.name}'s function, not {asked}'s", code="wrong_platform")
        validated = validated_move(requested.refund)
    except InvalidRequest:
        create_requested(requested, recorder=recorder)
        raise
    refund = requested.refund.evolve(status=S.VALIDATED)
    try:
        looked_up = _looked_up(refund, recorder=recorder, provider=provider)
    except Exception:
        create_requested(requested, recorder=recorder, then=[validated])
        raise
    made = create_requested(requested, recorder=recorder, then=[validated, looked_up])
    if made.status is not S.VALIDATED or made.amount is None:
        # Another invocation made it first, and it is elsewhere by now, or was not looked up: as for any refund.
        return look_up_payment(made.refund_id, recorder=recorder, provider=provider)
    return step_result(made, "PAYMENT_FOUND")


def _looked_up(refund: Refund, *, recorder: RefundRecorder, provider: RefundProvider) -> StatusMove:
    """The ``PaymentLookedUp`` note of a VALIDATED refund: its payment read, its balance opened, its amount fixed."""
    repository = recorder.repository
    requested = refund.requested_amount
    if provider.capabilities.payment_lookup:
        payment = provider.get_payment(refund.payment)
    else:
        payment = _payment_from_news(refund, recorder=recorder)
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
    if not provider.capabilities.partial_refunds and amount != balance.remaining:
        raise PolicyViolation(
            f"{provider.name} refunds a payment in full only ({balance.remaining}), not {amount}",
            code="partial_refund_not_supported",
        )
    if provider.capabilities.void_before_settlement and not payment.settled and amount != balance.remaining:
        # Before settlement the platform can only void, and a void takes back all of what remains: a part of it is
        # refused here, before anything is reserved, not by the platform after (Braintree's 91506).
        raise PolicyViolation(
            f"the payment has not settled at {provider.name}: only all of what remains ({balance.remaining}) can be "
            f"voided now, not {amount}; ask again once it has settled",
            code="partial_refund_before_settlement",
        )
    ensure_representable(amount, refund.payment, refund.invoice)
    return StatusMove(
        S.VALIDATED,
        actor=f"provider:{provider.name}",
        details={
            "captured": balance.captured.model_dump(mode="json"),
            "refunded": balance.refunded.model_dump(mode="json"),
            "refunded_at_provider": payment.refunded.model_dump(mode="json"),
            "reserved": balance.reserved.model_dump(mode="json"),
            "remaining": balance.remaining.model_dump(mode="json"),
            "amount": amount.model_dump(mode="json"),
            **({} if provider.capabilities.payment_lookup else {"from_payment_news": True}),
        },
        changes={"amount": amount, **({"failure": None} if refund.lookup_attempts else {})},
        note="PaymentLookedUp",
    )


def _payment_from_news(refund: Refund, *, recorder: RefundRecorder) -> ProviderPayment:
    """What a platform that cannot be read has told us of the payment (its news, recorded on the balance):
    never the amount the request asks for.

    Raises:
        PaymentNotKnown: no news of the payment yet (the look-up is tried again later).
    """
    return _reported_payment(refund.payment, recorder=recorder)


def read_payment(payment: PaymentReference, *, recorder: RefundRecorder, provider: RefundProvider) -> TenderPayment:
    """One tender of a split-tender refund, read for its look-up (``read_payment``): the payment at the platform
    (or, for a platform that cannot be read, its news) and its refundable balance, opened or updated as
    ``look_up_payment`` does, so what was refunded outside refundflow is never refunded again.

    Raises:
        NotFound, PaymentNotKnown, TransientError, RejectedError: as ``look_up_payment``.
    """
    if provider.capabilities.payment_lookup:
        found = provider.get_payment(payment)
    else:
        found = _reported_payment(payment, recorder=recorder)
    balance = recorder.repository.limit_to_provider(found)
    return TenderPayment(
        payment=payment,
        captured=balance.captured,
        refunded=balance.refunded,
        remaining=balance.remaining,
        captured_at=found.captured_at,
    )


def _reported_payment(reference: PaymentReference, *, recorder: RefundRecorder) -> ProviderPayment:
    balance = recorder.repository.get_balance(reference.provider, reference.payment_id)
    if balance is None:
        raise PaymentNotKnown(
            f"{reference.provider.value} has not reported payment {reference.payment_id} yet",
            platform=reference.provider.value,
        )
    return ProviderPayment(
        provider=reference.provider,
        payment_id=reference.payment_id,
        captured=balance.captured,
        refunded=balance.refunded,
        status="reported",
    )


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
    if refund.tenders and refund.status is S.APPROVED:
        # A split-tender refund holds nothing itself: each of its legs holds its share on its own payment.
        return step_result(refund, "RESERVED")
    if refund.status is not S.APPROVED or refund.reservation is not None:
        return recorder.replay(refund, "RESERVED" if refund.reservation else None)
    if refund.amount is None:
        raise IllegalTransition(f"{refund_id}: no amount to reserve")
    # The policy may have adjusted the amount (fees, caps): check it again before anything is held.
    ensure_representable(refund.amount, refund.payment, refund.invoice)
    day = (today or (lambda: datetime.now(UTC)))().date()
    details, changes, extra = reserve_items(recorder, refund, refund.amount, day)
    refund = recorder.note(
        refund, AMOUNT_RESERVED, actor="step:ReserveAmount", details=details, changes=changes, extra=extra
    )
    return step_result(refund, "RESERVED")


def reserve_items(
    recorder: RefundRecorder, refund: Refund, amount: Money, day: date
) -> tuple[dict[str, Any], dict[str, Any], list[StoreWrite]]:
    """The ``AmountReserved`` entry's details, the refund's changes and the items that hold ``amount`` of the
    payment's remaining balance (conditionally: InsufficientRefundableAmount when less remains) and add it to
    the day's total. ReserveAmount writes them with its entry; EvaluatePolicy with its approval."""
    repository = recorder.repository
    return (
        {"amount": amount.model_dump(mode="json")},
        {"reservation": Reservation(amount=amount, state=ReservationState.HELD, day=day)},
        [repository.reserve(refund, amount), repository.add_to_daily_total(amount, day)],
    )


def release_items(recorder: RefundRecorder, refund: Refund) -> tuple[dict[str, object], list[StoreWrite]]:
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


def issue_refund(
    refund_id: str, *, recorder: RefundRecorder, provider: RefundProvider, now: Clock | None = None
) -> StepResult:
    """Submit the refund to the provider (once), or resume a submission whose outcome is unknown.

    Raises:
        TransientError: retry the step; the same idempotency key is used.
        OutcomeUnknownError: retry the step; it finds the refund (or resends under the same, still
            remembered key) before sending anything again.
        RejectedError: the provider refused, or the payment was already fully refunded outside
            refundflow (``nothing_refundable``); the catch path fails the refund and releases the amount.
        IllegalTransition: no reservation is held.
    """
    refund = recorder.repository.get(refund_id)
    if refund.status is S.APPROVED and refund.withdrawn is not None:
        # The approval was withdrawn where it was given (a help desk) before any money moved: the last gate.
        changes, extra = release_items(recorder, refund)
        refund = recorder.move(
            refund,
            S.REJECTED,
            actor=f"provider:{provider.name}",
            details={"code": refund.withdrawn.code},
            changes={**changes, "failure": refund.withdrawn},
            extra=extra,
        )
        return step_result(refund)
    if refund.status is S.APPROVED:
        if refund.reservation is None or refund.reservation.state is not ReservationState.HELD:
            raise IllegalTransition(f"{refund_id}: refund attempted without a held reservation")
        refund = recorder.move(
            refund,
            S.REFUND_SUBMITTED,
            actor=f"provider:{provider.name}",
            details={"idempotency_key": refund_key(refund), "amount": _money(refund.amount)},
        )
        return _send(refund, recorder=recorder, provider=provider)
    if refund.status is S.REFUND_SUBMITTED or (_awaiting_provider(refund) and not refund.provider_refund_id):
        return _resume(refund, recorder=recorder, provider=provider, now=now)
    return recorder.replay(refund)


def poll_refund(
    refund_id: str, *, recorder: RefundRecorder, provider: RefundProvider, now: Clock | None = None
) -> StepResult:
    """No news came within the workflow's wait: ask the provider where the refund stands (or finish
    submitting it). A webhook-only provider cannot be asked: the refund needs a person
    (``outcome_not_reported``), and news arriving later still resolves it."""
    refund = recorder.repository.get(refund_id)
    if not _awaiting_provider(refund):
        return recorder.replay(refund)
    if refund.provider_refund_id is None:
        return _resume(refund, recorder=recorder, provider=provider, now=now)
    if provider.capabilities.outcome == "webhook_only":
        return step_result(_needs_person(refund, OUTCOME_NOT_REPORTED, recorder=recorder, provider=provider))
    truth = provider.get_refund(refund.provider_refund_id, refund.payment)
    return provider_outcome_step(refund, truth, recorder=recorder)


def _request(refund: Refund) -> ProviderRefundRequest:
    assert refund.amount is not None
    return ProviderRefundRequest(
        refund_id=refund.refund_id,
        payment=refund.payment,
        amount=refund.amount,
        reason=refund.reason,
        idempotency_key=refund_key(refund),
        metadata={"refund_id": refund.refund_id, "source_reference": refund.source.reference},
    )


def _send(refund: Refund, *, recorder: RefundRecorder, provider: RefundProvider) -> StepResult:
    """Send the refund. An unknown outcome on a platform that can neither find the refund nor take a key
    goes straight to a person: a retry could refund twice."""
    capabilities = provider.capabilities
    try:
        created = provider.create_refund(_request(refund))
    except AlreadyDoneError as error:
        found = provider.find_refund(refund.refund_id, refund.payment) if capabilities.find_by_reference else None
        if found is None:
            # Fully refunded, but not by us (between our look-up and now): this refund moved no
            # money, so it is neither refunded nor booked; the catch path fails it and releases
            # the reservation, and the next look-up sees the provider's figures.
            raise RejectedError(
                f"the payment is already fully refunded at {refund.payment.provider.value}, not by refundflow: "
                f"{error.message}",
                code=NOTHING_REFUNDABLE,
                platform=error.platform,
            ) from error
        created = found
    except OutcomeUnknownError as error:
        if not capabilities.find_by_reference and not capabilities.idempotency.supported:
            logger.error(
                "refund outcome unknown at a platform that cannot find or dedupe it",
                extra={"refund_id": refund.refund_id},
            )
            return step_result(
                _needs_person(refund, OUTCOME_UNRESOLVED, recorder=recorder, provider=provider, why=error.message)
            )
        raise
    return provider_outcome_step(refund, created, recorder=recorder)


def _resume(refund: Refund, *, recorder: RefundRecorder, provider: RefundProvider, now: Clock | None) -> StepResult:
    """A submission whose outcome is unknown: read it, find it, or resend under the same key, by what the
    platform can do."""
    capabilities = provider.capabilities
    if refund.provider_refund_id:
        if capabilities.outcome == "webhook_only":
            return recorder.replay(refund)
        return provider_outcome_step(
            refund, provider.get_refund(refund.provider_refund_id, refund.payment), recorder=recorder
        )
    if capabilities.find_by_reference:
        found = provider.find_refund(refund.refund_id, refund.payment)
        if found is not None:
            return provider_outcome_step(refund, found, recorder=recorder)
        # Never created (the platform says so): sending now cannot refund twice.
        return _send(refund, recorder=recorder, provider=provider)
    if _key_remembered(refund, capabilities, recorder=recorder, now=now):
        return _send(refund, recorder=recorder, provider=provider)
    return step_result(
        _needs_person(
            refund,
            OUTCOME_UNRESOLVED,
            recorder=recorder,
            provider=provider,
            why="the platform cannot find the refund by our reference and no longer remembers the key",
        )
    )


def _key_remembered(
    refund: Refund, capabilities: PaymentCapabilities, *, recorder: RefundRecorder, now: Clock | None
) -> bool:
    """Whether the platform still remembers the idempotency key sent since the refund was submitted."""
    if not capabilities.idempotency.supported:
        return False
    submitted = next(
        (
            entry.at
            for entry in reversed(recorder.repository.timeline(refund.refund_id))
            if entry.to_status is S.REFUND_SUBMITTED and entry.from_status is not S.REFUND_SUBMITTED
        ),
        None,
    )
    if submitted is None:
        return False
    return capabilities.idempotency.key_alive(submitted, (now or (lambda: datetime.now(UTC)))())


def _needs_person(
    refund: Refund, reason: str, *, recorder: RefundRecorder, provider: RefundProvider, why: str | None = None
) -> Refund:
    """Stop at a person, keeping the reservation held (money may have moved)."""
    actor = f"provider:{provider.name}"
    details = {"reason": reason, **({"why": why[:500]} if why else {})}
    if refund.status is S.NEEDS_ATTENTION:
        if refund.attention_reason == reason:
            return refund
        return recorder.note(
            refund, "OutcomeNeedsPerson", actor=actor, details=details, changes={"attention_reason": reason}
        )
    return recorder.move(refund, S.NEEDS_ATTENTION, actor=actor, details=details, changes={"attention_reason": reason})


def _consume_items(recorder: RefundRecorder, refund: Refund) -> tuple[dict[str, object], list[StoreWrite]]:
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
    known: dict[str, object] = {
        "provider_refund_id": provider_refund.provider_refund_id,
        "provider_status": provider_refund.status.value,
    }
    if provider_refund.acquirer_reference and provider_refund.status is ProviderRefundStatus.SUCCEEDED:
        known["acquirer_reference"] = provider_refund.acquirer_reference
    details = {**known, "amount": _money(provider_refund.amount)}
    if provider_refund.method == "void":
        details["method"] = "void"
    status = provider_refund.status
    if (
        refund.origin is RefundOrigin.EXTERNAL
        and refund.status is S.REFUNDED
        and status is ProviderRefundStatus.SUCCEEDED
    ):
        # Recorded from the provider's news and not booked yet (the books' queue may be busy with it, or the
        # process stopped before its event reached the bus): the event again, under its own id (consumers
        # deduplicate on it, and the books find their document by our reference before recording one).
        recorder.republish(refund)
        return after_external_refund(refund, recorder=recorder, actor=actor)
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
        refunded = recorder.move(
            refund,
            S.REFUNDED,
            actor=actor,
            details=details,
            changes={**known, **changes, "attention_reason": None},
            extra=extra,
        )
        if refunded.origin is RefundOrigin.EXTERNAL:
            return after_external_refund(refunded, recorder=recorder, actor=actor)
        if refunded.invoice is None:
            # No invoice, no books: the refund is complete here (the workflow has no books step for it).
            return recorder.move(
                refunded, S.COMPLETED, actor=actor, details={"books": "no invoice reference: nothing to book"}
            )
        if refund.attention_reason == OUTCOME_NOT_REPORTED:
            # The workflow stopped waiting before this news came: no books step will run for it by itself.
            return recorder.move(
                refunded,
                S.NEEDS_ATTENTION,
                actor=actor,
                details={"books": "the money moved after the workflow stopped waiting: book it or redrive"},
                changes={"attention_reason": BOOKS_PENDING},
            )
        return refunded
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
    if (
        provider_refund.acquirer_reference
        and provider_refund.acquirer_reference != refund.acquirer_reference
        and status is ProviderRefundStatus.SUCCEEDED
        and _money_out(refund)
        and refund.provider_refund_id == provider_refund.provider_refund_id
    ):
        if refund.acquirer_reference:
            # The network assigns a refund one ARN, and the customer was told the one recorded. Another one is not
            # taken: a webhook-only platform's news cannot be confirmed (Adyen's arn is outside the item's HMAC), and
            # a platform that shows a second one is for a person to look at, not a second message to the customer.
            logger.error(
                "acquirer reference differs from the one recorded: kept the recorded one",
                extra={"refund_id": refund.refund_id, "provider": provider_refund.provider.value},
            )
            return refund
        # The card network's reference usually comes days after the money: the customer's bank traces the refund
        # with it, so the ticket and the timeline are told (once: the next news finds it stored).
        reference = {"acquirer_reference": provider_refund.acquirer_reference}
        refund = recorder.note(
            refund, ACQUIRER_REFERENCE, actor=actor, details=reference, changes=reference, event=ACQUIRER_REFERENCE
        )
    if (
        refund.parent_refund_id
        and refund.acquirer_reference
        and provider_refund.acquirer_reference == refund.acquirer_reference
        and refund.provider_refund_id == provider_refund.provider_refund_id
    ):
        # (again on the next news or read when the parent was not told: its note is written once, by its leg's state)
        tell_parent_of_leg_reference(refund, recorder=recorder, actor=actor)
    return refund


LEG_ACQUIRER_REFERENCE = "LegAcquirerReference"


def tell_parent_of_leg_reference(leg_refund: Refund, *, recorder: RefundRecorder, actor: str) -> Refund | None:
    """A split-tender leg's ARN, on its parent: the parent's leg carries it (its ticket note and view list it) and
    the parent publishes ``RefundAcquirerReference`` naming the leg, the customer's follow-up for that leg (a leg's
    own events never reach the customer: the parent speaks for its legs). Once per leg: a parent whose leg has it
    already is left as it is. Returns the parent as stored (None: no parent, or not a leg of it)."""
    for _ in range(3):
        parent = recorder.repository.find(leg_refund.parent_refund_id or "")
        legs = parent.legs if parent is not None else []
        leg = next((leg for leg in legs if leg.refund_id == leg_refund.refund_id), None)
        if parent is None or leg is None:
            logger.warning("a leg's parent does not list it", extra={"refund_id": leg_refund.refund_id})
            return None
        if leg.acquirer_reference:
            return parent
        if leg.status is not LegStatus.SUCCEEDED:
            # The parent has not counted the leg's money yet: when it does, the leg comes with its ARN, and the
            # parent's first message names it (a follow-up now would reach the customer before that message).
            return parent
        updated = [
            other.model_copy(update={"acquirer_reference": leg_refund.acquirer_reference}) if other is leg else other
            for other in legs
        ]
        details = {
            "leg": leg.index,
            "leg_refund_id": leg_refund.refund_id,
            "acquirer_reference": leg_refund.acquirer_reference,
        }
        try:
            return recorder.note(
                parent,
                LEG_ACQUIRER_REFERENCE,
                actor=actor,
                details=details,
                changes={"legs": updated},
                event=ACQUIRER_REFERENCE,
            )
        except ConcurrentModification:
            continue  # the parent moved meanwhile (its legs, another leg's ARN): read it again
    raise ConcurrentModification(f"{leg_refund.parent_refund_id}: could not record its leg's acquirer reference")


def after_external_refund(refund: Refund, *, recorder: RefundRecorder, actor: str) -> Refund:
    """Where a refund made outside refundflow goes once the provider confirms it (no workflow runs for it):
    COMPLETED unbooked when the merchant books none (``EXTERNAL_REFUND_BOOKING=none``); a person's queue,
    ``external_refund_unbooked``, when no invoice is known (booked by hand); otherwise it stays REFUNDED: its
    ``RefundIssued`` event (origin ``external``, ``books`` the invoice's books platform) is on the bus, and that
    books platform's queue books the credit document (``external.book_external_refund``)."""
    if settings.load(settings.ExternalRefundSettings).booking == "none":
        return recorder.move(
            refund, S.COMPLETED, actor=actor, details={"books": "not booked: EXTERNAL_REFUND_BOOKING is none"}
        )
    if refund.invoice is None:
        return recorder.move(
            refund,
            S.NEEDS_ATTENTION,
            actor=actor,
            details={"books": "refunded outside refundflow and no invoice is known: book the credit by hand"},
            changes={"attention_reason": EXTERNAL_REFUND_UNBOOKED},
        )
    logger.info(
        "refund made outside refundflow: its credit document is booked from the bus",
        extra={"refund_id": refund.refund_id, "books": refund.invoice.system.value},
    )
    return refund


def _money(amount: Money | None) -> dict[str, object] | None:
    return amount.model_dump(mode="json") if amount else None


# ---------------------------------------------------------------------------- provider news (webhooks)


def apply_provider_event(
    event: ProviderEvent,
    *,
    recorder: RefundRecorder,
    provider: RefundProvider,
    unclaimed: list[ProviderRefund] | None = None,
) -> list[Refund]:
    """Apply a verified provider event to the refunds it is about; returns the refunds it touched.

    A delivery is news, not truth: anyone holding the signing secret can sign one, and providers
    deliver out of order and retry for days. So the event only says *which* of our refunds to look
    at; each one is read from the provider (by the provider refund id we stored, or found by our
    reference) and what the provider says is applied. A webhook-only provider cannot be read: there the
    verified news is the only account of the outcome, and it is applied as told. Only forward moves are
    applied, so an older event arriving after a newer one changes nothing.

    News that names only the platform's refund id (no reference of ours) is matched to our refund by the id the
    platform gave it when it was made. Refund news that no refund of ours holds (neither by our reference nor by
    the platform's id) is added to ``unclaimed`` when given (``domain.external`` records it), else ignored. An
    event that carries no refund objects (``charge.refunded`` in current API versions) looks only at our refunds
    on that payment whose outcome is still open: the ones long done are not read again.

    Raises:
        TransientError: the provider could not be read now (nothing was applied; the delivery is retried).
    """
    repository = recorder.repository
    if not provider.capabilities.payment_lookup:
        # The platform cannot be read: its verified news is the only account of what was captured. A platform
        # that can be read is read at the look-up instead, so its payment news changes nothing.
        for payment in event.payments:
            if payment.provider is event.provider:
                repository.record_payment_news(payment)
    candidates: dict[str, tuple[Refund, ProviderRefund | None]] = {}
    owners = _owners_by_provider_refund_id(event, repository)
    for news in event.refunds:
        refund_id = news.refund_id or owners.get(news.provider_refund_id)
        refund = repository.find(refund_id) if refund_id else None
        if refund is None:
            logger.info("provider refund not made by refundflow", extra={"provider_refund_id": news.provider_refund_id})
            if unclaimed is not None and news.refund_id is None:
                unclaimed.append(news)
            continue
        if refund.payment.provider is not event.provider:
            logger.warning("news about a refund of another provider", extra={"refund_id": refund.refund_id})
            continue
        if _awaiting_provider(refund) or _money_out(refund):
            candidates.setdefault(refund.refund_id, (refund, news))
    for provider_refund_id in event.named_refund_ids:
        # a pointer from a body nobody signed: read (pollable platforms only), never believed
        if provider_refund_id not in owners and unclaimed is not None:
            unclaimed.extend(_read_unowned(provider_refund_id, event, provider))
            continue
        named = repository.find(owners[provider_refund_id]) if provider_refund_id in owners else None
        if (
            named is not None
            and named.payment.provider is event.provider
            and named.provider_refund_id
            and (_awaiting_provider(named) or _money_out(named))
        ):
            candidates.setdefault(named.refund_id, (named, None))
    if not event.refunds and event.payment is not None:
        for refund in repository.open_refunds_for_payment(event.provider, event.payment.payment_id):
            # (a split-tender parent is indexed on its first tender's payment but has no refund at any provider:
            # its legs do, and their news names them)
            if _awaiting_provider(refund) and not refund.tenders:
                candidates.setdefault(refund.refund_id, (refund, None))
    touched: list[Refund] = []
    for refund, told in candidates.values():
        truth = _read_at_provider(refund, provider, told)
        if truth is not None:
            # The provider was asked meanwhile, and the refund step often records the same outcome in that time (the
            # platform's answer to its own call): start from what is stored now (a read unit) rather than have the
            # write cancelled by the version it missed (a cancelled transaction is billed in full).
            current = repository.find(refund.refund_id) or refund
            touched.append(apply_provider_outcome(current, truth, recorder=recorder))
    return touched


def _read_unowned(provider_refund_id: str, event: ProviderEvent, provider: RefundProvider) -> list[ProviderRefund]:
    """A refund the news names by the platform's id only (Chargebee's refund transaction, Amazon Pay's REFUND IPN)
    that no refund of ours holds: read from the platform, and handed to ``domain.external`` when the platform does
    not echo our reference on it (a refund made in its dashboard, or one of ours whose id is not stored yet, which
    ``domain.external`` tells apart). A platform that cannot be read is never asked; a refund it does not know
    is nobody's."""
    if provider.capabilities.outcome == "webhook_only":
        return []
    # The platform reads its refund by its own id; a pointer without its payment (Amazon Pay's REFUND IPN) is read
    # under the refund's id, and the payment comes from the platform's answer.
    payment = event.payment or PaymentReference(provider=event.provider, payment_id=provider_refund_id)
    try:
        truth = provider.get_refund(provider_refund_id, payment)
    except (NotFound, RejectedError) as error:
        # Not a refund the platform will show us (unknown, or not a refund of the payment the news named): the
        # news is about nothing refundflow records.
        logger.warning(
            "provider does not show the refund its news named", extra={"provider": provider.name, "code": error.code}
        )
        return []
    return [truth] if truth.refund_id is None and truth.provider is event.provider else []


def _owners_by_provider_refund_id(event: ProviderEvent, repository: RefundStore) -> dict[str, str]:
    """Our refund ids for the news that names only the platform's own refund id (a platform that does not echo
    our reference on every event, such as a refund reversed days later): found by the id the platform gave
    the refund when it was made, which we stored. A refund refundflow never made is in no index entry."""
    unnamed = {news.provider_refund_id for news in event.refunds if not news.refund_id} | set(event.named_refund_ids)
    if not unnamed:
        return {}
    return {key: entry.refund_id for key, entry in repository.refunds_by_provider_refund_id(unnamed).items()}


def _read_at_provider(refund: Refund, provider: RefundProvider, news: ProviderRefund | None) -> ProviderRefund | None:
    """Our refund as the provider holds it now, or None if the provider has none (or cannot say)."""
    capabilities = provider.capabilities
    if capabilities.outcome == "webhook_only":
        if news is None or (refund.provider_refund_id and news.provider_refund_id != refund.provider_refund_id):
            return None
        return news
    if not refund.provider_refund_id:
        if capabilities.find_by_reference:
            return provider.find_refund(refund.refund_id, refund.payment)
        if news is None:
            return None
        # Read the refund the news names; it is ours only if the platform echoes our reference on it.
        truth = provider.get_refund(news.provider_refund_id, refund.payment)
        return truth if truth.refund_id == refund.refund_id else None
    try:
        return provider.get_refund(refund.provider_refund_id, refund.payment)
    except NotFound:
        # The id came from the provider's own answer: a provider that no longer knows it (another
        # account's key?) is for a person to look at; the refund is left as it is.
        logger.error("provider does not know our refund", extra={"refund_id": refund.refund_id})
        return None
