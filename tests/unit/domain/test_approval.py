"""Human approval (R12): who may decide a refund waiting for approval, single-use tokens, the waiting
workflow resumed exactly once, and EscalateApproval handing an unanswered request up the roles."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from refundflow.adapters.dynamodb import RefundRepository
from refundflow.domain.approval import APPROVAL_TOKENS, ApproverIdentity, decide_approval, escalate_approval
from refundflow.domain.payments import look_up_payment
from refundflow.domain.policy_step import evaluate_policy
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.validation import validate_refund
from refundflow.domain.waiting import WaitFor, register_wait
from refundflow.errors import (
    AuthenticationFailed,
    ConcurrentModification,
    Forbidden,
    IllegalTransition,
    NotFound,
    TransientError,
)
from refundflow.models import ApprovalRecord, Refund
from refundflow.money import Money
from refundflow.policy import ActivePolicy, PolicySourceSettings, load_default_policy
from refundflow.status import RefundStatus
from tests.support.fakes import FailingStateWrites, World, refund_request_body

S = RefundStatus
POLICY = load_default_policy()
EVALUATED_AT = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
DECIDED_AT = datetime(2025, 3, 1, 15, 30, tzinfo=UTC)
TASK_TOKEN = "task-token-1"
# What makes the default policy ask each role for approval.
NEEDS_ROLE: dict[str, dict[str, Any]] = {
    "agent": {"reason": "product_return", "amount": 2_500},  # the return is not back yet
    "team_lead": {"reason": "damaged", "amount": 60_000},
    "finance": {"reason": "damaged", "amount": 250_000},
}


def pending(env: World, required_role: str = "agent", reference: str = "RMA-1001") -> str:
    """A refund the default policy parked for ``required_role``."""
    payment_id = f"pi_{reference}"
    env.provider.add_payment(payment_id, Money.of(1_000_000, "EUR"))
    body = refund_request_body(reference=reference, payment_id=payment_id, **NEEDS_ROLE[required_role])
    refund_id = env.accept(body, f"dlv-{reference}").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    evaluate_policy(
        refund_id,
        recorder=env.recorder,
        policy=ActivePolicy(source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME=None)),
        now=lambda: EVALUATED_AT,
    )
    refund = env.repository.get(refund_id)
    assert refund.status is S.PENDING_APPROVAL
    assert refund.policy is not None
    assert refund.policy.required_role == required_role
    return refund_id


def approver(
    role: str | None, token_id: str | None = "jti-1", subject: str = "alice", bound_refund_id: str | None = None
) -> ApproverIdentity:
    return ApproverIdentity(subject=subject, role=role, token_id=token_id, bound_refund_id=bound_refund_id)


def decide(
    env: World,
    refund_id: str,
    who: ApproverIdentity,
    decision: Literal["approve", "reject"] = "approve",
    note: str | None = None,
    recorder: RefundRecorder | None = None,
) -> Refund:
    return decide_approval(
        refund_id,
        decision,
        note,
        who,
        recorder=recorder or env.recorder,
        policy=POLICY,
        callbacks=env.callbacks,
        now=lambda: DECIDED_AT,
    )


def park(env: World, refund_id: str, token: str = TASK_TOKEN) -> bool:
    """The workflow's WaitForApproval state registering its task token."""
    return register_wait(refund_id, WaitFor.APPROVAL, token, repository=env.repository, callbacks=env.callbacks)


def escalate(env: World, refund_id: str) -> Any:
    return escalate_approval(refund_id, recorder=env.recorder, policy=POLICY)


def token_spent(env: World, token_id: str) -> bool:
    return env.repository.delivery_refund_id(APPROVAL_TOKENS, token_id) is not None


class Snapshot:
    """The refund, its trail and its events, to show that a refused call wrote nothing."""

    def __init__(self, env: World, refund_id: str) -> None:
        self.refund = env.repository.get(refund_id)
        self.entries = len(env.repository.timeline(refund_id))
        self.events = env.publisher.distinct(refund_id)

    def unchanged(self, env: World) -> bool:
        refund_id = self.refund.refund_id
        return (
            env.repository.get(refund_id) == self.refund
            and len(env.repository.timeline(refund_id)) == self.entries
            and env.publisher.distinct(refund_id) == self.events
        )


