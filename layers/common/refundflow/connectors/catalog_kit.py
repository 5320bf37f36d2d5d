"""What every platform connector reads from its catalog entry the same way: its capabilities with a currency profile
that names the platform in refusals, and the configured value for a payment provider and currency."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TypeVar

from refundflow import catalog
from refundflow.models import PaymentProvider
from refundflow.ports import BooksCapabilities, PaymentCapabilities

_Value = TypeVar("_Value")


@cache
def payment_capabilities(platform: str, title: str) -> PaymentCapabilities:
    """``platform``'s payment capabilities from its catalog entry, its currency profile naming ``title`` (the name a
    person reads, e.g. "PayPal") in refusals."""
    found: PaymentCapabilities = catalog.payment_capabilities(platform)
    return found.model_copy(update={"currencies": found.currencies.named(title)})


@cache
def books_capabilities(platform: str, title: str) -> BooksCapabilities:
    """``platform``'s books capabilities from its catalog entry, its currency profile naming ``title``."""
    found: BooksCapabilities = catalog.books_capabilities(platform)
    return found.model_copy(update={"currencies": found.currencies.named(title)})


def per_provider(configured: Mapping[str, _Value], provider: PaymentProvider, currency: str) -> _Value | None:
    """The value configured for ``provider`` refunds in ``currency``, keyed ``<provider>:<CURRENCY>``,
    ``<provider>:*`` or ``*:<CURRENCY>`` (the most specific wins), or None when none is."""
    for key in (f"{provider.value}:{currency}", f"{provider.value}:*", f"*:{currency}"):
        if key in configured:
            return configured[key]
    return None
