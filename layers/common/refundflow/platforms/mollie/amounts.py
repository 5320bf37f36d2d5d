"""Mollie's amounts: ``{currency, value}`` with ``value`` a decimal string in the currency's decimals, exactly, or
refused.

Pure (no HTTP). The conversions and the rule validation asks before anything is reserved are Mollie's currency
profile (its catalog entry: decimal strings, ISO 4217's decimals, docs.mollie.com/docs/multicurrency: "ISK 0",
"JPY 0", HUF with 2, and Mollie's list of payment currencies: any other one is refused, never sent).
"""

from __future__ import annotations

from refundflow.connectors.capabilities import payment_capabilities
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money

PLATFORM = "mollie"
TITLE = "Mollie"


def profile() -> CurrencyProfile:
    """Mollie's currency profile, from its catalog entry."""
    return payment_capabilities(PLATFORM, TITLE).currencies


def to_mollie(money: Money) -> dict[str, str]:
    """Mollie's ``amount`` object for ``money``.

    Raises:
        AmountNotRepresentable: not a Mollie currency, or an amount Mollie cannot write exactly.
    """
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
