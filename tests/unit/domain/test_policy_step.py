"""Workflow step EvaluatePolicy: the facts it gathers (balance, customer history, the day's total, a help desk
approver), the status each policy outcome leads to, what the audit trail and the bus get, and the packaged
default deciding when the SSM override is broken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from refundflow.domain.payments import look_up_payment, reserve_amount
from refundflow.domain.policy_step import evaluate_policy
from refundflow.domain.validation import validate_refund
from refundflow.errors import IllegalTransition
from refundflow.models import ApprovalRecord, AuditEntry, ReservationState, StepResult
from refundflow.money import Money
from refundflow.policy import ActivePolicy, PolicySourceSettings, load_default_policy, load_policy
from refundflow.policy.document import SourceTrust
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body

S = RefundStatus
PAYMENT = "pi_3Pabc"
# An hour after the repository's clock starts: every refund a test creates is a little older than this.
NOW = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
DEFAULT_VERSION = load_default_policy().version
PARAMETER = "/refundflow/policy"

CAP_POLICY = """
version: "cap.1"
currencies: [EUR]
roles: [agent, team_lead, finance]
params:
  daily_cap: {EUR: 5000}
rules:
  - id: merchant_daily_cap
    description: Refunds past the merchant's daily total need finance
    when: merchant.refunded_today + refund.amount > params.daily_cap[refund.currency]
    outcome: require_approval
    role: finance
    reason_code: daily_cap_reached
default:
  description: Everything under the cap is approved
  outcome: approve
"""


def eur(minor: int) -> Money:
    return Money.of(minor, "EUR")


def packaged_policy() -> ActivePolicy:
    """The packaged default, whatever the environment says about an override."""
    return ActivePolicy(source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME=None))


def trusting_returns_portal() -> ActivePolicy:
    """The packaged default, with the returns portal (the test requests' source) allowed agent and team_lead."""
    trust = {"returns-portal": SourceTrust(may_assert_roles=["agent", "team_lead"])}
    return ActivePolicy(
        source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME=None),
        packaged=lambda: load_default_policy().with_sources(trust),
    )


def policy_from(text: str) -> ActivePolicy:
    return ActivePolicy(
        source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME=None),
        packaged=lambda: load_policy(text, source="test"),
    )


def evaluate(env: World, refund_id: str, policy: ActivePolicy | None = None) -> StepResult:
    return evaluate_policy(refund_id, recorder=env.recorder, policy=policy or packaged_policy(), now=lambda: NOW)


def decision_entry(env: World, refund_id: str) -> AuditEntry:
    """The policy's decision: the last entry but the reservation an approval holds in the same write."""
    return next(entry for entry in reversed(env.repository.timeline(refund_id)) if entry.type != "AmountReserved")


def looked_up(env: World, reference: str = "RMA-1001", payment_id: str = PAYMENT, **fields: Any) -> str:
    """Accept, validate and look up the payment: the refund is ready for the policy."""
    body = refund_request_body(reference=reference, payment_id=payment_id, **fields)
    refund_id = env.accept(body, f"dlv-{reference}").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    return refund_id


@pytest.fixture
def paid(env: World) -> World:
    """A captured payment of 10,000.00 EUR: large enough for every amount the policy routes."""
    env.provider.add_payment(PAYMENT, eur(1_000_000))
    return env


# ---------------------------------------------------------------- outcomes


