"""Klarna's amounts: integers in the order currency's minor units, for Klarna's transaction currencies only.

Pure (no HTTP), so validation can ask :func:`representable` before anything is reserved. A Klarna refund names no
currency (``refunded_amount`` is in the order's ``purchase_currency``): the currency is checked against the order
by the domain's payment look-up, and here against the list of currencies Klarna transacts in
(docs.klarna.com "Supported transaction currencies"); any other one is refused, never sent.
"""

from __future__ import annotations

from functools import cache

from refundflow import catalog
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money

PLATFORM = "klarna"
TITLE = "Klarna"

CURRENCIES = frozenset(
    {"AUD", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "HUF", "MXN", "NOK", "NZD", "PLN", "RON", "SEK", "USD"}
)


@cache
def profile() -> CurrencyProfile:
    """Klarna's currency profile, from its catalog entry."""
    found: CurrencyProfile = catalog.payment_capabilities(PLATFORM).currencies
    return found.named(TITLE)


def representable(money: Money) -> str | None:
    """Why Klarna cannot take ``money`` exactly, or None when it can."""
    if money.currency not in CURRENCIES:
        return f"{money.currency} is not a {TITLE} currency"
    return profile().representable(money)


def to_klarna(money: Money) -> int:
    """``money`` as Klarna's ``refunded_amount`` (minor units of the order's currency).

    Raises:
        AmountNotRepresentable: not a Klarna currency, or more than Klarna takes in one refund.
    """
    if money.currency not in CURRENCIES:
        raise AmountNotRepresentable(
            f"{money.currency} is not a {TITLE} currency", code="currency_not_supported", platform=PLATFORM
        )
    return profile().to_platform_units(money)


def from_klarna(value: object, currency: object) -> Money:
    """Our Money for a Klarna amount in ``currency`` (the order's ``purchase_currency``), exactly.

    Raises:
        AmountNotRepresentable: not an integer, or not a Klarna currency.
    """
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        raise AmountNotRepresentable(
            f"{currency!r} is not a {TITLE} currency", code="currency_not_supported", platform=PLATFORM
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise AmountNotRepresentable(
            f"{TITLE} amount {value!r} is not an integer", code="amount_not_representable", platform=PLATFORM
        )
    return profile().from_platform(value, currency)
