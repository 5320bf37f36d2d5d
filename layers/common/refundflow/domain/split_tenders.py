"""A refund across split tenders: the parent refund and its legs (functions/split_tender, ``refund-split``).

An order paid with several payments (a card and a gift card, two cards, PayPal and a card, a deposit and a final
payment) is refunded across them. The parent is a refund with ``tenders``; it runs through the same workflow as a
refund of one payment, and its platform steps come here (``StepResult.provider`` ``split``):

- ``look_up_payment``: a rule the request names that the merchant's policy does not allow rejects the parent here,
  before anything is decided or reserved (``allocation_rule_not_allowed``). Each payment tender is read by its own
  platform's function (``read_payment``), which opens or updates that payment's refundable balance; a store-credit
  tender can take back what the order paid with store credit (its ``paid``, from the request's verified source:
  refundflow's ledger has no record of checkout redemptions, the shop does). The parent's amount is the one asked
  for, or all the tenders still have. The policy then decides once, on the parent's total (velocity counts the
  parent, never a leg), and the parent holds nothing: each leg reserves its share on its own payment.
- ``refund``: the merchant's policy divides the amount (``refundflow.policy.allocate_legs``: the request's rule when
  the policy allows it, else the policy's, fees per tender from the policy); the legs are recorded on the parent
  (REFUND_SUBMITTED); a store-credit leg is credited to the customer's store credit at once
  (``refundflow.domain.store_credit``, exactly once across retries: SUCCEEDED); each payment leg is created as a
  refund of its own (a deterministic id, its own provider refund and idempotency key, no invoice, no ticket) and its
  workflow started; the parent waits (REFUND_PENDING) in the workflow's outcome wait.
- ``poll_refund``: a store-credit leg a remedy added is credited; the legs' refunds are read; every leg paid: the
  parent is REFUNDED (then its books, its one invoice); none paid and one failed: FAILED; some paid and one failed:
  NEEDS_ATTENTION, never silently short, with the remedies a person may choose recorded (retry the leg, move its
  amount to a tender with room, store credit), in words on the failed leg for the ticket's note.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from refundflow.domain.allocation import AllocationRule, LegAllocation, TenderBalance
from refundflow.domain.deployment import AMOUNT_NOT_REPRESENTABLE, ensure_representable, payment_problem
from refundflow.domain.intake import WorkflowTiming
from refundflow.domain.recorder import PROVIDER_REVERSED, RefundRecorder, step_result
from refundflow.domain.waiting import WaitFor, resume_waiting
from refundflow.errors import ConcurrentModification, InvalidRequest, PolicyViolation
from refundflow.models import (
    FailureRecord,
    LegStatus,
    PaymentReference,
    Refund,
    SourceReference,
    SplitLeg,
    StepResult,
    Tender,
    TenderKind,
    TenderPayment,
)
from refundflow.money import Money
from refundflow.ports import StoreCreditLedger, TaskCallbacks, WorkflowStarter
from refundflow.status import RefundStatus

if TYPE_CHECKING:
    from refundflow.policy import Policy

S = RefundStatus
ACTOR = "step:SplitTender"
# The decision a leg is approved by: its parent's (EvaluatePolicy, refundflow.domain.policy_step).
PARENT_RULE_ID = "split_tender_parent"
# A leg failed after others paid: a person chooses a remedy (the parent's audit entry lists them).
LEG_FAILED = "split_leg_failed"
LEGS_CREATED = "SplitLegsStarted"
LEGS_UPDATED = "SplitLegsUpdated"
STORE_CREDIT_CREDITED = "StoreCreditCredited"
# How many remedies a failed leg lists in words (SplitLeg.remedies holds 4): retry, two tenders, store credit.
_MOVES_IN_WORDS = 2
# The most units a leg is lowered by to fit its platform's step (the largest step in the catalog is 100).
_MAX_STEP = 10_000
# A leg refund's status, as its parent counts it.
_PAID = frozenset({S.REFUNDED, S.INVOICE_UPDATED, S.COMPLETED, S.SETTLED})
_NOTHING_PAID = frozenset({S.REJECTED, S.FAILED})
# Where a leg is done as its parent counts it (its parent is moved and resumed: ``after_leg``).
LEG_COUNTED = _PAID | _NOTHING_PAID
# Where a parent waits for its legs.
_AWAITING_LEGS = frozenset({S.REFUND_SUBMITTED, S.REFUND_PENDING})
# Where a parent's legs have all paid: a leg the provider reverses later is news for it (``after_leg``).
_LEGS_PAID = frozenset({S.REFUNDED, S.INVOICE_UPDATED, S.COMPLETED, S.SETTLED})
# A leg's own refund (or the parent, waiting for a remedy) tells a person of a leg the provider reversed.
LEG_REVERSED = "SplitLegReversed"


class TenderReader(Protocol):
    """Reads one tender's payment through its platform's function (``read_payment``)."""

    def read(self, payment: PaymentReference) -> TenderPayment: ...


def leg_refund_id(parent_refund_id: str, index: int) -> str:
    """A leg's refund id: derived from its parent's and its number, so a retried step finds the leg it made."""
    return f"rf_{hashlib.sha256(f'split|{parent_refund_id}|{index}'.encode()).hexdigest()[:32]}"


# ---------------------------------------------------------------------------- LookUpPayment


def look_up_payment(refund_id: str, *, recorder: RefundRecorder, reader: TenderReader, policy: Policy) -> StepResult:
    """Check the requested allocation rule against the merchant's policy, read every tender (a payment's platform
    function opens its refundable balance; store credit takes back at most what the order paid with it) and fix the
    parent's amount: the one asked for, or all the tenders still have.

    Raises:
        PolicyViolation: a rule the policy does not allow (``allocation_rule_not_allowed``: the parent is REJECTED
            before anything is decided or reserved), a tender in another currency (``currency_mismatch``), nothing
            left on any tender (``nothing_refundable``), more asked than the tenders have left (``exceeds_tenders``).
        InvalidRequest: the amount cannot be represented by a tender's platform or the books.
        NotFound, PaymentNotKnown, TransientError, RejectedError: from a tender's platform.
    """
    refund = recorder.repository.get(refund_id)
    if refund.status is not S.VALIDATED or refund.amount is not None:
        return recorder.replay(refund)
    check_rule(refund, policy)
    given_back = store_credit_given_back(refund, recorder=recorder)
    read = [_read(tender, reader, given_back) for tender in refund.tenders]
    currency = refund.requested_amount.currency if refund.requested_amount else read[0].captured.currency
    others = sorted({tender.captured.currency for tender in read} - {currency})
    if others:
        raise PolicyViolation(
            f"a refund in {currency} across tenders paid in {', '.join(others)}", code="currency_mismatch"
        )
    left = sum(max(tender.remaining.minor_units, 0) for tender in read)
    if left <= 0:
        raise PolicyViolation("nothing is left to refund on any of the order's tenders", code="nothing_refundable")
    amount = refund.requested_amount or Money.of(left, currency)
    if amount.minor_units > left:
        raise PolicyViolation(
            f"{amount} asked, the tenders have {Money.of(left, currency)} left to refund", code="exceeds_tenders"
        )
    for tender in refund.tenders:
        if tender.payment is not None:
            ensure_representable(amount, tender.payment, refund.invoice)
    refund = recorder.note(
        refund,
        "PaymentLookedUp",
        actor=ACTOR,
        details={
            "tenders": [_tender_details(index, tender) for index, tender in enumerate(read)],
            "remaining": Money.of(left, currency).model_dump(mode="json"),
            "amount": amount.model_dump(mode="json"),
        },
        changes={"amount": amount},
    )
    return step_result(refund)


def check_rule(refund: Refund, policy: Policy) -> AllocationRule:
    """The rule the parent will be divided by: the request's when the merchant's policy allows it, else the policy's.

    Raises:
        PolicyViolation: ``allocation_rule_not_allowed`` (the request named a rule the policy does not allow).
    """
    from refundflow.policy.split_tenders import AllocationRuleNotAllowed

    try:
        return policy.split_tenders.rule_for(refund.allocation_rule)
    except AllocationRuleNotAllowed as refused:
        raise PolicyViolation(refused.message, code=AllocationRuleNotAllowed.code) from refused


class _StoreCreditRead:
    """A store-credit tender as the look-up sees it: it can take back what the order paid with store credit, less
    what the order's earlier refunds already credited back to store credit."""

    def __init__(self, paid: Money, given_back: int = 0) -> None:
        self.payment = None
        self.captured = paid
        self.refunded = Money.of(min(given_back, paid.minor_units), paid.currency)
        self.remaining = Money.of(paid.minor_units - self.refunded.minor_units, paid.currency)
        self.captured_at = None


