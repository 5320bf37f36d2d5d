"""A refund that waits for its return (issue 12): the policy's wait_for_return parks it (AWAITING_RETURN), a return
step resumes its workflow to decide again, only a new step does, and a wait that runs out rejects it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from refundflow.domain.approval import ApproverIdentity, decide_approval
from refundflow.domain.failures import RETURN_NOT_RECEIVED, WAIT_TIMED_OUT, handle_failure
from refundflow.domain.payments import look_up_payment
from refundflow.domain.policy_step import STILL_AWAITING_RETURN, STILL_PENDING_APPROVAL, evaluate_policy
from refundflow.domain.returns import accept_return_update
from refundflow.domain.validation import validate_refund
from refundflow.domain.waiting import RETURN_REPORTED, WaitFor, register_wait
from refundflow.errors import IllegalTransition
from refundflow.models import ReturnUpdateBody
from refundflow.money import Money
from refundflow.policy import ActivePolicy, PolicySourceSettings, load_policy
from refundflow.policy.engine import InvalidPolicy
from refundflow.ports import VerifiedSource
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body

S = RefundStatus
PAYMENT = "pi_waits"
REFERENCE = "RMA-WAIT-1"
NOW = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
WAITING_POLICY = """
version: "waits.1"
currencies: [EUR]
roles: [agent]
adjustments:
  restocking: {kind: shipping_deduction, description: Return label, amount: {EUR: 1000}}
rules:
  - id: return_not_received
    description: Changed-mind refunds are paid once the goods are back
    when: refund.reason == "changed_mind" && !return_info.received
    outcome: wait_for_return
    reason_code: return_not_received
    adjustments: [restocking]
  - id: damaged_on_inspection
    description: Goods that came back damaged are for an agent
    when: return_info.inspected && !return_info.resellable
    outcome: require_approval
    role: agent
default:
  description: Everything else is approved
  outcome: approve
  adjustments: [restocking]
