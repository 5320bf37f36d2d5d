"""Each platform's exactness rule (its currency profile in the catalog), as validation uses it (issue 6, item 4)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from refundflow.catalog import CurrencyRules
from refundflow.currencies import CurrencyProfile
from refundflow.domain.deployment import books_problem, ensure_representable, payment_problem
from refundflow.errors import AmountNotRepresentable, InvalidRequest
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


def test_a_profile_with_a_list_of_currencies_refuses_every_other_before_converting() -> None:
    # GIVEN a platform that takes EUR and JPY only (its catalog entry's accepted list)
    profile = CurrencyProfile(amount_format="decimal_string", accepted=frozenset({"EUR", "JPY"})).named("Acme")
    # THEN its currencies convert as before, and any other one is refused by name, never converted
    assert profile.representable(Money.of(1_234, "EUR")) is None
    assert profile.to_platform(Money.of(1_234, "JPY")) == "1234"
    assert profile.accepts("eur")
    assert not profile.accepts("USD")
    assert profile.representable(Money.of(1_234, "USD")) == "USD is not an Acme currency"
    with pytest.raises(AmountNotRepresentable, match="USD is not an Acme currency") as refused:
        profile.to_platform(Money.of(1_234, "USD"))
    assert refused.value.code == "currency_not_supported"
    assert CurrencyProfile(accepted=frozenset({"EUR"})).named("Klarna").representable(Money.of(1, "SEK")) == (
        "SEK is not a Klarna currency"
    )
    # AND without a list every ISO currency is taken
    assert CurrencyProfile().accepts("XAF")


def test_the_catalog_takes_only_iso_currencies_in_an_accepted_list() -> None:
    assert CurrencyRules(accepted=["EUR", "JPY"]).accepted == ["EUR", "JPY"]
    with pytest.raises(ValidationError, match="not ISO 4217"):
        CurrencyRules(accepted=["EUR", "XYZ"])


@pytest.mark.parametrize(
    ("provider", "payment_id", "currency", "title"),
    [
        (PaymentProvider.SQUARE, "R2B3Z8WMVt3EAmzYWLZvz7Y69EbZY", "SEK", "a Square"),
        (PaymentProvider.PAYPAL, "3C679366HH908993F", "ZAR", "a PayPal"),
        (PaymentProvider.AMAZON_PAY, "S01-0000000-0000000-C000000", "CAD", "an Amazon Pay"),
    ],
)
def test_validation_refuses_a_currency_outside_the_platforms_list(
    provider: PaymentProvider, payment_id: str, currency: str, title: str
) -> None:
    payment = PaymentReference(provider=provider, payment_id=payment_id)
    assert payment_problem(Money.of(1_000, currency), payment) == f"{currency} is not {title} currency"