def test_policy_approves_a_small_refund_for_damaged_goods_and_records_why(paid: World) -> None:
    env = paid
    # GIVEN a 25.00 EUR refund for damaged goods, with its payment looked up
    refund_id = looked_up(env, reason="damaged", amount=2_500)
    # WHEN the policy is evaluated
    result = evaluate(env, refund_id)
    # THEN the refund is approved for the amount asked, with the policy version and the rule that decided
    assert (result.status, result.outcome) == (S.APPROVED, "RESERVED")
    before = env.repository.timeline(refund_id)[-3]
    refund = env.repository.get(refund_id)
    assert refund.status is S.APPROVED
    # AND the amount is held in the same write (no ReserveAmount step): one state version, two audit entries
    assert refund.reservation is not None
    assert (refund.reservation.amount, refund.reservation.state) == (eur(2_500), ReservationState.HELD)
    assert env.balance(PAYMENT)["reserved"] == 2_500
    reserved = env.repository.timeline(refund_id)[-1]
    assert (reserved.type, reserved.actor, reserved.seq) == ("AmountReserved", "step:EvaluatePolicy", before.seq + 2)
    assert refund.audit_seq == before.seq + 2
    assert refund.amount == eur(2_500)
    assert refund.policy is not None
    assert (refund.policy.outcome, refund.policy.policy_version, refund.policy.rule_id) == (
        "approve",
        DEFAULT_VERSION,
        "auto_approve",
    )
    assert refund.approval is None
    # AND the audit entry keeps the inputs the policy saw, the outcome and every rule tried before the match
    entry = decision_entry(env, refund_id)
    assert (entry.type, entry.actor) == ("StatusChanged:APPROVED", f"policy:{DEFAULT_VERSION}")
    details = entry.details
    assert (details["policy_version"], details["rule_id"], details["outcome"]) == (
        DEFAULT_VERSION,
        "auto_approve",
        "approve",
    )
    assert details["inputs"]["refund"]["amount"] == 2_500
    assert details["inputs"]["refund"]["reason"] == "damaged"
    assert details["inputs"]["payment"]["remaining"] == 1_000_000
    # (the rules tried: their count, the explanation names the unmatched ones in order, rule_id the match; the
    # list of {rule_id, matched} pairs would repeat it and take the entry past 2 KB)
    assert "evaluated_rules" not in details
    skipped = details["explanation"].split("Not matched before it: ", 1)[1].split(".", 1)[0].split(", ")
    assert details["rules_tried"] == len(skipped) + 1 > 1
    tried = [rule.id for rule in load_default_policy().rules][: details["rules_tried"]]
    assert tried == [*skipped, "auto_approve"]
    # AND the event on the bus says what was decided, without the inputs
    event = env.publisher.events[-1]
    assert (event.detail_type, event.refund_id) == ("RefundApproved", refund_id)
    assert (event.details["policy_version"], event.details["rule_id"], event.details["outcome"]) == (
        DEFAULT_VERSION,
        "auto_approve",
        "approve",
    )
    assert "inputs" not in event.details
    assert "evaluated_rules" not in event.details


@pytest.mark.parametrize(
    ("reason", "amount", "role", "reason_code"),
    [
        ("product_return", 2_500, "agent", "return_not_received"),
        ("damaged", 60_000, "team_lead", "amount_above_agent_limit"),
        ("damaged", 250_000, "finance", "amount_above_team_lead_limit"),
        ("fraudulent", 2_500, "finance", "fraud_claim"),
    ],
)
def test_policy_asking_for_approval_parks_the_refund_for_the_required_role(
    paid: World, reason: str, amount: int, role: str, reason_code: str
) -> None:
    env = paid
    # GIVEN a refund the default policy does not approve on its own
    refund_id = looked_up(env, reason=reason, amount=amount)
    # WHEN the policy is evaluated
    result = evaluate(env, refund_id)
    # THEN it waits for a person with the required role, and the approval request goes on the bus
    assert (result.status, result.outcome) == (S.PENDING_APPROVAL, "APPROVAL_REQUIRED")
    refund = env.repository.get(refund_id)
    assert refund.status is S.PENDING_APPROVAL
    assert refund.policy is not None
    assert (refund.policy.outcome, refund.policy.required_role, refund.policy.reason_code) == (
        "require_approval",
        role,
        reason_code,
    )
    assert refund.approval is None
    event = env.publisher.events[-1]
    assert event.detail_type == "RefundApprovalRequested"
    assert (event.details["required_role"], event.details["reason_code"]) == (role, reason_code)


@pytest.mark.parametrize(
    ("captured", "fields", "reason_code"),
    [
        (2_000, {"reason": "damaged", "amount": 2_500}, "exceeds_refundable_amount"),
        (
            10_000,
            {
                "reason": "changed_mind",
                "amount": 2_500,
                "order": {"order_id": "ORD-1", "delivered_at": (NOW - timedelta(days=40)).isoformat()},
            },
            "outside_return_window",
        ),
    ],
)
def test_policy_rejection_fails_the_refund_with_the_rules_reason_code(
    env: World, captured: int, fields: dict[str, Any], reason_code: str
) -> None:
    # GIVEN a refund a rejecting rule matches
    env.provider.add_payment(PAYMENT, eur(captured))
    refund_id = looked_up(env, **fields)
    # WHEN the policy is evaluated
    result = evaluate(env, refund_id)
    # THEN the refund is rejected, and its failure code is the rule's reason code
    assert (result.status, result.outcome) == (S.REJECTED, "REJECTED")
    refund = env.repository.get(refund_id)
    assert refund.policy is not None
    assert (refund.policy.outcome, refund.policy.reason_code) == ("reject", reason_code)
    assert refund.failure is not None
    assert refund.failure.code == reason_code
    assert refund.amount == eur(2_500)
    assert env.publisher.events[-1].detail_type == "RefundRejected"


