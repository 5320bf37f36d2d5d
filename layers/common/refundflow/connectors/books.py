"""What the books connectors share: exact amounts in their JSON (``BooksAmounts``), the checks before anything is
written (``check_booking``), and the account (or other value) configured per payment provider and currency
(``parse_per_provider``, ``per_provider``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from refundflow.connectors import exact_json
from refundflow.connectors.capabilities import books_capabilities
from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable, ConfigurationError, RejectedError
from refundflow.ids import is_refund_id
from refundflow.models import BooksSystem, PaymentProvider
from refundflow.money import Money
from refundflow.ports import BooksCapabilities, CreditBooking

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


def parse_per_provider(text: str, setting: str, *, value: str = "account") -> dict[str, str]:
    """A setting's ``stripe:EUR=2910,stripe:*=2911,*:USD=2920`` as the mapping ``per_provider`` reads.

    Raises:
        ConfigurationError: a malformed entry (the message names ``setting`` and the form
            ``<provider>:<CURRENCY>=<value>``).
    """
    found: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, configured = (part.strip() for part in item.partition("="))
        provider, colon, currency = (part.strip() for part in key.partition(":"))
        if not separator or not colon or not configured or not provider or not currency:
            raise ConfigurationError(f"{setting}: {item!r} is not <provider>:<CURRENCY>=<{value}>")
        found[f"{provider}:{currency}"] = configured
    return found


def require_refund_id(value: str, *, platform: str, max_length: int | None = None) -> None:
    """Raises: RejectedError ``bad_refund_id``: ``value`` is not one of our refund ids (or longer than the platform
    keeps)."""
    if not is_refund_id(value) or (max_length is not None and len(value) > max_length):
        raise RejectedError(f"{value!r} is not a refund id", code="bad_refund_id", platform=platform)


def check_booking(
    booking: CreditBooking,
    *,
    system: BooksSystem,
    platform: str,
    invoice: str,
    document: str,
    to_platform: Callable[[Money], object],
    max_reference_length: int | None = None,
) -> None:
    """What every books connector checks before it writes anything: the refund id and external reference are refund
    ids, the invoice is ``system``'s (``invoice`` says so in a refusal: "a Xero invoice"), the amount is positive
    (``document`` names what needs it: "a refund credit note"), and the lines, when given, are positive amounts in
    the refund's currency that add up to it; every amount through ``to_platform``, so one the platform cannot carry
    exactly is refused before the first call.

    Raises:
        RejectedError: ``bad_refund_id``, ``lines_mismatch``, or the refusal naming what is wrong.
        AmountNotRepresentable: an amount the platform cannot carry exactly.
    """
    for reference in (booking.refund_id, booking.external_reference):
        require_refund_id(reference, platform=platform, max_length=max_reference_length)
    if booking.invoice.system is not system:
        raise RejectedError(f"invoice {booking.invoice.invoice_id} is not {invoice}", platform=platform)
    if not booking.amount.is_positive():
        raise RejectedError(f"{document} needs a positive amount", platform=platform)
    to_platform(booking.amount)
    _check_legs(booking, platform=platform, to_platform=to_platform)
    if not booking.lines:
        return
    total = Money.zero(booking.currency)
    for line in booking.lines:
        if line.amount.currency != booking.currency or not line.amount.is_positive():
            raise RejectedError(f"refund line {line.description!r} has a bad amount", platform=platform)
        to_platform(line.amount)
        total = total + line.amount
    if total != booking.amount:
        raise RejectedError(
            f"refund lines add up to {total}, the refund is {booking.amount}", code="lines_mismatch", platform=platform
        )


def _check_legs(booking: CreditBooking, *, platform: str, to_platform: Callable[[Money], object]) -> None:
    """A split refund's legs are positive amounts in the refund's currency, each carried exactly, adding up to it.

    Raises:
        RejectedError: ``legs_mismatch``.
        AmountNotRepresentable: a leg the platform cannot carry exactly.
    """
    if not booking.legs:
        return
    total = Money.zero(booking.currency)
    for leg in booking.legs:
        if leg.amount.currency != booking.currency or not leg.amount.is_positive():
            raise RejectedError(f"refund leg {leg.index + 1} has a bad amount", code="legs_mismatch", platform=platform)
        to_platform(leg.amount)
        total = total + leg.amount
    if total != booking.amount:
        raise RejectedError(
            f"refund legs add up to {total}, the refund is {booking.amount}", code="legs_mismatch", platform=platform
        )
