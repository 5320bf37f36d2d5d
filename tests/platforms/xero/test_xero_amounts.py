"""Exact amounts at the Xero boundary: Money -> JSON number -> Money, never through a float."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refundflow.errors import RejectedError
from refundflow.money import Money
from refundflow.platforms.xero.connector import dump_json, from_xero_amount, load_json, to_xero_amount

CURRENCIES = ["JPY", "EUR", "KWD"]
JSON_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")

minor_units = st.integers(min_value=0, max_value=10**15)


def _bookable(minor: int, currency: str) -> Money:
    """Xero keeps two decimals: a KWD amount is bookable when its third decimal is zero."""
    return Money.of(minor * 10 if currency == "KWD" else minor, currency)


@given(minor=minor_units, currency=st.sampled_from(CURRENCIES))
def test_amount_survives_the_round_trip_through_xero_json_exactly(minor: int, currency: str) -> None:
    # GIVEN an amount Xero can hold
    money = _bookable(minor, currency)

    # WHEN it is serialised into a request body and Xero's echo of it is parsed back
    text = dump_json({"Amount": to_xero_amount(money)})
    echoed = load_json(text.encode())["Amount"]

    # THEN the number in the body is a plain JSON number equal to the amount, and parses back to the same Money
    number = text[len('{"Amount":') : -1]
    assert JSON_NUMBER.match(number), number
    assert Decimal(number) == money.to_decimal()
    assert not isinstance(echoed, float)
    assert from_xero_amount(echoed, currency) == money


@given(minor=minor_units, currency=st.sampled_from(CURRENCIES))
def test_serialised_amount_is_a_number_any_json_reader_sees_exactly(minor: int, currency: str) -> None:
    # GIVEN a bookable amount serialised for Xero
    money = _bookable(minor, currency)
    text = dump_json({"Amount": to_xero_amount(money)})

    # WHEN an ordinary JSON reader parses it (as Xero and the contract validator do)
    plain = json.loads(text)["Amount"]

    # THEN it is a JSON number (not a string) and, read as a decimal, equals the amount to the minor unit
    assert isinstance(plain, int | float)
    assert not isinstance(plain, bool)
    assert json.loads(text, parse_float=Decimal)["Amount"] == money.to_decimal()


@given(minor=minor_units)
def test_yen_amounts_are_sent_without_a_decimal_point(minor: int) -> None:
    # GIVEN a yen amount (exponent 0)
    money = Money.of(minor, "JPY")

    # WHEN it is serialised
    text = dump_json(to_xero_amount(money))

    # THEN it is the integer itself
    assert text == str(minor)


@given(minor=minor_units, currency=st.sampled_from(CURRENCIES))
def test_xero_two_decimal_echo_parses_to_the_same_money(minor: int, currency: str) -> None:
    # GIVEN Xero's own rendering of a bookable amount, always with two decimals (e.g. 1000.00 JPY)
    money = _bookable(minor, currency)
    xero_text = f"{money.to_decimal():.2f}"

    # WHEN it is parsed from Xero's JSON
    parsed = from_xero_amount(load_json(f'{{"Total": {xero_text}}}'.encode())["Total"], currency)

    # THEN nothing was lost or rounded
    assert parsed == money


@given(minor=st.integers(min_value=0, max_value=10**15).filter(lambda value: value % 10 != 0))
def test_kwd_amount_with_a_third_decimal_is_refused_rather_than_rounded(minor: int) -> None:
    # GIVEN a KWD amount whose third decimal Xero cannot store
    money = Money.of(minor, "KWD")

    # WHEN it is prepared for Xero / THEN it is refused with a precise code
    with pytest.raises(RejectedError) as refused:
        to_xero_amount(money)
    assert refused.value.code == "amount_not_representable"


@given(minor=st.integers(min_value=1, max_value=10**9), digits=st.integers(min_value=1, max_value=9))
def test_xero_number_with_more_decimals_than_the_currency_is_refused(minor: int, digits: int) -> None:
    # GIVEN a yen number with a fractional part, as a confused server could send
    value = Decimal(minor) + Decimal(digits).scaleb(-1)

    # WHEN it is parsed as JPY / THEN it is refused instead of being truncated
    with pytest.raises(RejectedError):
        from_xero_amount(value, "JPY")


@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_floats_never_cross_the_boundary(value: float) -> None:
    # GIVEN a float where an amount should be
    # WHEN it is serialised or parsed / THEN both directions refuse it
    with pytest.raises(TypeError):
        dump_json({"Amount": value})
    with pytest.raises(RejectedError):
        from_xero_amount(value, "EUR")


def test_non_finite_numbers_are_refused_both_ways() -> None:
    # GIVEN non-finite values / WHEN serialised or parsed / THEN refused
    with pytest.raises(ValueError, match="not a JSON number"):
        dump_json(Decimal("NaN"))
    with pytest.raises(ValueError, match="not a JSON number"):
        load_json(b'{"Amount": NaN}')
