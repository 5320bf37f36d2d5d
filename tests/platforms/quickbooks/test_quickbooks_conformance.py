"""QuickBooks Online's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

import pytest

from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.platforms.quickbooks.conftest import Wired


@pytest.fixture
def harness(wired: Wired) -> BooksHarness:
    return BooksHarness(name="quickbooks", connector=wired.books, sandbox=wired.simulator)


class TestQuickBooksBooksConformance(BooksSuite):
    pass


def test_a_split_refund_keeps_its_store_credit_on_an_unapplied_memo_and_pays_each_cash_leg_by_receipt(
    harness: BooksHarness,
) -> None:
    # GIVEN a paid invoice and a split refund: 12.00 to a card (Stripe: account 92), 8.00 to PayPal (the refund
    # account, 35), 5.00 store credit
    booking = harness.split_booking(harness.sandbox.seed_invoice(10_000, "USD", paid=True))
    # WHEN it is recorded, twice
    harness.connector.record_credit(booking)
    document = harness.connector.record_credit(booking)
    # THEN a credit memo of the store credit, left unapplied (the customer's credit), and one refund receipt per cash
    # leg deposited from its provider's account; every document names every leg
    mine = [item for item in harness.sandbox.documents() if booking.refund_id in item["PrivateNote"]]
    assert sorted(
        (item["_type"], str(item["TotalAmt"]), (item.get("DepositToAccountRef") or {}).get("value")) for item in mine
    ) == [("CreditMemo", "5.00", None), ("RefundReceipt", "12.00", "92"), ("RefundReceipt", "8.00", "35")]
    (memo,) = [item for item in mine if item["_type"] == "CreditMemo"]
    assert str(memo.get("RemainingCredit", memo.get("Balance"))) == "5.00"
    for item in mine:
        assert booking.legs_in_words() in item["PrivateNote"]
    assert (document.cash_refunded.minor_units, document.allocated_to_invoice.minor_units) == (2_000, 0)
    found = harness.connector.find_credit_document(booking)
    assert found == document