def _read(tender: Tender, reader: TenderReader, given_back: int = 0) -> TenderPayment | _StoreCreditRead:
    if tender.payment is None:
        assert tender.paid is not None  # Tender's validator: a store-credit tender carries what was paid with it
        return _StoreCreditRead(tender.paid, given_back)
    return reader.read(tender.payment)


def store_credit_given_back(refund: Refund, *, recorder: RefundRecorder) -> int:
    """What the order's other split refunds (those naming any of this one's payments) credited or are crediting
    back to its store-credit tender, in minor units: a second refund of the same order must not take back the store
    credit a first one already returned (``paid`` is what the order paid, not what is left). A store-credit leg a
    remedy added (``replaces``) carries a failed payment leg's amount, not the order's store credit: not counted."""
    others: dict[str, Refund] = {}
    for tender in refund.tenders:
        if tender.payment is None:
            continue
        for other in recorder.repository.refunds_for_payment(tender.payment.provider, tender.payment.payment_id):
            if other.refund_id != refund.refund_id and other.tenders and other.status not in _NOTHING_PAID:
                others[other.refund_id] = other
    return sum(
        leg.amount.minor_units
        for other in others.values()
        for leg in other.legs
        if leg.kind is TenderKind.STORE_CREDIT and leg.replaces is None and leg.status is not LegStatus.FAILED
    )


