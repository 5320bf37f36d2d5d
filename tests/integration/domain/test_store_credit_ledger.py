"""The store-credit ledger: the DynamoDB adapter on moto (table from template.yaml) and the fake, held to the same
contract (one entry per id, ever; the same id with other content is a conflict; balances per currency), then what
only the table shows: exactly once across a retry after a lost answer, concurrent credits, a store that is down,
and keys that leave no address in the table's keys."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refundflow.adapters.store_credit import DynamoStoreCreditLedger, customer_partition
from refundflow.domain.store_credit import credit_store_credit_leg, customer_key, leg_entry_id, lookup_key
from refundflow.errors import GuardUnavailable, IdempotencyConflict, InvalidRequest, TransientError
from refundflow.models import CustomerContact, SplitLeg, TenderKind
from refundflow.money import Money
from refundflow.ports import StoreCreditLedger
from tests.support.fakes import (
    FakeStoreCreditLedger,
    SerializedClient,
    SteppingClock,
    Tables,
    UnreachableDynamoDB,
    a_refund,
    moto_tables,
)

ANNA = "email:anna@example.com"
BEN = "id:cus_ben"


def eur(minor_units: int) -> Money:
    return Money.of(minor_units, "EUR")


@pytest.fixture
def tables() -> Iterator[Tables]:
    with moto_tables() as built:
        yield built


@pytest.fixture(params=["dynamodb", "fake"])
def ledger(request: pytest.FixtureRequest) -> Iterator[StoreCreditLedger]:
    if request.param == "fake":
        yield FakeStoreCreditLedger(now=SteppingClock())
        return
    with moto_tables() as built:
        yield DynamoStoreCreditLedger(built.refunds_table, dynamodb=built.client, now=SteppingClock())


# ------------------------------------------------------------------ the contract, on both


def test_credit_adds_to_the_balance_of_its_currency_and_records_the_entry(ledger: StoreCreditLedger) -> None:
    # GIVEN two credits in EUR and one in USD for Anna, one for Ben
    first = ledger.credit(ANNA, eur(1_500), "rf_1#leg0", "rf_1", "Refund rf_1, leg 0")
    ledger.credit(ANNA, eur(250), "rf_2#leg1", "rf_2")
    ledger.credit(ANNA, Money.of(999, "USD"), "rf_3#leg0", "rf_3")
    ledger.credit(BEN, eur(100), "rf_4#leg0", "rf_4")
    # THEN each balance counts its own customer's credits in its currency
    assert ledger.balance(ANNA, "EUR") == eur(1_750)
    assert ledger.balance(ANNA, "USD") == Money.of(999, "USD")
    assert ledger.balance(BEN, "EUR") == eur(100)
    assert ledger.balance(BEN, "JPY") == Money.of(0, "JPY")
    # AND the entries are the customer's, oldest first, as written
    entries = ledger.entries(ANNA)
    assert [entry.entry_id for entry in entries] == ["rf_1#leg0", "rf_2#leg1", "rf_3#leg0"]
    assert entries[0] == first
    assert (first.customer_key, first.amount, first.refund_id, first.note) == (
        ANNA,
        eur(1_500),
        "rf_1",
        "Refund rf_1, leg 0",
    )
    assert ledger.entries("id:nobody") == []


def test_the_same_entry_again_returns_the_first_and_credits_nothing(ledger: StoreCreditLedger) -> None:
    first = ledger.credit(ANNA, eur(1_500), "rf_1#leg0", "rf_1", "note")
    again = ledger.credit(ANNA, eur(1_500), "rf_1#leg0", "rf_1", "note")
    assert again == first  # its time too: the first entry, not a new one
    assert ledger.balance(ANNA, "EUR") == eur(1_500)
    assert len(ledger.entries(ANNA)) == 1


@pytest.mark.parametrize(
    ("customer", "amount", "refund_id", "note"),
    [
        (ANNA, eur(1_501), "rf_1", "note"),
        (ANNA, Money.of(1_500, "USD"), "rf_1", "note"),
        (ANNA, eur(1_500), "rf_9", "note"),
        (ANNA, eur(1_500), "rf_1", "another note"),
        (BEN, eur(1_500), "rf_1", "note"),  # an entry id is used once in the whole ledger, not once per customer
    ],
)
def test_the_same_entry_id_with_other_content_is_a_conflict_and_changes_nothing(
    ledger: StoreCreditLedger, customer: str, amount: Money, refund_id: str, note: str
) -> None:
    ledger.credit(ANNA, eur(1_500), "rf_1#leg0", "rf_1", "note")
    with pytest.raises(IdempotencyConflict, match="rf_1#leg0"):
        ledger.credit(customer, amount, "rf_1#leg0", refund_id, note)
    assert ledger.balance(ANNA, "EUR") == eur(1_500)
    assert ledger.balance(BEN, "EUR") == eur(0)
    assert ledger.balance(ANNA, "USD") == Money.of(0, "USD")
    assert [entry.entry_id for entry in ledger.entries(ANNA)] == ["rf_1#leg0"]


@pytest.mark.parametrize(
    ("customer", "amount", "entry_id", "message"),
    [
        (ANNA, eur(0), "e1", "positive amounts"),
        (ANNA, eur(-100), "e1", "positive amounts"),
        (ANNA, eur(100), "e 1", "not a store-credit entry"),
        (ANNA, eur(100), "", "not a store-credit entry"),
        ("x", eur(100), "e1", "not a store-credit entry"),
    ],
)
def test_a_credit_that_is_not_one_is_refused(
    ledger: StoreCreditLedger, customer: str, amount: Money, entry_id: str, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ledger.credit(customer, amount, entry_id, "rf_1")
    assert ledger.entries(customer) == []


def test_a_split_refunds_store_credit_leg_is_credited_once_to_its_customer(ledger: StoreCreditLedger) -> None:
    # GIVEN a split refund of a customer known by id, whose leg 2 was moved to store credit from failed leg 1
    parent = a_refund("RMA-SPLIT").model_copy(
        update={"customer": CustomerContact(email="Anna@Example.com", customer_id="cus_anna")}
    )
    leg = SplitLeg(
        index=2,
        tender_index=0,
        payment=None,  # store credit names no payment (refundflow's own ledger)
        kind=TenderKind.STORE_CREDIT,
        amount=eur(2_000),
        replaces=1,
    )
    # WHEN the leg is credited, and credited again by a retried step
    entry = credit_store_credit_leg(ledger, parent, leg)
    credit_store_credit_leg(ledger, parent, leg)
    # THEN the customer id keys it, once, under the leg's own entry id
    assert ledger.balance("id:cus_anna", "EUR") == eur(2_000)
    assert entry.entry_id == leg_entry_id(parent.refund_id, 2) == f"{parent.refund_id}#leg2"
    assert entry.note == f"Refund {parent.refund_id}, leg 2 (moved from leg 1)"
    # AND a card leg is not store credit
    with pytest.raises(InvalidRequest, match="not to store credit"):
        credit_store_credit_leg(ledger, parent, leg.model_copy(update={"kind": TenderKind.CARD}))


def test_customer_key_is_the_customer_id_else_the_lowercased_address() -> None:
    assert customer_key(CustomerContact(email="Anna@Example.COM", customer_id="cus_1")) == "id:cus_1"
    assert customer_key(CustomerContact(email="Anna@Example.COM")) == "email:anna@example.com"
    # an id that looks like an address stays an id
    assert customer_key(CustomerContact(email="a@b.co", customer_id="a@b.co")) == "id:a@b.co"
    assert lookup_key("Anna@Example.com") == "email:anna@example.com"
    assert lookup_key("cus_1") == "id:cus_1"
    assert lookup_key("id:a@b.co") == "id:a@b.co"
    assert lookup_key("email:Anna@Example.com") == "email:anna@example.com"


# ------------------------------------------------------------------ what only the table shows


class _AnswerLost:
    """A client whose TransactWriteItems is applied but whose answer never arrives (a timeout after sending)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != "transact_write_items":
            return method

        def applied_then_lost(**kwargs: Any) -> Any:
            method(**kwargs)
            self.lost += 1
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

        return applied_then_lost


