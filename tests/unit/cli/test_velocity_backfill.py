"""``refundflow velocity backfill`` without a table: it pages through the Scan of unmarked STATE items, counts
through the repository's exactly-once write (never in a dry run), and reports progress and a summary."""

from __future__ import annotations

from typing import Any

from refundflow.models import Refund
from refundflow.money import Money
from refundflow_cli.commands.velocity import backfill
from tests.support.fakes import a_refund


class FakeDynamoDB:
    """Two Scan pages, as DynamoDB returns them: the filter applied, ScannedCount counting every item read."""

    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages
        self.scans: list[dict[str, Any]] = []

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        self.scans.append(kwargs)
        index = len(self.scans) - 1
        page: dict[str, Any] = {
            "Items": [{"pk": {"S": f"REFUND#{refund_id}"}} for refund_id in self.pages[index]],
            "ScannedCount": 50,
        }
        if index + 1 < len(self.pages):
            page["LastEvaluatedKey"] = {"pk": {"S": f"page-{index}"}, "sk": {"S": "STATE"}}
        return page


class FakeRepository:
    table_name = "refunds"

    def __init__(self, refunds: dict[str, Refund], pages: list[list[str]], already: set[str]) -> None:
        self.refunds = refunds
        self.dynamodb = FakeDynamoDB(pages)
        self.already = already  # counted meanwhile by their own write
        self.counted: list[str] = []

    def find(self, refund_id: str) -> Refund | None:
        return self.refunds.get(refund_id)

    def count_in_velocity(self, refund: Refund) -> bool:
        if refund.refund_id in self.already:
            return False
        self.counted.append(refund.refund_id)
        return True


def refunds() -> tuple[dict[str, Refund], list[list[str]]]:
    made = {
        "eur": a_refund("RMA-1", amount=Money.of(2_500, "EUR")),
        "usd": a_refund("RMA-2", amount=Money.of(1_000, "USD")),
        "everything-left": a_refund("RMA-3"),
        "raced": a_refund("RMA-4", amount=Money.of(700, "EUR")),
    }
    by_id = {refund.refund_id: refund for refund in made.values()}
    ids = {name: refund.refund_id for name, refund in made.items()}
    return by_id, [[ids["eur"], ids["usd"]], [ids["everything-left"], ids["raced"], "gone"]]


def test_it_pages_through_the_unmarked_state_items_and_counts_each_once() -> None:
    by_id, pages = refunds()
    raced = pages[1][1]
    repository = FakeRepository(by_id, pages, already={raced})
    seen: list[int] = []
    result = backfill(repository, progress=lambda progress: seen.append(progress.items_scanned))  # type: ignore[arg-type]
    # The Scan reads keys only, STATE items without the marker, and follows LastEvaluatedKey
    first, second = repository.dynamodb.scans
    assert first["FilterExpression"] == "sk = :state AND begins_with(pk, :refund) AND attribute_not_exists(#counted)"
    assert first["ExpressionAttributeValues"] == {":state": {"S": "STATE"}, ":refund": {"S": "REFUND#"}}
    assert first["ExpressionAttributeNames"] == {"#counted": "vc"}
    assert first["ProjectionExpression"] == "pk"
    assert second["ExclusiveStartKey"] == {"pk": {"S": "page-0"}, "sk": {"S": "STATE"}}
    # Every refund found went through the exactly-once write; the raced one and the vanished one are skipped
    assert repository.counted == [pages[0][0], pages[0][1], pages[1][0]]
    assert (result.uncounted, result.counted, result.contributing_nothing, result.skipped) == (5, 2, 1, 2)
    assert result.amounts == {"EUR": 2_500, "USD": 1_000}
    assert (result.items_scanned, seen[:2]) == (100, [50, 100])


def test_a_dry_run_writes_nothing_and_reports_what_would_be_counted() -> None:
    by_id, pages = refunds()
    repository = FakeRepository(by_id, pages, already=set())
    result = backfill(repository, dry_run=True)  # type: ignore[arg-type]
    assert repository.counted == []
    assert (result.dry_run, result.counted, result.contributing_nothing, result.skipped) == (True, 3, 1, 1)
    assert result.amounts == {"EUR": 3_200, "USD": 1_000}