def test_policy_adjustments_change_the_amount_to_refund(paid: World) -> None:
    env = paid
    # GIVEN a change-of-mind return of a 40.00 EUR electronics item that is back in the warehouse
    refund_id = looked_up(
        env,
        reason="changed_mind",
        amount=4_000,
        lines=[
            {"description": "Headphones", "sku": "HP-1", "category": "electronics", "amount": eur(4_000).model_dump()}
        ],
        **{"return": {"status": "received"}},
    )
    # WHEN the policy is evaluated
    evaluate(env, refund_id)
    # THEN it is approved for what is left after the 15 % restocking fee and the 5.95 EUR return label
    refund = env.repository.get(refund_id)
    assert refund.status is S.APPROVED
    assert refund.requested_amount == eur(4_000)
    assert refund.amount == eur(4_000 - 600 - 595)
    assert refund.policy is not None
    assert [(item.kind, item.amount) for item in refund.policy.adjustments] == [
        ("restocking_fee", eur(600)),
        ("shipping_deduction", eur(595)),
    ]
    # AND the event carries the final amount
    event = env.publisher.events[-1]
    assert event.amount == eur(2_805)
    assert event.details["final_amount"] == {"minor_units": 2_805, "currency": "EUR"}


# ---------------------------------------------------------------- facts gathered from the store


def earlier_requests(env: World, count: int, email: str, prefix: str) -> None:
    for index in range(count):
        env.accept(
            refund_request_body(reference=f"{prefix}-{index}", payment_id=f"pi_{prefix}_{index}", email=email),
            f"dlv-{prefix}-{index}",
        )


@pytest.mark.parametrize(
    ("earlier", "status", "required_role"), [(2, S.APPROVED, None), (3, S.PENDING_APPROVAL, "team_lead")]
)
def test_the_customers_earlier_refunds_drive_the_velocity_rule(
    paid: World, earlier: int, status: RefundStatus, required_role: str | None
) -> None:
    env = paid
    # GIVEN earlier refunds of the same customer this month, and three of someone else
    earlier_requests(env, earlier, "jane.doe@example.com", "RMA-JANE")
    earlier_requests(env, 3, "john.roe@example.com", "RMA-JOHN")
    refund_id = looked_up(env, reason="damaged", amount=2_500, email="jane.doe@example.com")
    # WHEN the policy is evaluated
    evaluate(env, refund_id)
    # THEN only her earlier refunds count (not this one, not his): three of them need a team lead
    refund = env.repository.get(refund_id)
    assert refund.status is status
    assert refund.policy is not None
    assert refund.policy.required_role == required_role
    inputs = decision_entry(env, refund_id).details["inputs"]
    assert inputs["customer"]["last_30_days"] == {"count": earlier, "amount": earlier * 2_500}


def test_an_earlier_request_for_everything_that_was_never_looked_up_does_not_stop_the_policy(paid: World) -> None:
    env = paid
    # GIVEN an earlier request of the same customer for everything left on another payment, never looked up
    env.accept(refund_request_body(reference="RMA-ALL", payment_id="pi_other", amount=None), "dlv-all")
    refund_id = looked_up(env, reason="damaged", amount=2_500)
    # WHEN the policy is evaluated
    result = evaluate(env, refund_id)
    # THEN it decides as for any small refund
    assert result.status is S.APPROVED


def reserved_on(env: World, reference: str, amount: int, day: datetime) -> None:
    """A refund approved and reserved on ``day``: it counts in that day's total."""
    payment_id = f"pi_{reference}"
    env.provider.add_payment(payment_id, eur(amount))
    refund_id = looked_up(env, reference=reference, payment_id=payment_id, reason="damaged", amount=amount)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder, today=lambda: day)


@pytest.mark.parametrize(
    ("reserved_day", "refunded_today", "status"),
    [(NOW, 3_000, S.PENDING_APPROVAL), (NOW - timedelta(days=1), 0, S.APPROVED)],
)
def test_the_days_reserved_total_drives_the_daily_cap(
    paid: World, reserved_day: datetime, refunded_today: int, status: RefundStatus
) -> None:
    env = paid
    # GIVEN a policy capping the day at 50.00 EUR, and 30.00 EUR reserved by another refund
    reserved_on(env, "RMA-EARLIER", 3_000, reserved_day)
    refund_id = looked_up(env, reason="damaged", amount=2_500)
    # WHEN a 25.00 EUR refund is evaluated
    evaluate(env, refund_id, policy_from(CAP_POLICY))
    # THEN what was reserved today counts towards the cap, and past it finance has to approve
    refund = env.repository.get(refund_id)
    assert refund.status is status
    assert refund.policy is not None
    assert refund.policy.policy_version == "cap.1"
    inputs = decision_entry(env, refund_id).details["inputs"]
    assert inputs["merchant"]["refunded_today"] == refunded_today
    if status is S.PENDING_APPROVAL:
        assert (refund.policy.rule_id, refund.policy.required_role) == ("merchant_daily_cap", "finance")


