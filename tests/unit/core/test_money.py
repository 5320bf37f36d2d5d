"""Money: exact minor units, ISO 4217 exponents, conversions, splits and fees (R5)."""

from __future__ import annotations

from decimal import MAX_PREC, Context, Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from refundflow.money import CURRENCY_EXPONENTS, Money, MoneyError, exponent

ALL_CODES = sorted(CURRENCY_EXPONENTS)
# The three exponents that matter most, plus any active ISO code.
currencies = st.sampled_from(["JPY", "EUR", "KWD"]) | st.sampled_from(ALL_CODES)
# Far beyond any real amount on purpose: exactness must not depend on the size of the number.
minor_units = st.integers(min_value=-(10**40), max_value=10**40)
non_negative = st.integers(min_value=0, max_value=10**40)


def expected_decimal_string(amount: int, currency: str) -> str:
    """The major-unit string computed with integer arithmetic only (an oracle independent of Decimal)."""
    digits = exponent(currency)
    whole, fraction = divmod(abs(amount), 10**digits)
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"


# ---------------------------------------------------------------- exponents


@pytest.mark.parametrize(
    ("currency", "digits"),
    [("JPY", 0), ("KRW", 0), ("EUR", 2), ("USD", 2), ("GBP", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4)],
)
def test_exponent_matches_iso_4217(currency: str, digits: int) -> None:
    # GIVEN an active ISO 4217 code WHEN its exponent is asked THEN it is the standard's minor-unit count
    assert exponent(currency) == digits


@pytest.mark.parametrize("code", ["XXX", "eur", "EURO", "", "BTC"])
def test_unknown_currency_code_is_rejected(code: str) -> None:
    # GIVEN a code that is not an active ISO 4217 currency
    # WHEN money is made in it THEN it is refused
    with pytest.raises(MoneyError):
        exponent(code)
    with pytest.raises(ValidationError):
        Money(minor_units=100, currency=code)


# ---------------------------------------------------------------- decimal strings


@given(amount=minor_units, currency=currencies)
def test_decimal_string_round_trip_is_exact(amount: int, currency: str) -> None:
    # GIVEN any amount in any currency
    money = Money.of(amount, currency)
    # WHEN it is written as a platform's decimal string and read back
    text = money.to_decimal_string()
    # THEN the string has exactly the currency's decimals and reading it back gives the same money
    assert text == expected_decimal_string(amount, currency)
    assert Money.from_decimal_string(text, currency) == money


@given(amount=non_negative, currency=currencies, extra=st.integers(min_value=1, max_value=3), last=st.integers(1, 9))
def test_decimal_string_with_too_many_decimals_is_rejected(amount: int, currency: str, extra: int, last: int) -> None:
    # GIVEN a decimal string with more fractional digits than the currency has, the last one non-zero
    base = expected_decimal_string(amount, currency)
    separator = "" if exponent(currency) else "."
    text = base + separator + "0" * (extra - 1) + str(last)
    # WHEN it is parsed THEN it is refused instead of being rounded
    with pytest.raises(MoneyError, match="decimals"):
        Money.from_decimal_string(text, currency)


@given(amount=non_negative, currency=currencies, zeros=st.integers(min_value=1, max_value=4))
def test_trailing_zeros_beyond_the_exponent_are_the_same_amount(amount: int, currency: str, zeros: int) -> None:
    # GIVEN "19.990" for EUR (exact, only written with more digits)
    text = expected_decimal_string(amount, currency) + ("" if exponent(currency) else ".") + "0" * zeros
    # WHEN parsed THEN it is the exact amount
    assert Money.from_decimal_string(text, currency) == Money.of(amount, currency)


@pytest.mark.parametrize(
    "text", ["", " ", "1e3", "1E+3", "NaN", "Infinity", "1,00", "+1.00", "0x10", "1.2.3", "--1", "١٢"]
)
def test_non_decimal_strings_are_rejected(text: str) -> None:
    # GIVEN a string that is not a plain decimal number WHEN parsed THEN it is refused
    with pytest.raises(MoneyError):
        Money.from_decimal_string(text, "EUR")


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("19.99", "EUR", 1999),
        ("1000", "JPY", 1000),
        ("0.125", "KWD", 125),
        ("1.2345", "CLF", 12345),
        ("-0.05", "EUR", -5),
    ],
)
def test_decimal_string_spot_values(text: str, currency: str, minor: int) -> None:
    # GIVEN a platform's decimal string WHEN parsed THEN the minor units follow the currency's exponent
    assert Money.from_decimal_string(text, currency) == Money.of(minor, currency)


@given(amount=minor_units, currency=currencies)
def test_major_unit_decimals_convert_exactly_whatever_their_notation(amount: int, currency: str) -> None:
    # GIVEN the amount as an accounting API's Decimal, also in normalised (scientific) notation
    exact = Context(prec=MAX_PREC)
    value = Decimal(amount).scaleb(-exponent(currency), context=exact)
    # WHEN converted THEN both notations give the same exact money
    assert Money.from_major_units(value, currency) == Money.of(amount, currency)
    assert Money.from_major_units(value.normalize(context=exact), currency) == Money.of(amount, currency)


# ---------------------------------------------------------------- no floats, ever


