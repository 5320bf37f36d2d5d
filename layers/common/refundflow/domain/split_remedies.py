"""A person's remedy for a split-tender leg that failed after others paid (``POST /refunds/{id}/legs/{leg}/remedy``).

The parent is NEEDS_ATTENTION ``split_leg_failed:<leg>`` with the remedies its audit entry proposed. An approver
(the same JWT and single-use ``jti`` as an approval, a role the policy names, at least the role the parent's
decision asked for) chooses one:

- ``retry``: the failed leg's amount goes to the same tender again, as a new leg;
- ``move_to_tender``: it goes to another of the order's tenders, one that has room for it now;
- ``store_credit``: it is credited to the customer's store credit (refundflow's ledger, ``customer_key``), as a
  store-credit leg (on the order's store-credit tender when it has one, else on the failed leg's tender).

The new leg ``replaces`` the failed one (which stays in the parent's legs, failed) and the parent waits for it again
(REFUND_PENDING, a new execution of its workflow, named after the remedy, that parks in the outcome wait). A payment
leg is a refund of its own like every leg; a store-credit leg is credited by the parent's next poll
(``refund-split``, the one function that writes the ledger: exactly once, ``<refund_id>#leg<n>``). When it is paid
the parent completes as usual.
"""

from __future__ import annotations

from typing import Literal

from refundflow.domain.approval import APPROVAL_TOKENS, ApproverIdentity, _token_spent, approvers_refund
from refundflow.domain.deployment import AMOUNT_NOT_REPRESENTABLE, payment_problem
from refundflow.domain.intake import WorkflowTiming
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.split_tenders import LEG_FAILED, leg_refund_id, start_legs
from refundflow.errors import Forbidden, IllegalTransition, InvalidRequest
from refundflow.models import LegStatus, Refund, SplitLeg, TenderKind
from refundflow.policy import Policy
from refundflow.ports import WorkflowStarter
from refundflow.status import RefundStatus

RemedyAction = Literal["retry", "move_to_tender", "store_credit"]
REMEDY_CHOSEN = "SplitLegRemedy"


def remedy_execution_name(parent_refund_id: str, leg_index: int) -> str:
    """The parent's workflow execution after a remedy (its first one is named after the refund)."""
    return f"{parent_refund_id}-leg{leg_index}"


def choose_remedy(
    parent_refund_id: str,
    leg_index: int,
    action: RemedyAction,
    tender: int | None,
    approver: ApproverIdentity,
    *,
    recorder: RefundRecorder,
    policy: Policy,
    starter: WorkflowStarter,
    timing: WorkflowTiming,
    note: str | None = None,
) -> Refund:
    """Record the remedy, create and start the new leg, and start the parent's wait for it.

    Raises:
        AuthenticationFailed: no ``jti``, or a token used before (``token_spent``).
        Forbidden: not an approver role, or below the role the parent's decision asked for.
        NotFound: no such refund (or the token is bound to another one).
        IllegalTransition: the refund is not waiting for a remedy of that leg (``no_failed_leg``).
        InvalidRequest: a tender that does not exist, is the failed one's for ``move_to_tender``, or has no room
            (``tender_without_room``), or whose platform cannot carry the amount (``amount_not_representable``), or
            a store-credit tender for ``move_to_tender`` (``invalid_tender``: choose ``store_credit``).
    """
    repository = recorder.repository
    parent, token_id = approvers_refund(parent_refund_id, approver, repository=repository, policy=policy)
    failed = next((leg for leg in parent.legs if leg.index == leg_index), None)
    waiting = parent.status is RefundStatus.NEEDS_ATTENTION and parent.attention_reason == f"{LEG_FAILED}:{leg_index}"
    if failed is None or failed.status is not LegStatus.FAILED or not waiting:
        raise IllegalTransition(
            f"refund {parent_refund_id} has no failed leg {leg_index} waiting for a remedy", code="no_failed_leg"
        )
    # The role the parent's decision asked for; a parent approved by rule asked for none: any approver role.
    required = (parent.policy.required_role if parent.policy else None) or policy.lowest_role
    if not policy.role_satisfies(approver.role, required):
        raise Forbidden(
            f"role {approver.role} may not decide this refund; it needs {required} or above", code="role_not_allowed"
        )
    target = _target_tender(parent, failed, action, tender, recorder=recorder)
    number = len(parent.legs)
    to_store_credit = action == "store_credit"
    leg = SplitLeg(
        index=number,
        tender_index=target,
        payment=None if to_store_credit else parent.tenders[target].payment,
        kind=TenderKind.STORE_CREDIT if to_store_credit else parent.tenders[target].kind,
        amount=failed.amount,
        status=LegStatus.SUBMITTED,
        refund_id=None if to_store_credit else leg_refund_id(parent.refund_id, number),
        replaces=failed.index,
    )
    spend_token = repository.spend_once(APPROVAL_TOKENS, token_id, parent_refund_id, _token_spent)
    parent = recorder.move(
        parent,
        RefundStatus.REFUND_PENDING,
        actor=f"approver:{approver.subject}",
        details={
            "remedy": action,
            "failed_leg": failed.index,
            "leg": leg.model_dump(mode="json", exclude_none=True),
            "role": approver.role,
            "token_id": approver.token_id,
            "note": note,
        },
        changes={"legs": [*parent.legs, leg], "attention_reason": None},
        extra=[spend_token],
    )
    start_legs(parent, recorder=recorder, starter=starter, timing=timing)
    starter.start(
        remedy_execution_name(parent.refund_id, number), {"refund_id": parent.refund_id, "timing": timing.as_input()}
    )
    return parent


def _target_tender(
    parent: Refund, failed: SplitLeg, action: RemedyAction, tender: int | None, *, recorder: RefundRecorder
) -> int:
    if action == "store_credit":
        if tender is not None:
            raise InvalidRequest(
                "store_credit goes to the customer's store credit; name no tender", code="invalid_tender"
            )
        # The order's store-credit tender when it has one, else the tender whose failed amount it credits.
        own = next((i for i, t in enumerate(parent.tenders) if t.kind is TenderKind.STORE_CREDIT), None)
        return failed.tender_index if own is None else own
    if action == "retry":
        if tender is not None and tender != failed.tender_index:
            raise InvalidRequest("retry goes to the failed leg's own tender; use move_to_tender", code="invalid_tender")
        return failed.tender_index
    if tender is None or not 0 <= tender < len(parent.tenders) or tender == failed.tender_index:
        raise InvalidRequest(
            f"move_to_tender needs another of the refund's {len(parent.tenders)} tenders (0-based), not the failed "
            f"leg's ({failed.tender_index})",
            code="invalid_tender",
        )
    payment = parent.tenders[tender].payment
    if payment is None:
        raise InvalidRequest(
            f"tender {tender} is store credit: choose the store_credit remedy to credit the amount there",
            code="invalid_tender",
        )
    problem = payment_problem(failed.amount, payment)
    if problem:
        raise InvalidRequest(f"tender {tender}: {problem}", code=AMOUNT_NOT_REPRESENTABLE)
    balance = recorder.repository.get_balance(payment.provider, payment.payment_id)
    if balance is None or balance.remaining.minor_units < failed.amount.minor_units:
        room = balance.remaining if balance is not None else "nothing known"
        raise InvalidRequest(
            f"tender {tender} has {room} left to refund, not the {failed.amount} to move", code="tender_without_room"
        )
    return tender
