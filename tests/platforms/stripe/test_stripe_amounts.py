"""Money <-> Stripe amounts: exact both ways, or refused; never rounded, never 100x (R5)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundflow.errors import AmountNotRepresentable as StripeAmountError
from refundflow.money import CURRENCY_EXPONENTS, Money
from refundflow.platforms.stripe.payloads import from_stripe_amount, to_stripe_amount

amounts = st.integers(min_value=0, max_value=10**12)
# Currencies where Stripe's unit is ISO 4217's minor unit: passed through untouched.
SAME_UNIT = ["EUR", "USD", "GBP", "HUF", "TWD", "JPY", "KRW", "CLP", "XOF", "VND"]
THREE_DECIMAL = ["BHD", "JOD", "KWD", "OMR", "TND"]


@given(amount=amounts, currency=st.sampled_from(SAME_UNIT))
def test_same_unit_currencies_pass_through_with_a_lowercase_code(amount: int, currency: str) -> None:
    # GIVEN an amount in a currency whose Stripe unit is the ISO minor unit (JPY yen, EUR cents)
    money = Money.of(amount, currency)

    # WHEN it is converted
    stripe_amount, stripe_currency = to_stripe_amount(money)

    # THEN the number is unchanged, an int, and the code lowercase
    assert (stripe_amount, stripe_currency) == (amount, currency.lower())
    assert type(stripe_amount) is int
    assert from_stripe_amount(stripe_amount, stripe_currency) == money


@given(amount=amounts, currency=st.sampled_from(THREE_DECIMAL))
def test_three_decimal_amounts_pass_only_when_the_last_digit_is_zero(amount: int, currency: str) -> None:
    # GIVEN a KWD-like amount in fils (Stripe: three decimals, last digit must be 0)
    money = Money.of(amount, currency)

    # WHEN / THEN it is sent as is, or refused rather than rounded
    if amount % 10 == 0:
        assert to_stripe_amount(money) == (amount, currency.lower())
        assert from_stripe_amount(amount, currency.lower()) == money
    else:
        with pytest.raises(StripeAmountError) as refused:
            to_stripe_amount(money)
        assert refused.value.code == "amount_not_representable"


def test_kwd_example_from_stripe_docs_is_refused_not_rounded() -> None:
    # GIVEN 5.124 KWD, Stripe's own example of an amount it needs rounded to 5120 or 5130
    # WHEN / THEN we refuse: rounding a refund changes what the customer gets back
    with pytest.raises(StripeAmountError):
        to_stripe_amount(Money.from_decimal_string("5.124", "KWD"))
    assert to_stripe_amount(Money.from_decimal_string("5.120", "KWD")) == (5120, "kwd")


@given(kronur=st.integers(min_value=0, max_value=10**10))
def test_isk_whole_kronur_are_sent_as_hundredths(kronur: int) -> None:
    # GIVEN ISK, zero-decimal in ISO 4217 but two-decimal (multiples of 100) at Stripe
    money = Money.of(kronur, "ISK")

    # WHEN
    stripe_amount, currency = to_stripe_amount(money)

    # THEN 5 ISK is 500, and back
    assert (stripe_amount, currency) == (kronur * 100, "isk")
    assert from_stripe_amount(stripe_amount, currency) == money


@given(amount=st.integers(min_value=0, max_value=10**10).filter(lambda value: value % 100))
def test_fractional_isk_from_stripe_is_refused(amount: int) -> None:
    # GIVEN a legacy ISK amount that is not a whole krona
    # WHEN / THEN it cannot become our whole-krona minor units
    with pytest.raises(StripeAmountError):
        from_stripe_amount(amount, "isk")


@given(amount=amounts)
def test_mga_is_zero_decimal_at_stripe_and_two_decimal_in_iso(amount: int) -> None:
    # GIVEN MGA in ISO minor units (1/100 ariary), a zero-decimal currency at Stripe
    money = Money.of(amount, "MGA")

    # WHEN / THEN whole ariary are divided by 100 exactly; anything finer is refused
    if amount % 100 == 0:
        assert to_stripe_amount(money) == (amount // 100, "mga")
        assert from_stripe_amount(amount // 100, "mga") == money
    else:
        with pytest.raises(StripeAmountError):
            to_stripe_amount(money)


@given(amount=amounts, currency=st.sampled_from(["UGX", "IQD", "LYD", "CLF", "UYW"]))
def test_currencies_stripe_cannot_express_unambiguously_are_always_refused(amount: int, currency: str) -> None:
    # GIVEN UGX (ambiguous unit at Stripe), IQD/LYD (three decimals, not Stripe's) or a fund code
    # WHEN / THEN no amount is ever sent
    with pytest.raises(StripeAmountError) as refused:
        to_stripe_amount(Money.of(amount, currency))
    assert refused.value.code == "currency_not_supported"


@given(amount=amounts, currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_every_accepted_conversion_round_trips_exactly(amount: int, currency: str) -> None:
    # GIVEN any ISO currency and amount
    money = Money.of(amount, currency)

    # WHEN converted to Stripe's amount
    try:
        stripe_amount, stripe_currency = to_stripe_amount(money)
    except StripeAmountError:
        return  # refused explicitly: nothing is sent, nothing is lost

    # THEN converting back gives exactly the same money, in both case spellings of the code
    assert from_stripe_amount(stripe_amount, stripe_currency) == money
    assert from_stripe_amount(stripe_amount, stripe_currency.upper()) == money


# Stripe's decimals per docs.stripe.com/currencies, written out independently of the connector.
STRIPE_ZERO_DECIMAL = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "JPY",
    "KMF",
    "KRW",
    "MGA",
    "PYG",
    "RWF",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}


def stripe_decimals(currency: str) -> int:
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2 if currency == "ISK" else CURRENCY_EXPONENTS[currency]


@given(amount=amounts, currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_conversion_keeps_the_value_in_major_units(amount: int, currency: str) -> None:
    # GIVEN any ISO currency and amount that Stripe accepts
    money = Money.of(amount, currency)
    try:
        stripe_amount, _ = to_stripe_amount(money)
    except StripeAmountError:
        return

    # THEN Stripe's number, read with Stripe's decimals, is the same value (no 100x, no 1/100)
    assert Decimal(stripe_amount).scaleb(-stripe_decimals(currency)) == money.to_decimal()


def test_unknown_currency_from_stripe_is_refused() -> None:
    # GIVEN a currency code that is not ISO 4217
    # WHEN / THEN
    with pytest.raises(StripeAmountError, match="unknown currency"):
        from_stripe_amount(100, "xyz")