"""


def waiting_policy() -> ActivePolicy:
    return ActivePolicy(
        source_settings=PolicySourceSettings.model_validate({"POLICY_PARAMETER_NAME": None}),
        packaged=lambda: load_policy(WAITING_POLICY, source="test"),
    )


def decide(env: World, refund_id: str) -> S:
    return evaluate_policy(refund_id, recorder=env.recorder, policy=waiting_policy(), now=lambda: NOW).status


def waiting_refund(env: World) -> str:
    env.provider.add_payment(PAYMENT, Money.of(100_000, "EUR"))
    body = refund_request_body(reference=REFERENCE, payment_id=PAYMENT, amount=10_000, reason="changed_mind")
    refund_id = env.accept(body).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    assert decide(env, refund_id) is S.AWAITING_RETURN
    return refund_id


def report(env: World, status: str, at: str) -> None:
    body = ReturnUpdateBody.model_validate(
        {"source": {"system": "returns-portal", "reference": REFERENCE}, "status": status, "occurred_at": at}
    )
    accept_return_update(
        body,
        source=VerifiedSource("returns-portal"),
        delivery_id=f"ret-{status}",
        recorder=env.recorder,
        callbacks=env.callbacks,
    )


def park(env: World, refund_id: str, token: str) -> bool:
    return register_wait(refund_id, WaitFor.RETURN, token, repository=env.repository, callbacks=env.callbacks)


def test_a_refund_waits_for_its_goods_and_is_paid_when_they_are_back(env: World) -> None:
    # GIVEN the policy waits for the return of a changed-mind refund
    refund_id = waiting_refund(env)
    refund = env.repository.get(refund_id)
    assert refund.policy is not None
    assert refund.policy.outcome == "wait_for_return"
    assert refund.amount == Money.of(10_000, "EUR")  # decided again on the same amount, deductions not applied twice
    assert env.publisher.for_refund(refund_id)[-1] == "RefundAwaitingReturn"
    # WHEN its workflow parks THEN nothing resumes it yet
    assert park(env, refund_id, "token-1") is False
    # WHEN the parcel is reported in transit THEN the workflow is told to decide again, and it still waits
    report(env, "in_transit", "2025-02-27T10:00:00Z")
    assert [output["outcome"] for _, output in env.callbacks.succeeded] == [RETURN_REPORTED]
    assert decide(env, refund_id) is S.AWAITING_RETURN
    assert env.repository.timeline(refund_id)[-1].type == STILL_AWAITING_RETURN
    assert park(env, refund_id, "token-2") is False
    # WHEN the goods are received THEN it is decided again and approved, with its deduction applied once
    report(env, "received", "2025-02-28T10:00:00Z")
    assert len(env.callbacks.succeeded) == 2
    assert decide(env, refund_id) is S.APPROVED
    assert env.repository.get(refund_id).amount == Money.of(9_000, "EUR")


def test_a_step_between_the_decision_and_the_wait_resumes_it_at_once(env: World) -> None:
    refund_id = waiting_refund(env)
    # GIVEN the goods arrive before the workflow parked (no token yet: nobody to tell)
    report(env, "received", "2025-02-28T10:00:00Z")
    assert env.callbacks.succeeded == []
    # WHEN it parks THEN it is resumed at once
    assert park(env, refund_id, "token-1") is True
    assert env.callbacks.succeeded[0][1]["outcome"] == RETURN_REPORTED


def test_only_a_return_step_ends_the_wait_and_a_redelivery_of_it_does_nothing_more(env: World) -> None:
    refund_id = waiting_refund(env)
    park(env, refund_id, "token-1")
    # GIVEN another note on the refund (a help desk's) THEN the wait goes on
    refund = env.repository.get(refund_id)
    env.recorder.note(refund, "TicketUpdated", actor="tests")
    assert park(env, refund_id, "token-2") is False
    # A step resumes it once; the same step again does not resume the next wait
    report(env, "in_transit", "2025-02-27T10:00:00Z")
    assert decide(env, refund_id) is S.AWAITING_RETURN
    report(env, "in_transit", "2025-02-27T10:00:00Z")
    assert park(env, refund_id, "token-3") is False
    assert len(env.callbacks.succeeded) == 1


def test_a_wait_that_runs_out_rejects_the_refund_as_return_not_received(env: World) -> None:
    refund_id = waiting_refund(env)
    result = handle_failure(refund_id, WAIT_TIMED_OUT, "", recorder=env.recorder, max_books_attempts=3)
    refund = env.repository.get(refund_id)
    assert (result.status, result.outcome) == (S.REJECTED, "REJECTED")
    assert refund.failure is not None
    assert refund.failure.code == RETURN_NOT_RECEIVED
    assert env.provider.calls_to("create_refund") == []


def test_the_default_cannot_wait_for_a_return() -> None:
    text = WAITING_POLICY.replace("  outcome: approve\n  adjustments: [restocking]\n", "  outcome: wait_for_return\n")
    with pytest.raises((InvalidPolicy, ValidationError)):
        load_policy(text, source="test")


# ---------------------------------------------------------------- a refund waiting for a person, decided again

APPROVAL_POLICY = """
version: "approval-waits.1"
currencies: [EUR]
roles: [agent, team_lead]
rules:
  - id: parcel_lost
    description: A return parcel that never arrived is sent again; the refund waits for it
    when: return_info.status == "delivery_failed"
    outcome: wait_for_return
    reason_code: return_parcel_lost
  - id: return_not_received
    description: Changed-mind refunds whose goods are not back are for an agent
    when: refund.reason == "changed_mind" && !return_info.received
    outcome: require_approval
    role: agent
default:
  description: Everything else is approved
  outcome: approve
