"""Klarna's amounts: minor units of the order's currency, exactly, for Klarna's transaction currencies only; what
Klarna cannot carry is refused before anything is reserved (the domain asks the same rule)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundflow import catalog
from refundflow.domain.deployment import ensure_representable, payment_problem
from refundflow.errors import AmountNotRepresentable, InvalidRequest
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.money import CURRENCY_EXPONENTS, Money
from refundflow.platforms.klarna.amounts import from_klarna, to_klarna

MAX = 200_000_000
CURRENCIES: frozenset[str] = catalog.payment_capabilities("klarna").currencies.accepted
PAYMENT = PaymentReference(provider=PaymentProvider.KLARNA, payment_id="0b1d9815-165e-42e2-8867-35bc03789e00")


def representable(money: Money) -> str | None:
    """What validation says of ``money`` for a Klarna order (Klarna's currency profile)."""
    return payment_problem(money, PAYMENT)


@given(st.sampled_from(sorted(CURRENCIES)), st.integers(min_value=1, max_value=MAX))
def test_every_klarna_amount_goes_out_and_comes_back_exactly(currency: str, minor: int) -> None:
    money = Money.of(minor, currency)
    assert representable(money) is None
    assert to_klarna(money) == minor
    assert from_klarna(minor, currency) == money
    assert from_klarna(minor, currency.lower()) == money


@given(st.sampled_from(sorted(set(CURRENCY_EXPONENTS) - CURRENCIES)), st.integers(min_value=1, max_value=10**9))
def test_a_currency_klarna_does_not_transact_in_is_refused_by_name(currency: str, minor: int) -> None:
    money = Money.of(minor, currency)
    assert representable(money) == f"{currency} is not a Klarna currency"
    with pytest.raises(AmountNotRepresentable) as refused:
        to_klarna(money)
    assert refused.value.code == "currency_not_supported"


def test_more_than_one_refund_may_carry_is_refused() -> None:
    assert representable(Money.of(MAX, "SEK")) is None
    assert "more than Klarna carries" in (representable(Money.of(MAX + 1, "SEK")) or "")
    with pytest.raises(AmountNotRepresentable):
        to_klarna(Money.of(MAX + 1, "SEK"))


@pytest.mark.parametrize("value", [12.5, True, "1250", None])
def test_anything_but_an_integer_from_klarna_is_refused(value: object) -> None:
    with pytest.raises(AmountNotRepresentable):
        from_klarna(value, "EUR")


def test_the_domain_refuses_it_before_reservation_through_the_catalog() -> None:
    # GIVEN no rule of Klarna's own: its currency profile (the catalog's accepted list) says it
    assert catalog.representable("klarna") is None
    payment = PAYMENT
    # WHEN validation checks a yen amount for a Klarna order THEN it is refused, naming Klarna
    with pytest.raises(InvalidRequest, match="JPY is not a Klarna currency") as refused:
        ensure_representable(Money.of(1_000, "JPY"), payment, None)
    assert refused.value.code == "amount_not_representable"
    ensure_representable(Money.of(1_000, "SEK"), payment, None)
