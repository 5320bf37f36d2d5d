"""Klarna's amounts: integers in the order currency's minor units, for Klarna's transaction currencies only.

Pure (no HTTP). A Klarna refund names no currency (``refunded_amount`` is in the order's ``purchase_currency``):
the currency is checked against the order by the domain's payment look-up, and against the list of currencies
Klarna transacts in by Klarna's currency profile (its catalog entry, which validation asks before anything is
reserved); any other one is refused, never sent.
"""

from __future__ import annotations

from refundflow.connectors.capabilities import payment_capabilities
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money

PLATFORM = "klarna"
TITLE = "Klarna"


def profile() -> CurrencyProfile:
    """Klarna's currency profile, from its catalog entry."""
    return payment_capabilities(PLATFORM, TITLE).currencies


def to_klarna(money: Money) -> int:
    """``money`` as Klarna's ``refunded_amount`` (minor units of the order's currency).

    Raises:
        AmountNotRepresentable: not a Klarna currency, or more than Klarna takes in one refund.
    """
    return profile().to_platform_units(money)


def from_klarna(value: object, currency: object) -> Money:
    """Our Money for a Klarna amount in ``currency`` (the order's ``purchase_currency``), exactly.

    Raises:
        AmountNotRepresentable: not an integer, or not a Klarna currency.
    """
    if not isinstance(currency, str) or not profile().accepts(currency):
        raise AmountNotRepresentable(
            f"{currency!r} is not a {TITLE} currency", code="currency_not_supported", platform=PLATFORM
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise AmountNotRepresentable(
            f"{TITLE} amount {value!r} is not an integer", code="amount_not_representable", platform=PLATFORM
        )
    return profile().from_platform(value, currency)
