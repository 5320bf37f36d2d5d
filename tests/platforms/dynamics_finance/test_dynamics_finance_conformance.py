"""Dynamics 365 Finance's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

from local.simulators.dynamics_finance import DynamicsFinanceSimulator
from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.platforms.dynamics_finance.conftest import make_books


class TestDynamicsFinanceBooksConformance(BooksSuite):
    pass


def test_a_split_refund_pays_each_cash_leg_by_a_journal_of_its_own(
    simulator: DynamicsFinanceSimulator, url: str
) -> None:
    # GIVEN Finance paying PayPal refunds from main account 110181 (everything else from 110180)
    books = make_books(simulator, url, clearing_accounts={"paypal:*": "110181"})
    harness = BooksHarness(name="dynamics_finance", connector=books, sandbox=simulator, currency="USD")
    booking = harness.split_booking(simulator.seed_invoice(10_000, "USD", paid=True))
    # WHEN it is recorded, twice
    books.record_credit(booking)
    document = books.record_credit(booking)
    # THEN one payment journal per cash leg (one line each, so the posting batch never posts half of one), offset by
    # the leg's provider's clearing account and naming the leg; the store credit stays on the credit note
    journals = sorted(
        (journal for journal in simulator.payment_journals() if journal["Description"].startswith(booking.refund_id)),
        key=lambda journal: str(journal["Description"]),
    )
    assert [journal["Description"] for journal in journals] == [
        f"{booking.refund_id} leg 1",
        f"{booking.refund_id} leg 2",
    ]
    lines = [
        (line["OffsetAccountDisplayValue"], str(line["DebitAmount"]), line["TransactionText"])
        for journal in journals
        for line in journal["Lines"]
    ]
    assert lines == [("110180", "12.00", booking.legs[0].words()), ("110181", "8.00", booking.legs[1].words())]
    assert (document.cash_refunded.minor_units, document.total.minor_units) == (2_000, 2_500)
