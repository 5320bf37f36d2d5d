"""Amazon Pay's amounts: ``{amount, currencyCode}`` with ``amount`` a decimal string, exactly, or refused.

Pure (no HTTP), so validation can ask :func:`representable` before anything is reserved. The conversions and the
currencies Amazon Pay charges in (USD in the US, EUR and GBP in the EU and UK with AUD, CHF, DKK, HKD, NOK, NZD,
SEK, USD and ZAR through multi-currency, JPY in Japan; any other one is refused, never sent) are Amazon Pay's
currency profile (its catalog entry); this module adds the largest refund per currency. A refund is made in its
charge's currency.
"""

from __future__ import annotations

from refundflow.connectors.capabilities import payment_capabilities
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money

PLATFORM = "amazon_pay"
TITLE = "Amazon Pay"

# The largest refund amount the Refund reference gives ("150,000 USD/GBP/EUR and 10,000,000 JPY"), in minor units;
# it names no limit for the multi-currency ones.
MAX_REFUND = {"USD": 15_000_000, "EUR": 15_000_000, "GBP": 15_000_000, "JPY": 10_000_000}


def profile() -> CurrencyProfile:
    """Amazon Pay's currency profile, from its catalog entry."""
    return payment_capabilities(PLATFORM, TITLE).currencies


def representable(money: Money) -> str | None:
    """Why Amazon Pay cannot take ``money`` exactly, or None when it can."""
    limit = MAX_REFUND.get(money.currency)
    if limit is not None and money.minor_units > limit:
        return f"{money} is more than {TITLE} refunds at once ({Money.of(limit, money.currency)})"
    return profile().representable(money)


def to_amazon(money: Money) -> dict[str, str]:
    """Amazon Pay's ``price`` object for ``money``: ``{"amount": "14.00", "currencyCode": "USD"}``.

    Raises:
        AmountNotRepresentable: not an Amazon Pay currency, or not exactly representable.
    """
    why = representable(money)
    if why is not None:
        code = "amount_not_representable" if profile().accepts(money.currency) else "currency_not_supported"
        raise AmountNotRepresentable(why, code=code, platform=PLATFORM)
    return {"amount": str(profile().to_platform(money)), "currencyCode": money.currency}


def from_amazon(price: object) -> Money:
    """Our Money for an Amazon Pay ``price`` object, exactly.

    Raises:
        AmountNotRepresentable: not a ``{amount, currencyCode}`` of strings, an unknown currency, or more decimals
            than ISO 4217 allows.
    """
    amount = price.get("amount") if isinstance(price, dict) else None
    currency = price.get("currencyCode") if isinstance(price, dict) else None
    if not isinstance(amount, str) or not isinstance(currency, str):
        raise AmountNotRepresentable(
            f"{TITLE} price {price!r} is not a decimal string and a currency code",
            code="amount_not_representable",
            platform=PLATFORM,
        )
    return profile().from_platform(amount, currency)