def test_a_retry_after_a_lost_answer_credits_exactly_once(tables: Tables) -> None:
    # GIVEN the first attempt's transaction was applied but its answer lost
    lossy = _AnswerLost(tables.client)
    with pytest.raises(GuardUnavailable):
        DynamoStoreCreditLedger(tables.refunds_table, dynamodb=lossy).credit(ANNA, eur(700), "rf_1#leg0", "rf_1")
    assert lossy.lost == 1
    # WHEN the step retries with a client that answers
    ledger = DynamoStoreCreditLedger(tables.refunds_table, dynamodb=tables.client)
    entry = ledger.credit(ANNA, eur(700), "rf_1#leg0", "rf_1")
    # THEN the first attempt's entry is returned and the balance counts it once
    assert entry.entry_id == "rf_1#leg0"
    assert ledger.balance(ANNA, "EUR") == eur(700)
    assert len(ledger.entries(ANNA)) == 1


def test_a_throttled_credit_writes_nothing_and_says_try_again(tables: Tables) -> None:
    class Throttled:
        def __getattr__(self, name: str) -> Any:
            if name != "transact_write_items":
                return getattr(tables.client, name)

            def throttle(**_: Any) -> Any:
                raise ClientError({"Error": {"Code": "ThrottlingException"}}, "TransactWriteItems")

            return throttle

    with pytest.raises(TransientError) as caught:
        DynamoStoreCreditLedger(tables.refunds_table, dynamodb=Throttled()).credit(ANNA, eur(1), "e1", "rf_1")
    assert caught.value.code == "store_busy"
    ledger = DynamoStoreCreditLedger(tables.refunds_table, dynamodb=tables.client)
    assert ledger.balance(ANNA, "EUR") == eur(0)
    assert ledger.entries(ANNA) == []


