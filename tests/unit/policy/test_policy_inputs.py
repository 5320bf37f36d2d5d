"""build_policy_input: the facts a policy sees, computed from the refund and its context."""

from __future__ import annotations

from datetime import timedelta

import pytest
from policy_builders import NOW, make_facts, make_refund, past_refund

from refundflow.errors import InvalidRequest
from refundflow.models import ReturnStatus
from refundflow.money import Money
from refundflow.policy import Approver, build_policy_input
from refundflow.status import RefundStatus


def test_velocity_windows_count_only_refunds_that_paid_or_may_pay() -> None:
    # GIVEN earlier refunds at various ages and statuses
    history = [
        past_refund(1, 100, number=1),
        past_refund(6.9, 200, status=RefundStatus.PENDING_APPROVAL, number=2),
        past_refund(8, 400, number=3),
        past_refund(29, 800, number=4),
        past_refund(31, 1_600, number=5),
        past_refund(200, 3_200, number=6),
        past_refund(400, 6_400, number=7),
        past_refund(2, 9_999, status=RefundStatus.REJECTED, number=8),
        past_refund(2, 9_999, status=RefundStatus.FAILED, number=9),
        past_refund(-1, 9_999, number=10),
    ]
    # WHEN the facts are built
    customer = make_facts(history=history).customer
    # THEN rejected, failed and future refunds are left out, the windows are rolling
    assert (customer.last_7_days.count, customer.last_7_days.amount) == (2, 300)
    assert (customer.last_30_days.count, customer.last_30_days.amount) == (4, 1_500)
    assert (customer.last_90_days.count, customer.last_90_days.amount) == (5, 3_100)
    assert (customer.last_365_days.count, customer.last_365_days.amount) == (6, 6_300)
    assert customer.refunds_total == 7


def test_velocity_skips_the_refund_itself_and_sums_only_its_currency() -> None:
    refund = make_refund(refund_id="rf_" + "b" * 32)
    history = [
        past_refund(1, 500, number=1),
        past_refund(1, 700, currency="USD", number=2),
    ]
    history.append(history[0].model_copy(update={"refund_id": refund.refund_id}))
    window = make_facts(refund, history=history).customer.last_7_days
    assert (window.count, window.amount) == (2, 500)


def test_full_refund_history_items_are_summarised() -> None:
    earlier = make_refund(900, refund_id="rf_" + "c" * 32).evolve(
        status=RefundStatus.COMPLETED, created_at=NOW - timedelta(days=3)
    )
    window = make_facts(history=[earlier]).customer.last_7_days  # type: ignore[list-item]
    assert (window.count, window.amount) == (1, 900)


def test_order_facts_count_whole_days_since_delivery() -> None:
    facts = make_facts(make_refund(delivered_days_ago=3), now=NOW + timedelta(hours=23))
    assert (facts.order.delivered, facts.order.days_since_delivery) == (True, 3)


def test_delivery_in_the_future_is_not_a_delivery() -> None:
    facts = make_facts(make_refund(delivered_days_ago=-2))
    assert facts.order.delivered is False
    assert "days_since_delivery" not in facts.activation()["order"]


def test_final_sale_is_matched_per_refunded_line() -> None:
    refund = make_refund(
        5_000,
        lines=[("A", "apparel", 1, 2_000), ("B", "apparel", 1, 3_000)],
        items=[("A", "apparel", True), ("B", "apparel", False)],
    )
    facts = make_facts(refund)
    assert [line.final_sale for line in facts.refund.lines] == [True, False]
    assert facts.refund.includes_final_sale is True
    assert facts.order.has_final_sale_items is True


def test_refund_without_lines_includes_the_orders_final_sale_items() -> None:
    facts = make_facts(make_refund(items=[("A", "apparel", True)]))
    assert facts.refund.includes_final_sale is True


def test_categories_are_distinct_and_sorted() -> None:
    refund = make_refund(
        3_000, lines=[("A", "toys", 1, 1_000), ("B", "electronics", 1, 1_000), ("C", "toys", 1, 1_000)]
    )
    assert make_facts(refund).refund.categories == ["electronics", "toys"]


@pytest.mark.parametrize(
    ("status", "received", "name"),
    [(ReturnStatus.RECEIVED, True, "received"), (ReturnStatus.IN_TRANSIT, False, "in_transit"), (None, False, "none")],
)
def test_return_facts(status: ReturnStatus | None, received: bool, name: str) -> None:
    facts = make_facts(make_refund(return_status=status))
    assert (facts.return_info.received, facts.return_info.status) == (received, name)


def test_requested_full_means_everything_still_refundable() -> None:
    assert make_facts(make_refund(2_000), remaining=2_000).refund.requested_full is True
    assert make_facts(make_refund(2_000), remaining=5_000).refund.requested_full is False


def test_approver_is_absent_or_present_with_id_and_role() -> None:
    assert make_facts().activation()["approver"] == {"present": False}
    present = make_facts(approver=Approver(id="agent-1", role="agent", source="helpdesk")).activation()["approver"]
    assert present == {"present": True, "id": "agent-1", "role": "agent", "source": "helpdesk"}


def test_activation_hides_the_evaluation_time_and_absent_values() -> None:
    activation = make_facts(make_refund(with_order=False)).activation()
    assert "evaluated_at" not in activation
    assert "id" not in activation["order"]
    assert set(activation) == {"refund", "order", "return_info", "customer", "payment", "merchant", "approver"}


def test_amounts_in_another_currency_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="remaining is in USD"):
        build_policy_input(
            make_refund(1_000),
            remaining=Money.of(1_000, "USD"),
            customer_history=[],
            refunded_today=Money.zero("EUR"),
            now=NOW,
        )


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="time-zone aware"):
        make_facts(now=NOW.replace(tzinfo=None))


def test_refund_without_amount_is_refused() -> None:
    refund = make_refund().evolve(amount=None, requested_amount=None)
    with pytest.raises(InvalidRequest, match="no positive amount"):
        build_policy_input(
            refund, remaining=Money.zero("EUR"), customer_history=[], refunded_today=Money.zero("EUR"), now=NOW
        )
