"""PayPal's amounts: decimal strings ``{currency_code, value}`` in PayPal's decimals, exactly, or refused.

Pure (no HTTP). The conversions and the rule validation asks before anything is reserved are PayPal's currency
profile (its catalog entry: decimal strings, HUF and TWD with no decimals although ISO 4217 gives them two,
"Decimal amounts cause an error": developer.paypal.com/api/rest/reference/currency-codes; and the list of PayPal's
REST currencies: any other one is refused, never sent).
"""

from __future__ import annotations

from refundflow.connectors.capabilities import payment_capabilities
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable
from refundflow.money import Money

PLATFORM = "paypal"
TITLE = "PayPal"


def profile() -> CurrencyProfile:
    """PayPal's currency profile, from its catalog entry."""
    return payment_capabilities(PLATFORM, TITLE).currencies


def to_paypal(money: Money) -> dict[str, str]:
    """PayPal's v2 ``money`` object for ``money``.

    Raises:
        AmountNotRepresentable: not a PayPal currency, or decimals PayPal does not take.
    """
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
