"""Which platforms this release has connectors (and workflow branches) for, and what amounts they can carry.

Only pure modules are imported here (no SDK, no HTTP client): intake and ValidateRefund use it, and their
cold start stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from refundflow.connectors import stripe_amounts, xero_amounts
from refundflow.errors import InvalidRequest
from refundflow.models import BooksSystem, InvoiceReference, PaymentProvider, PaymentReference
from refundflow.money import Money

AMOUNT_NOT_REPRESENTABLE = "amount_not_representable"

Representable = Callable[[Money], "str | None"]
"""A platform's exactness rule: why it cannot carry an amount exactly, or None."""

PAYMENT_RULES: Mapping[PaymentProvider, Representable] = {PaymentProvider.STRIPE: stripe_amounts.representable}
BOOKS_RULES: Mapping[BooksSystem, Representable] = {BooksSystem.XERO: xero_amounts.representable}
PAYMENT_PROVIDERS: frozenset[PaymentProvider] = frozenset(PAYMENT_RULES)
BOOKS_SYSTEMS: frozenset[BooksSystem] = frozenset(BOOKS_RULES)


def ensure_deployed(payment: PaymentReference, invoice: InvoiceReference | None) -> None:
    """Refuse what this deployment cannot carry out.

    Raises:
        InvalidRequest: no connector for the payment provider (``provider_not_supported``) or the books
            system (``books_not_supported``).
    """
    if payment.provider not in PAYMENT_PROVIDERS:
        raise InvalidRequest(
            f"no connector for payment provider {payment.provider.value} is deployed", code="provider_not_supported"
        )
    if invoice is not None and invoice.system not in BOOKS_SYSTEMS:
        raise InvalidRequest(
            f"no connector for books system {invoice.system.value} is deployed", code="books_not_supported"
        )


def ensure_representable(
    amount: Money, payment: PaymentReference, invoice: InvoiceReference | None, *, books_only: Iterable[Money] = ()
) -> None:
    """Refuse an amount the payment provider or the books cannot carry exactly (they would refuse it,
    or round it), before anything is reserved. ``books_only``: amounts only the books see (lines).

    Raises:
        InvalidRequest: ``amount_not_representable``, naming the currency and the platform's rule.
    """
    ensure_deployed(payment, invoice)
    problems = [PAYMENT_RULES[payment.provider](amount)]
    if invoice is not None:
        problems += [BOOKS_RULES[invoice.system](money) for money in (amount, *books_only)]
    problem = next((found for found in problems if found), None)
    if problem:
        raise InvalidRequest(problem, code=AMOUNT_NOT_REPRESENTABLE)
