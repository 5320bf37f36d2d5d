"""Accepting a refund request: store it once, start its workflow once, whatever the redeliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from refundflow.domain.deployment import ensure_deployed
from refundflow.domain.recorder import RefundRecorder
from refundflow.errors import ConcurrentModification, Forbidden, IdempotencyConflict, InvalidRequest, ReturnStepExists
from refundflow.ids import derive_refund_id
from refundflow.ids import request_fingerprint as fingerprint_of
from refundflow.models import Refund, RefundRequestBody, ReturnStep, Tender
from refundflow.ports import RefundStore, RequestedRefund, StatusMove, VerifiedSource, WorkflowStarter
from refundflow.request_check import ALLOCATION_RULE_NAMES
from refundflow.settings import WorkflowTimingSettings
from refundflow.status import RefundStatus

GENERIC_SOURCE = "refund-requests"
# The audit entry of a return step (domain.returns), also written here for steps reported before the request.
RETURN_UPDATED = "ReturnUpdated"


@dataclass(frozen=True)
class WorkflowTiming:
    """Waits of the Standard workflow, passed in each execution's input (visible in its history)."""

    refund_outcome_wait_seconds: int
    books_retry_wait_seconds: int
    approval_escalation_seconds: int
    return_wait_seconds: int = 2_592_000

    def as_input(self) -> dict[str, int]:
        return {
            "refund_outcome_wait_seconds": self.refund_outcome_wait_seconds,
            "books_retry_wait_seconds": self.books_retry_wait_seconds,
            "approval_escalation_seconds": self.approval_escalation_seconds,
            "return_wait_seconds": self.return_wait_seconds,
        }


def timing_from(config: WorkflowTimingSettings) -> WorkflowTiming:
    return WorkflowTiming(
        refund_outcome_wait_seconds=config.refund_outcome_wait_seconds,
        books_retry_wait_seconds=config.books_retry_wait_seconds,
        approval_escalation_seconds=config.approval_escalation_seconds,
        return_wait_seconds=config.return_wait_seconds,
    )


@dataclass(frozen=True)
class Accepted:
    refund: Refund
    duplicate: bool


def source_refund_id(channel: str, system: str, reference: str) -> str:
    """The refund id a request names: derived from the channel it came through (``refund-requests``, or the help
    desk whose ticket asked) and the source system's reference, so every redelivery lands on the same refund."""
    return derive_refund_id(channel, f"{system}:{reference}")


def request_fingerprint(body: RefundRequestBody) -> str:
    return fingerprint_of(body.model_dump(mode="json", by_alias=True))


