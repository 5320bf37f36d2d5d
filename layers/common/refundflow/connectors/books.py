"""What the books connectors share: exact amounts in their JSON, and the account (or other value) configured per
payment provider and currency."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from refundflow.connectors import exact_json
from refundflow.connectors.capabilities import books_capabilities
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable, RejectedError
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.ports import BooksCapabilities

_Value = TypeVar("_Value")


@dataclass(frozen=True)
class BooksAmounts:
    """How a books platform's JSON carries money: exact decimal numbers in major units through the platform's
    currency profile (from its catalog entry), written and read without a float on the way
    (``connectors.exact_json``). ``bad_amount_code`` is the refusal code of an amount the platform sent that is not
    one."""

    platform: str
    title: str
    bad_amount_code: str

    def capabilities(self) -> BooksCapabilities:
        """The platform's books capabilities from its catalog entry, its currency profile naming ``title``."""
        return books_capabilities(self.platform, self.title)

    def profile(self) -> CurrencyProfile:
        return self.capabilities().currencies

    def to_platform(self, money: Money) -> Decimal:
        """``money`` in major units, exactly (through the platform's currency profile).

        Raises:
            AmountNotRepresentable: a digit beyond the platform's decimals in the currency (e.g. 1.235 KWD).
        """
        return self.profile().to_platform_decimal(money)

    def from_platform(self, value: Any, currency: str) -> Money:
        """A JSON number the platform sent (parsed as ``Decimal`` or ``int``) as exact ``Money``.

        Raises:
            RejectedError: ``bad_amount_code``, not a number, or more decimals than the platform keeps in the currency.
        """
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise RejectedError(
                f"{self.title} sent a non-decimal amount {value!r}", code=self.bad_amount_code, platform=self.platform
            )
        try:
            return self.profile().from_platform(value, currency)
        except AmountNotRepresentable as error:
            raise RejectedError(error.message, code=self.bad_amount_code, platform=self.platform) from error

    def dump_json(self, value: Any) -> str:
        """JSON text where ``Decimal`` values are exact JSON numbers.

        Raises:
            NotExactJson: a float, a NaN or infinite ``Decimal``, or another type with no exact JSON form.
        """
        return exact_json.dumps(value, platform=self.title)


def per_provider(configured: Mapping[str, _Value], provider: PaymentProvider, currency: str) -> _Value | None:
    """The value configured for ``provider`` refunds in ``currency``, keyed ``<provider>:<CURRENCY>``,
    ``<provider>:*`` or ``*:<CURRENCY>`` (the most specific wins), or None when none is."""
    for key in (f"{provider.value}:{currency}", f"{provider.value}:*", f"*:{currency}"):
        if key in configured:
            return configured[key]
    return None
