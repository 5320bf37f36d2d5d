"""Decisions: what they record, how roles compare, and that a failing rule never approves."""

from __future__ import annotations

import json

import pytest
from policy_builders import make_facts, make_refund, policy_text

from refundflow.models import PolicyDecisionRecord, RefundReason, ReturnStatus
from refundflow.money import Money
from refundflow.policy import Approver, Policy, PolicyDecision, PolicyInput, load_policy
from refundflow.policy.engine import CURRENCY_RULE_ID, EVALUATION_ERROR, InvalidPolicy


def test_decision_records_policy_version_rule_and_the_inputs_it_saw(default_policy: Policy) -> None:
    # GIVEN a refund's facts
    facts = make_facts(make_refund(2_000, reason=RefundReason.DAMAGED))
    # WHEN the default policy decides
    decision = default_policy.decide(facts)
    # THEN the decision says which version and rule decided, on exactly these inputs, JSON-safe
    assert (decision.policy_version, decision.rule_id, decision.outcome) == ("2026.12.1", "auto_approve", "approve")
    assert decision.policy_source == "packaged:default_policy.yaml"
    assert len(decision.policy_digest) == 64
    assert decision.inputs == facts.snapshot()
    assert json.loads(json.dumps(decision.inputs))["refund"]["amount"] == 2_000
    assert decision.evaluated_rules[-1].rule_id == "auto_approve"


def test_record_carries_outcome_role_and_adjustments_for_the_refund_state(default_policy: Policy) -> None:
    # GIVEN a change-of-mind return of electronics that needs an agent
    refund = make_refund(20_000, reason=RefundReason.CHANGED_MIND, lines=[("HP-1", "electronics", 1, 20_000)])
    decision = default_policy.decide(make_facts(refund))
    # WHEN it becomes the record stored on the refund
    record = decision.to_record()
    # THEN the record has the outcome, role, rule, version and each deduction with the lines it hit
    assert isinstance(record, PolicyDecisionRecord)
    assert (record.outcome, record.required_role, record.rule_id, record.policy_version) == (
        "require_approval",
        "agent",
        "above_auto_approve_limit",
        "2026.12.1",
    )
    assert [(item.kind, item.amount) for item in record.adjustments] == [
        ("restocking_fee", Money.of(3_000, "EUR")),
        ("shipping_deduction", Money.of(595, "EUR")),
    ]
    assert "HP-1" in record.adjustments[0].description
    assert record.explanation is not None
    assert "above_auto_approve_limit" in record.explanation


def test_record_explanation_is_cut_to_the_record_limit() -> None:
    # GIVEN a policy with many rules, so the explanation lists many ids
    rules = [
        {"id": f"rule_number_{index:03d}", "description": "Never", "when": "false", "outcome": "approve"}
        for index in range(120)
    ]
    policy = load_policy(policy_text(rules=rules), source="test")
    decision = policy.decide(make_facts())
    # THEN the full explanation is kept on the decision, the record holds at most 2000 characters
    assert len(decision.explanation) > 2_000
    assert decision.to_record().explanation is not None
    assert len(decision.to_record().explanation or "") == 2_000


@pytest.mark.parametrize(
    ("role", "required", "satisfied"),
    [
        ("agent", "agent", True),
        ("team_lead", "agent", True),
        ("finance", "team_lead", True),
        ("agent", "team_lead", False),
        ("team_lead", "finance", False),
        ("admin", "agent", False),
        ("finance", "owner", False),
        (None, "agent", False),
    ],
)
def test_role_satisfies_follows_the_policy_role_order(
    default_policy: Policy, role: str | None, required: str, satisfied: bool
) -> None:
    assert default_policy.role_satisfies(role, required) is satisfied


def test_role_order_is_the_documents_order() -> None:
    # GIVEN a policy whose roles are ordered differently
    policy = load_policy(policy_text(roles=["finance", "team_lead", "agent"]), source="test")
    # THEN authority follows that order
    assert policy.role_satisfies("agent", "finance")
    assert not policy.role_satisfies("finance", "agent")


def test_approver_at_source_with_enough_authority_turns_approval_into_approve(trusting_policy: Policy) -> None:
    facts = make_facts(make_refund(60_000), approver=Approver(id="lead-1", role="finance", source="helpdesk"))
    decision = trusting_policy.decide(facts)
    assert (decision.outcome, decision.rule_id, decision.required_role) == ("approve", "above_agent_limit", "team_lead")
    assert "approved_at_source" in decision.flags
    assert "lead-1" in decision.explanation
    assert decision.source_approval is not None
    assert decision.source_approval.verdict == "honoured"


def test_approver_at_source_without_enough_authority_still_needs_approval(trusting_policy: Policy) -> None:
    facts = make_facts(make_refund(60_000), approver=Approver(id="agent-9", role="agent", source="helpdesk"))
    decision = trusting_policy.decide(facts)
    assert (decision.outcome, decision.required_role) == ("require_approval", "team_lead")
    assert "does not satisfy team_lead" in decision.explanation


def test_approver_at_source_cannot_overturn_a_rejection(trusting_policy: Policy) -> None:
    facts = make_facts(
        make_refund(2_000), remaining=1_000, approver=Approver(id="cfo", role="finance", source="helpdesk")
    )
    assert trusting_policy.decide(facts).outcome == "reject"