def accept_refund_request(
    body: RefundRequestBody,
    *,
    source: VerifiedSource,
    delivery_id: str,
    recorder: RefundRecorder,
    starter: WorkflowStarter,
    timing: WorkflowTiming,
    correlation_id: str | None = None,
    channel: str = GENERIC_SOURCE,
) -> Accepted:
    """Store the request as a RECEIVED refund and start its workflow, exactly once.

    The refund id is derived from the source system and its reference, so a redelivery, or the same
    request sent again under another delivery id, lands on the same refund and starts nothing new.

    ``channel`` is where it came in: ``refund-requests``, or a help desk's name when its ticket asked (its
    refund events then go back to that ticket). ``source`` is the system whose secret verified the delivery
    (every trigger passes the one it verified): the body's ``source.system`` must name it, so that an
    ``approved_by`` claim is always the claim of a known source, which the policy's ``sources:`` section
    trusts with some roles or none.

    Raises:
        Forbidden: ``source.system`` is not the source whose secret signed the delivery (source_mismatch).
        InvalidRequest: no connector for the payment provider or books system (nothing is stored).
        IdempotencyConflict: the same refund (or delivery id) arrived before with other content.
        GuardUnavailable, TransientError: the store could not be reached; nothing was started.
    """
    if body.source.system != source.name:
        raise Forbidden(
            f"source.system {body.source.system!r} is not the source whose secret signed this delivery",
            code="source_mismatch",
        )
    tenders = split_tenders(body)
    payment = body.first_payment
    for tender_payment in [tender.payment for tender in tenders] or [payment]:
        if tender_payment is not None:  # a store-credit tender is refundflow's own ledger, always there
            ensure_deployed(tender_payment, body.invoice)
    repository: RefundStore = recorder.repository
    refund_id = source_refund_id(channel, body.source.system, body.source.reference)
    draft = requested_refund(
        body,
        refund_id=refund_id,
        tenders=tenders,
        channel=channel,
        at=datetime.now(UTC),
        correlation_id=correlation_id or str(uuid.uuid4()),
    )
    fingerprint = draft.request_fingerprint
    outcome = repository.create(
        draft,
        actor=f"{channel}:{body.source.system}",
        delivery=(channel, delivery_id),
        details={**_request_summary(draft, delivery_id), "verified_source": source.name},
    )
    refund = outcome.refund
    if not outcome.created and refund.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            f"refund request {body.source.system}/{body.source.reference} was already received with other content"
        )
    if outcome.created and channel == GENERIC_SOURCE:
        # A returns system may have reported steps of this return before the request came (domain.returns).
        refund = _record_early_return_steps(refund, recorder=recorder)
    # The first delivery's event may have failed to publish after the refund was stored.
    if outcome.created or refund.status is RefundStatus.RECEIVED:
        recorder.republish(refund)
    # Start on first sight, and again while the refund has not moved: a crash between storing and
    # starting heals on the next delivery (the execution name makes the start idempotent).
    if outcome.created or refund.status is RefundStatus.RECEIVED:
        starter.start(refund.refund_id, {"refund_id": refund.refund_id, "timing": timing.as_input()})
    return Accepted(refund=refund, duplicate=not outcome.created)


def requested_refund(
    body: RefundRequestBody,
    *,
    refund_id: str,
    tenders: list[Tender],
    channel: str,
    at: datetime,
    correlation_id: str,
) -> Refund:
    """The RECEIVED refund a request asks for (what the store writes as its ``REQUEST`` item and first ``STATE``)."""
    return Refund(
        refund_id=refund_id,
        status=RefundStatus.RECEIVED,
        version=1,
        created_at=at,
        updated_at=at,
        payment=body.first_payment,
        tenders=tenders,
        allocation_rule=body.allocation,
        requested_amount=body.requested_amount,
        reason=body.reason,
        customer=body.customer,
        source=body.source,
        source_platform=channel,
        order=body.order,
        invoice=body.invoice,
        return_info=body.return_info,
        lines=body.lines,
        note=body.note,
        approved_by=body.approved_by,
        request_fingerprint=request_fingerprint(body),
        correlation_id=correlation_id,
    )


def split_tenders(body: RefundRequestBody) -> list[Tender]:
    """The request's tenders as the refund keeps them (empty for a refund of one payment).

    Raises:
        InvalidRequest: an allocation rule that is none of refundflow's (``unknown_allocation_rule``); whether the
            merchant's policy allows a known one is decided at the parent's look-up (REJECTED
            ``allocation_rule_not_allowed``).
    """
    if body.tenders is None:
        return []
    # The rule names are plain strings here: intake does not import the allocation module (cold start).
    if body.allocation is not None and body.allocation not in ALLOCATION_RULE_NAMES:
        raise InvalidRequest(
            f"allocation {body.allocation!r} is not one of {sorted(ALLOCATION_RULE_NAMES)}",
            code="unknown_allocation_rule",
        )
    return [Tender(payment=tender.payment, kind=tender.kind, paid=tender.paid) for tender in body.tenders]


def return_step_details(step: ReturnStep, **extra: Any) -> dict[str, Any]:
    """What the audit entry of a return step keeps (a returns system sends no contact details)."""
    return {**step.model_dump(mode="json", exclude_none=True), **extra}