# ---------------------------------------------------------------- approved at the source


def test_a_help_desk_approver_with_a_sufficient_role_approves_at_once(paid: World) -> None:
    env = paid
    # GIVEN a return not yet received (an agent must approve), already approved by a team lead in the help desk
    refund_id = looked_up(
        env, reason="product_return", amount=2_500, approved_by={"id": "zd-4711", "role": "team_lead"}
    )
    # WHEN the policy, which lets that source assert team_lead, is evaluated
    result = evaluate(env, refund_id, trusting_returns_portal())
    # THEN it is approved, and the approval is recorded as the help desk's
    assert result.status is S.APPROVED
    refund = env.repository.get(refund_id)
    assert refund.approval == ApprovalRecord(
        decision="approve", approver="zd-4711", role="team_lead", channel="source:returns-portal", decided_at=NOW
    )
    assert refund.policy is not None
    assert refund.policy.rule_id == "return_not_received"
    assert "approved_at_source" in decision_entry(env, refund_id).details["flags"]


def test_a_help_desk_approver_below_the_required_role_still_needs_approval(paid: World) -> None:
    env = paid
    # GIVEN a 600.00 EUR refund (a team lead must approve) approved in the help desk by an agent
    refund_id = looked_up(env, reason="damaged", amount=60_000, approved_by={"id": "zd-42", "role": "agent"})
    # WHEN the policy is evaluated
    result = evaluate(env, refund_id, trusting_returns_portal())
    # THEN it still waits for a team lead, and no approval is recorded
    assert result.status is S.PENDING_APPROVAL
    refund = env.repository.get(refund_id)
    assert refund.policy is not None
    assert refund.policy.required_role == "team_lead"
    assert refund.approval is None


def test_a_finance_claim_from_a_source_allowed_nothing_does_not_pay_a_fraud_claim(paid: World) -> None:
    env = paid
    # GIVEN the attack: a signed 9,000.00 EUR fraud claim saying finance approved it at the source
    refund_id = looked_up(env, reason="fraudulent", amount=900_000, approved_by={"id": "nobody", "role": "finance"})
    # WHEN the packaged policy (no source may assert anything) is evaluated
    result = evaluate(env, refund_id)
    # THEN the refund waits for finance, no approval is recorded, and the audit trail keeps the ignored claim
    assert result.status is S.PENDING_APPROVAL
    refund = env.repository.get(refund_id)
    assert refund.approval is None
    assert refund.policy is not None
    assert (refund.policy.rule_id, refund.policy.required_role) == ("fraud_claim", "finance")
    details = decision_entry(env, refund_id).details
    assert "source_approval_not_honoured" in details["flags"]
    assert details["source_approval"] == {
        "approver_id": "nobody",
        "role": "finance",
        "source": "returns-portal",
        "honoured": False,
        "verdict": "source_may_not_assert_role",
        "detail": details["source_approval"]["detail"],
        "non_waivable_rules": [],
    }
    assert "not honoured" in details["source_approval"]["detail"]


def test_a_trusted_claim_does_not_waive_customer_velocity(paid: World) -> None:
    env = paid
    # GIVEN a customer with three completed refunds in the last 30 days
    for number in range(3):
        earlier = looked_up(env, reference=f"RMA-V{number}", reason="damaged", amount=1_000)
        evaluate(env, earlier)
    # WHEN a fourth arrives with a team lead claim from a source the policy lets assert team_lead
    claim = {"id": "lee", "role": "team_lead"}
    refund_id = looked_up(env, reference="RMA-V3", reason="damaged", amount=1_000, approved_by=claim)
    result = evaluate(env, refund_id, trusting_returns_portal())
    # THEN velocity still holds it for a person
    assert result.status is S.PENDING_APPROVAL
    refund = env.repository.get(refund_id)
    assert refund.policy is not None
    assert refund.policy.rule_id == "customer_velocity"
    assert refund.approval is None
    assert decision_entry(env, refund_id).details["source_approval"]["verdict"] == "rule_not_waivable"


