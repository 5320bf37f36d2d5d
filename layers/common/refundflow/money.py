"""Money as an integer count of minor units plus an ISO 4217 currency code.

No floats anywhere: conversions to and from the decimal strings that platforms use go through
``decimal.Decimal`` with the currency's exponent, and refuse any value that would lose precision.
"""

from __future__ import annotations

from decimal import MAX_PREC, Context, Decimal, InvalidOperation
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictInt

# The ISO 4217 table lives in a standard-library module (the intake's request check reads it without pydantic).
from refundflow.iso4217 import CURRENCY_EXPONENTS as CURRENCY_EXPONENTS

# Shifting the decimal point must never round: the default context keeps only 28 digits.
_EXACT = Context(prec=MAX_PREC)


class MoneyError(ValueError):
    """A money value or conversion that cannot be represented exactly."""


def _known_currency(code: str) -> str:
    if code not in CURRENCY_EXPONENTS:
        raise MoneyError(f"unknown ISO 4217 currency code {code!r}")
    return code


CurrencyCode = Annotated[str, AfterValidator(_known_currency)]


def exponent(currency: str) -> int:
    """The number of minor-unit digits of an ISO 4217 currency."""
    return CURRENCY_EXPONENTS[_known_currency(currency)]


class Money(BaseModel):
    """An exact amount: ``minor_units`` of ``currency`` (1999 EUR is 19.99 EUR, 1999 JPY is 1999 yen)."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    minor_units: StrictInt
    currency: CurrencyCode

    @classmethod
    def of(cls, amount: int, currency: str) -> Money:
        return cls(minor_units=amount, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(minor_units=0, currency=currency)

    @classmethod
    def from_decimal_string(cls, value: str, currency: str) -> Money:
        """Parse a platform's decimal string ("19.99", "1000", "0.125") exactly.

        Raises:
            MoneyError: the string is not a plain decimal number, or has more fractional digits
                than the currency allows (a platform value we would otherwise silently round).
        """
        digits = exponent(currency)
        text = value.strip()
        if not text or any(ch not in "0123456789.-" for ch in text):
            raise MoneyError(f"{value!r} is not a decimal amount")
        try:
            number = Decimal(text)
        except InvalidOperation as error:
            raise MoneyError(f"{value!r} is not a decimal amount") from error
        scaled = number.scaleb(digits, context=_EXACT)
        if scaled != scaled.to_integral_value(context=_EXACT):
            raise MoneyError(f"{value!r} has more than {digits} decimals for {currency}")
        return cls(minor_units=int(scaled), currency=currency)

    @classmethod
    def from_major_units(cls, value: Decimal | int, currency: str) -> Money:
        """Exact conversion of a major-unit Decimal (as accounting APIs return) to minor units.

        Raises:
            MoneyError: a float or bool (never exact), or more decimals than the currency allows.
        """
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise MoneyError(f"{value!r} is not a Decimal or an int: floats are never money")
        # Fixed-point notation: a normalised Decimal prints as "1E+2".
        return cls.from_decimal_string(format(value, "f"), currency)

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor_units).scaleb(-exponent(self.currency), context=_EXACT)

    def to_decimal_string(self) -> str:
        """The amount in major units with exactly the currency's number of decimals ("19.90", "1000")."""
        digits = exponent(self.currency)
        return f"{self.to_decimal():.{digits}f}"

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(minor_units=self.minor_units + other.minor_units, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(minor_units=self.minor_units - other.minor_units, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor_units < other.minor_units

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor_units <= other.minor_units

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor_units > other.minor_units

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor_units >= other.minor_units

    def is_positive(self) -> bool:
        return self.minor_units > 0

    def min(self, other: Money) -> Money:
        return self if self <= other else other

    def percentage(self, basis_points: int) -> Money:
        """``basis_points`` / 10000 of this amount, rounded half-even to a whole minor unit."""
        # Integer arithmetic: Decimal division would round (or fail) beyond 28 digits.
        share, remainder = divmod(self.minor_units * basis_points, 10_000)
        if 2 * remainder > 10_000 or (2 * remainder == 10_000 and share % 2):
            share += 1
        return Money(minor_units=share, currency=self.currency)

    def allocate(self, weights: list[int]) -> list[Money]:
        """Split into parts proportional to ``weights`` that add up exactly (largest remainder).

        Raises:
            MoneyError: no weights, a negative weight, weights that sum to zero, or a negative amount.
        """
        if not weights or any(weight < 0 for weight in weights) or sum(weights) == 0:
            raise MoneyError("allocation needs non-negative weights with a positive sum")
        if self.minor_units < 0:
            raise MoneyError("only a non-negative amount can be allocated")
        total = sum(weights)
        shares = [self.minor_units * weight // total for weight in weights]
        remainders = [self.minor_units * weight % total for weight in weights]
        leftover = self.minor_units - sum(shares)
        for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:leftover]:
            shares[index] += 1
        return [Money(minor_units=share, currency=self.currency) for share in shares]

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"
