"""NetSuite's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

from local.simulators.netsuite import BANK_ACCOUNT, CLEARING_ACCOUNT
from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.platforms.netsuite.conftest import Wired, wire


class TestNetSuiteBooksConformance(BooksSuite):
    pass


def test_a_split_refund_pays_each_cash_leg_by_a_customer_refund_of_its_own(wired: Wired) -> None:
    # GIVEN NetSuite paying Stripe refunds from the Stripe clearing account and PayPal's from the checking account
    books = wire(wired.simulator, wired.url, clearing_accounts={"stripe:*": CLEARING_ACCOUNT}).books
    harness = BooksHarness(name="netsuite", connector=books, sandbox=wired.simulator)
    booking = harness.split_booking(wired.simulator.seed_invoice(10_000, "USD", paid=True))
    # WHEN it is recorded, twice
    books.record_credit(booking)
    document = books.record_credit(booking)
    # THEN the credit memo is paid out by one customer refund per cash leg (externalId <refund id>-leg<N>), each
    # from its provider's account, the store credit left unapplied on the memo
    (memo,) = [item for item in wired.simulator.documents() if item["externalId"] == booking.refund_id]
    refunds = sorted(
        (refund["externalId"], refund["account"]["id"], str(refund["total"])) for refund in memo["customerRefunds"]
    )
    assert refunds == [
        (f"{booking.refund_id}-leg1", CLEARING_ACCOUNT, "12.00"),
        (f"{booking.refund_id}-leg2", BANK_ACCOUNT, "8.00"),
    ]
    assert (document.cash_refunded.minor_units, document.total.minor_units) == (2_000, 2_500)
    assert booking.legs_in_words() in memo["memo"]
    # AND the document is found again with both refunds
    found = books.find_credit_document(booking)
    assert found is not None
    assert found.cash_refunded == document.cash_refunded
