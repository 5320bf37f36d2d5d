"""Square's amounts: integers in each currency's smallest denomination, exactly ISO's minor units, in the six
currencies of Square's sellers; anything else refused before reservation. And our refund id in ``reason``: always
found again, never cut off by Square's 192 characters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refundflow import catalog
from refundflow.domain.deployment import payment_problem
from refundflow.errors import AmountNotRepresentable
from refundflow.ids import derive_refund_id
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import CURRENCY_EXPONENTS, Money
from refundflow.platforms.square.amounts import from_square, to_square
from refundflow.platforms.square.refunds import MAX_REASON_LENGTH, reason_text, refund_id_in

PAYMENT = PaymentReference(provider=PaymentProvider.SQUARE, payment_id="R2B3Z8WMVt3EAmzYWLZvz7Y69EbZY")
CURRENCIES: frozenset[str] = catalog.payment_capabilities("square").currencies.accepted


@given(st.sampled_from(sorted(CURRENCIES)), st.integers(min_value=1, max_value=10**15))
def test_every_amount_goes_to_square_in_minor_units_and_comes_back_exactly(currency: str, minor: int) -> None:
    money = Money.of(minor, currency)
    sent = to_square(money)
    assert sent == {"amount": minor, "currency": currency}
    assert from_square(sent["amount"], sent["currency"]) == money
    assert payment_problem(money, PAYMENT) is None


def test_yen_are_whole_yen() -> None:
    assert to_square(Money.of(1_234, "JPY")) == {"amount": 1_234, "currency": "JPY"}
    assert from_square(500, "jpy") == Money.of(500, "JPY")


@given(st.sampled_from(sorted(set(CURRENCY_EXPONENTS) - CURRENCIES)))
def test_a_currency_square_does_not_process_is_refused_before_reservation(currency: str) -> None:
    money = Money.of(1_000, currency)
    problem = payment_problem(money, PAYMENT)
    assert problem is not None
    assert currency in problem
    assert "Square" in problem
    with pytest.raises(AmountNotRepresentable):
        to_square(money)


@pytest.mark.parametrize("value", [12.5, "1250", True, None])
def test_an_amount_from_square_that_is_not_an_integer_is_refused(value: object) -> None:
    with pytest.raises(AmountNotRepresentable):
        from_square(value, "USD")


@settings(max_examples=40, deadline=None)
@given(
    st.text(max_size=240),
    st.sampled_from(list(RefundReason)),
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=40),
)
def test_our_refund_id_survives_in_the_reason_whatever_the_reference(
    reference: str, reason: RefundReason, seed: str
) -> None:
    refund_id = derive_refund_id("square-tests", seed)
    text = reason_text(refund_id, reason, reference)
    assert len(text) <= MAX_REASON_LENGTH
    assert refund_id_in(text) == refund_id
    assert "\n" not in text


def test_a_reason_written_by_someone_else_names_no_refund_of_ours() -> None:
    assert refund_id_in("Customer returned the kettle") is None
    assert refund_id_in("see [rf_0123456789abcdef0123456789abcdef] and more") is None
    assert refund_id_in(None) is None