def _tender_details(index: int, tender: TenderPayment | _StoreCreditRead) -> dict[str, Any]:
    return {
        "tender": index,
        "payment": tender.payment.model_dump(mode="json") if tender.payment else "store_credit",
        "captured": tender.captured.model_dump(mode="json"),
        "refunded": tender.refunded.model_dump(mode="json"),
        "remaining": tender.remaining.model_dump(mode="json"),
    }


def tenders_remaining(refund: Refund, *, recorder: RefundRecorder) -> Money | None:
    """What the parent's tenders have left to refund, as their balances say (what the policy sees as
    ``remaining``); None when a tender was not looked up."""
    total = 0
    currency = refund.currency
    for tender in refund.tenders:
        if tender.payment is None:
            assert tender.paid is not None  # a store-credit tender (Tender's validator)
            total += _StoreCreditRead(
                tender.paid, store_credit_given_back(refund, recorder=recorder)
            ).remaining.minor_units
            continue
        balance = recorder.repository.get_balance(tender.payment.provider, tender.payment.payment_id)
        if balance is None:
            return None
        total += max(balance.remaining.minor_units, 0)
        currency = balance.remaining.currency
    return Money.of(total, currency) if currency else None


# ---------------------------------------------------------------------------- RefundWithProvider


def issue_refund(
    refund_id: str,
    *,
    recorder: RefundRecorder,
    reader: TenderReader,
    starter: WorkflowStarter,
    timing: WorkflowTiming,
    policy: Policy,
    ledger: StoreCreditLedger,
) -> StepResult:
    """Divide the approved amount into legs by the merchant's policy, record them on the parent, credit the
    store-credit legs, create each payment leg's refund and start its workflow; the parent then waits for its legs
    (REFUND_PENDING). Every part is idempotent: a retry after a crash finds the legs recorded, each store-credit
    entry by its id, each leg refund by its id, each workflow by its execution name.

    Raises:
        AllocationImpossible: the tenders no longer have the amount, or the merchant's expression failed (a
            RejectedError: the parent fails, nothing was sent).
        PolicyViolation: the policy no longer allows the refund's rule (changed since the look-up).
        TransientError / GuardUnavailable: a tender or the ledger could not be read or written, or a leg's workflow
            could not be started.
    """
    from refundflow.policy import allocate_legs

    refund = recorder.repository.get(refund_id)
    if refund.status is S.APPROVED:
        rule = check_rule(refund, policy)
        assert refund.amount is not None  # approved refunds have one (EvaluatePolicy)
        given_back = store_credit_given_back(refund, recorder=recorder)
        balances = [
            _balance(index, tender.kind, _read(tender, reader, given_back))
            for index, tender in enumerate(refund.tenders)
        ]
        shares = fit_to_platforms(
            allocate_legs(policy, refund.amount, balances, rule.value, reason=refund.reason), balances
        )
        legs = [
            SplitLeg(
                index=number,
                tender_index=share.index,
                payment=share.payment,
                kind=share.kind,
                amount=share.amount,
                status=LegStatus.SUBMITTED,
                refund_id=None if share.payment is None else leg_refund_id(refund.refund_id, number),
            )
            for number, share in enumerate(shares)
        ]
        refund = recorder.move(
            refund,
            S.REFUND_SUBMITTED,
            actor=ACTOR,
            details={"allocation_rule": rule.value, "legs": [_leg_details(leg) for leg in legs]},
            changes={"legs": legs, "allocation_rule": rule.value},
        )
    if refund.status is S.REFUND_SUBMITTED:
        refund = credit_store_credit_legs(refund, recorder=recorder, ledger=ledger)
        started = start_legs(refund, recorder=recorder, starter=starter, timing=timing)
        refund = recorder.move(
            refund, S.REFUND_PENDING, actor=ACTOR, details={"legs_started": started}, changes={"attention_reason": None}
        )
        return step_result(refund)
    return recorder.replay(refund)


