"""Each connector's pure exactness rule, as validation uses it through the registry (issue 6, item 4)."""

from __future__ import annotations

import pytest

from refundflow.connectors import stripe_amounts, xero_amounts
from refundflow.connectors.registry import ensure_representable
from refundflow.errors import InvalidRequest
from refundflow.models import BooksSystem, InvoiceReference, PaymentProvider, PaymentReference
from refundflow.money import Money

STRIPE = PaymentReference(provider=PaymentProvider.STRIPE, payment_id="pi_1")
XERO = InvoiceReference(system=BooksSystem.XERO, invoice_id="inv-1")


@pytest.mark.parametrize(
    ("minor_units", "currency", "rule"),
    [
        (3333, "KWD", "steps of 0.010 KWD"),
        (150, "MGA", "steps of 1.00 MGA"),
        (100, "UGX", "ambiguous"),
        (1000, "IQD", "not a Stripe-supported currency"),
    ],
)
def test_stripe_names_the_currency_and_its_rule(minor_units: int, currency: str, rule: str) -> None:
    problem = stripe_amounts.representable(Money.of(minor_units, currency))
    assert problem is not None
    assert currency in problem
    assert rule in problem


@pytest.mark.parametrize(("minor_units", "currency"), [(3330, "KWD"), (5, "ISK"), (200, "MGA"), (12, "JPY")])
def test_stripe_takes_what_it_can_represent(minor_units: int, currency: str) -> None:
    assert stripe_amounts.representable(Money.of(minor_units, currency)) is None


def test_xero_refuses_a_third_decimal_that_is_not_zero() -> None:
    assert xero_amounts.representable(Money.of(3330, "KWD")) is None
    problem = xero_amounts.representable(Money.of(1235, "KWD"))
    assert problem is not None
    assert "1.235 KWD" in problem


def test_the_registry_checks_the_provider_then_the_books() -> None:
    # GIVEN amounts each platform refuses WHEN checked THEN the refusal is amount_not_representable, naming it
    with pytest.raises(InvalidRequest, match="Stripe") as stripe_refused:
        ensure_representable(Money.of(3333, "KWD"), STRIPE, XERO)
    with pytest.raises(InvalidRequest, match="Xero") as xero_refused:
        ensure_representable(Money.of(3340, "KWD"), STRIPE, XERO, books_only=[Money.of(1235, "KWD")])
    assert stripe_refused.value.code == xero_refused.value.code == "amount_not_representable"
    # AND without books, only the provider's rule applies
    ensure_representable(Money.of(3340, "KWD"), STRIPE, None, books_only=[Money.of(1235, "KWD")])
