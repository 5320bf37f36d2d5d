"""Each platform's exactness rule (its currency profile in the catalog), as validation uses it (issue 6, item 4)."""

from __future__ import annotations

import pytest

from refundflow.domain.deployment import books_problem, ensure_representable, payment_problem
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
        (1000, "IQD", "not a Stripe currency"),
    ],
)
def test_stripe_names_the_currency_and_its_rule(minor_units: int, currency: str, rule: str) -> None:
    problem = payment_problem(Money.of(minor_units, currency), STRIPE)
    assert problem is not None
    assert currency in problem
    assert rule in problem


@pytest.mark.parametrize(("minor_units", "currency"), [(3330, "KWD"), (5, "ISK"), (200, "MGA"), (12, "JPY")])
def test_stripe_takes_what_it_can_represent(minor_units: int, currency: str) -> None:
    assert payment_problem(Money.of(minor_units, currency), STRIPE) is None


def test_xero_refuses_a_third_decimal_that_is_not_zero() -> None:
    assert books_problem(Money.of(3330, "KWD"), XERO) is None
    problem = books_problem(Money.of(1235, "KWD"), XERO)
    assert problem is not None
    assert "1.235 KWD" in problem


def test_validation_checks_the_provider_then_the_books() -> None:
    # GIVEN amounts each platform refuses WHEN checked THEN the refusal is amount_not_representable, naming it
    with pytest.raises(InvalidRequest, match="Stripe") as stripe_refused:
        ensure_representable(Money.of(3333, "KWD"), STRIPE, XERO)
    with pytest.raises(InvalidRequest, match="Xero") as xero_refused:
        ensure_representable(Money.of(3340, "KWD"), STRIPE, XERO, books_only=[Money.of(1235, "KWD")])
    assert stripe_refused.value.code == xero_refused.value.code == "amount_not_representable"
    # AND without books, only the provider's rule applies
    ensure_representable(Money.of(3340, "KWD"), STRIPE, None, books_only=[Money.of(1235, "KWD")])