def fit_to_platforms(shares: Sequence[LegAllocation], tenders: Sequence[TenderBalance]) -> list[LegAllocation]:
    """The legs as their platforms can refund them exactly: a share a platform cannot carry (the units
    ``proportional`` rounds to: Stripe takes KWD, BHD, JOD, OMR and TND only in steps of 0.010 and ISK in whole
    kronur, PayPal HUF and TWD without decimals; the catalog's currency rules) is lowered to the nearest amount it
    can, and what that leaves goes to the first tender (by index, those with a leg first) that can carry it within
    what it has left; store credit carries any amount. The legs still add up to the amount exactly.

    Raises:
        InvalidRequest: ``amount_not_representable``, no tender can carry what is left (nothing has been sent).
    """
    if not shares:
        return []
    currency = shares[0].amount.currency
    by_index = {tender.index: tender for tender in tenders}

    def carries(tender: TenderBalance, minor: int) -> bool:
        if minor == 0 or tender.payment is None:
            return True
        return (
            minor <= tender.remaining.minor_units and payment_problem(Money.of(minor, currency), tender.payment) is None
        )

    amounts = {share.index: share.amount.minor_units for share in shares}
    left = 0
    for index, minor in amounts.items():
        # A platform's step is a few units (Stripe ISK: 100); a share no step near it fits is refused below.
        lowered = next(
            (lower for lower in range(minor, max(minor - _MAX_STEP, -1), -1) if carries(by_index[index], lower)), None
        )
        if lowered is None:
            raise InvalidRequest(
                f"{by_index[index].kind.value} tender {index}'s platform cannot carry {Money.of(minor, currency)}",
                code=AMOUNT_NOT_REPRESENTABLE,
            )
        left += minor - lowered
        amounts[index] = lowered
    candidates = sorted(tenders, key=lambda tender: (amounts.get(tender.index, 0) == 0, tender.index))
    for tender in candidates:
        if left == 0:
            break
        have = amounts.get(tender.index, 0)
        room = max(tender.remaining.minor_units, 0) - have
        take = next((give for give in range(min(left, room), 0, -1) if carries(tender, have + give)), 0)
        amounts[tender.index] = have + take
        left -= take
    if left:
        raise InvalidRequest(
            f"{Money.of(left, currency)} of the refund cannot be carried exactly by any of its tenders' platforms",
            code=AMOUNT_NOT_REPRESENTABLE,
        )
    return [
        LegAllocation(index, by_index[index].payment, by_index[index].kind, Money.of(minor, currency))
        for index, minor in sorted(amounts.items())
        if minor > 0
    ]


