"""Each rule of the packaged default policy: where it hits, where it just misses, and its place in the order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from policy_builders import make_facts, make_refund, past_refund

from refundflow.models import RefundReason, ReturnStatus
from refundflow.money import Money
from refundflow.policy import Approver, CustomerRefundSummary, Policy
from refundflow.policy.cli import PolicySample, load_samples
from refundflow.status import RefundStatus

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "policy"

# EUR limits of default_policy.yaml, in cents
AUTO_MAX, AGENT_MAX, TEAM_LEAD_MAX, PER_REFUND_CAP, DAILY_CAP = 5_000, 50_000, 200_000, 1_000_000, 5_000_000


def _samples() -> list[PolicySample]:
    return load_samples(SAMPLES)


@pytest.mark.parametrize("sample", _samples(), ids=lambda sample: sample.name)
def test_sample_refund_gets_the_expected_decision(default_policy: Policy, sample: PolicySample) -> None:
    # GIVEN a sample refund with its expected decision
    assert sample.expect is not None
    # WHEN the default policy decides it
    decision = sample.policy_for(default_policy).decide(sample.policy_input())
    # THEN outcome, rule and final amount are the expected ones
    assert (decision.outcome, decision.rule_id) == (sample.expect.outcome, sample.expect.rule_id)
    if sample.expect.final_minor_units is not None:
        assert decision.final_amount == Money.of(sample.expect.final_minor_units, sample.refund.amount.currency)


def test_samples_hit_every_rule_of_the_default_policy(default_policy: Policy) -> None:
    # GIVEN the sample refunds
    hit = {sample.policy_for(default_policy).decide(sample.policy_input()).rule_id for sample in _samples()}
    # THEN together they exercise every rule and the default
    assert hit == {rule.id for rule in default_policy.rules} | {"default"}


def decide(
    policy: Policy,
    *,
    remaining: int | None = None,
    history: list[CustomerRefundSummary] | None = None,
    refunded_today: int = 0,
    approver: Approver | None = None,
    **refund_args: Any,
) -> tuple[str, str]:
    facts = make_facts(
        make_refund(**refund_args),
        remaining=remaining,
        history=history,
        refunded_today=refunded_today,
        approver=approver,
    )
    decision = policy.decide(facts)
    return decision.outcome, decision.rule_id


def test_amount_equal_to_remaining_is_not_over_remaining(default_policy: Policy) -> None:
    # GIVEN a refund of exactly what the payment has left, and one of a cent more
    at_limit = decide(default_policy, amount=2_000, remaining=2_000)
    over = decide(default_policy, amount=2_000, remaining=1_999)
    # THEN only the second is rejected as exceeding the refundable amount
    assert at_limit == ("approve", "auto_approve")
    assert over == ("reject", "exceeds_refundable_amount")


def test_per_refund_cap_rejects_only_above_the_cap(default_policy: Policy) -> None:
    assert decide(default_policy, amount=PER_REFUND_CAP)[1] == "above_team_lead_limit"
    assert decide(default_policy, amount=PER_REFUND_CAP + 1) == ("reject", "exceeds_per_refund_cap")


def test_final_sale_line_is_rejected_for_a_change_of_mind_but_not_when_damaged(default_policy: Policy) -> None:
    # GIVEN a refunded line whose order item is final sale
    refund_args = {
        "amount": 2_000,
        "lines": [("SKU-F", "apparel", 1, 2_000)],
        "items": [("SKU-F", "apparel", True)],
    }
    # WHEN it comes back for a change of mind, or because it is damaged
    changed_mind = decide(default_policy, reason=RefundReason.CHANGED_MIND, **refund_args)
    damaged = decide(default_policy, reason=RefundReason.DAMAGED, **refund_args)
    # THEN only the change of mind is rejected
    assert changed_mind == ("reject", "final_sale_items")
    assert damaged == ("approve", "auto_approve")


def test_final_sale_item_that_is_not_refunded_does_not_block_the_refund(default_policy: Policy) -> None:
    outcome = decide(
        default_policy,
        amount=2_000,
        reason=RefundReason.CHANGED_MIND,
        lines=[("SKU-OK", "apparel", 1, 2_000)],
        items=[("SKU-OK", "apparel", False), ("SKU-F", "apparel", True)],
    )
    assert outcome == ("approve", "auto_approve")


@pytest.mark.parametrize(
    ("days", "expected"),
    [(30, ("approve", "auto_approve")), (31, ("reject", "outside_return_window")), (None, ("approve", "auto_approve"))],
)
def test_return_window_counts_whole_days_since_delivery(
    default_policy: Policy, days: int | None, expected: tuple[str, str]
) -> None:
    # GIVEN a product return delivered `days` ago (None: not delivered, the window has not started)
    assert decide(default_policy, reason=RefundReason.PRODUCT_RETURN, delivered_days_ago=days) == expected


def test_window_does_not_apply_to_faults(default_policy: Policy) -> None:
    assert decide(default_policy, reason=RefundReason.DAMAGED, delivered_days_ago=200) == ("approve", "auto_approve")


@pytest.mark.parametrize(
    ("reason", "status", "expected_rule"),
    [
        (RefundReason.PRODUCT_RETURN, ReturnStatus.IN_TRANSIT, "return_not_received"),
        (RefundReason.WRONG_ITEM, None, "return_not_received"),
        (RefundReason.PRODUCT_RETURN, ReturnStatus.RECEIVED, "auto_approve"),
        (RefundReason.DAMAGED, ReturnStatus.IN_TRANSIT, "auto_approve"),
    ],
)
def test_return_must_be_received_for_reasons_that_need_it(
    default_policy: Policy, reason: RefundReason, status: ReturnStatus | None, expected_rule: str
) -> None:
    assert decide(default_policy, reason=reason, return_status=status)[1] == expected_rule


def test_agent_who_approved_at_a_trusted_help_desk_satisfies_return_not_received(trusting_policy: Policy) -> None:
    # GIVEN a return still in transit that an agent already approved in a help desk the policy trusts
    outcome = decide(
        trusting_policy,
        reason=RefundReason.PRODUCT_RETURN,
        return_status=ReturnStatus.IN_TRANSIT,
        approver=Approver(id="agent-1", role="agent", source="helpdesk"),
    )
    # THEN no further approval is needed
    assert outcome == ("approve", "return_not_received")


def test_the_default_policy_trusts_no_source(default_policy: Policy) -> None:
    # GIVEN the same refund and claim, decided by the packaged policy (no sources: listed)
    outcome = decide(
        default_policy,
        reason=RefundReason.PRODUCT_RETURN,
        return_status=ReturnStatus.IN_TRANSIT,
        approver=Approver(id="agent-1", role="agent", source="helpdesk"),
    )
    # THEN the claim is ignored: an agent approves through refundflow
    assert outcome == ("require_approval", "return_not_received")


def test_daily_cap_counts_what_the_merchant_refunded_today(default_policy: Policy) -> None:
    assert decide(default_policy, amount=1_000, refunded_today=DAILY_CAP - 1_000)[1] == "auto_approve"
    assert decide(default_policy, amount=1_000, refunded_today=DAILY_CAP - 999) == (
        "require_approval",
        "merchant_daily_cap",
    )


def test_velocity_triggers_on_the_fourth_refund_in_thirty_days(default_policy: Policy) -> None:
    two = [past_refund(3, 500, number=1), past_refund(20, 500, number=2)]
    three = [*two, past_refund(29.9, 500, number=3)]
    assert decide(default_policy, amount=1_000, history=two)[1] == "auto_approve"
    assert decide(default_policy, amount=1_000, history=three) == ("require_approval", "customer_velocity")


def test_velocity_ignores_rejected_failed_and_older_refunds(default_policy: Policy) -> None:
    history = [
        past_refund(3, 500, number=1),
        past_refund(4, 500, number=2),
        past_refund(5, 500, status=RefundStatus.REJECTED, number=3),
        past_refund(6, 500, status=RefundStatus.FAILED, number=4),
        past_refund(30.5, 500, number=5),
    ]
    assert decide(default_policy, amount=1_000, history=history)[1] == "auto_approve"


def test_velocity_amount_counts_only_with_earlier_refunds(default_policy: Policy) -> None:
    # GIVEN 1,000.00 EUR of refunds in 30 days is the velocity amount limit
    earlier = [past_refund(2, 99_000, number=1)]
    # THEN a small refund on top of a large earlier one is reviewed, a first large refund goes by amount
    assert decide(default_policy, amount=1_001, history=earlier) == ("require_approval", "customer_velocity")
    assert decide(default_policy, amount=150_000)[1] == "above_agent_limit"


def test_fraud_claims_go_to_finance(default_policy: Policy) -> None:
    decision = default_policy.decide(make_facts(make_refund(1_000, reason=RefundReason.FRAUDULENT)))
    assert (decision.outcome, decision.rule_id, decision.required_role) == (
        "require_approval",
        "fraud_claim",
        "finance",
    )


def test_goodwill_is_capped_and_needs_a_team_lead(default_policy: Policy) -> None:
    decision = default_policy.decide(make_facts(make_refund(4_000, reason=RefundReason.GOODWILL)))
    assert (decision.rule_id, decision.required_role) == ("goodwill", "team_lead")
    assert decision.final_amount == Money.of(2_000, "EUR")


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (AUTO_MAX, ("approve", "auto_approve", None)),
        (AUTO_MAX + 1, ("require_approval", "above_auto_approve_limit", "agent")),
        (AGENT_MAX, ("require_approval", "above_auto_approve_limit", "agent")),
        (AGENT_MAX + 1, ("require_approval", "above_agent_limit", "team_lead")),
        (TEAM_LEAD_MAX, ("require_approval", "above_agent_limit", "team_lead")),
        (TEAM_LEAD_MAX + 1, ("require_approval", "above_team_lead_limit", "finance")),
    ],
)
def test_amount_thresholds_pick_the_approver_role(
    default_policy: Policy, amount: int, expected: tuple[str, str, str | None]
) -> None:
    decision = default_policy.decide(make_facts(make_refund(amount)))
    assert (decision.outcome, decision.rule_id, decision.required_role) == expected


@pytest.mark.parametrize("reason", [RefundReason.DUPLICATE_CHARGE, RefundReason.OTHER])
def test_reasons_without_a_rule_fall_to_the_default(default_policy: Policy, reason: RefundReason) -> None:
    decision = default_policy.decide(make_facts(make_refund(1_000, reason=reason)))
    assert (decision.outcome, decision.rule_id, decision.required_role) == ("require_approval", "default", "agent")
    assert decision.evaluated_rules[-1].rule_id == "default"


def test_first_matching_rule_decides_even_when_later_rules_match_too(default_policy: Policy) -> None:
    # GIVEN a fraud claim above the team lead limit that also exceeds the remaining amount
    facts = make_facts(make_refund(TEAM_LEAD_MAX + 1, reason=RefundReason.FRAUDULENT), remaining=TEAM_LEAD_MAX)
    # WHEN decided
    decision = default_policy.decide(facts)
    # THEN the first rule in order wins, and no rule after it was evaluated
    assert (decision.outcome, decision.rule_id) == ("reject", "exceeds_refundable_amount")
    assert [trace.rule_id for trace in decision.evaluated_rules] == ["exceeds_refundable_amount"]


def test_changed_mind_electronics_pay_the_restocking_fee_whoever_approves(default_policy: Policy) -> None:
    # GIVEN a change-of-mind return of electronics above the agent limit (a team lead approves)
    refund = make_refund(
        60_000,
        reason=RefundReason.CHANGED_MIND,
        lines=[("TV-1", "electronics", 1, 60_000)],
        items=[("TV-1", "electronics", False)],
    )
    decision = default_policy.decide(make_facts(refund))
    # THEN 15 % restocking and the 5.95 EUR label are deducted: 600.00 - 90.00 - 5.95
    assert (decision.rule_id, decision.required_role) == ("above_agent_limit", "team_lead")
    assert decision.final_amount == Money.of(50_405, "EUR")
    assert [(item.kind, item.amount.minor_units) for item in decision.adjustments] == [
        ("restocking_fee", 9_000),
        ("shipping_deduction", 595),
    ]
