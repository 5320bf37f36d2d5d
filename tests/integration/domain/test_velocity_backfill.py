"""``refundflow velocity backfill`` on moto: refunds stored before the velocity counters existed are counted
exactly once, whether the command runs twice, crashes before a write or loses the answer of a write that was
applied; afterwards the counters equal a recount of every refund."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from typer.testing import CliRunner

from refundflow.adapters.dynamodb import customer_key, plain_values
from refundflow.models import VelocityContribution
from refundflow.money import Money
from refundflow.status import RefundStatus
from refundflow_cli.app import app
from refundflow_cli.errors import Exit
from refundflow_cli.target import Target
from tests.support.fakes import World, a_refund

S = RefundStatus
CUSTOMERS = ("jane.doe@example.com", "john@example.com", "ana@example.com")


def eur(minor: int) -> Money:
    return Money.of(minor, "EUR")


class CrashingClient:
    """A DynamoDB client whose ``crash_at``-th TransactWriteItems fails: ``before`` (refused, nothing applied,
    like a throttled request) or ``after`` (applied, then the answer is lost, like a timeout or a killed process)."""

    def __init__(self, client: Any, crash_at: int, when: str) -> None:
        self._client = client
        self.crash_at = crash_at
        self.when = when
        self.transactions = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != "transact_write_items":
            return method

        def transact(**kwargs: Any) -> Any:
            self.transactions += 1
            if self.transactions != self.crash_at:
                return method(**kwargs)
            if self.when == "before":
                raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "Transact")
            method(**kwargs)
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

        return transact


def table_items(env: World, prefix: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": env.tables.refunds_table}
    while True:
        page = env.tables.client.scan(**kwargs)
        items += [plain_values(item) for item in page["Items"] if item["pk"]["S"].startswith(prefix)]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def counters(env: World) -> dict[tuple[str, str], tuple[int, dict[str, int]]]:
    """Every customer's day counters as stored: (customer, day) -> (refunds, amounts), empty days left out."""
    found: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}
    for item in table_items(env, "CUSTOMER#"):
        amounts = {
            name[len("amount_") :]: value for name, value in item.items() if name.startswith("amount_") and value
        }
        if item["refunds"] or amounts:
            found[(item["pk"], item["sk"])] = (item["refunds"], amounts)
    return found


def recount(env: World) -> dict[tuple[str, str], tuple[int, dict[str, int]]]:
    """The same, recounted from every refund as stored now."""
    refunds: Counter[tuple[str, str]] = Counter()
    amounts: dict[tuple[str, str], Counter[str]] = {}
    for state in table_items(env, "REFUND#"):
        if state["sk"] != "STATE":
            continue
        refund = env.repository.get(state["refund_id"])
        contribution = VelocityContribution.of(refund)
        if contribution is None:
            continue
        key = (f"CUSTOMER#{customer_key(refund.customer.email)}", f"DAY#{contribution.day.isoformat()}")
        refunds[key] += 1
        amounts.setdefault(key, Counter())[contribution.amount.currency] += contribution.amount.minor_units
    return {key: (count, dict(amounts[key])) for key, count in refunds.items()}


def history(env: World) -> None:
    """Twelve refunds of three customers over three weeks, in every kind of state, then made old: no marker on
    any STATE item and no counter, as if all of them were stored before the counters existed."""
    start = datetime(2025, 2, 10, 9, tzinfo=UTC)
    for index in range(12):
        env.clock.set(start + timedelta(days=index * 2, hours=index))
        amount = None if index % 5 == 4 else Money.of(1_000 + index * 111, "USD" if index % 4 == 3 else "EUR")
        refund = env.repository.create(
            a_refund(f"RMA-{index}", email=CUSTOMERS[index % 3], amount=amount, payment_id=f"pi_{index}"),
            actor="tests",
            delivery=None,
        ).refund
        if index % 3 == 1:
            refund = env.repository.transition(refund, S.VALIDATED, actor="tests", changes={"amount": eur(900)}).refund
        if index % 6 == 2:
            env.repository.transition(refund, S.REJECTED, actor="tests")
    for item in table_items(env, "REFUND#"):
        if item["sk"] == "STATE":
            env.tables.client.update_item(
                TableName=env.tables.refunds_table,
                Key={"pk": {"S": item["pk"]}, "sk": {"S": "STATE"}},
                UpdateExpression="REMOVE vc",
            )
    for item in table_items(env, "CUSTOMER#"):
        env.tables.client.delete_item(
            TableName=env.tables.refunds_table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}}
        )