def credit_store_credit_legs(parent: Refund, *, recorder: RefundRecorder, ledger: StoreCreditLedger) -> Refund:
    """Credit the parent's store-credit legs not yet credited to the customer's store credit (each entry once,
    ``<refund_id>#leg<n>``, whatever the retries) and record them SUCCEEDED, with an audit entry on the parent.

    Raises:
        TransientError / GuardUnavailable: the ledger was busy or unreachable (the step is retried: nothing is
            credited twice).
        IdempotencyConflict: a leg's entry exists with another amount or customer.
    """
    from refundflow.domain.store_credit import credit_store_credit_leg

    waiting = [leg for leg in parent.legs if leg.kind is TenderKind.STORE_CREDIT and leg.status is LegStatus.SUBMITTED]
    if not waiting:
        return parent
    entries = {leg.index: credit_store_credit_leg(ledger, parent, leg) for leg in waiting}
    legs = [
        leg.model_copy(update={"status": LegStatus.SUCCEEDED}) if leg.index in entries else leg for leg in parent.legs
    ]
    return recorder.note(
        parent,
        STORE_CREDIT_CREDITED,
        actor=ACTOR,
        details={
            "entries": [
                {"leg": index, "entry_id": entry.entry_id, "amount": entry.amount.model_dump(mode="json")}
                for index, entry in entries.items()
            ]
        },
        changes={"legs": legs},
    )


def _balance(index: int, kind: Any, tender: TenderPayment | _StoreCreditRead) -> TenderBalance:
    return TenderBalance(
        index=index,
        payment=tender.payment,
        kind=kind,
        captured=tender.captured,
        remaining=tender.remaining,
        captured_at=tender.captured_at,
    )


def _leg_details(leg: SplitLeg) -> dict[str, Any]:
    return leg.model_dump(mode="json", exclude_none=True)


def start_legs(
    parent: Refund, *, recorder: RefundRecorder, starter: WorkflowStarter, timing: WorkflowTiming
) -> list[str]:
    """Create each leg's refund (once: its id is derived) and start its workflow (once: named after it). A leg
    refund already past RECEIVED is running: nothing is started again. Returns the leg refund ids."""
    started = []
    for leg in parent.legs:
        if leg.refund_id is None or leg.status is not LegStatus.SUBMITTED:
            continue
        outcome = recorder.repository.create(
            leg_refund(parent, leg),
            actor=f"split:{parent.refund_id}",
            delivery=None,
            details={
                "parent_refund_id": parent.refund_id,
                "leg": leg.index,
                "tender": leg.tender_index,
                "payment": leg.payment.model_dump(mode="json") if leg.payment else None,
                "requested_amount": leg.amount.model_dump(mode="json"),
            },
            entry_type="SplitLegRequested",
        )
        if outcome.created or outcome.refund.status is S.RECEIVED:
            recorder.republish(outcome.refund)
            starter.start(leg.refund_id, {"refund_id": leg.refund_id, "timing": timing.as_input()})
        started.append(leg.refund_id)
    return started


def leg_refund(parent: Refund, leg: SplitLeg) -> Refund:
    """The refund of one leg: the parent's request on the leg's payment for the leg's amount, without the invoice
    (the parent books once), the lines or the ticket (the parent's write-back tells the desk once)."""
    assert leg.refund_id is not None
    assert leg.payment is not None  # a payment leg (a store-credit leg has no refund of its own)
    reference = f"{parent.source.reference}#leg{leg.index}"
    if len(reference) > 128:
        reference = f"{hashlib.sha256(parent.source.reference.encode()).hexdigest()[:48]}#leg{leg.index}"
    return Refund(
        refund_id=leg.refund_id,
        status=S.RECEIVED,
        version=1,
        created_at=parent.created_at,
        updated_at=parent.updated_at,
        payment=leg.payment,
        requested_amount=leg.amount,
        reason=parent.reason,
        customer=parent.customer,
        source=SourceReference(system=parent.source.system, reference=reference),
        source_platform=parent.source_platform,
        order=parent.order,
        note=f"Leg {leg.index} of split-tender refund {parent.refund_id}.",
        request_fingerprint=hashlib.sha256(f"{parent.request_fingerprint}|{leg.index}".encode()).hexdigest(),
        correlation_id=parent.correlation_id,
        parent_refund_id=parent.refund_id,
    )


