"""Mollie's amounts at the boundary: decimal strings with exactly the currency's decimals, both ways, exactly;
currencies Mollie does not take are refused before anything is reserved (validation asks the catalog's rule)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow import catalog
from refundflow.domain.deployment import payment_problem
from refundflow.errors import AmountNotRepresentable
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.money import Money
from refundflow.platforms.mollie.amounts import from_mollie, to_mollie

CURRENCIES: frozenset[str] = catalog.payment_capabilities("mollie").currencies.accepted
PAYMENT = PaymentReference(provider=PaymentProvider.MOLLIE, payment_id="tr_WDqYK6vllg")


@settings(max_examples=60, deadline=None)
@given(minor=st.integers(min_value=1, max_value=10**12), currency=st.sampled_from(sorted(CURRENCIES)))
def test_every_mollie_amount_round_trips_exactly(minor: int, currency: str) -> None:
    money = Money.of(minor, currency)
    written = to_mollie(money)
    assert payment_problem(money, PAYMENT) is None
    assert from_mollie(written) == money
    decimals = 0 if currency in {"ISK", "JPY"} else 2
    assert len(written["value"].partition(".")[2]) == decimals


@pytest.mark.parametrize(
    ("minor", "currency", "value"),
    [(1, "EUR", "0.01"), (123_456, "EUR", "1234.56"), (1_234, "JPY", "1234"), (7, "ISK", "7"), (1, "HUF", "0.01")],
)
def test_mollies_writing(minor: int, currency: str, value: str) -> None:
    assert to_mollie(Money.of(minor, currency)) == {"currency": currency, "value": value}


@pytest.mark.parametrize("currency", ["KWD", "BHD", "XAF", "CLF", "VND"])
def test_currencies_mollie_does_not_take_are_refused_before_reservation(currency: str) -> None:
    assert catalog.representable("mollie") is None
    assert payment_problem(Money.of(1_000, currency), PAYMENT) == f"{currency} is not a Mollie currency"
    with pytest.raises(AmountNotRepresentable):
        to_mollie(Money.of(1_000, currency))


@pytest.mark.parametrize(
    "amount",
    [{"currency": "EUR", "value": 10.5}, {"currency": "EUR", "value": "10.005"}, {"currency": "JPY", "value": "1.5"}],
)
def test_what_our_money_cannot_hold_exactly_is_refused_on_the_way_in(amount: dict[str, object]) -> None:
    with pytest.raises(AmountNotRepresentable):
        from_mollie(amount)
