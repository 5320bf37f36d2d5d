"""Xero's amounts: exact decimals with at most two places. Pure (no HTTP client import), so validation
can ask :func:`representable` before anything is reserved; the connector converts with the same rule."""

from __future__ import annotations

from decimal import Decimal

from refundflow.errors import RejectedError
from refundflow.money import Money, exponent

PLATFORM = "xero"
# Xero stores line totals, totals, allocations and payments with two decimals: a three-decimal currency
# (KWD) can only be booked when its last digit is zero, otherwise Xero would round it silently.
XERO_AMOUNT_DECIMALS = 2


def to_xero_amount(money: Money) -> Decimal:
    """``money`` in major units, exactly, as Xero stores it (at most two decimals).

    Raises:
        RejectedError: the amount has a non-zero digit beyond Xero's two decimals (e.g. 1.235 KWD).
    """
    digits = min(exponent(money.currency), XERO_AMOUNT_DECIMALS)
    value = money.to_decimal()
    quantized = value.quantize(Decimal(1).scaleb(-digits))
    if quantized != value:
        raise RejectedError(
            f"{money} cannot be booked in Xero, which keeps {XERO_AMOUNT_DECIMALS} decimals in every currency",
            code="xero_precision",
            platform=PLATFORM,
        )
    return quantized


def representable(money: Money) -> str | None:
    """Why Xero cannot book ``money`` exactly (the currency and Xero's rule), or None if it can."""
    try:
        to_xero_amount(money)
    except RejectedError as error:
        return error.message
    return None
