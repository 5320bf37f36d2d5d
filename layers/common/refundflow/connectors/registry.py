"""Which platforms this release has connectors (and workflow branches) for."""

from __future__ import annotations

from refundflow.models import BooksSystem, PaymentProvider

PAYMENT_PROVIDERS: frozenset[PaymentProvider] = frozenset({PaymentProvider.STRIPE})
BOOKS_SYSTEMS: frozenset[BooksSystem] = frozenset({BooksSystem.XERO})
