"""Business Central's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

from local.simulators.dynamics import BusinessCentralSimulator
from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.platforms.dynamics.conftest import make_books


class TestDynamicsBooksConformance(BooksSuite):
    pass


def test_a_split_refund_has_a_memo_line_per_leg_and_a_journal_line_per_clearing_account(
    simulator: BusinessCentralSimulator, served: tuple[BusinessCentralSimulator, str]
) -> None:
    # GIVEN Business Central paying Stripe refunds from 2920 and PayPal's from 2910
    books = make_books(simulator, served[1], clearing_accounts={"stripe:*": "2920"})
    harness = BooksHarness(name="dynamics", connector=books, sandbox=simulator, currency="EUR")
    booking = harness.split_booking(simulator.seed_invoice(10_000, "EUR", paid=True))
    # WHEN it is recorded, twice
    books.record_credit(booking)
    document = books.record_credit(booking)
    # THEN the posted memo has one line per leg, naming it; each cash leg is paid out from its own account once
    (memo,) = [item for item in simulator.documents() if item["id"] == document.document_id]
    assert [line["description"].split(" [")[0] for line in memo["salesCreditMemoLines"]] == [
        leg.words() for leg in booking.legs
    ]
    number = memo["number"]
    paid = {
        account: [
            str(entry["debitAmount"] or entry["creditAmount"])
            for entry in simulator.entries(account)
            if entry["documentNumber"] == number
        ]
        for account in ("2920", "2910")
    }
    assert paid == {"2920": ["12.00"], "2910": ["8.00"]}
    assert (document.cash_refunded.minor_units, document.total.minor_units) == (2_000, 2_500)