# ---------------------------------------------------------------- deciding


@pytest.mark.parametrize(
    ("required_role", "role"),
    [
        ("agent", "agent"),
        ("agent", "finance"),
        ("team_lead", "team_lead"),
        ("team_lead", "finance"),
        ("finance", "finance"),
    ],
)
def test_an_approver_at_or_above_the_required_role_approves_and_resumes_the_workflow(
    env: World, required_role: str, role: str
) -> None:
    # GIVEN a refund waiting for approval, its workflow parked on a task token
    refund_id = pending(env, required_role)
    assert not park(env, refund_id)
    # WHEN an approver with the role approves, with a token minted for this refund
    refund = decide(env, refund_id, approver(role, bound_refund_id=refund_id), note="photos checked")
    # THEN the refund is approved, and who decided, how and when is recorded
    expected = ApprovalRecord(
        decision="approve", approver="alice", role=role, channel="api", decided_at=DECIDED_AT, note="photos checked"
    )
    assert refund.status is S.APPROVED
    stored = env.repository.get(refund_id)
    assert (stored.status, stored.approval) == (S.APPROVED, expected)
    entry = env.repository.timeline(refund_id)[-1]
    assert (entry.type, entry.actor) == ("StatusChanged:APPROVED", "approver:alice")
    assert (entry.details["role"], entry.details["required_role"], entry.details["token_id"]) == (
        role,
        required_role,
        "jti-1",
    )
    assert env.publisher.events[-1].detail_type == "RefundApproved"
    # AND the stored task token was taken and the workflow resumed once, with the approval
    assert env.repository.peek_wait_token(refund_id, WaitFor.APPROVAL.value) is None
    assert [(token, output["status"], output["outcome"]) for token, output in env.callbacks.succeeded] == [
        (TASK_TOKEN, "APPROVED", "APPROVED")
    ]
    assert token_spent(env, "jti-1")


@pytest.mark.parametrize(("note", "message"), [("not our product", "not our product"), (None, "rejected by alice")])
def test_an_approver_rejecting_rejects_the_refund_and_resumes_the_workflow(
    env: World, note: str | None, message: str
) -> None:
    # GIVEN a refund waiting for an agent, its workflow parked
    refund_id = pending(env, "agent")
    park(env, refund_id)
    # WHEN an agent rejects it
    refund = decide(env, refund_id, approver("agent"), "reject", note)
    # THEN it is rejected by the approver, with the reason, and the workflow goes on with the rejection
    assert refund.status is S.REJECTED
    stored = env.repository.get(refund_id)
    assert stored.failure is not None
    assert (stored.failure.code, stored.failure.message) == ("rejected_by_approver", message)
    assert stored.approval is not None
    assert (stored.approval.decision, stored.approval.approver) == ("reject", "alice")
    assert env.publisher.events[-1].detail_type == "RefundRejected"
    assert [(token, output["status"], output["outcome"]) for token, output in env.callbacks.succeeded] == [
        (TASK_TOKEN, "REJECTED", "REJECTED")
    ]


@pytest.mark.parametrize(
    ("required_role", "role"),
    [("team_lead", "agent"), ("finance", "team_lead"), ("agent", None), ("agent", "intern")],
)
def test_an_approver_below_the_required_role_is_forbidden_and_nothing_is_written(
    env: World, required_role: str, role: str | None
) -> None:
    # GIVEN a parked refund that needs a role the approver lacks (or a role the policy does not know)
    refund_id = pending(env, required_role)
    park(env, refund_id)
    before = Snapshot(env, refund_id)
    # WHEN the approver approves THEN it is refused
    with pytest.raises(Forbidden) as refused:
        decide(env, refund_id, approver(role))
    assert refused.value.code == "role_not_allowed"
    # AND nothing changed: the refund still waits, the workflow still waits, and the token is not spent
    assert before.unchanged(env)
    assert env.repository.peek_wait_token(refund_id, WaitFor.APPROVAL.value) == TASK_TOKEN
    assert env.callbacks.attempts == []
    assert not token_spent(env, "jti-1")


