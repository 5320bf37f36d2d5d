"""How a platform writes amounts: one currency profile per platform instead of conversions re-implemented
per connector. Pure (pydantic and decimal only): validation asks :meth:`CurrencyProfile.representable`
before anything is reserved, and the connectors convert with :meth:`CurrencyProfile.to_platform` and
:meth:`CurrencyProfile.from_platform` only. Connectors never convert money themselves.

Our money is ISO 4217 minor units (``refundflow.money``). A platform may count in another unit
(Stripe: MGA in whole ariary, ISK in hundredths), accept only steps of several units (Stripe: KWD in
steps of 10 fils), keep fewer decimals than ISO (Xero: two in every currency) or not carry a currency at
all. Every difference is converted exactly or refused: a refund never goes out 100x too big or rounded.
"""

from __future__ import annotations

from decimal import MAX_PREC, Context, Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from refundflow.errors import AmountNotRepresentable
from refundflow.money import CURRENCY_EXPONENTS, Money, exponent

_EXACT = Context(prec=MAX_PREC)
NOT_REPRESENTABLE = "amount_not_representable"
NOT_SUPPORTED = "currency_not_supported"


class CurrencyProfile(BaseModel):
    """A platform's amounts: their format, its exponent where it is not ISO's, the only currencies it takes
    (when it lists them), the currencies it refuses, the steps it accepts (in its own unit) and the largest
    amount (in its own unit)."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    amount_format: Literal["minor_units", "decimal_string"] = "minor_units"
    exponents: dict[str, int] = Field(default_factory=dict, description="The platform's exponent where not ISO's.")
    accepted: frozenset[str] | None = Field(
        default=None, description="The only currencies the platform takes amounts in (None: every ISO currency)."
    )
    refused: dict[str, str] = Field(default_factory=dict, description="Currency -> why the platform cannot carry it.")
    multiple_of: dict[str, int] = Field(default_factory=dict, description="Currency -> step in the platform's unit.")
    max_minor_units: int | None = Field(default=None, gt=0, description="Largest amount in the platform's unit.")
    platform: str = Field(default="the platform", description="Who is named in refusals (its title).")

    def named(self, platform: str) -> CurrencyProfile:
        """The same profile naming ``platform`` in its refusals."""
        return self.model_copy(update={"platform": platform})

    # ------------------------------------------------------------------ rules

    def accepts(self, currency: str) -> bool:
        """Whether ``currency`` (either case) is one the platform takes amounts in (its list, when it has one)."""
        return self.accepted is None or currency.upper() in self.accepted

    def _ensure_accepted(self, currency: str) -> None:
        if not self.accepts(currency):
            article = "an" if self.platform[:1].upper() in "AEIOU" else "a"
            raise AmountNotRepresentable(
                f"{currency.upper()} is not {article} {self.platform} currency",
                code=NOT_SUPPORTED,
                platform=self.platform,
            )

    def platform_exponent(self, currency: str) -> int:
        """The number of decimals the platform's unit has in ``currency``.

        Raises:
            AmountNotRepresentable: ``currency_not_supported`` (refused by the platform, or not ISO 4217).
        """
        code = currency.upper()
        if code not in CURRENCY_EXPONENTS:
            raise AmountNotRepresentable(f"unknown currency {currency!r}", code=NOT_SUPPORTED, platform=self.platform)
        if code in self.refused:
            raise AmountNotRepresentable(
                f"{self.platform} does not take {code}: {self.refused[code]}",
                code=NOT_SUPPORTED,
                platform=self.platform,
            )
        return self.exponents.get(code, exponent(code))

    def step(self, currency: str) -> Money:
        """The smallest amount step the platform accepts, in our money (0.010 KWD at Stripe, 1 ISK).

        Raises:
            AmountNotRepresentable: ``currency_not_supported``.
        """
        code = currency.upper()
        shift = self.platform_exponent(code) - exponent(code)
        units = self.multiple_of.get(code, 1)
        minor = units // 10**shift if shift >= 0 else units * 10**-shift
        return Money.of(max(minor, 1), code)

    def _platform_units(self, money: Money) -> int:
        """``money`` as an integer count of the platform's unit, exactly, or refused (outside its currencies)."""
        code = money.currency
        self._ensure_accepted(code)
        shift = self.platform_exponent(code) - exponent(code)
        units: int
        rest: int
        if shift >= 0:
            units, rest = money.minor_units * 10**shift, 0
        else:
            units, rest = divmod(money.minor_units, 10**-shift)
        if rest or units % self.multiple_of.get(code, 1):
            raise AmountNotRepresentable(
                f"{money} cannot be carried exactly by {self.platform}: {self.platform} takes {code} amounts in "
                f"steps of {self.step(code)} only",
                code=NOT_REPRESENTABLE,
                platform=self.platform,
            )
        if self.max_minor_units is not None and abs(units) > self.max_minor_units:
            raise AmountNotRepresentable(
                f"{money} is more than {self.platform} carries in one amount",
                code=NOT_REPRESENTABLE,
                platform=self.platform,
            )
        return units

    def representable(self, money: Money) -> str | None:
        """Why the platform cannot carry ``money`` exactly (the currency and its rule), or None if it can."""
        try:
            self._platform_units(money)
        except AmountNotRepresentable as error:
            return error.message
        return None

    # ------------------------------------------------------------------ conversions

    def to_platform(self, money: Money) -> int | str:
        """``money`` as the platform writes it: an int in its unit, or a decimal string with its exponent's
        number of decimals ("12.30", "1000").

        Raises:
            AmountNotRepresentable: not exactly representable (never rounded).
        """
        units = self._platform_units(money)
        if self.amount_format == "minor_units":
            return units
        digits = self.platform_exponent(money.currency)
        return f"{Decimal(units).scaleb(-digits, context=_EXACT):.{digits}f}"

    def to_platform_units(self, money: Money) -> int:
        """``money`` as an integer count of the platform's unit (a minor-units platform's amount)."""
        return self._platform_units(money)

    def to_platform_decimal(self, money: Money) -> Decimal:
        """``money`` in the platform's major units as an exact Decimal (for JSON numbers, e.g. Xero)."""
        digits = self.platform_exponent(money.currency)
        return (
            Decimal(self._platform_units(money))
            .scaleb(-digits, context=_EXACT)
            .quantize(Decimal(1).scaleb(-digits), context=_EXACT)
        )

    def from_platform(self, value: int | str | Decimal, currency: str) -> Money:
        """The platform's amount (an int in its unit for minor-units platforms; a decimal string, a Decimal
        or an int in major units for decimal platforms) as our Money, exactly. The currency code may be in
        either case.

        Raises:
            AmountNotRepresentable: a float or bool, an unknown or refused currency, or an amount our ISO
                minor units cannot hold exactly (e.g. a fractional legacy ISK amount at Stripe).
        """
        code = currency.upper()
        digits = self.platform_exponent(code)
        if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
            raise AmountNotRepresentable(
                f"{value!r} is not an exact amount (floats are never money)",
                code=NOT_REPRESENTABLE,
                platform=self.platform,
            )
        if self.amount_format == "minor_units":
            if not isinstance(value, int):
                raise AmountNotRepresentable(
                    f"{self.platform} amount {value!r} is not an integer",
                    code=NOT_REPRESENTABLE,
                    platform=self.platform,
                )
            units = Decimal(value)
        else:
            try:
                major = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
            except InvalidOperation as error:
                raise AmountNotRepresentable(
                    f"{value!r} is not a decimal amount", code=NOT_REPRESENTABLE, platform=self.platform
                ) from error
            if not major.is_finite():
                raise AmountNotRepresentable(
                    f"{value!r} is not an amount", code=NOT_REPRESENTABLE, platform=self.platform
                )
            units = major.scaleb(digits, context=_EXACT)
        if units != units.to_integral_value(context=_EXACT) or int(units) % self.multiple_of.get(code, 1):
            raise AmountNotRepresentable(
                f"{self.platform} amount {value} {code} is not a whole number of its {code} steps",
                code=NOT_REPRESENTABLE,
                platform=self.platform,
            )
        minor = units.scaleb(exponent(code) - digits, context=_EXACT)
        if minor != minor.to_integral_value(context=_EXACT):
            raise AmountNotRepresentable(
                f"{self.platform} amount {value} {code} has more decimals than ISO 4217 allows",
                code=NOT_REPRESENTABLE,
                platform=self.platform,
            )
        return Money(minor_units=int(minor), currency=code)


ISO_MINOR_UNITS = CurrencyProfile()
"""A platform that takes every ISO currency in ISO minor units."""
