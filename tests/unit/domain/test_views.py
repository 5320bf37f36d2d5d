"""The status API's view of a refund: its state, its timeline and whether the audit chain is intact."""

from __future__ import annotations

import pytest

from refundflow.domain.payments import issue_refund
from refundflow.domain.views import refund_view
from refundflow.errors import NotFound
from refundflow.money import Money
from refundflow.status import RefundStatus
from tests.support.fakes import World, refund_request_body

S = RefundStatus


@pytest.fixture
def refunded(env: World) -> str:
    env.provider.add_payment("pi_3Pabc", Money.of(10_000, "EUR"))
    refund_id = env.reserved(refund_request_body())
    issue_refund(refund_id, journal=env.journal, provider=env.provider)
    return refund_id


def audit_keys(env: World, refund_id: str) -> list[dict[str, dict[str, str]]]:
    items = env.tables.client.query(
        TableName=env.tables.refunds_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"REFUND#{refund_id}"}, ":prefix": {"S": "EVENT#"}},
    )["Items"]
    return [{"pk": item["pk"], "sk": item["sk"]} for item in items]


def test_the_view_shows_the_state_and_the_whole_timeline_with_an_intact_chain(env: World, refunded: str) -> None:
    # GIVEN a refunded refund WHEN its view is read
    view = refund_view(refunded, repository=env.repository)
    # THEN it shows where it stands and every step in order, and its audit chain verifies
    assert (view.status, view.amount, view.order_id) == (S.REFUNDED, Money.of(2_500, "EUR"), "ORD-RMA-1001")
    assert view.provider_refund_id == env.provider.only_refund().provider_refund_id
    assert [entry.type for entry in view.timeline] == [
        "RefundRequested",
        "StatusChanged:VALIDATED",
        "PaymentLookedUp",
        "StatusChanged:APPROVED",
        "AmountReserved",
        "StatusChanged:REFUND_SUBMITTED",
        "StatusChanged:REFUNDED",
    ]
    assert view.audit.intact
    assert view.audit.entries == len(view.timeline)


def test_an_audit_entry_edited_in_the_table_shows_in_the_view(env: World, refunded: str) -> None:
    # GIVEN someone with table access rewrites who approved the refund
    approved = audit_keys(env, refunded)[3]
    env.tables.client.update_item(
        TableName=env.tables.refunds_table,
        Key=approved,
        UpdateExpression="SET actor = :actor",
        ExpressionAttributeValues={":actor": {"S": "approver:mallory"}},
    )
    # WHEN the view is read THEN the chain is reported broken at that entry
    audit = refund_view(refunded, repository=env.repository).audit
    assert not audit.intact
    assert (audit.broken_at_seq, audit.problem) == (4, "edited entry")


def test_audit_entries_deleted_from_the_table_show_in_the_view(env: World, refunded: str) -> None:
    # GIVEN someone deletes the last audit entry (the refund still holds the chain's head)
    last = audit_keys(env, refunded)[-1]
    env.tables.client.delete_item(TableName=env.tables.refunds_table, Key=last)
    # WHEN the view is read THEN the missing tail is reported
    audit = refund_view(refunded, repository=env.repository).audit
    assert not audit.intact
    assert audit.problem == "missing tail"


def test_the_view_of_an_unknown_refund_is_not_found(env: World) -> None:
    # GIVEN no such refund WHEN its view is read THEN NotFound (the API answers 404)
    with pytest.raises(NotFound):
        refund_view("rf_" + "0" * 32, repository=env.repository)