def on_moto(monkeypatch: pytest.MonkeyPatch, env: World, client: Any) -> None:
    """The CLI's target is the moto table, reached through ``client``."""
    description = {
        "StackName": "tests",
        "Region": "us-east-1",
        "Outputs": {"RefundsTableName": env.tables.refunds_table},
    }
    monkeypatch.setattr(Target, "description", property(lambda _self: description))
    monkeypatch.setattr(Target, "client", lambda _self, _service: client)


def run(*args: str) -> tuple[int, Any]:
    import json

    result = CliRunner().invoke(app, ["velocity", "backfill", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_backfill_that_crashes_midway_and_runs_again_counts_every_refund_once(
    env: World, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # GIVEN refunds stored before the counters, and one stored after them (counted by its own write)
    history(env)
    env.clock.set(datetime(2025, 3, 5, 10, tzinfo=UTC))
    env.repository.create(a_refund("RMA-NEW", email=CUSTOMERS[0], amount=eur(4_200)), actor="tests", delivery=None)
    assert counters(env) != recount(env)
    # WHEN a first run crashes at its fifth write (refused before it applies, or applied and its answer lost)
    crashing = CrashingClient(env.tables.client, crash_at=5, when=when)
    on_moto(monkeypatch, env, crashing)
    code, crashed = run()
    # THEN it stops with the store's exit code, the counters hold part of the history
    assert (code, crashed["error"]["code"]) == (Exit.UNAVAILABLE, "store_unavailable")
    assert counters(env) != recount(env)
    # WHEN it runs again to the end, and once more
    on_moto(monkeypatch, env, env.tables.client)
    code, second = run()
    assert code == 0
    code, third = run()
    # THEN the counters equal a recount of every refund: nothing counted twice, nothing missed
    assert counters(env) == recount(env)
    assert third["backfill"]["uncounted"] == 0
    assert third["backfill"]["counted"] == 0
    # AND the first two runs together went through the twelve old refunds (the crashed write counted by the first
    # run when it was applied, by the second otherwise); the new one was never among them
    done = 5 if when == "after" else 4
    assert second["backfill"]["uncounted"] == 12 - done
    assert second["backfill"]["counted"] + second["backfill"]["contributing_nothing"] == 12 - done


def test_a_dry_run_reports_what_it_would_count_and_writes_nothing(env: World, monkeypatch: pytest.MonkeyPatch) -> None:
    history(env)
    on_moto(monkeypatch, env, env.tables.client)
    code, dry = run("--dry-run")
    assert code == 0
    assert counters(env) == {}
    expected = recount(env)  # what the refunds contribute (counted from them, not from the counters)
    assert dry["backfill"]["counted"] == sum(count for count, _ in expected.values())
    totals: Counter[str] = Counter()
    for _, amounts in expected.values():
        totals.update(amounts)
    assert dry["backfill"]["amounts"] == dict(totals)
    # AND the real run then counts exactly that
    code, done = run()
    assert (code, done["backfill"]["counted"], done["backfill"]["amounts"]) == (
        0,
        dry["backfill"]["counted"],
        dict(totals),
    )
    assert counters(env) == expected


def test_a_refund_that_joins_by_its_own_write_during_the_backfill_is_not_counted_again(
    env: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN old refunds, one of which is written (validated) by the workflow after the scan found it
    history(env)
    late = env.repository.get(a_refund("RMA-0").refund_id)
    original_find = type(env.repository).find

    def find_then_written(repository: Any, refund_id: str) -> Any:
        found = original_find(repository, refund_id)
        if refund_id == late.refund_id:
            assert found is not None
            env.repository.transition(found, S.VALIDATED, actor="workflow")
        return found

    monkeypatch.setattr(type(env.repository), "find", find_then_written)
    on_moto(monkeypatch, env, env.tables.client)
    code, result = run()
    # THEN the backfill skips it (its write counted it) and the counters still equal a recount
    assert (code, result["backfill"]["skipped"]) == (0, 1)
    monkeypatch.undo()
    assert counters(env) == recount(env)
