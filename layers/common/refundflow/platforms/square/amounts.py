"""Square's amounts: ``Money {amount, currency}`` with ``amount`` an integer in the currency's smallest
denomination (developer.squareup.com "Working with Monetary Amounts": cents for USD, whole yen for JPY), exactly
ISO 4217's minor units for every currency Square processes.

Square processes card payments for sellers in Australia, Canada, France, Ireland, Japan, Spain, the United
Kingdom and the United States (developer.squareup.com "Supported Payment Methods by Country"), always in the
seller's own currency, and a refund is in its payment's currency: any other currency is refused by Square's
currency profile (its catalog entry's ``accepted`` list), before anything is reserved, never sent.
"""

from __future__ import annotations

from functools import cache

from refundflow import catalog
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money

PLATFORM = "square"
TITLE = "Square"


@cache
def profile() -> CurrencyProfile:
    """Square's currency profile (its catalog entry), naming Square in refusals."""
    found: CurrencyProfile = catalog.payment_capabilities(PLATFORM).currencies
    return found.named(TITLE)


def to_square(money: Money) -> dict[str, int | str]:
    """Square's ``Money`` object for ``money``.

    Raises:
        AmountNotRepresentable: a currency Square does not process (checked before anything is sent).
    """
    return {"amount": profile().to_platform_units(money), "currency": money.currency}


def from_square(value: object, currency: object) -> Money:
    """Our Money for Square's ``{amount, currency}``, exactly.

    Raises:
        AmountNotRepresentable: not an integer amount, or an unknown currency.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not isinstance(currency, str):
        raise AmountNotRepresentable(
            f"{TITLE} amount {value!r} {currency!r} is not an integer amount",
            code="amount_not_representable",
            platform=PLATFORM,
        )
    return profile().from_platform(value, currency)
