"""Money <-> Amazon Pay prices: decimal strings, exact both ways, or refused before anything is reserved."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundflow import catalog
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money
from refundflow.platforms.amazon_pay.amounts import from_amazon, representable, to_amazon

CURRENCIES: frozenset[str] = catalog.payment_capabilities("amazon_pay").currencies.accepted
TWO_DECIMAL = sorted(CURRENCIES - {"JPY"})


@given(minor=st.integers(min_value=1, max_value=15_000_000), currency=st.sampled_from(TWO_DECIMAL))
def test_two_decimal_amounts_are_written_with_two_decimals_and_read_back_exactly(minor: int, currency: str) -> None:
    # GIVEN an amount in cents
    money = Money.of(minor, currency)
    # WHEN it becomes an Amazon Pay price
    price = to_amazon(money)
    # THEN it is a decimal string with exactly two decimals, the same amount, and reads back unchanged
    whole, _, cents = price["amount"].partition(".")
    assert (len(cents), int(whole) * 100 + int(cents), price["currencyCode"]) == (2, minor, currency)
    assert from_amazon(price) == money


@given(yen=st.integers(min_value=1, max_value=10_000_000))
def test_yen_are_whole_numbers_without_a_decimal_point(yen: int) -> None:
    price = to_amazon(Money.of(yen, "JPY"))
    assert price == {"amount": str(yen), "currencyCode": "JPY"}
    assert from_amazon(price) == Money.of(yen, "JPY")


@pytest.mark.parametrize("currency", ["KWD", "BHD", "CNY", "INR", "CLP", "BRL"])
def test_a_currency_amazon_pay_does_not_charge_in_is_refused_never_sent(currency: str) -> None:
    money = Money.of(1_000, currency)
    # THEN validation is told why (before any reservation) and the conversion refuses
    assert representable(money) is not None
    assert catalog.representable("amazon_pay") is representable
    with pytest.raises(AmountNotRepresentable) as refused:
        to_amazon(money)
    assert refused.value.code == "currency_not_supported"


def test_the_catalog_profile_names_the_three_decimal_currencies_it_refuses() -> None:
    profile = catalog.payment_capabilities("amazon_pay").currencies
    assert profile.amount_format == "decimal_string"
    assert {"BHD", "JOD", "KWD", "OMR", "TND"} <= set(profile.refused)


@pytest.mark.parametrize(
    "price",
    [
        {"amount": 12.5, "currencyCode": "EUR"},  # a float is never money
        {"amount": "12.345", "currencyCode": "EUR"},  # more decimals than the currency has
        {"amount": "12.5", "currencyCode": "JPY"},  # yen have no decimals
        {"amount": "12.50"},
        "12.50 EUR",
    ],
)
def test_a_price_that_is_not_exact_money_is_refused_when_read(price: object) -> None:
    with pytest.raises(AmountNotRepresentable):
        from_amazon(price)


@pytest.mark.parametrize(("limit", "currency"), [(15_000_000, "EUR"), (15_000_000, "USD"), (10_000_000, "JPY")])
def test_more_than_amazon_pays_largest_refund_is_refused_before_anything_is_sent(limit: int, currency: str) -> None:
    assert representable(Money.of(limit, currency)) is None
    assert representable(Money.of(limit + 1, currency)) is not None
    with pytest.raises(AmountNotRepresentable) as refused:
        to_amazon(Money.of(limit + 1, currency))
    assert refused.value.code == "amount_not_representable"
