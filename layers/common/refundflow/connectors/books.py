"""What the books connectors share: amounts read back exactly, and the account (or other value) configured per payment
provider and currency. Their capabilities come from ``connectors.capabilities``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

from refundflow.currencies import CurrencyProfile
from refundflow.errors import AmountNotRepresentable, RejectedError
from refundflow.models import PaymentProvider
from refundflow.money import Money

_Value = TypeVar("_Value")


def exact_amount(value: Any, currency: str, *, profile: CurrencyProfile, code: str, platform: str) -> Money:
    """A JSON number the books platform sent (parsed as ``Decimal`` or ``int`` by ``connectors.exact_json``) as exact
    ``Money`` through its currency profile.

    Raises:
        RejectedError: ``code``, not a number, or more decimals than the platform keeps in the currency.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise RejectedError(f"{profile.platform} sent a non-decimal amount {value!r}", code=code, platform=platform)
    try:
        return profile.from_platform(value, currency)
    except AmountNotRepresentable as error:
        raise RejectedError(error.message, code=code, platform=platform) from error


def per_provider(configured: Mapping[str, _Value], provider: PaymentProvider, currency: str) -> _Value | None:
    """The value configured for ``provider`` refunds in ``currency``, keyed ``<provider>:<CURRENCY>``,
    ``<provider>:*`` or ``*:<CURRENCY>`` (the most specific wins), or None when none is."""
    for key in (f"{provider.value}:{currency}", f"{provider.value}:*", f"*:{currency}"):
        if key in configured:
            return configured[key]
    return None
