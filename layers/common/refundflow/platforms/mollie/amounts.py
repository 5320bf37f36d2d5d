"""Mollie's amounts: ``{currency, value}`` with ``value`` a decimal string in the currency's decimals, exactly, or
refused.

Pure (no HTTP), so validation can ask :func:`representable` before anything is reserved. The conversions are
Mollie's currency profile (its catalog entry: decimal strings, ISO 4217's decimals, docs.mollie.com/docs/
multicurrency: "ISK 0", "JPY 0", HUF with 2); this module adds Mollie's list of payment currencies, since any
other one is refused, never sent.
"""

from __future__ import annotations

from functools import cache

from refundflow import catalog
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money

PLATFORM = "mollie"
TITLE = "Mollie"

# docs.mollie.com/docs/multicurrency, "Supported currencies" (which payment methods take each one varies).
CURRENCIES = frozenset(
    {
        "AED", "AUD", "BGN", "BRL", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS", "ISK", "JPY",
        "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RON", "SEK", "SGD", "THB", "TWD", "USD", "ZAR",
    }
)  # fmt: skip


@cache
def profile() -> CurrencyProfile:
    """Mollie's currency profile, from its catalog entry."""
    found: CurrencyProfile = catalog.payment_capabilities(PLATFORM).currencies
    return found.named(TITLE)


def representable(money: Money) -> str | None:
    """Why Mollie cannot take ``money`` exactly, or None when it can."""
    if money.currency not in CURRENCIES:
        return f"{money.currency} is not a {TITLE} currency"
    return profile().representable(money)


def to_mollie(money: Money) -> dict[str, str]:
    """Mollie's ``amount`` object for ``money``.

    Raises:
        AmountNotRepresentable: not a Mollie currency, or an amount Mollie cannot write exactly.
    """
    if money.currency not in CURRENCIES:
        raise AmountNotRepresentable(
            f"{money.currency} is not a {TITLE} currency", code="currency_not_supported", platform=PLATFORM
        )
    return {"currency": money.currency, "value": str(profile().to_platform(money))}


def from_mollie(amount: object) -> Money:
    """Our Money for a Mollie ``amount`` object, exactly.

    Raises:
        AmountNotRepresentable: not ``{currency, value}`` with a decimal string, an unknown currency, or more
            decimals than ISO 4217 allows.
    """
    value = amount.get("value") if isinstance(amount, dict) else None
    currency = amount.get("currency") if isinstance(amount, dict) else None
    if not isinstance(value, str) or not isinstance(currency, str):
        raise AmountNotRepresentable(
            f"{TITLE} amount {amount!r} is not {{currency, value}} with a decimal string",
            code="amount_not_representable",
            platform=PLATFORM,
        )
    return profile().from_platform(value, currency)
