"""The policy's split_tenders section: checked when the policy loads, then dividing refunds the merchant's way."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any, get_args

import pytest
from policy_builders import policy_text

from refundflow.domain.allocation import AllocationImpossible, AllocationRule, TenderBalance
from refundflow.models import PaymentProvider, PaymentReference, TenderKind
from refundflow.money import Money
from refundflow.policy import (
    ActivePolicy,
    AllocationExpressionFailed,
    AllocationRuleNotAllowed,
    InvalidPolicy,
    Policy,
    PolicySourceSettings,
    allocate_legs,
    allowed_rules,
    load_policy,
)
from refundflow.policy.cli import main
from refundflow.policy.document import AllocationRuleName


def with_split(**section: Any) -> Policy:
    return load_policy(policy_text(split_tenders=section), source="test.yaml")


def split_problems(**section: Any) -> list[str]:
    with pytest.raises(InvalidPolicy) as caught:
        with_split(**section)
    return caught.value.problems


def tender(
    index: int,
    kind: TenderKind,
    captured: int,
    *,
    remaining: int | None = None,
    provider: PaymentProvider = PaymentProvider.STRIPE,
    day: int | None = None,
    currency: str = "EUR",
) -> TenderBalance:
    return TenderBalance(
        index=index,
        payment=PaymentReference(provider=provider, payment_id=f"pay_{index}"),
        kind=kind,
        captured=Money.of(captured, currency),
        remaining=Money.of(captured if remaining is None else remaining, currency),
        captured_at=datetime(2025, 3, day, 12, tzinfo=UTC) if day is not None else None,
    )


def amounts(legs: list[Any]) -> dict[int, int]:
    return {leg.index: leg.amount.minor_units for leg in legs}


CARD_AND_GIFT_CARD = [tender(0, TenderKind.CARD, 6_000, day=1), tender(1, TenderKind.GIFT_CARD, 4_000, day=2)]


# ------------------------------------------------------------------ loading


def test_document_rule_names_are_the_allocation_rules() -> None:
    # GIVEN the names the document accepts WHEN compared with the domain's rules THEN they are the same set
    assert set(get_args(AllocationRuleName)) == {rule.value for rule in AllocationRule}


def test_policy_without_the_section_divides_last_captured_first_and_allows_nothing_else() -> None:
    # GIVEN a policy that says nothing about split tenders
    policy = load_policy(policy_text(), source="test.yaml")
    # WHEN a request names no rule THEN the newest payment is refunded first
    legs = allocate_legs(policy, Money.of(5_000, "EUR"), CARD_AND_GIFT_CARD, None)
    assert amounts(legs) == {0: 1_000, 1: 4_000}
    assert allowed_rules(policy) == {AllocationRule.LAST_CAPTURED_FIRST}
    # AND naming another rule is refused
    with pytest.raises(AllocationRuleNotAllowed, match="does not allow the allocation rule 'proportional'"):
        allocate_legs(policy, Money.of(5_000, "EUR"), CARD_AND_GIFT_CARD, "proportional")


def test_packaged_policy_configures_split_tenders(default_policy: Policy) -> None:
    assert allowed_rules(default_policy) == set(AllocationRule)
    assert default_policy.split_tenders.default_rule is AllocationRule.LAST_CAPTURED_FIRST
    assert default_policy.split_tenders.fee_basis_points(TenderKind.WALLET, PaymentProvider.PAYPAL) == 340
    assert default_policy.split_tenders.fee_basis_points(TenderKind.OTHER, PaymentProvider.STRIPE) is None


def test_packaged_policy_still_fits_an_ssm_advanced_parameter() -> None:
    # The README tells merchants to copy it into an SSM parameter (Advanced tier: at most 8 KB).
    text = resources.files("refundflow.policy").joinpath("default_policy.yaml").read_bytes()
    assert len(text) <= 8_192


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"rule": "newest_first"}, "split_tenders.rule: Input should be 'last_captured_first'"),
        ({"allowed_request_rules": ["cheapest"]}, "split_tenders.allowed_request_rules.0: Input should be"),
        ({"rule": "expression"}, "the expression rule needs an expression"),
        ({"allowed_request_rules": ["expression"]}, "the expression rule needs an expression"),
        ({"expression": "tender.index"}, "an expression is given but no rule uses it"),
        ({"fee_basis_points": {"crad": 10}}, "unknown tender kind crad in the fees"),
        ({"fee_basis_points": {"card": 10_001}}, "split_tenders.fee_basis_points.card: Input should be less than"),
        ({"fee_basis_points": {"card": "290"}}, "split_tenders.fee_basis_points.card: Input should be a valid integer"),
        ({"fee_basis_points_by_provider": {"visa": {"card": 1}}}, "unknown provider visa"),
        ({"allowed_request_rules": ["proportional", "proportional"]}, "lists proportional more than once"),
        ({"rules": "proportional"}, "split_tenders: unknown field 'rules'"),
        ({"rule": "expression", "expression": "x" * 1025}, "String should have at most 1024 characters"),
    ],
)
def test_policy_refuses_a_broken_section_naming_the_problem(section: dict[str, Any], expected: str) -> None:
    assert any(expected in problem for problem in split_problems(**section)), split_problems(**section)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("tender.index +", "split_tenders.expression: not valid CEL"),
        ("tender.knd", "unknown field 'tender.knd' ('tender' has fields: captured, captured_at, fee_basis_points"),
        ("order.amount", "unknown input 'order'"),
        ("tender.kind == 'card'", "yielded bool True, not an int priority"),
        ("tender.kind", "yielded str 'card', not an int priority"),
        ("-tender.captured_at", "on tender 1 (wallet, paypal) failed"),  # absent when the capture time is unknown
        ("refund.reasons", "unknown field 'refund.reasons'"),
        ("refund.amount > 1000 ? 1 : 'two'", "yielded str 'two'"),
        ("tender.remaining / (tender.remaining - 5000)", "failed"),  # division by zero on a synthetic tender
    ],
)
def test_policy_refuses_an_expression_that_cannot_order_every_tender(expression: str, expected: str) -> None:
    problems = split_problems(rule="expression", expression=expression)
    assert len(problems) == 1
    assert expected in problems[0], problems[0]


def test_policy_check_cli_fails_on_a_broken_section(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a policy file whose expression yields a bool
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(split_tenders={"rule": "expression", "expression": "tender.kind == 'card'"}))
    # WHEN it is checked THEN the check fails with exit code 1, naming the expression
    assert main(["check", str(path)]) == 1
    assert "split_tenders.expression: must yield an int priority" in capsys.readouterr().err
    # AND a good one prints the rule and what a request may name
    path.write_text(policy_text(split_tenders={"allowed_request_rules": ["proportional"]}))
    assert main(["check", str(path)]) == 0
    assert "split tenders: last_captured_first (a request may name proportional)" in capsys.readouterr().out


# ------------------------------------------------------------------ dividing


def test_requested_rule_is_used_when_allowed() -> None:
    policy = with_split(allowed_request_rules=["proportional"])
    legs = allocate_legs(policy, Money.of(5_000, "EUR"), CARD_AND_GIFT_CARD, "proportional")
    assert amounts(legs) == {0: 3_000, 1: 2_000}


def test_unknown_requested_rule_is_refused_as_an_invalid_request() -> None:
    policy = with_split(allowed_request_rules=["proportional"])
    with pytest.raises(AllocationRuleNotAllowed, match="'cheapest' is not an allocation rule") as caught:
        allocate_legs(policy, Money.of(5_000, "EUR"), CARD_AND_GIFT_CARD, "cheapest")
    assert caught.value.code == "allocation_rule_not_allowed"


def test_store_credit_last_refunds_the_card_first() -> None:
    # GIVEN a card paid first and a gift card paid last
    policy = with_split(rule="store_credit_last")
    # WHEN 7000 of the 10000 comes back THEN the card takes all it can, the gift card the rest
    legs = allocate_legs(policy, Money.of(7_000, "EUR"), CARD_AND_GIFT_CARD, None)
    assert amounts(legs) == {0: 6_000, 1: 1_000}


def test_least_fee_first_uses_the_policys_fees_per_provider_over_per_kind() -> None:
    # GIVEN a PayPal wallet, a card and a Klarna plan; the policy prices PayPal's wallet below the card
    policy = with_split(
        rule="least_fee_first",
        fee_basis_points={"card": 290, "wallet": 340, "buy_now_pay_later": 450},
        fee_basis_points_by_provider={"paypal": {"wallet": 100}},
    )
    tenders = [
        tender(0, TenderKind.CARD, 3_000),
        tender(1, TenderKind.WALLET, 3_000, provider=PaymentProvider.PAYPAL),
        tender(2, TenderKind.BUY_NOW_PAY_LATER, 3_000, provider=PaymentProvider.KLARNA),
    ]
    # WHEN 5000 comes back THEN the wallet first, then the card; the plan keeps everything
    assert amounts(allocate_legs(policy, Money.of(5_000, "EUR"), tenders, None)) == {0: 2_000, 1: 3_000}


def test_expression_orders_the_tenders_by_its_priority() -> None:
    # GIVEN the merchant's rule: buy-now-pay-later first, gift cards last, larger payments before smaller ones
    policy = with_split(
        rule="expression",
        expression="tender.kind == 'buy_now_pay_later' ? -1000000000 : "
        "(tender.kind == 'gift_card' ? 1000000000 : -tender.captured)",
    )
    tenders = [
        tender(0, TenderKind.GIFT_CARD, 2_000),
        tender(1, TenderKind.CARD, 1_000),
        tender(2, TenderKind.CARD, 3_000),
        tender(3, TenderKind.BUY_NOW_PAY_LATER, 1_500, provider=PaymentProvider.KLARNA),
    ]
    # WHEN 6000 comes back THEN the plan (1500), the larger card (3000), the smaller card (1000), gift card 500
    legs = allocate_legs(policy, Money.of(6_000, "EUR"), tenders, None)
    assert amounts(legs) == {0: 500, 1: 1_000, 2: 3_000, 3: 1_500}


def test_expression_sees_the_refund_and_params() -> None:
    # GIVEN an expression that puts gift cards first for goodwill refunds only, with a threshold from params
    text = policy_text(
        params={"limit": {"EUR": 10000, "JPY": 10000, "KWD": 100000}, "gift_first_below": 3000},
        split_tenders={
            "rule": "expression",
            "expression": "tender.kind != 'gift_card' ? 1 "
            ": (refund.reason == 'goodwill' && refund.amount < params.gift_first_below ? 0 : 2)",
        },
    )
    policy = load_policy(text, source="test.yaml")
    # WHEN a small goodwill refund is divided THEN the gift card comes first; for damage, or above the
    # threshold, the card does
    goodwill = allocate_legs(policy, Money.of(2_000, "EUR"), CARD_AND_GIFT_CARD, None, reason="goodwill")
    damaged = allocate_legs(policy, Money.of(2_000, "EUR"), CARD_AND_GIFT_CARD, None, reason="damaged")
    large = allocate_legs(policy, Money.of(3_000, "EUR"), CARD_AND_GIFT_CARD, None, reason="goodwill")
    assert amounts(goodwill) == {1: 2_000}
    assert amounts(damaged) == {0: 2_000}
    assert amounts(large) == {0: 3_000}


def test_expression_failing_on_a_real_tender_is_a_clear_error_not_a_guess() -> None:
    # GIVEN an expression that divides by the amount left, which the synthetic tenders allow (none has 7 left)
    policy = with_split(rule="expression", expression="100 / (tender.remaining - 7)")
    tenders = [tender(0, TenderKind.CARD, 7), tender(1, TenderKind.CARD, 100)]
    # WHEN a tender with exactly 7 left is ordered THEN the allocation stops, naming the tender
    with pytest.raises(AllocationExpressionFailed, match="on tender 0 \\(card, stripe\\) failed") as caught:
        allocate_legs(policy, Money.of(50, "EUR"), tenders, None)
    assert isinstance(caught.value, AllocationImpossible)


def test_more_than_the_tenders_have_is_impossible_whatever_the_policy() -> None:
    policy = with_split(rule="proportional")
    with pytest.raises(AllocationImpossible, match="10000 minor units of EUR left to refund, 10001 asked"):
        allocate_legs(policy, Money.of(10_001, "EUR"), CARD_AND_GIFT_CARD, None)


def test_the_active_policy_divides_with_the_override_in_force() -> None:
    # GIVEN an SSM override that allows proportional splits, in force through ActivePolicy
    override = policy_text(split_tenders={"rule": "store_credit_last", "allowed_request_rules": ["proportional"]})
    active = ActivePolicy(
        source_settings=PolicySourceSettings(POLICY_PARAMETER_NAME="/refundflow/policy", POLICY_CACHE_SECONDS=60),
        fetch=lambda name, max_age: override,
    )
    # WHEN the split refund asks it THEN the override's rules apply
    assert allowed_rules(active) == {AllocationRule.STORE_CREDIT_LAST, AllocationRule.PROPORTIONAL}
    assert amounts(allocate_legs(active, Money.of(7_000, "EUR"), CARD_AND_GIFT_CARD)) == {0: 6_000, 1: 1_000}
    assert amounts(allocate_legs(active, Money.of(5_000, "EUR"), CARD_AND_GIFT_CARD, "proportional")) == {
        0: 3_000,
        1: 2_000,
    }


# ------------------------------------------------------------------ python -m refundflow.policy split


def test_policy_split_cli_prints_the_legs_of_the_rule_asked_for(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a policy whose expression puts gift cards last, allowed on request
    path = tmp_path / "policy.yaml"
    path.write_text(
        policy_text(
            split_tenders={
                "allowed_request_rules": ["expression"],
                "expression": "tender.kind == 'gift_card' ? 1 : 0",
            }
        )
    )
    tenders = [
        "--tender",
        "kind=card,captured=6000,captured_at=2026-03-01T10:00:00Z",
        "--tender",
        "kind=gift_card,captured=4000,captured_at=2026-03-02,provider=shopify",
    ]
    # WHEN 70.00 is divided by the default rule, then by the expression
    assert main(["split", str(path), "--amount", "EUR:7000", *tenders]) == 0
    by_default = capsys.readouterr().out
    assert main(["split", str(path), "--amount", "EUR:7000", *tenders, "--rule", "expression"]) == 0
    by_expression = capsys.readouterr().out
    # THEN the newest payment (the gift card) first by default, the card first by the expression
    assert by_default.splitlines() == [
        "70.00 EUR by last_captured_first:",
        "  tender 0 (card, stripe): 30.00 EUR",
        "  tender 1 (gift_card, shopify): 40.00 EUR",
    ]
    assert by_expression.splitlines()[1:] == [
        "  tender 0 (card, stripe): 60.00 EUR",
        "  tender 1 (gift_card, shopify): 10.00 EUR",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--amount", "EUR:7000", "--tender", "kind=card,captured=6000", "--rule", "proportional"], "does not allow"),
        (["--amount", "EUR:7001", "--tender", "kind=card,captured=7000"], "7000 minor units of EUR left"),
        (["--amount", "EUR:70", "--tender", "kind=card,paid=6000"], "'paid=6000' is not one of kind="),
        (["--amount", "EUR:70", "--tender", "kind=card"], "kind= and captured= are required"),
        (["--amount", "EUR:70", "--tender", "kind=crad,captured=100"], "'crad' is not a valid TenderKind"),
    ],
)
def test_policy_split_cli_refuses_what_cannot_be_divided(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    assert main(["split", str(path), *arguments]) == 2
    assert message in capsys.readouterr().err