# ---------------------------------------------------------------------------- PollRefundOutcome


def poll_refund(
    refund_id: str,
    *,
    recorder: RefundRecorder,
    starter: WorkflowStarter,
    timing: WorkflowTiming,
    ledger: StoreCreditLedger,
) -> StepResult:
    """Credit a store-credit leg a remedy added, read the legs' refunds and move the parent by what they add up to
    (see the module's docstring)."""
    repository = recorder.repository
    parent = repository.get(refund_id)
    if parent.status not in _AWAITING_LEGS:
        return recorder.replay(parent)
    parent = credit_store_credit_legs(parent, recorder=recorder, ledger=ledger)
    found = _leg_refunds(parent, recorder=recorder)
    if found is None:
        # The step stopped between recording the legs and creating them: create them now.
        start_legs(parent, recorder=recorder, starter=starter, timing=timing)
        return step_result(parent)
    legs = [_leg_now(leg, found.get(leg.refund_id or "")) for leg in parent.legs]
    return step_result(aggregate(parent, legs, recorder=recorder))


def _leg_refunds(parent: Refund, *, recorder: RefundRecorder) -> dict[str, Refund | None] | None:
    """The parent's leg refunds by id; None when one was not created yet."""
    found = {leg.refund_id: recorder.repository.find(leg.refund_id) for leg in parent.legs if leg.refund_id}
    return None if any(refund is None for refund in found.values()) else found


def after_leg(
    parent_refund_id: str, leg_status: RefundStatus, *, recorder: RefundRecorder, callbacks: TaskCallbacks
) -> bool:
    """A leg reached where its parent counts it (paid, or failed without paying), or needs a person: the parent is
    moved by its legs now and its workflow resumed from the outcome wait, rather than at the wait's end
    (RefundOutcomeWaitSeconds). A leg the provider reversed after it paid (NEEDS_ATTENTION
    ``provider_reversed_refund``) fails its leg of the parent, even after the parent completed
    (``leg_reversed``). Called by the function that moved the leg (its payment platform's); anything it cannot do
    now is left to the parent's own poll. Returns True if the parent's workflow was resumed.

    Raises:
        TransientError: the parent's workflow could not be told (its poll still finds the legs).
    """
    if leg_status not in LEG_COUNTED and leg_status is not S.NEEDS_ATTENTION:
        return False
    for _ in range(3):
        parent = recorder.repository.find(parent_refund_id)
        if parent is None:
            return False
        if parent.status not in _AWAITING_LEGS:
            try:
                leg_reversed(parent, recorder=recorder)
            except ConcurrentModification:
                continue
            return False
        found = _leg_refunds(parent, recorder=recorder)
        if found is None:
            return False
        legs = [_leg_now(leg, found.get(leg.refund_id or "")) for leg in parent.legs]
        try:
            parent = aggregate(parent, legs, recorder=recorder)
        except ConcurrentModification:
            continue  # the parent's poll (or another leg) moved it meanwhile: read it again
        return resume_waiting(parent, WaitFor.REFUND_OUTCOME, repository=recorder.repository, callbacks=callbacks)
    return False


