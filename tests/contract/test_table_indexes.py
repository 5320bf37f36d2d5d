"""The refunds table's indexes in template.yaml: none projects an attribute that changes after it is written (every
write of a refund would rewrite the entry, billed per KB), and by-status holds only the statuses something waits on
(issue 14; README "Index writes"). What the writes cost is measured in tests/integration/domain/test_index_writes.py."""

from __future__ import annotations

from typing import Any

from local.cfn import Stack
from refundflow.adapters.dynamodb import INDEXED_STATUSES
from refundflow.status import TERMINAL_STATUSES, RefundStatus

S = RefundStatus
TABLE = Stack.from_template("refundflow").of_type("AWS::DynamoDB::Table")["RefundsTable"]["Properties"]
INDEXES: dict[str, dict[str, Any]] = {index["IndexName"]: index for index in TABLE["GlobalSecondaryIndexes"]}
# Attributes of the STATE item that never change once written.
STABLE = {"created_at", "refund_id"}
# What a refund that needs nobody passes through on its way to COMPLETED.
STRAIGHT_THROUGH = [S.RECEIVED, S.VALIDATED, S.APPROVED, S.REFUND_SUBMITTED, S.REFUNDED, S.INVOICE_UPDATED]


def test_every_index_projects_keys_or_attributes_that_never_change() -> None:
    for name, index in INDEXES.items():
        projection = index["Projection"]
        assert projection["ProjectionType"] in {"KEYS_ONLY", "INCLUDE"}, name
        assert set(projection.get("NonKeyAttributes", [])) <= STABLE, name


def test_the_indexes_are_those_something_reads() -> None:
    assert set(INDEXES) == {"by-status", "by-payment", "by-customer", "by-provider-refund"}
    defined = {attribute["AttributeName"] for attribute in TABLE["AttributeDefinitions"]}
    keys = {key["AttributeName"] for index in INDEXES.values() for key in index["KeySchema"]}
    assert defined == keys | {"pk", "sk"}  # no definition left over from a removed index


def test_by_status_holds_what_waits_and_nothing_a_straight_refund_passes_through() -> None:
    assert {S.PENDING_APPROVAL, S.NEEDS_ATTENTION, S.COMPLETED} <= INDEXED_STATUSES  # gauges, reconciliation
    assert not INDEXED_STATUSES & set(STRAIGHT_THROUGH)
    assert not INDEXED_STATUSES & (TERMINAL_STATUSES - {S.COMPLETED})  # nothing reads SETTLED, REJECTED, FAILED