@pytest.mark.parametrize("value", [1.5, 2.0, True, "1999", Decimal("1999")])
def test_minor_units_accept_only_integers(value: object) -> None:
    # GIVEN a float, a bool, a string or a Decimal as minor units WHEN money is made THEN it is refused
    with pytest.raises(ValidationError):
        Money(minor_units=value, currency="EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "document", ['{"minor_units": 1.5, "currency": "EUR"}', '{"minor_units": 1999.0, "currency": "EUR"}']
)
def test_json_with_a_float_amount_is_rejected(document: str) -> None:
    # GIVEN a client's JSON with a float amount WHEN parsed THEN it is refused
    with pytest.raises(ValidationError):
        Money.model_validate_json(document)


@pytest.mark.parametrize("value", [19.99, 100.0])
def test_major_units_refuse_floats(value: float) -> None:
    # GIVEN a float in major units (19.99 is not exactly representable)
    # WHEN converted THEN it is refused instead of being rounded through its repr
    with pytest.raises(MoneyError):
        Money.from_major_units(value, "EUR")  # type: ignore[arg-type]


# ---------------------------------------------------------------- arithmetic and currencies


@given(
    first=st.sampled_from(ALL_CODES),
    second=st.sampled_from(ALL_CODES),
    a=st.integers(-(10**9), 10**9),
    b=st.integers(-(10**9), 10**9),
)
def test_mixing_currencies_raises(first: str, second: str, a: int, b: int) -> None:
    # GIVEN amounts in two different currencies
    assume(first != second)
    x, y = Money.of(a, first), Money.of(b, second)
    # WHEN added, subtracted or compared THEN it is refused
    for operation in (
        lambda: x + y,
        lambda: x - y,
        lambda: x < y,
        lambda: x <= y,
        lambda: x > y,
        lambda: x >= y,
        lambda: x.min(y),
    ):
        with pytest.raises(MoneyError, match="currency mismatch"):
            operation()


@given(a=minor_units, b=minor_units, currency=currencies)
def test_same_currency_arithmetic_is_exact(a: int, b: int, currency: str) -> None:
    # GIVEN two amounts in one currency WHEN added and subtracted THEN minor units add exactly
    x, y = Money.of(a, currency), Money.of(b, currency)
    assert (x + y).minor_units == a + b
    assert (x - y).minor_units == a - b
    assert (x < y) == (a < b)
    assert x.min(y).minor_units == min(a, b)


# ---------------------------------------------------------------- allocation (splits)


@given(
    amount=st.integers(min_value=0, max_value=10**30),
    currency=currencies,
    weights=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
)
def test_allocate_adds_up_exactly_and_stays_proportional(amount: int, currency: str, weights: list[int]) -> None:
    # GIVEN an amount and split weights
    parts = Money.of(amount, currency).allocate(weights)
    # WHEN split THEN the parts add up to the amount exactly, in its currency
    assert sum(part.minor_units for part in parts) == amount
    assert {part.currency for part in parts} == {currency}
    # AND each part is its exact share rounded down or up by at most one minor unit
    total = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(amount * weight, total)
        assert exact - 1 < part.minor_units < exact + 1
        if weight == 0:
            assert part.minor_units == 0


@given(
    amount=st.integers(min_value=0, max_value=10**30), currency=currencies, ways=st.integers(min_value=1, max_value=50)
)
def test_allocate_between_equal_weights_differs_by_at_most_one_minor_unit(
    amount: int, currency: str, ways: int
) -> None:
    # GIVEN an amount split equally WHEN allocated THEN the parts differ by at most one minor unit
    parts = [part.minor_units for part in Money.of(amount, currency).allocate([1] * ways)]
    assert max(parts) - min(parts) <= 1
    assert sum(parts) == amount


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1]])
def test_allocate_rejects_weights_without_a_positive_sum(weights: list[int]) -> None:
    # GIVEN no weights, all-zero weights or a negative weight WHEN allocating THEN it is refused
    with pytest.raises(MoneyError):
        Money.of(100, "EUR").allocate(weights)


def test_allocate_rejects_a_negative_amount() -> None:
    # GIVEN a negative amount WHEN allocating THEN it is refused
    with pytest.raises(MoneyError):
        Money.of(-100, "EUR").allocate([1, 1])


def test_allocate_gives_the_leftover_to_the_largest_remainders() -> None:
    # GIVEN 100 split 1:1:1 (33.33… each) WHEN allocated THEN the one left-over unit goes to the first part
    assert [m.minor_units for m in Money.of(100, "EUR").allocate([1, 1, 1])] == [34, 33, 33]


# ---------------------------------------------------------------- percentages (fees, restocking)


@given(amount=st.integers(min_value=0, max_value=10**30), currency=currencies, basis_points=st.integers(0, 10_000))
def test_percentage_never_exceeds_the_amount_and_rounds_half_even(
    amount: int, currency: str, basis_points: int
) -> None:
    # GIVEN a fee of at most 100 % of an amount
    fee = Money.of(amount, currency).percentage(basis_points)
    # WHEN computed THEN it is within [0, amount] and is the exact share rounded half-even
    assert 0 <= fee.minor_units <= amount
    assert fee.currency == currency
    assert fee.minor_units == round(Fraction(amount * basis_points, 10_000))  # round() on Fraction is half-even


@pytest.mark.parametrize(
    ("amount", "basis_points", "expected"),
    [(1000, 10_000, 1000), (1000, 0, 0), (15, 1000, 2), (25, 1000, 2), (35, 1000, 4), (1999, 1500, 300)],
)
def test_percentage_spot_values(amount: int, basis_points: int, expected: int) -> None:
    # GIVEN an amount and a percentage in basis points WHEN computed THEN ties go to the even unit
    assert Money.of(amount, "EUR").percentage(basis_points) == Money.of(expected, "EUR")
