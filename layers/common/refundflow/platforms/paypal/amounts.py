"""PayPal's amounts: decimal strings ``{currency_code, value}`` in PayPal's decimals, exactly, or refused.

Pure (no HTTP), so validation can ask :func:`representable` before anything is reserved. The conversions are
PayPal's currency profile (its catalog entry: decimal strings, HUF and TWD with no decimals although ISO 4217
gives them two, "Decimal amounts cause an error": developer.paypal.com/api/rest/reference/currency-codes); this
module adds the list of PayPal's REST currencies, since any other one is refused, never sent.
"""

from __future__ import annotations

from functools import cache

from refundflow import catalog
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money

PLATFORM = "paypal"
TITLE = "PayPal"

CURRENCIES = frozenset(
    {
        "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS", "INR", "JPY",
        "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "SEK", "SGD", "THB", "TWD", "USD",
    }
)  # fmt: skip


@cache
def profile() -> CurrencyProfile:
    """PayPal's currency profile, from its catalog entry."""
    found: CurrencyProfile = catalog.payment_capabilities(PLATFORM).currencies
    return found.named(TITLE)


def representable(money: Money) -> str | None:
    """Why PayPal cannot take ``money`` exactly, or None when it can."""
    if money.currency not in CURRENCIES:
        return f"{money.currency} is not a {TITLE} currency"
    return profile().representable(money)


def to_paypal(money: Money) -> dict[str, str]:
    """PayPal's v2 ``money`` object for ``money``.

    Raises:
        AmountNotRepresentable: not a PayPal currency, or decimals PayPal does not take.
    """
    if money.currency not in CURRENCIES:
        raise AmountNotRepresentable(
            f"{money.currency} is not a {TITLE} currency", code="currency_not_supported", platform=PLATFORM
        )
    return {"currency_code": money.currency, "value": str(profile().to_platform(money))}


def from_paypal(value: object, currency: object) -> Money:
    """Our Money for a PayPal decimal string, exactly.

    Raises:
        AmountNotRepresentable: not a decimal string, an unknown currency, or more decimals than ISO 4217 allows.
    """
    if not isinstance(value, str) or not isinstance(currency, str):
        raise AmountNotRepresentable(
            f"{TITLE} amount {value!r} {currency!r} is not a decimal string",
            code="amount_not_representable",
            platform=PLATFORM,
        )
    return profile().from_platform(value, currency)
