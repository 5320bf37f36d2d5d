"""Which platforms this release has connectors (and workflow branches) for."""

from __future__ import annotations

from refundflow.errors import InvalidRequest
from refundflow.models import BooksSystem, InvoiceReference, PaymentProvider, PaymentReference

PAYMENT_PROVIDERS: frozenset[PaymentProvider] = frozenset({PaymentProvider.STRIPE})
BOOKS_SYSTEMS: frozenset[BooksSystem] = frozenset({BooksSystem.XERO})


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
