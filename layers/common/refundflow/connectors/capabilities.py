"""A platform's capabilities as every connector reads them from its catalog entry: the catalog's record with a
currency profile that names the platform in its refusals. Cheap to import (no HTTP client, no SDK)."""

from __future__ import annotations

from functools import cache

from refundflow import catalog
from refundflow.ports import BooksCapabilities, PaymentCapabilities


@cache
def payment_capabilities(platform: str, title: str) -> PaymentCapabilities:
    """``platform``'s payment capabilities from its catalog entry, its currency profile naming ``title`` (the name a
    person reads, e.g. "PayPal") in refusals."""
    found: PaymentCapabilities = catalog.payment_capabilities(platform)
    return found.model_copy(update={"currencies": found.currencies.named(title)})


@cache
def books_capabilities(platform: str, title: str) -> BooksCapabilities:
    """``platform``'s books capabilities from its catalog entry, its currency profile naming ``title`` (the product a
    person reads, e.g. "QuickBooks Online") in refusals."""
    found: BooksCapabilities = catalog.books_capabilities(platform)
    return found.model_copy(update={"currencies": found.currencies.named(title)})