def test_concurrent_credits_of_one_entry_credit_once(tables: Tables) -> None:
    # GIVEN eight workers crediting the same leg at once (a redelivered step) and eight crediting legs of their own
    ledger = DynamoStoreCreditLedger(tables.refunds_table, dynamodb=SerializedClient(tables.client))
    barrier = threading.Barrier(16)
    results: list[str] = []
    lock = threading.Lock()

    def credit(entry_id: str) -> None:
        barrier.wait()
        for _attempt in range(20):  # a transaction conflict is transient: the caller retries
            try:
                entry = ledger.credit(ANNA, eur(100), entry_id, "rf_1")
            except TransientError:
                continue
            with lock:
                results.append(entry.entry_id)
            return

    workers = [threading.Thread(target=credit, args=("shared",)) for _ in range(8)]
    workers += [threading.Thread(target=credit, args=(f"own{index}",)) for index in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    # THEN every worker got its entry, and the balance counts nine credits: the shared one once
    assert sorted(results) == sorted(["shared"] * 8 + [f"own{index}" for index in range(8)])
    assert ledger.balance(ANNA, "EUR") == eur(900)
    assert len(ledger.entries(ANNA)) == 9


def test_an_unreachable_store_fails_closed(tables: Tables) -> None:
    unreachable = UnreachableDynamoDB()
    ledger = DynamoStoreCreditLedger(tables.refunds_table, dynamodb=unreachable)
    with pytest.raises(GuardUnavailable):
        ledger.credit(ANNA, eur(100), "e1", "rf_1")
    with pytest.raises(GuardUnavailable):
        ledger.balance(ANNA, "EUR")
    with pytest.raises(GuardUnavailable):
        ledger.entries(ANNA)
    assert unreachable.calls == ["transact_write_items", "get_item", "query"]


def test_the_items_keep_no_address_anywhere_and_collide_with_nothing(tables: Tables) -> None:
    ledger = DynamoStoreCreditLedger(
        tables.refunds_table, dynamodb=tables.client, now=lambda: datetime(2026, 1, 2, tzinfo=UTC)
    )
    ledger.credit(ANNA, eur(100), "rf_1#leg0", "rf_1")
    items = tables.client.scan(TableName=tables.refunds_table)["Items"]
    keys = sorted((item["pk"]["S"], item["sk"]["S"]) for item in items)
    partition = customer_partition(ANNA)
    assert keys == [
        (partition, "BALANCE#EUR"),
        (partition, "ENTRY#rf_1#leg0"),
        ("STORE_CREDIT_ENTRY#rf_1#leg0", "ENTRY"),
    ]
    assert "anna" not in partition
    # the address is personal data kept in the refund's own record only: no attribute of a ledger item holds it
    assert "anna" not in json.dumps(items).lower()
    # and what is read back is still the customer's, under the key it was asked with
    assert [entry.customer_key for entry in ledger.entries(ANNA)] == [ANNA]
    assert {item["entity"]["S"] for item in items} == {
        "store_credit_balance",
        "store_credit_entry",
        "store_credit_entry_id",
    }


def test_the_handlers_ledger_is_on_the_refunds_table_of_the_settings(
    tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refundflow import wiring

    # GIVEN a handler's environment naming the refunds table
    monkeypatch.setenv("REFUNDS_TABLE_NAME", tables.refunds_table)
    wiring.reset()
    try:
        ledger = wiring.store_credit_ledger()
        # WHEN it credits THEN the entry is in that table, and the factory gives the same ledger again
        ledger.credit(BEN, eur(42), "rf_9#leg0", "rf_9")
        assert DynamoStoreCreditLedger(tables.refunds_table, dynamodb=tables.client).balance(BEN, "EUR") == eur(42)
        assert wiring.store_credit_ledger() is ledger
    finally:
        wiring.reset()


# ------------------------------------------------------------------ any sequence of credits, retried or not

_RUNS = itertools.count()
_CREDITS = st.lists(
    st.tuples(
        st.sampled_from(["e1", "e2", "e3", "e4"]),  # few ids: repeats (retries) and reuses (conflicts) happen
        st.sampled_from([ANNA, BEN]),
        st.sampled_from([100, 250, 999]),
        st.sampled_from(["EUR", "USD"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(credits=_CREDITS)
def test_any_sequence_of_credits_keeps_what_a_model_of_first_writes_keeps(
    tables: Tables, credits: list[tuple[str, str, int, str]]
) -> None:
    # One table for every example: each example's customers and entry ids are its own.
    run = next(_RUNS)
    ledger = DynamoStoreCreditLedger(tables.refunds_table, dynamodb=tables.client, now=SteppingClock())
    first: dict[str, tuple[str, int, str]] = {}
    for entry_id, customer, minor_units, currency in credits:
        entry_id, customer = f"run{run}-{entry_id}", f"{customer}-{run}"
        asked = (customer, minor_units, currency)
        if entry_id in first and first[entry_id] != asked:
            with pytest.raises(IdempotencyConflict):
                ledger.credit(customer, Money.of(minor_units, currency), entry_id, "rf_1")
            continue
        entry = ledger.credit(customer, Money.of(minor_units, currency), entry_id, "rf_1")
        first.setdefault(entry_id, asked)
        assert (entry.customer_key, entry.amount.minor_units, entry.amount.currency) == first[entry_id]
    # THEN each balance is the sum of the first write of each entry id, and the entries are those writes
    for customer in (f"{ANNA}-{run}", f"{BEN}-{run}"):
        for currency in ("EUR", "USD"):
            expected = sum(m for c, m, cur in first.values() if (c, cur) == (customer, currency))
            assert ledger.balance(customer, currency) == Money.of(expected, currency)
        stored = {entry.entry_id for entry in ledger.entries(customer)}
        assert stored == {entry_id for entry_id, (c, _, _) in first.items() if c == customer}