def leg_reversed(parent: Refund, *, recorder: RefundRecorder) -> Refund:
    """A parent whose legs all paid (REFUNDED to SETTLED), or that waits for a person, learns that a leg it
    counted as paid was reversed by its provider (the leg's refund is NEEDS_ATTENTION
    ``provider_reversed_refund``: the money is back with the merchant). The parent is never left silently
    COMPLETED: a parent whose legs had all paid goes to NEEDS_ATTENTION ``split_leg_failed:<leg>`` with the
    remedies (as a leg that failed before it paid), so the route ``POST /refunds/{id}/legs/{leg}/remedy`` sends the
    amount again, elsewhere or to store credit; a parent already waiting for a person records the leg as failed
    (its poll after the remedy counts it). Returns the parent as stored (unchanged when no counted leg was
    reversed)."""
    if parent.status not in _LEGS_PAID and parent.status is not S.NEEDS_ATTENTION:
        return parent
    found = {leg.refund_id: recorder.repository.find(leg.refund_id) for leg in parent.legs if leg.refund_id}
    legs = [
        _leg_now(leg, found.get(leg.refund_id or "")) if leg.status is LegStatus.SUCCEEDED else leg
        for leg in parent.legs
    ]
    reversed_now = [now for now, before in zip(legs, parent.legs, strict=True) if now.status is not before.status]
    if not reversed_now:
        return parent
    details: dict[str, Any] = {
        "reversed_legs": [leg.index for leg in reversed_now],
        "legs": [_leg_details(leg) for leg in legs],
    }
    if parent.status is S.NEEDS_ATTENTION:
        return recorder.note(parent, LEG_REVERSED, actor=ACTOR, details=details, changes={"legs": legs})
    return _needs_remedy(parent, legs, reversed_now[0], details=details, recorder=recorder)


def _needs_remedy(
    parent: Refund, legs: Sequence[SplitLeg], leg: SplitLeg, *, details: dict[str, Any], recorder: RefundRecorder
) -> Refund:
    """The parent needs a person to choose a remedy for ``leg`` (failed after others paid)."""
    remedies = proposed_remedies(parent, leg, legs, recorder=recorder)
    worded = [
        other.model_copy(update={"remedies": remedies_in_words(parent, other, remedies)})
        if other.index == leg.index
        else other
        for other in legs
    ]
    return recorder.move(
        parent,
        S.NEEDS_ATTENTION,
        actor=ACTOR,
        details={**details, "failed_leg": leg.index, "failure": leg.failure, "remedies": remedies},
        changes={"legs": worded, "attention_reason": f"{LEG_FAILED}:{leg.index}"},
    )


def _leg_now(leg: SplitLeg, refund: Refund | None) -> SplitLeg:
    if refund is None or leg.status is LegStatus.FAILED:
        return leg
    if refund.status is S.NEEDS_ATTENTION and refund.attention_reason == PROVIDER_REVERSED:
        # Paid, then reversed by its provider (before or after the parent counted it): the money is back with the
        # merchant, so the leg has failed whatever it was recorded as.
        return leg.model_copy(
            update={
                "status": LegStatus.FAILED,
                "failure": PROVIDER_REVERSED,
                "provider_refund_id": refund.provider_refund_id,
            }
        )
    if leg.status is LegStatus.SUCCEEDED:
        return leg
    changes: dict[str, Any] = {
        "provider_refund_id": refund.provider_refund_id,
        "acquirer_reference": refund.acquirer_reference,
    }
    if refund.status in _PAID:
        changes["status"] = LegStatus.SUCCEEDED
    elif refund.status in _NOTHING_PAID:
        changes["status"] = LegStatus.FAILED
        changes["failure"] = refund.failure.code if refund.failure else refund.status.value.lower()
    return leg.model_copy(update=changes)


