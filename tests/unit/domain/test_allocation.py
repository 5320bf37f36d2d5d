"""Dividing a refund among an order's tenders: the business cases by name, then the properties every rule keeps
(hypothesis): legs add up exactly, never above what a tender has left, no empty legs, one currency, the same
answer for the same tenders in any order, and the order each rule promises."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refundflow.domain.allocation import (
    AllocationImpossible,
    AllocationRule,
    LegAllocation,
    TenderBalance,
    TenderPriority,
    allocate,
)
from refundflow.models import PaymentProvider, PaymentReference, TenderKind
from refundflow.money import Money

DAY = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def tender(
    index: int,
    captured: int,
    *,
    kind: TenderKind = TenderKind.CARD,
    remaining: int | None = None,
    captured_at: datetime | None = None,
    fee: int = 0,
    currency: str = "EUR",
) -> TenderBalance:
    return TenderBalance(
        index=index,
        payment=PaymentReference(provider=PaymentProvider.STRIPE, payment_id=f"pi_{index}"),
        kind=kind,
        captured=Money.of(captured, currency),
        remaining=Money.of(captured if remaining is None else remaining, currency),
        captured_at=captured_at,
        fee_basis_points=fee,
    )


def shares(legs: Sequence[LegAllocation]) -> dict[int, int]:
    return {leg.index: leg.amount.minor_units for leg in legs}


def eur(minor_units: int) -> Money:
    return Money.of(minor_units, "EUR")


# ------------------------------------------------------------------ business cases


def test_deposit_and_final_payment_last_captured_first_refunds_the_final_payment_first() -> None:
    # GIVEN a 300.00 deposit in March and the 700.00 final payment on delivery in May
    deposit = tender(0, 30_000, captured_at=DAY - timedelta(days=80))
    final_payment = tender(1, 70_000, captured_at=DAY)
    # WHEN 800.00 is refunded THEN the final payment comes back whole, the deposit gives the rest
    assert shares(allocate(eur(80_000), [deposit, final_payment], AllocationRule.LAST_CAPTURED_FIRST)) == {
        0: 10_000,
        1: 70_000,
    }
    # AND a refund smaller than the final payment touches only the final payment
    assert shares(allocate(eur(5_000), [deposit, final_payment], AllocationRule.LAST_CAPTURED_FIRST)) == {1: 5_000}


def test_card_and_gift_card_store_credit_last_refunds_the_card_first() -> None:
    # GIVEN a gift card paid last (newest) and a card
    card = tender(0, 6_000, captured_at=DAY - timedelta(minutes=1))
    gift_card = tender(1, 4_000, kind=TenderKind.GIFT_CARD, captured_at=DAY)
    # WHEN 7000 is refunded with store_credit_last THEN the card takes all it has, the gift card the rest
    assert shares(allocate(eur(7_000), [card, gift_card], AllocationRule.STORE_CREDIT_LAST)) == {0: 6_000, 1: 1_000}
    # AND last captured first would have started with the gift card
    assert shares(allocate(eur(7_000), [card, gift_card], AllocationRule.LAST_CAPTURED_FIRST)) == {0: 3_000, 1: 4_000}


def test_store_credit_last_puts_refundflows_own_store_credit_last_too() -> None:
    credit = tender(0, 2_000, kind=TenderKind.STORE_CREDIT, captured_at=DAY)
    wallet = tender(1, 2_000, kind=TenderKind.WALLET, captured_at=DAY - timedelta(days=1))
    assert shares(allocate(eur(2_500), [credit, wallet], AllocationRule.STORE_CREDIT_LAST)) == {0: 500, 1: 2_000}


def test_proportional_split_of_an_odd_amount_gives_the_left_over_unit_to_the_first_tender() -> None:
    # GIVEN three equal cards WHEN 100 is divided THEN 34 + 33 + 33: the unit rounding leaves goes to the first
    tenders = [tender(index, 1_000) for index in range(3)]
    assert shares(allocate(eur(100), tenders, AllocationRule.PROPORTIONAL)) == {0: 34, 1: 33, 2: 33}


def test_proportional_follows_what_each_tender_paid() -> None:
    # GIVEN 75.00 by card and 25.00 by PayPal WHEN 40.00 is refunded THEN 30.00 and 10.00
    tenders = [tender(0, 7_500), tender(1, 2_500, kind=TenderKind.WALLET)]
    assert shares(allocate(eur(4_000), tenders, AllocationRule.PROPORTIONAL)) == {0: 3_000, 1: 1_000}


def test_proportional_passes_a_capped_tenders_share_on_to_the_others() -> None:
    # GIVEN a card already mostly refunded (100 of 5000 left) and a gift card untouched
    tenders = [tender(0, 5_000, remaining=100), tender(1, 5_000, kind=TenderKind.GIFT_CARD)]
    # WHEN 3000 is divided THEN the card gives its 100, the gift card the rest
    assert shares(allocate(eur(3_000), tenders, AllocationRule.PROPORTIONAL)) == {0: 100, 1: 2_900}


def test_least_fee_first_refunds_the_cheapest_tender_first() -> None:
    tenders = [tender(0, 5_000, fee=290), tender(1, 5_000, kind=TenderKind.BANK, fee=80), tender(2, 5_000, fee=340)]
    assert shares(allocate(eur(7_000), tenders, AllocationRule.LEAST_FEE_FIRST)) == {0: 2_000, 1: 5_000}


def test_expression_orders_by_the_priority_lower_first_ties_by_last_capture() -> None:
    tenders = [
        tender(0, 1_000, captured_at=DAY - timedelta(days=2)),
        tender(1, 1_000, captured_at=DAY),
        tender(2, 1_000, kind=TenderKind.GIFT_CARD, captured_at=DAY + timedelta(days=1)),
    ]

    def gift_cards_last(balance: TenderBalance) -> int:
        return 1 if balance.kind is TenderKind.GIFT_CARD else 0

    legs = allocate(eur(1_500), tenders, AllocationRule.EXPRESSION, priority=gift_cards_last)
    assert shares(legs) == {0: 500, 1: 1_000}


def test_a_tender_without_a_capture_time_comes_after_the_dated_ones() -> None:
    tenders = [tender(0, 1_000), tender(1, 1_000, captured_at=DAY - timedelta(days=300))]
    assert shares(allocate(eur(1_000), tenders, AllocationRule.LAST_CAPTURED_FIRST)) == {1: 1_000}


@pytest.mark.parametrize(
    ("amount", "tenders", "rule", "message"),
    [
        (eur(0), [tender(0, 100)], AllocationRule.PROPORTIONAL, "must be positive"),
        (eur(-5), [tender(0, 100)], AllocationRule.LAST_CAPTURED_FIRST, "must be positive"),
        (eur(201), [tender(0, 100), tender(1, 100)], AllocationRule.PROPORTIONAL, "200 minor units of EUR left"),
        (eur(50), [tender(0, 100), tender(0, 100)], AllocationRule.PROPORTIONAL, "indexes must be unique"),
        (eur(50), [tender(0, 100, currency="USD")], AllocationRule.PROPORTIONAL, "tenders in USD cannot take back"),
        (eur(50), [tender(0, 100)], AllocationRule.EXPRESSION, "needs the merchant's expression"),
        (eur(1), [], AllocationRule.LAST_CAPTURED_FIRST, "0 minor units of EUR left"),
    ],
)
def test_an_amount_that_cannot_be_divided_is_refused(
    amount: Money, tenders: list[TenderBalance], rule: AllocationRule, message: str
) -> None:
    with pytest.raises(AllocationImpossible, match=message) as caught:
        allocate(amount, tenders, rule, priority=None)
    assert caught.value.code == "allocation_impossible"


# ------------------------------------------------------------------ properties

CURRENCIES = ("EUR", "JPY", "KWD")
_KIND_PRIORITY = {kind: position for position, kind in enumerate(reversed(TenderKind))}


def _by_kind(balance: TenderBalance) -> int:
    return _KIND_PRIORITY[balance.kind]


@st.composite
def orders(draw: st.DrawFn, *, uncapped: bool = False) -> tuple[Money, list[TenderBalance]]:
    """An amount and the tenders of an order (1-6 of them) that have enough left to refund it."""
    currency = draw(st.sampled_from(CURRENCIES))
    count = draw(st.integers(min_value=1, max_value=6))
    moments = [DAY + timedelta(hours=hours) for hours in range(4)]  # few moments: equal capture times happen
    tenders = []
    for index in draw(st.permutations(range(8)))[:count]:  # indexes need not be 0..n-1 nor in order
        captured = draw(st.integers(min_value=1, max_value=10**9))
        remaining = captured if uncapped else draw(st.integers(min_value=0, max_value=captured))
        tenders.append(
            tender(
                index,
                captured,
                kind=draw(st.sampled_from(list(TenderKind))),
                remaining=remaining,
                captured_at=draw(st.none() | st.sampled_from(moments)),
                fee=draw(st.integers(min_value=0, max_value=4) | st.integers(min_value=0, max_value=10_000)),
                currency=currency,
            )
        )
    available = sum(balance.remaining.minor_units for balance in tenders)
    assume(available > 0)
    amount = draw(st.integers(min_value=1, max_value=available))
    return Money.of(amount, currency), tenders


RULES_WITH_PRIORITY: list[tuple[AllocationRule, TenderPriority | None]] = [
    (AllocationRule.LAST_CAPTURED_FIRST, None),
    (AllocationRule.PROPORTIONAL, None),
    (AllocationRule.LEAST_FEE_FIRST, None),
    (AllocationRule.STORE_CREDIT_LAST, None),
    (AllocationRule.EXPRESSION, _by_kind),
]


def test_every_rule_is_covered_by_the_properties() -> None:
    assert {rule for rule, _ in RULES_WITH_PRIORITY} == set(AllocationRule)


@pytest.mark.parametrize(("rule", "priority"), RULES_WITH_PRIORITY, ids=lambda value: getattr(value, "value", ""))
@settings(max_examples=150, deadline=None)
@given(order=orders(), seed=st.randoms(use_true_random=False))
def test_legs_add_up_exactly_within_what_each_tender_has_left(
    rule: AllocationRule, priority: TenderPriority | None, order: tuple[Money, list[TenderBalance]], seed: random.Random
) -> None:
    amount, tenders = order
    legs = allocate(amount, tenders, rule, priority=priority)
    by_index = {balance.index: balance for balance in tenders}
    # THEN the legs add up to the amount exactly, in its currency
    assert sum(leg.amount.minor_units for leg in legs) == amount.minor_units
    assert {leg.amount.currency for leg in legs} == {amount.currency}
    # AND no leg is empty or above what its tender has left, and each names its own tender's payment and kind
    for leg in legs:
        balance = by_index[leg.index]
        assert 0 < leg.amount.minor_units <= balance.remaining.minor_units
        assert (leg.payment, leg.kind) == (balance.payment, balance.kind)
    # AND one leg per tender at most, ordered by tender index
    assert [leg.index for leg in legs] == sorted({leg.index for leg in legs})
    # AND the same tenders given in another order give the same legs
    shuffled = list(tenders)
    seed.shuffle(shuffled)
    assert allocate(amount, shuffled, rule, priority=priority) == legs


@pytest.mark.parametrize(("rule", "priority"), RULES_WITH_PRIORITY, ids=lambda value: getattr(value, "value", ""))
@settings(max_examples=60, deadline=None)
@given(order=orders(), extra=st.integers(min_value=1, max_value=10**6))
def test_more_than_the_tenders_have_left_is_impossible(
    rule: AllocationRule, priority: TenderPriority | None, order: tuple[Money, list[TenderBalance]], extra: int
) -> None:
    _, tenders = order
    currency = tenders[0].captured.currency
    available = sum(balance.remaining.minor_units for balance in tenders)
    with pytest.raises(AllocationImpossible, match="left to refund"):
        allocate(Money.of(available + extra, currency), tenders, rule, priority=priority)


@settings(max_examples=200, deadline=None)
@given(order=orders(uncapped=True))
def test_proportional_is_within_one_minor_unit_of_the_exact_share_when_nothing_is_capped(
    order: tuple[Money, list[TenderBalance]],
) -> None:
    amount, tenders = order
    total = sum(balance.captured.minor_units for balance in tenders)
    exact = {balance.index: Fraction(amount.minor_units * balance.captured.minor_units, total) for balance in tenders}
    # nothing capped: every tender has room for its exact share rounded up
    assume(all(balance.remaining.minor_units >= -(-exact[balance.index] // 1) for balance in tenders))
    got = shares(allocate(amount, tenders, AllocationRule.PROPORTIONAL))
    for balance in tenders:
        assert abs(got.get(balance.index, 0) - exact[balance.index]) < 1


def _ranks_before(key: Callable[[TenderBalance], object]) -> Callable[[TenderBalance, TenderBalance], bool]:
    return lambda first, second: key(first) < key(second)  # type: ignore[operator]


def _capture_moment(balance: TenderBalance) -> float:
    # latest first; undated after every dated one
    return float("inf") if balance.captured_at is None else -balance.captured_at.timestamp()


ORDERED_RULES: list[tuple[AllocationRule, TenderPriority | None, Callable[[TenderBalance, TenderBalance], bool]]] = [
    (AllocationRule.LAST_CAPTURED_FIRST, None, _ranks_before(_capture_moment)),
    (AllocationRule.LEAST_FEE_FIRST, None, _ranks_before(lambda balance: balance.fee_basis_points)),
    (
        AllocationRule.STORE_CREDIT_LAST,
        None,
        _ranks_before(lambda balance: balance.kind in {TenderKind.STORE_CREDIT, TenderKind.GIFT_CARD}),
    ),
    (AllocationRule.EXPRESSION, _by_kind, _ranks_before(_by_kind)),
]


@pytest.mark.parametrize(("rule", "priority", "before"), ORDERED_RULES, ids=lambda value: getattr(value, "value", ""))
@settings(max_examples=150, deadline=None)
@given(order=orders())
def test_ordered_rules_take_nothing_from_a_tender_while_one_ranked_before_it_has_room(
    rule: AllocationRule,
    priority: TenderPriority | None,
    before: Callable[[TenderBalance, TenderBalance], bool],
    order: tuple[Money, list[TenderBalance]],
) -> None:
    amount, tenders = order
    got = shares(allocate(amount, tenders, rule, priority=priority))
    for later in tenders:
        if got.get(later.index, 0) == 0:
            continue
        for earlier in tenders:
            if before(earlier, later):
                # THEN every tender the rule ranks first was refunded all it had left
                assert got.get(earlier.index, 0) == earlier.remaining.minor_units
