"""Zoho Books' connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

from local.simulators.zoho_books import BANK_ACCOUNT_ID, CLEARING_ACCOUNT_ID, ZohoBooksSimulator
from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.platforms.zoho_books.conftest import SecretStore, build_books


class TestZohoBooksBooksConformance(BooksSuite):
    pass


def test_a_split_refund_refunds_each_cash_leg_from_its_providers_account(
    served: tuple[ZohoBooksSimulator, str], store: SecretStore
) -> None:
    # GIVEN Zoho Books paying PayPal refunds from the bank account (everything else from the clearing account)
    simulator, url = served
    books = build_books(url, store, clearing_accounts={"paypal:*": BANK_ACCOUNT_ID})
    harness = BooksHarness(name="zoho_books", connector=books, sandbox=simulator)
    booking = harness.split_booking(simulator.seed_invoice(10_000, "USD", paid=True))
    # WHEN it is recorded, twice
    books.record_credit(booking)
    books.record_credit(booking)
    # THEN one credit note: a refund per cash leg from its own account, naming the leg; 5.00 left as credit
    (note,) = [note for note in simulator.documents() if note["reference_number"] == booking.refund_id]
    refunds = [(row["from_account_id"], str(row["amount"]), row["description"]) for row in note["creditnote_refunds"]]
    assert refunds == [
        (CLEARING_ACCOUNT_ID, "12.00", f"Refund {booking.reference} {booking.legs[0].words()}"),
        (BANK_ACCOUNT_ID, "8.00", f"Refund {booking.reference} {booking.legs[1].words()}"),
    ]
    assert str(note["balance"]) == "5.00"
    assert booking.legs_in_words() in note["notes"]