def aggregate(parent: Refund, legs: Sequence[SplitLeg], *, recorder: RefundRecorder) -> Refund:
    """Move the parent by its legs: every leg paid -> REFUNDED (COMPLETED without an invoice); every leg done and
    none paid -> FAILED; a leg failed after another paid -> NEEDS_ATTENTION with the remedies; a leg that needs a
    person -> NEEDS_ATTENTION until it is resolved; otherwise the parent keeps waiting (the legs seen so far are
    recorded when they changed)."""
    details = {"legs": [_leg_details(leg) for leg in legs]}
    changes: dict[str, Any] = {"legs": list(legs)}
    pending = [leg for leg in legs if leg.status is LegStatus.SUBMITTED]
    # A failed leg a remedy replaced (a new leg of its amount) no longer counts: its replacement does.
    replaced = {leg.replaces for leg in legs if leg.replaces is not None}
    failed = [leg for leg in legs if leg.status is LegStatus.FAILED and leg.index not in replaced]
    paid = [leg for leg in legs if leg.status is LegStatus.SUCCEEDED]
    if failed and paid and not pending:
        return _needs_remedy(parent, legs, failed[0], details=details, recorder=recorder)
    if pending:
        if list(legs) != list(parent.legs):
            return recorder.note(parent, LEGS_UPDATED, actor=ACTOR, details=details, changes=changes)
        return parent
    if failed:
        failure = FailureRecord(
            code="split_legs_failed",
            message="; ".join(f"leg {leg.index} ({_where(leg)}): {leg.failure}" for leg in failed)[:2000],
        )
        return recorder.move(parent, S.FAILED, actor=ACTOR, details=details, changes={**changes, "failure": failure})
    refunded = recorder.move(
        parent, S.REFUNDED, actor=ACTOR, details=details, changes={**changes, "attention_reason": None}
    )
    if refunded.invoice is None:
        return recorder.move(
            refunded, S.COMPLETED, actor=ACTOR, details={"books": "no invoice reference: nothing to book"}
        )
    return refunded


def proposed_remedies(
    parent: Refund, failed: SplitLeg, legs: Sequence[SplitLeg], *, recorder: RefundRecorder
) -> list[dict[str, Any]]:
    """What a person may do with a failed leg's amount: send it again to the same tender, move it to another
    tender that still has room for it (its balance now), or to store credit."""
    remedies: list[dict[str, Any]] = [{"action": "retry", "leg": failed.index, "tender": failed.tender_index}]
    for index, tender in enumerate(parent.tenders):
        if index == failed.tender_index or tender.payment is None:
            continue  # store credit takes the amount through its own remedy (no room to check: it is ours)
        if payment_problem(failed.amount, tender.payment):
            continue  # its platform cannot carry the amount (another currency rule): not a remedy
        balance = recorder.repository.get_balance(tender.payment.provider, tender.payment.payment_id)
        if balance is not None and balance.remaining.minor_units >= failed.amount.minor_units:
            remedies.append(
                {
                    "action": "move_to_tender",
                    "leg": failed.index,
                    "tender": index,
                    "room": balance.remaining.model_dump(mode="json"),
                }
            )
    remedies.append({"action": "store_credit", "leg": failed.index, "amount": failed.amount.model_dump(mode="json")})
    return remedies


def _where(leg: SplitLeg) -> str:
    """A leg's tender in a few words: ``card stripe``, ``store credit``."""
    return "store credit" if leg.payment is None else f"{leg.kind.value} {leg.payment.provider.value}"


def remedies_in_words(parent: Refund, failed: SplitLeg, remedies: Sequence[dict[str, Any]]) -> list[str]:
    """The proposed remedies for the person who decides, in words (``SplitLeg.remedies``: the ticket's note lists
    them): each names the action to choose (``POST /refunds/{id}/legs/{leg}/remedy``), the amount and where it goes."""
    words = []
    moves = 0
    for remedy in remedies:
        action = remedy["action"]
        if action == "retry":
            words.append(f"retry: send {failed.amount} to leg {failed.index + 1}'s {_where(failed)} again")
        elif action == "move_to_tender" and moves < _MOVES_IN_WORDS:
            moves += 1
            tender = parent.tenders[remedy["tender"]]
            where = f"{tender.kind.value} {tender.payment.provider.value}" if tender.payment else "store credit"
            room = Money.model_validate(remedy["room"])
            words.append(
                f"move_to_tender {remedy['tender']}: send {failed.amount} to tender {remedy['tender'] + 1} ({where}, "
                f"{room} left to refund)"
            )
        elif action == "store_credit":
            words.append(f"store_credit: credit {failed.amount} to the customer's store credit")
    return [word[:200] for word in words[:4]]
