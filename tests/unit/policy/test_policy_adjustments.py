"""Restocking fees, shipping deductions and caps: exact minor units, never negative, never above the request."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import make_facts, make_refund, policy_text

from refundflow.models import RefundReason
from refundflow.money import Money
from refundflow.policy import load_policy
from refundflow.policy.adjustments import apply_adjustments
from refundflow.policy.document import PartialRefundCap, RestockingFee, ShippingDeduction
from refundflow.policy.engine import NOTHING_TO_REFUND
from refundflow.policy.inputs import LineFacts

CURRENCIES = ["JPY", "EUR", "KWD"]


def line(amount: int, category: str | None = None, *, sku: str | None = None, quantity: int = 1) -> LineFacts:
    return LineFacts(sku=sku, category=category, quantity=quantity, amount=amount, final_sale=False)


def restocking(**fields: Any) -> RestockingFee:
    return RestockingFee.model_validate({"kind": "restocking_fee", "description": "Restocking fee", **fields})


def shipping(amounts: dict[str, int]) -> ShippingDeduction:
    return ShippingDeduction.model_validate({"kind": "shipping_deduction", "description": "Label", "amount": amounts})


def cap(**fields: Any) -> PartialRefundCap:
    return PartialRefundCap.model_validate({"kind": "partial_refund_cap", "description": "Cap", **fields})


def test_restocking_fee_in_basis_points_hits_only_lines_of_its_categories() -> None:
    # GIVEN 15 % on electronics, a refund with an electronics line and a kitchen line
    lines = [line(19_999, "electronics", sku="PHONE"), line(5_000, "kitchen", sku="PAN")]
    # WHEN applied
    result = apply_adjustments(
        Money.of(24_999, "EUR"), lines, [("fee", restocking(categories=["electronics"], basis_points=1500))]
    )
    # THEN 15 % of 199.99 EUR rounds half-even to 30.00 EUR, and the adjustment names what it hit
    (fee,) = result.applied
    assert fee.amount == Money.of(3_000, "EUR")
    assert (fee.lines, fee.categories) == (["PHONE"], ["electronics"])
    assert result.final == Money.of(21_999, "EUR")
    assert "PHONE" in fee.to_adjustment().description


def test_fixed_restocking_fee_is_per_unit_and_never_more_than_the_line() -> None:
    # GIVEN 3.000 KWD per unit on furniture: 2 chairs at 10.000 KWD and 1 stool at 2.000 KWD
    lines = [line(10_000, "furniture", sku="CHAIR", quantity=2), line(2_000, "furniture", sku="STOOL")]
    result = apply_adjustments(
        Money.of(12_000, "KWD"), lines, [(None, restocking(categories=["furniture"], per_unit={"KWD": 3_000}))]
    )
    # THEN the chairs pay 2 x 3.000 and the stool only its own 2.000
    assert result.applied[0].amount == Money.of(8_000, "KWD")
    assert result.final == Money.of(4_000, "KWD")


def test_restocking_fee_without_lines_of_its_category_deducts_nothing_and_says_so() -> None:
    result = apply_adjustments(
        Money.of(5_000, "JPY"),
        [line(5_000, "books")],
        [("fee", restocking(categories=["electronics"], basis_points=1500))],
    )
    assert result.applied == []
    assert result.final == Money.of(5_000, "JPY")
    assert "no lines in electronics" in result.notes[0]


def test_restocking_fee_without_categories_applies_to_a_refund_without_lines() -> None:
    result = apply_adjustments(Money.of(1_001, "JPY"), [], [(None, restocking(basis_points=1000))])
    # 10 % of 1001 yen is 100.1, rounded half-even to 100
    assert result.final == Money.of(901, "JPY")


def test_shipping_deduction_is_clamped_to_what_is_left() -> None:
    result = apply_adjustments(Money.of(300, "EUR"), [], [(None, shipping({"EUR": 595}))])
    assert result.applied[0].amount == Money.of(300, "EUR")
    assert result.final == Money.zero("EUR")


def test_cap_takes_the_lower_of_share_and_maximum() -> None:
    specs = [("goodwill", cap(basis_points=5000, max={"EUR": 10_000}))]
    assert apply_adjustments(Money.of(30_000, "EUR"), [], specs).final == Money.of(10_000, "EUR")
    assert apply_adjustments(Money.of(12_000, "EUR"), [], specs).final == Money.of(6_000, "EUR")


def test_cap_above_the_amount_changes_nothing() -> None:
    result = apply_adjustments(Money.of(4_000, "EUR"), [], [("cap", cap(max={"EUR": 10_000}))])
    assert result.applied == []
    assert result.final == Money.of(4_000, "EUR")
    assert "within the cap" in result.notes[0]


def test_adjustments_apply_in_the_order_written() -> None:
    # GIVEN a 50 % cap and a 10.00 EUR label on 100.00 EUR
    fee_then_cap = [(None, shipping({"EUR": 1_000})), (None, cap(basis_points=5000))]
    cap_then_fee = [(None, cap(basis_points=5000)), (None, shipping({"EUR": 1_000}))]
    # THEN the cap bounds what is left after the label, or the label comes off the capped amount
    assert apply_adjustments(Money.of(10_000, "EUR"), [], fee_then_cap).final == Money.of(5_000, "EUR")
    assert apply_adjustments(Money.of(10_000, "EUR"), [], cap_then_fee).final == Money.of(4_000, "EUR")


categories = st.sampled_from(["electronics", "kitchen", None])
lines_strategy = st.lists(
    st.builds(
        line,
        st.integers(min_value=0, max_value=10**9),
        categories,
        quantity=st.integers(min_value=1, max_value=5),
    ),
    max_size=5,
)


@st.composite
def adjustment_specs(draw: st.DrawFn, currency: str) -> list[tuple[str | None, Any]]:
    amounts = st.integers(min_value=0, max_value=10**9)
    options = [
        st.builds(
            lambda bp, cats: restocking(basis_points=bp, categories=cats),
            st.integers(min_value=0, max_value=10_000),
            st.one_of(st.none(), st.just(["electronics"])),
        ),
        st.builds(lambda amount: restocking(per_unit={currency: amount}), amounts),
        st.builds(lambda amount: shipping({currency: amount}), amounts),
        st.builds(lambda bp: cap(basis_points=bp), st.integers(min_value=0, max_value=10_000)),
        st.builds(lambda amount: cap(max={currency: amount}), amounts),
    ]
    return [(None, spec) for spec in draw(st.lists(st.one_of(options), max_size=4))]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), currency=st.sampled_from(CURRENCIES), requested=st.integers(min_value=1, max_value=10**12))
def test_adjusted_amount_is_exact_never_negative_and_never_above_the_request(
    data: st.DataObject, currency: str, requested: int
) -> None:
    # GIVEN any lines and any sequence of adjustments in JPY, EUR or KWD
    lines = data.draw(lines_strategy)
    specs = data.draw(adjustment_specs(currency))
    # WHEN applied
    result = apply_adjustments(Money.of(requested, currency), lines, specs)
    # THEN the refund stays within 0..requested and the deductions add up exactly, in integers
    assert 0 <= result.final.minor_units <= requested
    assert result.final.currency == currency
    assert type(result.final.minor_units) is int
    deducted = sum(item.amount.minor_units for item in result.applied)
    assert requested - deducted == result.final.minor_units
    assert all(item.amount.minor_units > 0 and item.amount.currency == currency for item in result.applied)


def test_policy_that_deducts_everything_does_not_approve_a_zero_refund() -> None:
    # GIVEN a policy that approves everything with a 100 % restocking fee
    policy = load_policy(
        policy_text(
            rules=[],
            default={
                "description": "Approve",
                "outcome": "approve",
                "adjustments": [{"kind": "restocking_fee", "description": "Everything", "basis_points": 10_000}],
            },
        ),
        source="test",
    )
    # WHEN a refund is decided
    decision = policy.decide(make_facts(make_refund(2_000)))
    # THEN nothing is approved: the lowest role looks at it
    assert (decision.outcome, decision.required_role, decision.reason_code) == (
        "require_approval",
        "agent",
        NOTHING_TO_REFUND,
    )


def test_adjustment_with_a_false_condition_is_not_applied() -> None:
    policy = load_policy(
        policy_text(
            adjustments={
                "label": {
                    "kind": "shipping_deduction",
                    "description": "Label",
                    "when": "refund.reason == 'changed_mind'",
                    "amount": {"EUR": 500, "JPY": 500, "KWD": 500},
                }
            },
            default={"description": "Approve", "outcome": "approve", "adjustments": ["label"]},
        ),
        source="test",
    )
    damaged = policy.decide(make_facts(make_refund(2_000, reason=RefundReason.DAMAGED)))
    changed_mind = policy.decide(make_facts(make_refund(2_000, reason=RefundReason.CHANGED_MIND)))
    assert damaged.final_amount == Money.of(2_000, "EUR")
    assert changed_mind.final_amount == Money.of(1_500, "EUR")
    assert [item.to_adjustment().kind for item in changed_mind.adjustments] == ["shipping_deduction"]
