"""approved_by claims: honoured only from a source the policy lets assert that role, never for a rule the
policy makes non-waivable, and always recorded in the decision (issue 6, item 1)."""

from __future__ import annotations

import pytest
from policy_builders import make_facts, make_refund, past_refund, policy_text

from refundflow.models import RefundReason, ReturnStatus
from refundflow.policy import Approver, InvalidPolicy, Policy, load_policy
from refundflow.policy.document import SourceTrust
from refundflow.policy.engine import APPROVED_AT_SOURCE, SOURCE_APPROVAL_NOT_HONOURED

FRAUD_AMOUNT = 900_000  # 9,000.00 EUR: below the per-refund cap, above every role's automatic limit


def finance_claim(source: str = "returns-portal") -> Approver:
    return Approver(id="nobody", role="finance", source=source)


def test_a_finance_claim_from_a_source_allowed_nothing_does_not_pay_a_fraud_claim(default_policy: Policy) -> None:
    # GIVEN the attack: a signed 9,000 EUR fraud claim whose body says finance approved it
    facts = make_facts(make_refund(FRAUD_AMOUNT, reason=RefundReason.FRAUDULENT), approver=finance_claim())
    # WHEN the default policy (which lets no source assert any role) decides
    decision = default_policy.decide(facts)
    # THEN finance must approve it through refundflow, and the decision records the ignored claim and why
    assert (decision.outcome, decision.rule_id, decision.required_role) == (
        "require_approval",
        "fraud_claim",
        "finance",
    )
    assert APPROVED_AT_SOURCE not in decision.flags
    assert SOURCE_APPROVAL_NOT_HONOURED in decision.flags
    check = decision.source_approval
    assert check is not None
    assert (check.approver_id, check.role, check.source, check.honoured, check.verdict) == (
        "nobody",
        "finance",
        "returns-portal",
        False,
        "source_may_not_assert_role",
    )
    assert "not honoured" in decision.explanation


def test_a_source_allowed_team_lead_cannot_claim_finance(default_policy: Policy) -> None:
    # GIVEN a returns portal the policy lets assert team_lead only
    policy = default_policy.with_sources({"returns-portal": SourceTrust(may_assert_roles=["team_lead"])})
    big = make_refund(300_000, reason=RefundReason.DAMAGED)  # above the team lead limit: finance decides
    # WHEN it claims finance for a refund that needs finance
    decision = policy.decide(make_facts(big, approver=finance_claim()))
    # THEN the claim is ignored: finance approves through refundflow
    assert (decision.outcome, decision.required_role) == ("require_approval", "finance")
    assert decision.source_approval is not None
    assert decision.source_approval.verdict == "source_may_not_assert_role"
    assert "assert team_lead" in decision.source_approval.detail
    # AND a team lead claim from it, within its allowance, is honoured where a team lead suffices
    lead = Approver(id="lee", role="team_lead", source="returns-portal")
    honoured = policy.decide(make_facts(make_refund(75_000), approver=lead))
    assert (honoured.outcome, honoured.rule_id) == ("approve", "above_agent_limit")
    assert honoured.source_approval is not None
    assert honoured.source_approval.honoured


def test_a_claim_from_another_source_than_the_trusted_one_is_ignored(trusting_policy: Policy) -> None:
    # GIVEN a policy that trusts the help desk, and a claim made by some other source
    facts = make_facts(make_refund(75_000), approver=Approver(id="lee", role="team_lead", source="returns-portal"))
    # WHEN decided THEN a person approves
    decision = trusting_policy.decide(facts)
    assert decision.outcome == "require_approval"
    assert decision.source_approval is not None
    assert decision.source_approval.verdict == "source_may_not_assert_role"


def test_fraud_claims_are_not_waivable_even_by_a_source_allowed_finance(trusting_policy: Policy) -> None:
    # GIVEN a source the policy lets assert finance, claiming finance on a fraud claim
    facts = make_facts(make_refund(FRAUD_AMOUNT, reason=RefundReason.FRAUDULENT), approver=finance_claim("helpdesk"))
    # WHEN decided
    decision = trusting_policy.decide(facts)
    # THEN finance still approves through refundflow
    assert (decision.outcome, decision.rule_id, decision.required_role) == (
        "require_approval",
        "fraud_claim",
        "finance",
    )
    assert decision.source_approval is not None
    assert (decision.source_approval.verdict, decision.source_approval.non_waivable_rules) == (
        "rule_not_waivable",
        ["fraud_claim"],
    )