def _record_early_return_steps(
    refund: Refund, *, recorder: RefundRecorder, requested_at: datetime | None = None
) -> Refund:
    """A refund just created: the return steps its returns system reported before it get their audit entries.
    Those reported before the request come first, oldest first (``before_request``); then those reported between
    the request intake storing the request (``requested_at``) and the workflow creating its refund, in the order
    they came (as they would have been recorded had the refund been there)."""

    def after_request(step: ReturnStep) -> bool:
        return requested_at is not None and step.recorded_at >= requested_at

    def order(step: ReturnStep) -> tuple[bool, datetime]:
        return after_request(step), step.recorded_at if after_request(step) else step.key[1]

    for step in sorted(recorder.repository.return_steps(refund.refund_id), key=order):
        # Recorded as it would have been had the refund been there; a step before the request says so.
        details = return_step_details(step) if after_request(step) else return_step_details(step, before_request=True)
        for attempt in range(2):  # a return update appended its own entry meanwhile: once more
            try:
                refund = recorder.note(
                    refund,
                    RETURN_UPDATED,
                    actor=f"returns:{step.source}",
                    details=details,
                    changes={"return_seq": refund.audit_seq + 1},
                    extra=[recorder.repository.return_step_noted(refund.refund_id, step)],
                    event=RETURN_UPDATED,
                )
                break
            except ReturnStepExists:  # the step's own delivery saw the refund and recorded it
                refund = recorder.repository.get(refund.refund_id)
                break
            except ConcurrentModification:
                if attempt:
                    raise
                refund = recorder.repository.get(refund.refund_id)
    return refund


def create_requested(
    requested: RequestedRefund, *, recorder: RefundRecorder, then: Sequence[StatusMove] = ()
) -> Refund:
    """The refund of a request the request intake stored (``refundflow.request_intake``: verified, checked, its
    ``REQUEST`` item and delivery marker written, its workflow started), created by the workflow's first step:
    the RECEIVED refund with its first audit entry (``RefundRequested``, what the request asked, as intake wrote
    it before), then the return steps its returns system reported before it, and its event.

    ``then``: what the step that makes it found, written in the same write (each entry chained after the first):
    ValidateRefund's move to VALIDATED; the look-up's, and the ``PaymentLookedUp`` note, when the look-up runs first
    (``domain.payments.look_up_payment``). One transaction instead of one per step.

    Exactly once: the refund's ``STATE`` item is put only if absent; a step retried after creating it finds it.
    """
    refund = requested.refund
    outcome = recorder.repository.create(
        refund,
        actor=f"{refund.source_platform}:{refund.source.system}",
        delivery=None,
        details={**_request_summary(refund, requested.delivery_id), "verified_source": requested.verified_source},
        request_stored=True,
        then=then,
    )
    if not outcome.created:
        if outcome.refund.status is RefundStatus.RECEIVED:
            recorder.republish(outcome.refund)
        return outcome.refund
    recorder.announce_created(outcome.written, then)
    return _record_early_return_steps(outcome.refund, recorder=recorder, requested_at=refund.created_at)


def _request_summary(refund: Refund, delivery_id: str) -> dict[str, Any]:
    """What the audit trail keeps of the request (the refund as it was asked for): references and amounts, no
    contact details."""
    return {
        "delivery_id": delivery_id,
        "payment": refund.payment.model_dump(mode="json"),
        **({"tenders": [tender.model_dump(mode="json") for tender in refund.tenders]} if refund.tenders else {}),
        **({"allocation": refund.allocation_rule} if refund.allocation_rule else {}),
        "requested_amount": refund.requested_amount.model_dump(mode="json") if refund.requested_amount else "full",
        "reason": refund.reason.value,
        "source": refund.source.model_dump(mode="json"),
        "invoice": refund.invoice.model_dump(mode="json") if refund.invoice else None,
        "lines": len(refund.lines),
        "approved_by": refund.approved_by.model_dump(mode="json") if refund.approved_by else None,
    }
