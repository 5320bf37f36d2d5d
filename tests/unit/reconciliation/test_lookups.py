"""A batch's refunds are read by provider refund id in batches (BatchGetItem), not one index query per line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest

from refundflow.money import Money
from refundflow.reconciliation.apply import Run
from refundflow.reconciliation.engine import MatchClass
from refundflow.reconciliation.records import LineKind, SettlementLine
from refundflow.reconciliation.run import Reconciler
from tests.support.fakes import World
from tests.unit.reconciliation.test_apply import PAYMENT, completed_refund


@contextmanager
def counted(env: World) -> Iterator[Counter[str]]:
    """DynamoDB requests the repository makes, by operation (and by operation and index)."""
    calls: Counter[str] = Counter()
    client = env.repository.dynamodb

    def count(event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        calls[operation] += 1
        if "IndexName" in params:
            calls[f"{operation} {params['IndexName']}"] += 1

    client.meta.events.register("before-parameter-build.dynamodb.*", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.*", count)


def line(number: int, kind: LineKind, reference: str, amount: int) -> SettlementLine:
    net = -amount if kind is LineKind.REFUND else amount
    return SettlementLine(
        "stripe", number, f"txn_{number}", kind, reference, amount, "EUR", 0, net, date(2026, 11, 30), "po_1"
    )


@pytest.fixture
def paid(env: World) -> World:
    env.provider.add_payment(PAYMENT, Money.of(100_000, "EUR"))
    return env


def test_a_500_line_batch_reads_its_refunds_with_two_batch_gets(paid: World) -> None:
    # GIVEN two refunds of ours and a 500-line batch: their lines, two refunds made elsewhere, charges
    ours = [completed_refund(paid, f"RMA-{n}", amount=1_000 + n) for n in range(2)]
    lines = [line(n, LineKind.REFUND, refund.provider_refund_id or "", 1_000 + n) for n, refund in enumerate(ours)]
    lines += [line(2, LineKind.REFUND, "re_elsewhere_1", 500), line(3, LineKind.REFUND, "re_elsewhere_2", 700)]
    lines += [line(n, LineKind.CHARGE, f"ch_{n}", 9_000) for n in range(4, 500)]
    reconciler = Reconciler(
        Run("settlement/stripe/x.csv", "c-1", "stripe"), paid.repository, paid.recorder, paid.publisher
    )
    # WHEN the batch is matched and applied
    with counted(paid) as calls:
        reconciler.match_batch(lines)
    # THEN our refunds cost one BatchGetItem for the ids and one for their state (before: one Query each);
    # only the two ids that are nobody's are asked of the index
    assert calls["BatchGetItem"] == 2
    assert calls["Query by-provider-refund"] == 2, calls
    assert reconciler.summary.counts[MatchClass.MATCHED.value] == 2
    assert reconciler.summary.counts[MatchClass.UNEXPECTED_IN_SETTLEMENT.value] == 2


def test_batch_gets_ask_100_keys_at_a_time(env: World) -> None:
    with counted(env) as calls:
        found = env.repository.refunds_by_provider_refund_id(f"re_{n}" for n in range(250))
    assert found == {}
    assert calls["BatchGetItem"] == 3  # 100 + 100 + 50 ids; no refund, so no state to read