def test_a_token_minted_for_another_refund_gets_the_answer_of_a_refund_that_does_not_exist(env: World) -> None:
    # GIVEN two refunds waiting for an agent, and a token bound to the second
    refund_id = pending(env, "agent", "RMA-1")
    other_id = pending(env, "agent", "RMA-2")
    before = Snapshot(env, refund_id)
    # WHEN it is used on the first
    with pytest.raises(NotFound) as not_yours:
        decide(env, refund_id, approver("finance", bound_refund_id=other_id))
    # THEN the answer is word for word the one for a refund id that does not exist: it tells nothing
    unknown_id = "rf_" + "f" * 32
    with pytest.raises(NotFound) as unknown:
        decide(env, unknown_id, approver("finance", bound_refund_id=other_id))
    assert (not_yours.value.code, not_yours.value.message.replace(refund_id, "ID")) == (
        unknown.value.code,
        unknown.value.message.replace(unknown_id, "ID"),
    )
    # AND nothing is written or spent
    assert before.unchanged(env)
    assert not token_spent(env, "jti-1")


class NoRefundReads:
    """A repository that fails the test if the refund is read."""

    def __init__(self, repository: RefundRepository) -> None:
        self._repository = repository

    def __getattr__(self, name: str) -> Any:
        if name == "get":
            raise AssertionError("the refund was read before the caller was checked")
        return getattr(self._repository, name)


@pytest.mark.parametrize("role", [None, "intern", ""])
def test_a_caller_without_an_approver_role_is_refused_before_the_refund_is_read(env: World, role: str | None) -> None:
    # GIVEN a refund waiting for an agent, and a repository that must not be asked for it
    refund_id = pending(env, "agent")
    recorder = RefundRecorder(NoRefundReads(env.repository), env.publisher)  # type: ignore[arg-type]
    # WHEN a caller with no role the policy knows decides, on that refund or on one that does not exist
    for target in (refund_id, "rf_" + "e" * 32):
        with pytest.raises(Forbidden) as refused:
            decide(env, target, approver(role), recorder=recorder)
        # THEN both are the same 403, given before anything about a refund was looked at
        assert refused.value.code == "role_not_allowed"


@pytest.mark.parametrize("token_id", [None, ""])
def test_a_token_without_a_jti_is_not_accepted(env: World, token_id: str | None) -> None:
    # GIVEN a refund waiting for an agent, and a token that cannot be held to a single use
    refund_id = pending(env, "agent")
    before = Snapshot(env, refund_id)
    # WHEN it is used THEN authentication fails and nothing is written
    with pytest.raises(AuthenticationFailed) as refused:
        decide(env, refund_id, approver("finance", token_id=token_id))
    assert refused.value.code == "token_without_jti"
    assert before.unchanged(env)


def test_a_token_used_once_is_refused_on_the_same_refund(env: World) -> None:
    # GIVEN a refund approved with a token
    refund_id = pending(env, "agent")
    decide(env, refund_id, approver("agent", "jti-1"))
    before = Snapshot(env, refund_id)
    # WHEN the same token is presented again, to reject it THEN it is a 401 as spent, and nothing changes
    with pytest.raises(AuthenticationFailed) as refused:
        decide(env, refund_id, approver("agent", "jti-1"), "reject")
    assert refused.value.code == "token_spent"
    assert before.unchanged(env)


def test_a_token_used_once_is_refused_on_another_refund(env: World) -> None:
    # GIVEN two refunds waiting for an agent, the first approved with an unbound token
    first = pending(env, "agent", "RMA-1")
    second = pending(env, "agent", "RMA-2")
    park(env, second, "task-token-2")
    decide(env, first, approver("agent", "jti-1"))
    before = Snapshot(env, second)
    # WHEN the same token is used on the second THEN it is refused as spent, and the second still waits
    with pytest.raises(AuthenticationFailed) as refused:
        decide(env, second, approver("agent", "jti-1"))
    assert refused.value.code == "token_spent"
    assert before.unchanged(env)
    assert env.repository.peek_wait_token(second, WaitFor.APPROVAL.value) == "task-token-2"
    assert env.repository.delivery_refund_id(APPROVAL_TOKENS, "jti-1") == first