"""


def approval_policy() -> ActivePolicy:
    return ActivePolicy(
        source_settings=PolicySourceSettings.model_validate({"POLICY_PARAMETER_NAME": None}),
        packaged=lambda: load_policy(APPROVAL_POLICY, source="test"),
    )


def decide_for_approval(env: World, refund_id: str) -> S:
    return evaluate_policy(refund_id, recorder=env.recorder, policy=approval_policy(), now=lambda: NOW).status


def pending_refund(env: World) -> str:
    env.provider.add_payment(PAYMENT, Money.of(100_000, "EUR"))
    body = refund_request_body(reference=REFERENCE, payment_id=PAYMENT, amount=10_000, reason="changed_mind")
    refund_id = env.accept(body).refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    assert decide_for_approval(env, refund_id) is S.PENDING_APPROVAL
    return refund_id


def park_for_approval(env: World, refund_id: str, token: str) -> bool:
    return register_wait(refund_id, WaitFor.APPROVAL, token, repository=env.repository, callbacks=env.callbacks)


def approve_as_agent(env: World, refund_id: str, token_id: str) -> None:
    decide_approval(
        refund_id,
        "approve",
        None,
        ApproverIdentity(subject="agent-7", role="agent", token_id=token_id),
        recorder=env.recorder,
        policy=load_policy(APPROVAL_POLICY, source="test"),
        callbacks=env.callbacks,
    )


def test_a_refund_waiting_for_a_person_is_approved_by_rule_once_its_goods_are_received(env: World) -> None:
    # GIVEN the policy asked an agent because the goods were not back, and the workflow waits for the decision
    refund_id = pending_refund(env)
    assert park_for_approval(env, refund_id, "approval-1") is False
    # WHEN the parcel is in transit THEN the workflow decides again, and it still needs the agent (no status change)
    report(env, "in_transit", "2025-02-27T10:00:00Z")
    assert [(token, output["outcome"]) for token, output in env.callbacks.succeeded] == [
        ("approval-1", RETURN_REPORTED)
    ]
    assert decide_for_approval(env, refund_id) is S.PENDING_APPROVAL
    assert env.repository.timeline(refund_id)[-1].type == STILL_PENDING_APPROVAL
    assert decide_for_approval(env, refund_id) is S.PENDING_APPROVAL  # a retried step: the decision stands
    assert [entry.type for entry in env.repository.timeline(refund_id)].count(STILL_PENDING_APPROVAL) == 1
    assert park_for_approval(env, refund_id, "approval-2") is False
    # WHEN the goods are received THEN the policy approves it by rule, with nobody asked
    report(env, "received", "2025-02-28T10:00:00Z")
    assert [token for token, _ in env.callbacks.succeeded] == ["approval-1", "approval-2"]
    assert decide_for_approval(env, refund_id) is S.APPROVED
    refund = env.repository.get(refund_id)
    assert refund.policy is not None
    assert refund.policy.rule_id == "default"
    assert refund.approval is None


def test_a_person_deciding_while_the_return_resumed_the_workflow_wins_and_the_token_is_used_once(env: World) -> None:
    refund_id = pending_refund(env)
    park_for_approval(env, refund_id, "approval-1")
    # GIVEN the goods were received: the return step took the token and resumed the workflow to decide again
    report(env, "received", "2025-02-28T10:00:00Z")
    # WHEN an agent approves before the re-decision runs
    approve_as_agent(env, refund_id, "jti-1")
    # THEN the agent's decision stands, the re-decision replays it, and the token resumed the workflow once
    assert env.repository.get(refund_id).status is S.APPROVED
    assert decide_for_approval(env, refund_id) is S.APPROVED
    assert [token for token, _ in env.callbacks.succeeded] == ["approval-1"]
    assert env.repository.get(refund_id).approval is not None


def test_a_re_decision_before_the_person_leaves_the_person_nothing_to_decide(env: World) -> None:
    refund_id = pending_refund(env)
    park_for_approval(env, refund_id, "approval-1")
    report(env, "received", "2025-02-28T10:00:00Z")
    assert decide_for_approval(env, refund_id) is S.APPROVED
    with pytest.raises(IllegalTransition):
        approve_as_agent(env, refund_id, "jti-2")
    assert [token for token, _ in env.callbacks.succeeded] == ["approval-1"]


def test_a_step_while_the_workflow_was_not_parked_resumes_the_approval_wait_at_once(env: World) -> None:
    refund_id = pending_refund(env)
    report(env, "received", "2025-02-28T10:00:00Z")
    assert env.callbacks.succeeded == []
    assert park_for_approval(env, refund_id, "approval-1") is True
    assert env.callbacks.succeeded[0][1]["outcome"] == RETURN_REPORTED


def test_a_refund_waiting_for_a_person_may_be_made_to_wait_for_its_goods(env: World) -> None:
    refund_id = pending_refund(env)
    park_for_approval(env, refund_id, "approval-1")
    report(env, "delivery_failed", "2025-02-28T10:00:00Z")
    assert decide_for_approval(env, refund_id) is S.AWAITING_RETURN
    assert env.publisher.for_refund(refund_id)[-1] == "RefundAwaitingReturn"
