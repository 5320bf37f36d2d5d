"""Xero's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.xero import XeroSimulator
from refundflow.connectors.http import HttpClient
from refundflow.platforms.xero.connector import XeroBooks, XeroTokenSource
from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.support.servers import serve_wsgi


class SecretStore:
    """The function's view of its rotated-in-place secret."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = dict(value)

    def load(self, force: bool) -> dict[str, Any]:
        return dict(self.value)

    def save(self, value: dict[str, Any]) -> None:
        self.value = dict(value)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[XeroSimulator, str]]:
    simulator = XeroSimulator()
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def harness(served: tuple[XeroSimulator, str]) -> BooksHarness:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    timeout = (1.0, 1.5)
    store = SecretStore(simulator.local_secrets()["api"])
    tokens = XeroTokenSource(
        identity_base=f"{url}/identity",
        load_secret=store.load,
        save_secret=store.save,
        http=HttpClient(platform="xero", base_url=f"{url}/identity", timeout=timeout),
    )
    books = XeroBooks(
        tokens=tokens,
        api_base=f"{url}/api.xro/2.0",
        http=HttpClient(platform="xero", base_url=f"{url}/api.xro/2.0", timeout=timeout),
    )
    return BooksHarness(name="xero", connector=books, sandbox=simulator)


class TestXeroBooksConformance(BooksSuite):
    pass


def test_a_split_refund_pays_each_cash_leg_from_its_providers_clearing_account(
    served: tuple[XeroSimulator, str], harness: BooksHarness
) -> None:
    # GIVEN Xero books paying PayPal refunds from account 091 (everything else from 090)
    simulator, url = served
    assert isinstance(harness.connector, XeroBooks)
    books = XeroBooks(
        tokens=harness.connector._tokens,
        api_base=f"{url}/api.xro/2.0",
        clearing_accounts={"paypal:*": "091"},
        http=HttpClient(platform="xero", base_url=f"{url}/api.xro/2.0", timeout=(1.0, 1.5)),
    )
    booking = harness.split_booking(simulator.seed_invoice(10_000, "USD", paid=True))
    # WHEN the split refund is recorded, twice
    books.record_credit(booking)
    books.record_credit(booking)
    # THEN one credit note: a payment per cash leg from its own account, naming the leg; the store credit left on it
    (note,) = [note for note in simulator.booked() if note["Reference"].startswith(booking.refund_id)]
    payments = sorted(
        (payment["Account"], str(payment["Amount"]), payment["Reference"]) for payment in note["Payments"]
    )
    assert [(account, amount) for account, amount, _ in payments] == [("090", "12.00"), ("091", "8.00")]
    assert [reference.removeprefix(f"{booking.refund_id} ") for _, _, reference in payments] == [
        leg.words() for leg in booking.cash_legs()
    ]
    assert "leg 3 store credit 5.00 USD" in note["Reference"]
    (shown,) = [item for item in simulator.documents() if item["CreditNoteID"] == note["CreditNoteID"]]
    assert str(shown["RemainingCredit"]) == "5.00"