# ---------------------------------------------------------------- re-runs, order of steps, policy source


@pytest.mark.parametrize(
    "fields",
    [
        {"reason": "damaged", "amount": 2_500},
        {"reason": "product_return", "amount": 2_500},
        {"reason": "damaged", "amount": 2_000_000},
    ],
    ids=["approved", "pending", "rejected"],
)
def test_evaluating_a_decided_refund_again_changes_nothing(paid: World, fields: dict[str, Any]) -> None:
    env = paid
    # GIVEN a refund the policy has decided
    refund_id = looked_up(env, **fields)
    first = evaluate(env, refund_id)
    decided = env.repository.get(refund_id)
    entries = len(env.repository.timeline(refund_id))
    published = env.publisher.distinct(refund_id)
    # WHEN the step runs again (a retried Lambda, a redrive)
    again = evaluate(env, refund_id)
    # THEN the answer is the same, nothing is written, and only event ids already sent go out again
    assert again == first
    assert env.repository.get(refund_id) == decided
    assert len(env.repository.timeline(refund_id)) == entries
    assert env.publisher.distinct(refund_id) == published


def test_evaluating_before_the_payment_was_looked_up_is_an_illegal_transition(paid: World) -> None:
    env = paid
    # GIVEN a validated refund whose payment was not looked up
    refund_id = env.accept(refund_request_body(reason="damaged"), "dlv-1").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    published = list(env.publisher.events)
    # WHEN the policy is evaluated THEN it refuses, and the refund stays as it was
    with pytest.raises(IllegalTransition):
        evaluate(env, refund_id)
    refund = env.repository.get(refund_id)
    assert (refund.status, refund.policy) == (S.VALIDATED, None)
    assert env.publisher.events == published


class BrokenParameterStore:
    def __init__(self, text: str | None) -> None:
        self.text = text
        self.calls: list[str] = []

    def __call__(self, name: str, max_age: int) -> str:
        self.calls.append(name)
        if self.text is None:
            raise RuntimeError("GetParameter: AccessDeniedException")
        return self.text


@pytest.mark.parametrize("text", [None, "version: [unclosed"], ids=["unreachable", "invalid-yaml"])
def test_a_broken_policy_override_lets_the_packaged_default_decide_and_says_so(paid: World, text: str | None) -> None:
    env = paid
    # GIVEN an SSM override that cannot be read or parsed, on a cold start
    store = BrokenParameterStore(text)
    policy = ActivePolicy(source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME=PARAMETER), fetch=store)
    refund_id = looked_up(env, reason="damaged", amount=2_500)
    # WHEN the policy is evaluated
    result = evaluate(env, refund_id, policy)
    # THEN the override was tried, the packaged default decided, and the decision is flagged as a fallback
    assert store.calls == [PARAMETER]
    assert result.status is S.APPROVED
    refund = env.repository.get(refund_id)
    assert refund.policy is not None
    assert refund.policy.policy_version == DEFAULT_VERSION
    details = decision_entry(env, refund_id).details
    assert details["flags"] == ["policy_fallback"]
    assert details["explanation"].startswith("policy_fallback:")
    assert details["policy_source"] == "packaged:default_policy.yaml"
    assert env.publisher.events[-1].details["flags"] == ["policy_fallback"]


FULL_FEE_POLICY = """
version: "fee.1"
currencies: [EUR]
roles: [agent, team_lead, finance]
adjustments:
  keep_everything:
    kind: partial_refund_cap
    description: A goodwill cap of nothing at all
    basis_points: 0
rules:
  - id: capped_goodwill
    description: Goodwill needs an agent, after the cap
    when: refund.reason == 'goodwill'
    outcome: require_approval
    role: agent
    reason_code: goodwill
    adjustments: [keep_everything]
default:
  description: Everything else is approved
  outcome: approve
"""


def test_a_refund_with_nothing_left_after_deductions_is_rejected_not_sent_for_approval(paid: World) -> None:
    env = paid
    # GIVEN a policy whose deductions leave nothing of a goodwill refund
    refund_id = looked_up(env, reason="goodwill", amount=2_000)
    # WHEN the policy decides
    result = evaluate(env, refund_id, policy_from(FULL_FEE_POLICY))
    # THEN nobody is asked to approve a refund of zero: it is rejected with its own reason, nothing reserved
    refund = env.repository.get(refund_id)
    assert (result.status, refund.failure and refund.failure.code) == (S.REJECTED, "nothing_left_after_deductions")
    assert env.balance(PAYMENT)["reserved"] == 0
