"""What a policy sees: the facts about one refund, flattened into CEL-friendly integers, strings and lists.

``build_policy_input`` is pure: the EvaluatePolicy step gathers the refund, the payment's remaining
refundable amount, the customer's earlier refunds and the merchant's refunds of the day, and this module
turns them into a ``PolicyInput``. The same object is what the decision records as its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints

from refundflow.errors import InvalidRequest
from refundflow.models import (
    VELOCITY_NOT_COUNTED,
    CustomerRefundSummary,
    CustomerVelocity,
    Identifier,
    Refund,
    ReturnLineOutcome,
    ReturnStatus,
    ReturnStep,
    StrictModel,
    VelocityContribution,
    VelocityDay,
    return_lifecycle,
)
from refundflow.money import CurrencyCode, Money

INT64_MAX = 2**63 - 1
# CEL integers are signed 64-bit; anything outside would fail inside the expression, not here.
MinorUnits = Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]

VELOCITY_WINDOWS_DAYS = (7, 30, 90, 365)
HISTORY_DAYS = max(VELOCITY_WINDOWS_DAYS)
# Earlier refunds that never paid anything do not count towards a customer's velocity.
NOT_COUNTED = VELOCITY_NOT_COUNTED


class Approver(StrictModel):
    """A claim that a person already approved the refund where it was requested (a help desk agent, a team
    lead), made by ``source``: the system whose secret verified the request. The policy's ``sources:``
    section says which roles that source may assert; a claim outside it is ignored (and recorded)."""

    id: Identifier
    role: RoleName
    source: Identifier


class Facts(StrictModel):
    """Facts are built by code, never parsed from a client: strict types, no coercion."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class LineFacts(Facts):
    sku: str | None = None
    category: str | None = None
    quantity: Count
    amount: MinorUnits
    final_sale: bool


class RefundFacts(Facts):
    id: str
    amount: MinorUnits = Field(description="What is to be refunded, minor units of ``currency``.")
    currency: CurrencyCode
    reason: str
    requested_full: bool = Field(description="The refund asks for everything the payment still has refundable.")
    lines: list[LineFacts]
    categories: list[str] = Field(description="Distinct categories of the refunded lines, sorted.")
    includes_final_sale: bool
    source_platform: str


class ItemFacts(Facts):
    sku: str
    category: str | None = None
    quantity: Count
    unit_price: MinorUnits | None = None
    final_sale: bool


class OrderFacts(Facts):
    present: bool
    id: str | None = None
    delivered: bool
    days_since_delivery: Count | None = Field(default=None, description="Whole days; absent until delivered.")
    items: list[ItemFacts] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    has_final_sale_items: bool


class ReturnFacts(Facts):
    status: str = Field(
        description="A ReturnStatus value (the return's highest-ranked step), or ``none`` without a return."
    )
    received: bool = Field(description="A step at or beyond received exists (received, inspected or closed).")
    days_since_received: Count | None = None
    inspected: bool = Field(default=False, description="A step at or beyond inspected exists.")
    resellable: bool = Field(
        default=False, description="The latest inspection reported lines, and every one of them resellable."
    )


class WindowFacts(Facts):
    count: Count
    amount: MinorUnits = Field(description="Sum of the counted refunds in the refund's currency.")


class CustomerFacts(Facts):
    id: str | None = None
    refunds_total: Count
    last_7_days: WindowFacts
    last_30_days: WindowFacts
    last_90_days: WindowFacts
    last_365_days: WindowFacts


class PaymentFacts(Facts):
    provider: str
    remaining: MinorUnits


class MerchantFacts(Facts):
    refunded_today: MinorUnits


class ApproverFacts(Facts):
    """An approved_by claim. Rules see it only when its source may assert its role (else it is absent)."""

    present: bool
    id: str | None = None
    role: str | None = None
    source: str | None = Field(default=None, description="The source system that made the claim.")


class PolicyInput(Facts):
    """Everything a policy may look at. Field names are the CEL variable names (``return`` is a reserved
    word in CEL, hence ``return_info``); ``None`` fields are absent in CEL, so rules test them with ``has()``.
    """

    refund: RefundFacts
    order: OrderFacts
    return_info: ReturnFacts
    customer: CustomerFacts
    payment: PaymentFacts
    merchant: MerchantFacts
    approver: ApproverFacts
    evaluated_at: datetime = Field(description="The ``now`` the facts were computed for (not visible to CEL).")

    @property
    def currency(self) -> str:
        return self.refund.currency

    @property
    def amount(self) -> Money:
        return Money.of(self.refund.amount, self.refund.currency)

    def activation(self) -> dict[str, Any]:
        """The CEL variables (without ``params``): JSON types only, absent instead of null."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"evaluated_at"})

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe copy for the audit trail."""
        return self.model_dump(mode="json")


