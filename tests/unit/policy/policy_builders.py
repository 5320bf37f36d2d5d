"""Builders for the policy tests: refunds, facts and small policy documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from refundflow.models import (
    CustomerContact,
    OrderInfo,
    OrderItem,
    PaymentProvider,
    PaymentReference,
    Refund,
    RefundLine,
    RefundReason,
    ReturnInfo,
    ReturnStatus,
    SourceReference,
)
from refundflow.money import Money
from refundflow.policy import Approver, CustomerRefundSummary, PolicyInput, build_policy_input
from refundflow.status import RefundStatus

NOW = datetime(2025, 11, 20, 10, 0, tzinfo=UTC)


def make_refund(
    amount: int = 3_000,
    currency: str = "EUR",
    *,
    reason: RefundReason = RefundReason.DAMAGED,
    lines: list[tuple[str | None, str | None, int, int]] | None = None,
    items: list[tuple[str, str | None, bool]] | None = None,
    delivered_days_ago: int | None = 5,
    return_status: ReturnStatus | None = ReturnStatus.RECEIVED,
    refund_id: str = "rf_" + "a" * 32,
    with_order: bool = True,
) -> Refund:
    """A validated refund; ``lines`` are (sku, category, quantity, amount), ``items`` (sku, category, final_sale)."""
    money = Money.of(amount, currency)
    order = None
    if with_order:
        order = OrderInfo(
            order_id="ORD-1",
            delivered_at=NOW - timedelta(days=delivered_days_ago) if delivered_days_ago is not None else None,
            items=[
                OrderItem(sku=sku, category=category, quantity=1, final_sale=final_sale)
                for sku, category, final_sale in (items or [])
            ],
        )
    return Refund(
        refund_id=refund_id,
        status=RefundStatus.VALIDATED,
        version=1,
        created_at=NOW,
        updated_at=NOW,
        payment=PaymentReference(provider=PaymentProvider.STRIPE, payment_id="pi_123"),
        requested_amount=money,
        amount=money,
        reason=reason,
        customer=CustomerContact(email="jane@example.com", customer_id="cus_1"),
        source=SourceReference(system="zendesk", reference="ticket-1"),
        source_platform="zendesk",
        order=order,
        return_info=ReturnInfo(status=return_status) if return_status else None,
        lines=[
            RefundLine(
                description=f"line {index}",
                sku=sku,
                category=category,
                quantity=quantity,
                amount=Money.of(line_amount, currency),
            )
            for index, (sku, category, quantity, line_amount) in enumerate(lines or [])
        ],
        request_fingerprint="fp",
        correlation_id="corr",
    )


def past_refund(
    days_ago: float,
    amount: int,
    *,
    status: RefundStatus = RefundStatus.COMPLETED,
    currency: str = "EUR",
    number: int = 0,
) -> CustomerRefundSummary:
    return CustomerRefundSummary(
        refund_id=f"rf_{number:032d}",
        status=status,
        created_at=NOW - timedelta(days=days_ago),
        amount=Money.of(amount, currency),
    )


def make_facts(
    refund: Refund | None = None,
    *,
    remaining: int | None = None,
    history: list[CustomerRefundSummary] | None = None,
    refunded_today: int = 0,
    approver: Approver | None = None,
    now: datetime = NOW,
) -> PolicyInput:
    refund = refund or make_refund()
    amount = refund.amount
    assert amount is not None
    return build_policy_input(
        refund,
        remaining=Money.of(amount.minor_units if remaining is None else remaining, amount.currency),
        customer_history=history or [],
        refunded_today=Money.of(refunded_today, amount.currency),
        now=now,
        approver=approver,
    )


MINIMAL_POLICY = """
version: "test.1"
currencies: [EUR, JPY, KWD]
roles: [agent, team_lead, finance]
params:
  limit: {EUR: 10000, JPY: 10000, KWD: 100000}
rules:
  - id: big
    description: Big refunds need a team lead
    when: refund.amount > params.limit[refund.currency]
    outcome: require_approval
    role: team_lead
default:
  description: Everything else is approved
  outcome: approve
"""


def policy_text(**overrides: Any) -> str:
    """MINIMAL_POLICY with top-level keys replaced (values are YAML/JSON-compatible Python objects)."""
    import yaml

    document = yaml.safe_load(MINIMAL_POLICY)
    document.update(overrides)
    return yaml.safe_dump(document, sort_keys=False)
