"""Refund statuses and the transitions between them. An illegal transition is a bug, never a branch."""

from __future__ import annotations

from enum import StrEnum


class RefundStatus(StrEnum):
    RECEIVED = "RECEIVED"
    VALIDATED = "VALIDATED"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    AWAITING_RETURN = "AWAITING_RETURN"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    REFUND_SUBMITTED = "REFUND_SUBMITTED"
    REFUND_PENDING = "REFUND_PENDING"
    REFUNDED = "REFUNDED"
    INVOICE_UPDATED = "INVOICE_UPDATED"
    COMPLETED = "COMPLETED"
    SETTLED = "SETTLED"
    FAILED = "FAILED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


S = RefundStatus

ALLOWED_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    S.RECEIVED: frozenset({S.VALIDATED, S.REJECTED, S.FAILED}),
    S.VALIDATED: frozenset({S.APPROVED, S.PENDING_APPROVAL, S.AWAITING_RETURN, S.REJECTED, S.FAILED}),
    # The policy waits for the goods; decided again when the returns system reports a step, rejected on timeout.
    S.AWAITING_RETURN: frozenset({S.APPROVED, S.PENDING_APPROVAL, S.REJECTED, S.FAILED}),
    # Decided by a person, or again by the policy when a return step arrives (it may approve, or wait for the goods).
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.AWAITING_RETURN, S.REJECTED, S.FAILED}),
    S.APPROVED: frozenset({S.REFUND_SUBMITTED, S.REJECTED, S.FAILED}),
    # NEEDS_ATTENTION from here: the provider call's outcome is unknown, money may have moved.
    S.REFUND_SUBMITTED: frozenset({S.REFUNDED, S.REFUND_PENDING, S.FAILED, S.NEEDS_ATTENTION}),
    S.REFUND_PENDING: frozenset({S.REFUNDED, S.FAILED, S.NEEDS_ATTENTION}),
    # NEEDS_ATTENTION from here: money moved but the books are not updated yet, or the provider
    # reversed a refund that had looked successful.
    # COMPLETED straight from REFUNDED: a refund without an invoice reference has no books to update.
    S.REFUNDED: frozenset({S.INVOICE_UPDATED, S.COMPLETED, S.NEEDS_ATTENTION}),
    S.INVOICE_UPDATED: frozenset({S.COMPLETED, S.NEEDS_ATTENTION}),
    S.COMPLETED: frozenset({S.SETTLED, S.NEEDS_ATTENTION}),
    S.NEEDS_ATTENTION: frozenset({S.REFUND_PENDING, S.REFUNDED, S.FAILED, S.INVOICE_UPDATED, S.COMPLETED}),
    S.SETTLED: frozenset({S.NEEDS_ATTENTION}),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
}

TERMINAL_STATUSES = frozenset({S.COMPLETED, S.SETTLED, S.REJECTED, S.FAILED})
# Statuses in which money may have left (or be leaving) the merchant's account.
MONEY_MAY_HAVE_MOVED = frozenset(
    {S.REFUND_SUBMITTED, S.REFUND_PENDING, S.REFUNDED, S.INVOICE_UPDATED, S.COMPLETED, S.SETTLED}
)


def can_transition(current: RefundStatus, target: RefundStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]
