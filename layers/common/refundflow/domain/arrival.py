"""When the customer can expect the money: the window the refund's payment platform documents, quoted as a range.

No payment platform returns an expected arrival date on its refund (Stripe, PayPal, Square, Adyen, Mollie, Klarna,
Amazon Pay and Braintree refund objects have none); they document windows on their help pages, per kind of payment
method. The catalog keeps them (``payment.arrival``, each with its source); a platform that documents none is quoted
the merchant's default range (``ARRIVAL_DEFAULT_BUSINESS_DAYS``, "5-10"). The window counts from the moment the
money moved (the refund's move to REFUNDED), and is always said as "usually", never as a promise.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from refundflow import catalog, settings
from refundflow.domain.recorder import PROVIDER_REVERSED
from refundflow.models import AuditEntry, LegStatus, Refund
from refundflow.status import RefundStatus

DEFAULT_BASIS = "the merchant's default: the payment platform documents no refund arrival time"


class ArrivalSettings(settings.EnvModel):
    """The range quoted where the platform documents none, ``<from>-<to>`` business days (a merchant's override)."""

    default_business_days: str = Field(default="5-10", alias="ARRIVAL_DEFAULT_BUSINESS_DAYS")

    @field_validator("default_business_days")
    @classmethod
    def _range(cls, value: str) -> str:
        first, _, last = value.partition("-")
        if not (first.strip().isdigit() and last.strip().isdigit() and int(first) <= int(last) <= 90):
            raise ValueError(f"ARRIVAL_DEFAULT_BUSINESS_DAYS {value!r}: expected <from>-<to> business days, e.g. 5-10")
        return value

    def window(self) -> tuple[int, int]:
        first, _, last = self.default_business_days.partition("-")
        return int(first), int(last)


class ExpectedArrival(BaseModel):
    """The window in which the refunded money usually reaches the customer, counted from when it moved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_days: int = Field(description="0: the platform says only 'up to' to_days.")
    to_days: int
    day_kind: Literal["business", "calendar"]
    earliest_date: date
    latest_date: date
    method: str = Field(description="The kind of payment method the window is documented for (any: all of them).")
    basis: str = Field(description="Whose window this is: the platform's documented one, or the merchant's default.")
    source: str | None = Field(description="Where the platform documents it (None: the merchant's default).")

    def in_words(self) -> str:
        """'usually 5-10 business days after the refund, depending on your bank' (no date: no one promised one)."""
        return f"usually {self._span()}, depending on your bank"

    def sentence(self) -> str:
        """The customer's sentence: 'It usually reaches your account 5-10 business days after the refund, ...'."""
        return f"It usually reaches your account {self._span()}, depending on your bank."

    def _span(self) -> str:
        days = f"{self.day_kind} days" if self.day_kind == "business" else "days"
        if self.from_days == 0:
            return f"within {self.to_days} {days} of the refund"
        return f"{self.from_days}-{self.to_days} {days} after the refund"


def add_days(start: date, days: int, kind: Literal["business", "calendar"]) -> date:
    """``days`` after ``start``: calendar days, or business days (Monday to Friday; bank holidays differ by country
    and are not counted out, which the 'usually' of the quote covers)."""
    if kind == "calendar":
        return start + timedelta(days=days)
    current = start
    left = days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def expected_arrival(provider: str, moved_at: datetime, *, method: str | None = None) -> ExpectedArrival:
    """The window for a refund of ``provider`` whose money moved at ``moved_at``: the platform's documented window
    for ``method`` (else its first), or the merchant's default range."""
    windows = catalog.payment_platform(provider).payment.arrival  # type: ignore[union-attr]
    chosen = next((window for window in windows if window.method == method), windows[0] if windows else None)
    start = moved_at.date()
    if chosen is None:
        first, last = settings.load(ArrivalSettings).window()
        return ExpectedArrival(
            from_days=first,
            to_days=last,
            day_kind="business",
            earliest_date=add_days(start, first, "business"),
            latest_date=add_days(start, last, "business"),
            method="any",
            basis=DEFAULT_BASIS,
            source=None,
        )
    title = catalog.payment_platform(provider).title
    return ExpectedArrival(
        from_days=chosen.from_days,
        to_days=chosen.to_days,
        day_kind=chosen.day_kind,
        earliest_date=add_days(start, chosen.from_days, chosen.day_kind),
        latest_date=add_days(start, chosen.to_days, chosen.day_kind),
        method=chosen.method,
        basis=f"{title}'s documented refund time ({chosen.method} payments), not a date {title} promised",
        source=chosen.source,
    )


def money_moved_at(timeline: list[AuditEntry]) -> datetime | None:
    """When the provider confirmed the refund (its move to REFUNDED), from the audit timeline."""
    return next((entry.at for entry in timeline if entry.to_status is RefundStatus.REFUNDED), None)


def refund_arrival(refund: Refund, moved_at: datetime | None, *, reversal: bool = False) -> ExpectedArrival | None:
    """The refund's window once its money moved; None before, for a reversal (voided before settlement: the charge
    disappears, nothing arrives) and once the money went back to the merchant (the provider failed or reversed the
    refund after it succeeded): no window is quoted for money that is not on its way."""
    if moved_at is None or reversal:
        return None
    if refund.status is RefundStatus.FAILED or refund.attention_reason == PROVIDER_REVERSED:
        return None
    return refund_window(refund, moved_at)


def refund_window(refund: Refund, moved_at: datetime) -> ExpectedArrival:
    """The refund's platform's window; for a split-tender refund the widest of its paid legs' platforms' windows (each
    for the leg's kind of tender: a card leg at Stripe and a PayPal leg is quoted PayPal's "within 30 days", never
    the first tender's alone). Store credit is on the customer's account at once and sets no window."""
    legs = [leg for leg in refund.legs if leg.payment is not None and leg.status is LegStatus.SUCCEEDED]
    if not legs:
        return expected_arrival(refund.payment.provider.value, moved_at)
    windows = [
        expected_arrival(leg.payment.provider.value, moved_at, method=leg.kind.value)
        for leg in legs
        if leg.payment is not None
    ]
    return max(windows, key=lambda window: (window.latest_date, window.earliest_date))