def _approved(env: World, refund_id: str) -> None:
    decide(env, refund_id, approver("agent", "jti-first"))


def _rejected(env: World, refund_id: str) -> None:
    decide(env, refund_id, approver("agent", "jti-first"), "reject")


def _expired(env: World, refund_id: str) -> None:
    for _ in POLICY.roles:
        escalate(env, refund_id)


@pytest.mark.parametrize("settle", [_approved, _rejected, _expired], ids=["approved", "rejected", "expired"])
def test_deciding_a_refund_that_no_longer_waits_is_an_illegal_transition(env: World, settle: Any) -> None:
    # GIVEN a refund that was approved, rejected or expired
    refund_id = pending(env, "agent")
    settle(env, refund_id)
    before = Snapshot(env, refund_id)
    # WHEN a finance approver decides it with a fresh token THEN it is refused, and the token is not spent
    with pytest.raises(IllegalTransition) as refused:
        decide(env, refund_id, approver("finance", "jti-fresh"))
    assert refused.value.code == "not_pending_approval"
    assert before.unchanged(env)
    assert not token_spent(env, "jti-fresh")


def test_deciding_a_refund_that_never_needed_approval_is_an_illegal_transition(env: World) -> None:
    # GIVEN a small refund the policy approved on its own
    env.provider.add_payment("pi_small", Money.of(10_000, "EUR"))
    refund_id = env.accept(refund_request_body(payment_id="pi_small", reason="damaged"), "dlv-1").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    evaluate_policy(
        refund_id,
        recorder=env.recorder,
        policy=ActivePolicy(source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME=None)),
        now=lambda: EVALUATED_AT,
    )
    assert env.repository.get(refund_id).status is S.APPROVED
    # WHEN someone rejects it THEN it is refused
    with pytest.raises(IllegalTransition):
        decide(env, refund_id, approver("finance"), "reject")
    assert env.repository.get(refund_id).status is S.APPROVED


@pytest.mark.parametrize("trial", range(3))
def test_two_approvers_racing_land_exactly_one_decision(threaded_env: World, trial: int) -> None:
    env = threaded_env
    # GIVEN a parked refund, and two approvers deciding differently at the same moment
    refund_id = pending(env, "agent", f"RMA-{trial}")
    park(env, refund_id)
    barrier = threading.Barrier(2)
    landed: list[str] = []
    refused: list[Exception] = []

    def act(decision: Literal["approve", "reject"], who: ApproverIdentity) -> None:
        barrier.wait()
        try:
            decide(env, refund_id, who, decision)
            landed.append(decision)
        except Exception as error:
            refused.append(error)

    threads = [
        threading.Thread(target=act, args=("approve", approver("agent", "jti-a", "alice"))),
        threading.Thread(target=act, args=("reject", approver("finance", "jti-b", "bob"))),
    ]
    # WHEN both decide
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN one decision landed, the other was refused as concurrent or too late
    assert len(landed) == 1, refused
    assert len(refused) == 1
    assert isinstance(refused[0], ConcurrentModification | IllegalTransition)
    status = S.APPROVED if landed == ["approve"] else S.REJECTED
    assert env.repository.get(refund_id).status is status
    decisions = [entry.type for entry in env.repository.timeline(refund_id) if entry.from_status is S.PENDING_APPROVAL]
    assert decisions == [f"StatusChanged:{status.value}"]
    # AND the workflow was resumed once, with the decision that landed
    assert [(token, output["status"]) for token, output in env.callbacks.succeeded] == [(TASK_TOKEN, status.value)]


def test_an_approval_before_the_workflow_parked_is_picked_up_when_it_parks(env: World) -> None:
    # GIVEN a refund approved before its workflow registered the wait (nothing to resume yet)
    refund_id = pending(env, "agent")
    decide(env, refund_id, approver("agent"))
    assert env.callbacks.attempts == []
    # WHEN the workflow parks, and the registration is retried
    first = park(env, refund_id)
    again = park(env, refund_id)
    # THEN it was resumed at once, exactly once, with the approval
    assert (first, again) == (True, False)
    assert [(token, output["status"]) for token, output in env.callbacks.succeeded] == [(TASK_TOKEN, "APPROVED")]


