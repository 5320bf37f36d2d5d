"""Stripe's amounts: our ISO 4217 minor units to Stripe's own unit and back, exactly, or refused.

Pure (no SDK import), so validation can ask :func:`representable` before anything is reserved
without paying for the ``stripe`` package's import. The connector converts with the same rules.
"""

from __future__ import annotations

from refundflow.errors import RejectedError
from refundflow.money import CURRENCY_EXPONENTS, Money, exponent

PLATFORM = "stripe"

# Stripe wants amounts "in the currency's smallest unit", but its idea of that unit is not always
# ISO 4217's (docs.stripe.com/currencies, "Minor units in API amounts" and "Special cases"). Every
# difference is either converted exactly or refused here: a refund never goes out 100x too big.

# Stripe's zero-decimal list. MGA is two-decimal in ISO 4217, so 1 ariary is 100 of our minor units
# but 1 of Stripe's.
_STRIPE_ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF"]
)
# Stripe supports these three-decimal currencies, but its payment partners need the last digit to
# be 0 ("5.124 KWD must be rounded to 5120 or 5130"). We refuse rather than round a refund.
_STRIPE_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# ISK is zero-decimal in ISO 4217, but Stripe keeps it two-decimal for backwards compatibility and
# requires multiples of 100 (support.stripe.com/questions/deprecation-of-fractional-isk-charges-and-refunds).
_STRIPE_TWO_DECIMAL_WHOLE_UNITS = frozenset({"ISK"})
# UGX: Stripe's currency page lists it as zero-decimal while it has also been handled as
# two-decimal "for backwards compatibility"; we could not confirm which one the API applies today,
# and guessing wrong moves 100x the money, so it is refused until checked against a real account.
# HUF and TWD are two-decimal for charges and refunds; their whole-unit rule applies to payouts only.
_STRIPE_REFUSED = {
    "UGX": "UGX amounts are ambiguous at Stripe (zero- or two-decimal); refused until verified",
}


class StripeAmountError(RejectedError):
    """An amount or currency that Stripe cannot represent exactly: refused, never rounded."""


def _stripe_exponent(currency: str) -> int:
    if currency in _STRIPE_REFUSED:
        raise StripeAmountError(_STRIPE_REFUSED[currency], code="currency_not_supported", platform=PLATFORM)
    if currency in _STRIPE_ZERO_DECIMAL:
        return 0
    if currency in _STRIPE_THREE_DECIMAL or currency in _STRIPE_TWO_DECIMAL_WHOLE_UNITS:
        return 3 if currency in _STRIPE_THREE_DECIMAL else 2
    iso = exponent(currency)
    if iso not in (0, 2):
        # IQD, LYD (three decimals) and the four-decimal fund codes are not Stripe currencies.
        raise StripeAmountError(
            f"{currency} has {iso} decimals and is not a Stripe-supported currency",
            code="currency_not_supported",
            platform=PLATFORM,
        )
    return iso


def _stripe_step(currency: str) -> int:
    """The granularity Stripe accepts, in its own units."""
    if currency in _STRIPE_THREE_DECIMAL:
        return 10
    if currency in _STRIPE_TWO_DECIMAL_WHOLE_UNITS:
        return 100
    return 1


def stripe_step(currency: str) -> Money:
    """The smallest amount step Stripe accepts in ``currency``, in our money (0.010 KWD, 1 ISK, 1 MGA).

    Raises:
        StripeAmountError: not a currency Stripe supports.
    """
    shift = _stripe_exponent(currency) - exponent(currency)
    step = _stripe_step(currency)
    return Money.of(step // 10**shift if shift >= 0 else step * 10**-shift, currency)


def to_stripe_amount(money: Money) -> tuple[int, str]:
    """``money`` as Stripe's ``(amount, currency)``: integer in Stripe's unit, lowercase code.

    Raises:
        StripeAmountError: the currency is not one Stripe supports, or the amount is not exactly
            representable in Stripe's unit and granularity (e.g. 5.125 KWD, 0.50 MGA).
    """
    currency = money.currency
    shift = _stripe_exponent(currency) - exponent(currency)
    if shift >= 0:
        amount = money.minor_units * 10**shift
        exact = amount % _stripe_step(currency) == 0
    else:
        amount, rest = divmod(money.minor_units, 10**-shift)
        exact = rest == 0 and amount % _stripe_step(currency) == 0
    if not exact:
        raise StripeAmountError(
            f"{money} cannot be refunded through Stripe: Stripe takes {currency} amounts in steps of "
            f"{stripe_step(currency)} only",
            code="amount_not_representable",
            platform=PLATFORM,
        )
    return amount, currency.lower()


def from_stripe_amount(amount: int, currency: str) -> Money:
    """Stripe's ``(amount, currency)`` as our Money (exact inverse of :func:`to_stripe_amount`).

    Raises:
        StripeAmountError: an unknown or unsupported currency, or an amount our ISO 4217 minor
            units cannot hold exactly (e.g. a legacy fractional ISK charge).
    """
    code = currency.upper()
    if code not in CURRENCY_EXPONENTS:
        raise StripeAmountError(f"unknown currency {currency!r}", code="currency_not_supported", platform=PLATFORM)
    shift = _stripe_exponent(code) - exponent(code)
    if amount % _stripe_step(code):
        raise StripeAmountError(
            f"Stripe amount {amount} {code} is not a whole number of {code} units",
            code="amount_not_representable",
            platform=PLATFORM,
        )
    if shift >= 0:
        minor, rest = divmod(amount, 10**shift)
        if rest:
            raise StripeAmountError(
                f"Stripe amount {amount} {code} has more decimals than ISO 4217 allows",
                code="amount_not_representable",
                platform=PLATFORM,
            )
    else:
        minor = amount * 10**-shift
    return Money(minor_units=minor, currency=code)


def representable(money: Money) -> str | None:
    """Why Stripe cannot refund ``money`` exactly (the currency and Stripe's rule), or None if it can."""
    try:
        to_stripe_amount(money)
    except StripeAmountError as error:
        return error.message
    return None
