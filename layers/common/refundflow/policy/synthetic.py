"""Synthetic inputs the loader evaluates every expression against: optional facts present and absent,
small and huge amounts, every reason, every currency of the policy. An expression that errors or does
not yield a bool on any of them is rejected before it can decide a refund.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from refundflow.models import RefundReason
from refundflow.policy.inputs import (
    ApproverFacts,
    CustomerFacts,
    ItemFacts,
    LineFacts,
    MerchantFacts,
    OrderFacts,
    PaymentFacts,
    PolicyInput,
    RefundFacts,
    ReturnFacts,
    WindowFacts,
)

_NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
_HUGE = 10**15  # far above any threshold, far below the 64-bit limit so sums stay representable


def _window(count: int, amount: int) -> WindowFacts:
    return WindowFacts(count=count, amount=amount)


def _complete(currency: str, reason: str, role: str) -> PolicyInput:
    """Everything present: delivered order with a final-sale item, lines, received return, an approver."""
    lines = [
        LineFacts(sku="SKU-A", category="electronics", quantity=1, amount=12_000, final_sale=False),
        LineFacts(sku="SKU-B", category="apparel", quantity=2, amount=3_000, final_sale=True),
    ]
    items = [
        ItemFacts(sku="SKU-A", category="electronics", quantity=1, unit_price=12_000, final_sale=False),
        ItemFacts(sku="SKU-B", category="apparel", quantity=2, unit_price=1_500, final_sale=True),
    ]
    return PolicyInput(
        refund=RefundFacts(
            id="rf_sample_complete",
            amount=15_000,
            currency=currency,
            reason=reason,
            requested_full=False,
            lines=lines,
            categories=["apparel", "electronics"],
            includes_final_sale=True,
            source_platform="zendesk",
        ),
        order=OrderFacts(
            present=True,
            id="ORDER-1",
            delivered=True,
            days_since_delivery=10,
            items=items,
            categories=["apparel", "electronics"],
            has_final_sale_items=True,
        ),
        return_info=ReturnFacts(status="received", received=True, days_since_received=2),
        customer=CustomerFacts(
            id="cus_1",
            refunds_total=4,
            last_7_days=_window(1, 1_000),
            last_30_days=_window(2, 5_000),
            last_90_days=_window(3, 9_000),
            last_365_days=_window(4, 12_000),
        ),
        payment=PaymentFacts(provider="stripe", remaining=20_000),
        merchant=MerchantFacts(refunded_today=50_000),
        approver=ApproverFacts(present=True, id="approver-1", role=role, source="synthetic-source"),
        evaluated_at=_NOW,
    )


def _minimal(currency: str, reason: str) -> PolicyInput:
    """Everything optional absent: no order, no lines, no return, no history, no approver."""
    empty = _window(0, 0)
    return PolicyInput(
        refund=RefundFacts(
            id="rf_sample_minimal",
            amount=1,
            currency=currency,
            reason=reason,
            requested_full=True,
            lines=[],
            categories=[],
            includes_final_sale=False,
            source_platform="api",
        ),
        order=OrderFacts(present=False, delivered=False, has_final_sale_items=False),
        return_info=ReturnFacts(status="none", received=False),
        customer=CustomerFacts(
            refunds_total=0, last_7_days=empty, last_30_days=empty, last_90_days=empty, last_365_days=empty
        ),
        payment=PaymentFacts(provider="paypal", remaining=1),
        merchant=MerchantFacts(refunded_today=0),
        approver=ApproverFacts(present=False),
        evaluated_at=_NOW,
    )


def _extreme(currency: str, reason: str, role: str) -> PolicyInput:
    """Present but sparse facts and huge amounts: undelivered order, lines without sku or category."""
    busy = _window(50, _HUGE)
    return PolicyInput(
        refund=RefundFacts(
            id="rf_sample_extreme",
            amount=_HUGE,
            currency=currency,
            reason=reason,
            requested_full=False,
            lines=[LineFacts(quantity=3, amount=_HUGE, final_sale=False)],
            categories=[],
            includes_final_sale=False,
            source_platform="shopify",
        ),
        order=OrderFacts(
            present=True,
            id="ORDER-2",
            delivered=False,
            items=[ItemFacts(sku="SKU-C", quantity=3, final_sale=False)],
            categories=[],
            has_final_sale_items=False,
        ),
        return_info=ReturnFacts(status="in_transit", received=False),
        customer=CustomerFacts(
            id="cus_2", refunds_total=120, last_7_days=busy, last_30_days=busy, last_90_days=busy, last_365_days=busy
        ),
        payment=PaymentFacts(provider="adyen", remaining=1),
        merchant=MerchantFacts(refunded_today=_HUGE),
        approver=ApproverFacts(present=True, id="approver-2", role=role, source="synthetic-source"),
        evaluated_at=_NOW,
    )


def synthetic_inputs(currencies: Sequence[str], roles: Sequence[str]) -> list[tuple[str, PolicyInput]]:
    """Named inputs: every variant for every reason in the first currency, every variant in the others."""
    reasons = [reason.value for reason in RefundReason]
    samples: list[tuple[str, PolicyInput]] = []
    for position, currency in enumerate(currencies):
        for reason in reasons if position == 0 else reasons[:1]:
            samples.append((f"complete/{currency}/{reason}", _complete(currency, reason, roles[-1])))
            samples.append((f"minimal/{currency}/{reason}", _minimal(currency, reason)))
            samples.append((f"extreme/{currency}/{reason}", _extreme(currency, reason, roles[0])))
    return samples