@pytest.mark.parametrize("role", ["team_lead", "finance"])
def test_customer_velocity_is_not_waived_by_a_claim(trusting_policy: Policy, role: str) -> None:
    # GIVEN a customer with three refunds in 30 days, and a trusted claim that satisfies the rule's role
    history = [past_refund(3, 500, number=1), past_refund(10, 500, number=2), past_refund(20, 500, number=3)]
    facts = make_facts(make_refund(1_000), history=history, approver=Approver(id="lee", role=role, source="helpdesk"))
    # WHEN decided THEN velocity still holds the refund for a person
    decision = trusting_policy.decide(facts)
    assert (decision.outcome, decision.rule_id) == ("require_approval", "customer_velocity")
    assert decision.source_approval is not None
    assert decision.source_approval.verdict == "rule_not_waivable"


def test_daily_cap_is_not_waived_by_a_claim(trusting_policy: Policy) -> None:
    facts = make_facts(make_refund(2_000), refunded_today=4_999_000, approver=finance_claim("helpdesk"))
    decision = trusting_policy.decide(facts)
    assert (decision.outcome, decision.rule_id) == ("require_approval", "merchant_daily_cap")


def test_a_waivable_rule_first_in_order_cannot_hide_a_non_waivable_one(trusting_policy: Policy) -> None:
    # GIVEN a return still in transit (waivable by an agent) from a customer who also trips velocity
    history = [past_refund(3, 500, number=1), past_refund(10, 500, number=2), past_refund(20, 500, number=3)]
    refund = make_refund(1_000, reason=RefundReason.PRODUCT_RETURN, return_status=ReturnStatus.IN_TRANSIT)
    lead = Approver(id="lee", role="team_lead", source="helpdesk")
    # WHEN decided
    decision = trusting_policy.decide(make_facts(refund, history=history, approver=lead))
    # THEN the first rule decides as before, but the claim does not stand in for the approval
    assert (decision.outcome, decision.rule_id) == ("require_approval", "return_not_received")
    assert decision.source_approval is not None
    assert (decision.source_approval.verdict, decision.source_approval.non_waivable_rules) == (
        "non_waivable_rule_applies",
        ["customer_velocity"],
    )
    # AND without the velocity history the same claim is honoured
    honoured = trusting_policy.decide(make_facts(refund, approver=lead))
    assert honoured.outcome == "approve"


def test_rules_do_not_see_a_claim_the_source_may_not_make() -> None:
    # GIVEN a policy with a rule that reads the approver, trusting only the help desk
    rules = [
        {"id": "claimed", "description": "A claim", "when": "approver.present", "outcome": "reject", "reason_code": "x"}
    ]
    text = policy_text(rules=rules, sources={"helpdesk": {"may_assert_roles": ["agent"]}})
    policy = load_policy(text, source="test")
    # WHEN an untrusted source and the trusted one make the same claim
    untrusted = policy.decide(make_facts(approver=Approver(id="a", role="agent", source="returns-portal")))
    trusted = policy.decide(make_facts(approver=Approver(id="a", role="agent", source="helpdesk")))
    # THEN only the trusted claim is a fact the rules see
    assert untrusted.rule_id == "default"
    assert trusted.rule_id == "claimed"


def test_the_default_policy_trusts_nobody_and_protects_the_caps_velocity_and_fraud(default_policy: Policy) -> None:
    assert default_policy.document.sources == {}
    assert set(default_policy.document.not_waivable_by_source) >= {
        "fraud_claim",
        "exceeds_per_refund_cap",
        "merchant_daily_cap",
        "customer_velocity",
    }


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidPolicy) as caught:
        load_policy(text, source="test.yaml")
    return caught.value.problems


def test_loading_refuses_unknown_rules_in_not_waivable_by_source() -> None:
    problems = problems_of(policy_text(not_waivable_by_source=["big", "fraud_claimz"]))
    assert problems == ["not_waivable_by_source: unknown rule 'fraud_claimz' (rules: big, default)"]


def test_loading_refuses_a_rule_listed_twice_as_not_waivable() -> None:
    problems = problems_of(policy_text(not_waivable_by_source=["big", "big"]))
    assert problems == ["not_waivable_by_source: rule 'big' is listed more than once"]


def test_loading_refuses_unknown_roles_and_fields_in_sources() -> None:
    problems = problems_of(policy_text(sources={"helpdesk": {"may_assert_roles": ["cfo"]}}))
    assert problems == [
        "sources.helpdesk: may_assert_roles names unknown role 'cfo' (roles: agent, team_lead, finance)"
    ]
    unknown = problems_of(policy_text(sources={"helpdesk": {"may_assert_role": ["agent"]}}))
    assert any("sources.helpdesk" in problem and "may_assert_role" in problem for problem in unknown)


def test_with_sources_refuses_unknown_roles(default_policy: Policy) -> None:
    with pytest.raises(InvalidPolicy, match="unknown role 'cfo'"):
        default_policy.with_sources({"x": SourceTrust(may_assert_roles=["cfo"])})