FRAGILE_RULES = [
    {
        # Divides by zero only for a refund of exactly 7 minor units: passes the loader, fails at runtime.
        "id": "fragile",
        "description": "Fails for an amount of 7",
        "when": "100 / (refund.amount - 7) > 1000",
        "outcome": "reject",
        "reason_code": "never",
    },
    {"id": "approve_all", "description": "Approve everything", "when": "true", "outcome": "approve"},
]


def test_rule_that_fails_at_runtime_never_approves() -> None:
    # GIVEN a rule that fails for this refund, followed by a rule that would approve it
    policy = load_policy(policy_text(rules=FRAGILE_RULES), source="test")
    # WHEN a refund of 7 is decided, even with a finance approver at the source
    decision = policy.decide(make_facts(make_refund(7), approver=Approver(id="cfo", role="finance", source="x")))
    # THEN the highest role must approve it, and the decision names the failing rule
    assert (decision.outcome, decision.required_role, decision.reason_code, decision.rule_id) == (
        "require_approval",
        "finance",
        EVALUATION_ERROR,
        "fragile",
    )
    assert EVALUATION_ERROR in decision.flags
    assert "rule 'fragile' could not be evaluated" in decision.explanation
    assert "ZeroDivisionError" in decision.explanation
    assert decision.adjustments == []


def test_same_policy_decides_normally_when_the_rule_does_not_fail() -> None:
    policy = load_policy(policy_text(rules=FRAGILE_RULES), source="test")
    assert policy.decide(make_facts(make_refund(8))).rule_id == "approve_all"


def test_adjustment_condition_that_fails_at_runtime_never_approves() -> None:
    # GIVEN a default approval whose adjustment condition fails for an amount of 7
    policy = load_policy(
        policy_text(
            rules=[],
            default={
                "description": "Approve",
                "outcome": "approve",
                "adjustments": [
                    {
                        "kind": "partial_refund_cap",
                        "description": "Cap",
                        "when": "100 / (refund.amount - 7) > 0",
                        "basis_points": 5000,
                    }
                ],
            },
        ),
        source="test",
    )
    decision = policy.decide(make_facts(make_refund(7)))
    assert (decision.outcome, decision.required_role, decision.rule_id) == ("require_approval", "finance", "default")
    assert "adjustment 'partial_refund_cap'" in decision.explanation


def test_refund_in_a_currency_the_policy_does_not_know_goes_to_the_highest_role(default_policy: Policy) -> None:
    decision = default_policy.decide(make_facts(make_refund(100, "CHF")))
    assert (decision.outcome, decision.required_role, decision.rule_id) == (
        "require_approval",
        "finance",
        CURRENCY_RULE_ID,
    )
    assert decision.final_amount == Money.of(100, "CHF")


def test_policy_is_immutable(default_policy: Policy) -> None:
    with pytest.raises(AttributeError):
        default_policy.rules = ()  # type: ignore[misc]


def test_recorded_inputs_replay_to_the_same_decision(default_policy: Policy) -> None:
    # GIVEN a decision stored in the audit trail as JSON
    refund = make_refund(20_000, reason=RefundReason.CHANGED_MIND, lines=[("HP-1", "electronics", 1, 20_000)])
    facts = make_facts(refund)
    stored = json.dumps(default_policy.decide(facts).model_dump(mode="json"))
    # WHEN its inputs are read back and decided again by the same policy version
    recorded = PolicyDecision.model_validate_json(stored)
    replayed = default_policy.decide(PolicyInput.model_validate_json(json.dumps(recorded.inputs)))
    # THEN the decision is the same
    assert replayed == recorded


# ---------------------------------------------------------------- waiting for a return (issue 12)

WAIT_RULE = {
    "id": "goods_first",
    "description": "Changed-mind refunds wait for the goods",
    "when": "refund.reason == 'changed_mind' && !return_info.received",
    "outcome": "wait_for_return",
    "reason_code": "return_not_received",
}


def test_wait_for_return_decides_a_refund_whose_goods_are_not_back_and_no_claim_skips_it() -> None:
    policy = load_policy(
        policy_text(rules=[WAIT_RULE], sources={"helpdesk": {"may_assert_roles": ["finance"]}}), source="test"
    )
    claim = Approver(id="lee", role="finance", source="helpdesk")
    in_transit = make_refund(2_000, reason=RefundReason.CHANGED_MIND, return_status=ReturnStatus.IN_TRANSIT)
    decision = policy.decide(make_facts(in_transit, approver=claim))
    assert (decision.outcome, decision.rule_id, decision.reason_code) == (
        "wait_for_return",
        "goods_first",
        "return_not_received",
    )
    assert decision.required_role is None
    assert "wait for the return" in decision.explanation
    assert decision.source_approval is not None
    assert decision.source_approval.honoured is False
    # AND once the goods are back, or for another reason, nothing holds it back
    received = make_refund(2_000, reason=RefundReason.CHANGED_MIND, return_status=ReturnStatus.RECEIVED)
    assert policy.decide(make_facts(received)).outcome == "approve"
    damaged = make_refund(2_000, reason=RefundReason.DAMAGED, return_status=ReturnStatus.IN_TRANSIT)
    assert policy.decide(make_facts(damaged)).outcome == "approve"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"rules": [{**WAIT_RULE, "role": "agent"}]}, "role is only meaningful with require_approval"),
        ({"default": {"description": "Wait", "outcome": "wait_for_return"}}, "the default cannot wait_for_return"),
    ],
    ids=["no-role", "not-the-default"],
)
def test_a_wait_takes_no_role_and_the_default_cannot_wait(change: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidPolicy, match=problem):
        load_policy(policy_text(**change), source="test")