def test_a_decision_that_could_not_be_written_leaves_the_token_usable(env: World) -> None:
    # GIVEN a refund waiting for an agent, and a store that throttles the decision's write once
    refund_id = pending(env, "agent")
    flaky = RefundRepository(
        env.tables.refunds_table,
        dynamodb=FailingStateWrites(env.tables.client),
        now=env.clock,
        audit_keys=env.repository.audit_keys,
    )
    with pytest.raises(TransientError):
        decide(env, refund_id, approver("agent"), recorder=RefundRecorder(flaky, env.publisher))
    assert env.repository.get(refund_id).status is S.PENDING_APPROVAL
    # WHEN the approver retries with the same token THEN the approval lands
    assert decide(env, refund_id, approver("agent")).status is S.APPROVED


# ---------------------------------------------------------------- escalation


def test_an_unanswered_request_escalates_through_the_roles_then_expires(env: World) -> None:
    # GIVEN a refund waiting for an agent
    refund_id = pending(env, "agent")
    # WHEN nobody answers, three times in a row
    results = [escalate(env, refund_id) for _ in range(3)]
    # THEN it went to a team lead, then finance, then was rejected as expired
    assert [(result.status, result.outcome) for result in results] == [
        (S.PENDING_APPROVAL, "APPROVAL_REQUIRED"),
        (S.PENDING_APPROVAL, "APPROVAL_REQUIRED"),
        (S.REJECTED, "REJECTED"),
    ]
    refund = env.repository.get(refund_id)
    assert refund.failure is not None
    assert refund.failure.code == "approval_expired"
    assert refund.policy is not None
    assert refund.policy.required_role == "finance"
    # AND each step is in the trail and on the bus
    trail = [(entry.type, entry.details) for entry in env.repository.timeline(refund_id)[-3:]]
    assert trail[:2] == [
        ("ApprovalEscalated", {"from_role": "agent", "to_role": "team_lead"}),
        ("ApprovalEscalated", {"from_role": "team_lead", "to_role": "finance"}),
    ]
    assert trail[2][0] == "StatusChanged:REJECTED"
    assert trail[2][1]["reason"] == "approval_expired"
    events = [event for event in env.publisher.events if event.refund_id == refund_id][-3:]
    assert [(event.detail_type, event.details.get("to_role")) for event in events] == [
        ("RefundApprovalEscalated", "team_lead"),
        ("RefundApprovalEscalated", "finance"),
        ("RefundRejected", None),
    ]


def test_after_escalation_the_lower_role_is_refused_and_the_new_one_decides(env: World) -> None:
    # GIVEN a request for an agent that was escalated to a team lead
    refund_id = pending(env, "agent")
    escalate(env, refund_id)
    # WHEN an agent approves THEN it is refused
    with pytest.raises(Forbidden):
        decide(env, refund_id, approver("agent", "jti-agent", "alice"))
    assert env.repository.get(refund_id).status is S.PENDING_APPROVAL
    # AND a team lead's approval lands, against the escalated requirement
    assert decide(env, refund_id, approver("team_lead", "jti-lead", "tom")).status is S.APPROVED
    assert env.repository.timeline(refund_id)[-1].details["required_role"] == "team_lead"


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_escalating_a_refund_decided_meanwhile_changes_nothing_and_reports_its_status(
    env: World, decision: Literal["approve", "reject"]
) -> None:
    # GIVEN a request decided just as its wait timed out
    refund_id = pending(env, "agent")
    refund = decide(env, refund_id, approver("agent"), decision)
    before = Snapshot(env, refund_id)
    # WHEN the escalation step runs
    result = escalate(env, refund_id)
    # THEN it reports the decision and writes nothing
    assert (result.status, result.outcome) == (refund.status, refund.status.value)
    assert before.unchanged(env)