def _whole_days(later: datetime, earlier: datetime) -> int:
    return max(0, (later - earlier) // timedelta(days=1))


def _same_currency(name: str, money: Money, currency: str) -> int:
    if money.currency != currency:
        raise InvalidRequest(f"{name} is in {money.currency}, the refund in {currency}", code="currency_mismatch")
    return money.minor_units


def _customer_facts(
    refund: Refund, history: Sequence[Refund | CustomerRefundSummary], currency: str, now: datetime
) -> CustomerFacts:
    summaries = [
        item if isinstance(item, CustomerRefundSummary) else CustomerRefundSummary.of(item) for item in history
    ]
    counted = [
        summary
        for summary in summaries
        if summary.refund_id != refund.refund_id and summary.status not in NOT_COUNTED and summary.created_at <= now
    ]
    windows: dict[str, WindowFacts] = {}
    for days in VELOCITY_WINDOWS_DAYS:
        since = now - timedelta(days=days)
        inside = [summary for summary in counted if summary.created_at > since]
        windows[f"last_{days}_days"] = WindowFacts(
            count=len(inside),
            # Other currencies count as refunds but cannot be added up without an exchange rate.
            amount=sum(summary.amount.minor_units for summary in inside if summary.amount.currency == currency),
        )
    return CustomerFacts(id=refund.customer.customer_id, refunds_total=len(counted), **windows)


def velocity_span(now: datetime) -> tuple[date, date]:
    """The first and last UTC day of the counters the windows ending at ``now`` need."""
    now = now.astimezone(UTC)
    return (now - timedelta(days=HISTORY_DAYS)).date(), now.date()


def velocity_edge_days(refund: Refund, days: Sequence[VelocityDay], now: datetime) -> list[date]:
    """The days whose refunds must be read one by one for the windows ending at ``now`` to be exact: the day
    each window starts on (only the refunds after its first moment count) and today (only those up to ``now``),
    each only when its counter holds a refund other than ``refund`` itself."""
    now = now.astimezone(UTC)
    own = VelocityContribution.of(refund)
    counts = {day.day: day.count for day in days}
    candidates = {(now - timedelta(days=window)).date() for window in VELOCITY_WINDOWS_DAYS} | {now.date()}
    return sorted(
        day for day in candidates if counts.get(day, 0) - (1 if own is not None and own.day == day else 0) > 0
    )


def _customer_facts_from_counters(
    refund: Refund, velocity: CustomerVelocity, currency: str, now: datetime
) -> CustomerFacts:
    """The same facts as ``_customer_facts`` over the customer's history, from day counters: whole days from
    their counter (less the refund's own contribution), the edge days from their refunds one by one."""
    now = now.astimezone(UTC)
    first, last = velocity_span(now)
    if velocity.first_day > first or velocity.last_day < last:
        raise InvalidRequest(f"velocity counters cover {velocity.first_day}..{velocity.last_day}, not {first}..{last}")
    own = VelocityContribution.of(refund)
    edges = set(velocity.edge_days)
    missing = set(velocity_edge_days(refund, velocity.days, now)) - edges
    if missing:
        raise InvalidRequest(f"velocity edge days not read: {sorted(missing)}")
    edge_refunds = [
        summary
        for summary in velocity.edge_refunds
        if summary.refund_id != refund.refund_id and summary.status not in NOT_COUNTED and summary.created_at <= now
    ]

    def window(since: datetime, *, inclusive: bool) -> WindowFacts:
        count = amount = 0
        for day in velocity.days:
            if not since.date() <= day.day <= now.date() or day.day in edges:
                continue
            count += day.count
            amount += day.amounts.get(currency, 0)
            if own is not None and own.day == day.day:
                count -= 1
                amount -= own.amount.minor_units if own.amount.currency == currency else 0
        for summary in edge_refunds:
            moment = summary.created_at
            if (moment >= since if inclusive else moment > since) and moment.astimezone(UTC).date() in edges:
                count += 1
                amount += summary.amount.minor_units if summary.amount.currency == currency else 0
        return WindowFacts(count=count, amount=amount)

    windows = {
        f"last_{days}_days": window(now - timedelta(days=days), inclusive=False) for days in VELOCITY_WINDOWS_DAYS
    }
    total = window(now - timedelta(days=HISTORY_DAYS), inclusive=True)
    return CustomerFacts(id=refund.customer.customer_id, refunds_total=total.count, **windows)


def _return_facts(refund: Refund, steps: Sequence[ReturnStep], now: datetime) -> ReturnFacts:
    lifecycle = return_lifecycle(refund, steps)
    if lifecycle is None:
        return ReturnFacts(status="none", received=False)
    received = lifecycle.reached(ReturnStatus.RECEIVED)
    # When the goods arrived: the earliest reported step at or beyond received, or the request's received_at (a
    # request's own step without one carries no date of receipt).
    info = refund.return_info
    arrivals = [step.occurred_at for step in steps if step.status.rank >= ReturnStatus.RECEIVED.rank]
    if info is not None and info.received_at is not None and info.status.rank >= ReturnStatus.RECEIVED.rank:
        arrivals.append(info.received_at)
    received_at = min(arrivals, default=None)
    lines = lifecycle.inspected_lines
    return ReturnFacts(
        status=lifecycle.status.value,
        received=received,
        days_since_received=_whole_days(now, received_at) if received_at is not None and received_at <= now else None,
        inspected=lifecycle.reached(ReturnStatus.INSPECTED),
        resellable=bool(lines) and all(line.outcome is ReturnLineOutcome.RESELLABLE for line in lines),
    )


def build_policy_input(
    refund: Refund,
    *,
    remaining: Money,
    customer_history: Sequence[Refund | CustomerRefundSummary] = (),
    customer_velocity: CustomerVelocity | None = None,
    refunded_today: Money,
    now: datetime,
    approver: Approver | None = None,
    return_steps: Sequence[ReturnStep] = (),
) -> PolicyInput:
    """The facts a policy decides on, computed for ``now``.

    ``customer_history`` is the customer's earlier refunds (full refunds or summaries); rejected and failed
    ones, the refund itself and refunds dated after ``now`` do not count. ``customer_velocity``, when given,
    replaces it: the same facts from the customer's day counters (what the workflow reads, at a cost that does
    not grow with the customer's history). ``remaining`` is the payment's
    remaining refundable amount and ``refunded_today`` the merchant's refunds of the day, both in the
    refund's currency. ``return_steps`` are the steps a returns system reported (the request's own ``return``
    is the first step either way).

    Raises:
        InvalidRequest: the refund has no positive amount, ``now`` has no time zone, or an amount is in
            another currency than the refund.
    """
    if now.tzinfo is None:
        raise InvalidRequest("now must be time-zone aware")
    money = refund.amount or refund.requested_amount
    if money is None or not money.is_positive():
        raise InvalidRequest(f"refund {refund.refund_id} has no positive amount", code="invalid_amount")
    currency = money.currency
    remaining_units = _same_currency("remaining", remaining, currency)
    refunded_today_units = _same_currency("refunded_today", refunded_today, currency)

    order = refund.order
    items = [
        ItemFacts(
            sku=item.sku,
            category=item.category,
            quantity=item.quantity,
            unit_price=item.unit_price.minor_units if item.unit_price else None,
            final_sale=item.final_sale,
        )
        for item in (order.items if order else [])
    ]
    final_sale_skus = {item.sku for item in items if item.final_sale}
    lines = [
        LineFacts(
            sku=line.sku,
            category=line.category,
            quantity=line.quantity,
            amount=_same_currency(f"line {line.description!r}", line.amount, currency),
            final_sale=line.sku is not None and line.sku in final_sale_skus,
        )
        for line in refund.lines
    ]
    delivered_at = order.delivered_at if order else None
    delivered = delivered_at is not None and delivered_at <= now
    order_facts = OrderFacts(
        present=order is not None,
        id=order.order_id if order else None,
        delivered=delivered,
        days_since_delivery=_whole_days(now, delivered_at) if delivered and delivered_at else None,
        items=items,
        categories=sorted({item.category for item in items if item.category}),
        has_final_sale_items=bool(final_sale_skus),
    )

    return_facts = _return_facts(refund, return_steps, now)

    # Without lines the refund covers the order as a whole, final-sale items included.
    includes_final_sale = any(line.final_sale for line in lines) if lines else order_facts.has_final_sale_items
    return PolicyInput(
        refund=RefundFacts(
            id=refund.refund_id,
            amount=money.minor_units,
            currency=currency,
            reason=refund.reason.value,
            requested_full=money.minor_units == remaining_units,
            lines=lines,
            categories=sorted({line.category for line in lines if line.category}),
            includes_final_sale=includes_final_sale,
            source_platform=refund.source_platform,
        ),
        order=order_facts,
        return_info=return_facts,
        customer=_customer_facts_from_counters(refund, customer_velocity, currency, now)
        if customer_velocity is not None
        else _customer_facts(refund, customer_history, currency, now),
        payment=PaymentFacts(provider=refund.payment.provider.value, remaining=remaining_units),
        merchant=MerchantFacts(refunded_today=refunded_today_units),
        approver=ApproverFacts(present=True, id=approver.id, role=approver.role, source=approver.source)
        if approver
        else ApproverFacts(present=False),
        evaluated_at=now,
    )
