"""What this deployment can carry out, from the platform catalog: which payment providers and books systems
it has, the payment locator each provider accepts, and which amounts each platform carries exactly.

Only the catalog (pure) and each platform's currency profile are consulted: no platform code, no SDK.
"""

from __future__ import annotations

from collections.abc import Iterable

from refundflow import catalog
from refundflow.currencies import CurrencyProfile
from refundflow.errors import InvalidRequest
from refundflow.models import InvoiceReference, PaymentReference
from refundflow.money import Money

AMOUNT_NOT_REPRESENTABLE = "amount_not_representable"


def ensure_deployed(payment: PaymentReference, invoice: InvoiceReference | None) -> None:
    """Refuse what this deployment cannot carry out.

    Raises:
        InvalidRequest: no payment platform (``provider_not_supported``) or books platform
            (``books_not_supported``) of that name, or a payment locator the provider does not own
            (``invalid_locator``).
    """
    catalog.payment_platform(payment.provider.value)
    if invoice is not None:
        catalog.books_platform(invoice.system.value)
    check_locator(payment)


def check_locator(payment: PaymentReference) -> None:
    """The locator's keys and values must be the provider's own (its catalog entry).

    Raises:
        InvalidRequest: ``invalid_locator``.
    """
    if not payment.locator:
        return
    allowed = catalog.payment_capabilities(payment.provider.value).locator
    for key, value in payment.locator.items():
        if key not in allowed:
            raise InvalidRequest(
                f"{payment.provider.value} payments have no locator key {key!r} (known: {sorted(allowed) or 'none'})",
                code="invalid_locator",
            )
        if allowed[key] and value not in allowed[key]:
            raise InvalidRequest(
                f"locator {key}={value!r} is not one of {allowed[key]} for {payment.provider.value}",
                code="invalid_locator",
            )


def payment_problem(amount: Money, payment: PaymentReference) -> str | None:
    """Why the payment provider cannot refund ``amount`` exactly, or None."""
    name = payment.provider.value
    rule = catalog.representable(name)
    if rule is not None:
        return rule(amount)
    profile: CurrencyProfile = catalog.payment_capabilities(name).currencies
    return profile.named(catalog.platform(name).title).representable(amount)


def books_problem(amount: Money, invoice: InvoiceReference) -> str | None:
    """Why the books cannot book ``amount`` exactly, or None."""
    name = invoice.system.value
    rule = catalog.representable(name)
    if rule is not None:
        return rule(amount)
    profile: CurrencyProfile = catalog.books_capabilities(name).currencies
    return profile.named(catalog.platform(name).title).representable(amount)


def ensure_representable(
    amount: Money, payment: PaymentReference, invoice: InvoiceReference | None, *, books_only: Iterable[Money] = ()
) -> None:
    """Refuse an amount the payment provider or the books cannot carry exactly (they would refuse it, or
    round it), before anything is reserved. ``books_only``: amounts only the books see (lines).

    Raises:
        InvalidRequest: ``amount_not_representable``, naming the currency and the platform's rule.
    """
    ensure_deployed(payment, invoice)
    problems = [payment_problem(amount, payment)]
    if invoice is not None:
        problems += [books_problem(money, invoice) for money in (amount, *books_only)]
    problem = next((found for found in problems if found), None)
    if problem:
        raise InvalidRequest(problem, code=AMOUNT_NOT_REPRESENTABLE)


def ensure_books_representable(amounts: Iterable[Money], invoice: InvoiceReference) -> None:
    """Refuse amounts only the books see (invoice lines) that the books cannot book exactly.

    Raises:
        InvalidRequest: ``amount_not_representable``.
    """
    problem = next(filter(None, (books_problem(money, invoice) for money in amounts)), None)
    if problem:
        raise InvalidRequest(problem, code=AMOUNT_NOT_REPRESENTABLE)
