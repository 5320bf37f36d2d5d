"""``refundflow store-credit show``: a customer's balances and entries from the ledger on the refunds table (moto),
looked up by customer id or e-mail address, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

from refundflow.adapters.store_credit import DynamoStoreCreditLedger
from refundflow.money import Money
from refundflow_cli.app import app
from refundflow_cli.commands import store_credit
from tests.support.fakes import SteppingClock, Tables, UnreachableDynamoDB, moto_tables


@dataclass
class StubTarget:
    """What the command asks of its target: the table's name and a DynamoDB client."""

    table: str
    dynamodb: Any
    name: str = "local stack"

    def output(self, key: str) -> str:
        assert key == "RefundsTableName"
        return self.table

    def client(self, service: str) -> Any:
        assert service == "dynamodb"
        return self.dynamodb


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tables]:
    with moto_tables() as built:
        monkeypatch.setattr(store_credit, "target_of", lambda _: StubTarget(built.refunds_table, built.client))
        yield built


def credit_anna(tables: Tables) -> None:
    ledger = DynamoStoreCreditLedger(tables.refunds_table, dynamodb=tables.client, now=SteppingClock())
    ledger.credit("email:anna@example.com", Money.of(1_500, "EUR"), "rf_1#leg1", "rf_1", "Refund rf_1, leg 1")
    ledger.credit("email:anna@example.com", Money.of(500, "EUR"), "rf_2#leg0", "rf_2", "Refund rf_2, leg 0")
    ledger.credit("email:anna@example.com", Money.of(300, "GBP"), "rf_3#leg0", "rf_3")
    ledger.credit("id:cus_ben", Money.of(100, "EUR"), "rf_4#leg0", "rf_4")


def test_show_by_address_in_any_case_lists_balances_and_entries_as_json(tables: Tables) -> None:
    credit_anna(tables)
    answer = CliRunner().invoke(app, ["store-credit", "show", "Anna@Example.com", "--json"])
    assert answer.exit_code == 0, answer.output
    report = json.loads(answer.output)["store_credit"]
    assert report["customer_key"] == "email:anna@example.com"
    assert report["balances"] == [{"minor_units": 2_000, "currency": "EUR"}, {"minor_units": 300, "currency": "GBP"}]
    assert [entry["entry_id"] for entry in report["entries"]] == ["rf_1#leg1", "rf_2#leg0", "rf_3#leg0"]


def test_show_by_customer_id_prints_a_table(tables: Tables) -> None:
    credit_anna(tables)
    answer = CliRunner().invoke(app, ["store-credit", "show", "cus_ben"])
    assert answer.exit_code == 0, answer.output
    assert "store credit of id:cus_ben: 100 EUR" in answer.output
    assert "rf_4#leg0" in answer.output
    assert "rf_1" not in answer.output


def test_show_of_a_customer_without_credit_says_so(tables: Tables) -> None:
    answer = CliRunner().invoke(app, ["store-credit", "show", "nobody@example.com"])
    assert answer.exit_code == 0, answer.output
    assert "no store credit for email:nobody@example.com" in answer.output


def test_show_with_the_store_down_exits_with_store_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_credit, "target_of", lambda _: StubTarget("refunds", UnreachableDynamoDB()))
    answer = CliRunner().invoke(app, ["store-credit", "show", "cus_ben", "--json"])
    assert answer.exit_code != 0
    assert json.loads(answer.output)["error"]["code"] == "store_unavailable"
