"""The books conformance suite: what every books connector and its simulator must do, under the capabilities the
platform declares in the catalog.

A platform runs it from ``tests/platforms/<name>/`` with a ``harness`` fixture yielding a BooksHarness and
``class TestXeroBooksConformance(BooksSuite): pass``.

What it checks: the capabilities record is the catalog's; a credit document of a declared kind is recorded for
the booking's amount and linked to the invoice (allocated while the invoice owes, paid out in cash from the
clearing account once it is paid); recording the same booking again never books twice; the document is found by
our external reference where declared; amounts the profile refuses are never written; a transient failure is
transient and an answer lost after the work is retried into the one document.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date

import pytest

from local.simulators.base import BooksSandbox
from refundflow import catalog
from refundflow.errors import (
    AmountNotRepresentable,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import (
    BooksSystem,
    CreditDocumentState,
    CustomerContact,
    InvoiceReference,
    PaymentProvider,
    TenderKind,
)
from refundflow.money import Money
from refundflow.ports import BooksConnector, CreditBooking, CreditLeg


@dataclass
class BooksHarness:
    """A books connector wired to its simulator."""

    name: str
    connector: BooksConnector
    sandbox: BooksSandbox
    currency: str = "USD"
    # False: the books cannot pay out part of one document (SAP's payment run pays a credit memo whole), so a split
    # refund with store credit leaves the whole credit open on the customer's account for a person to clear.
    pays_out_split_cash: bool = True

    def booking(self, invoice_id: str, minor_units: int, currency: str | None = None) -> CreditBooking:
        refund_id = derive_refund_id("conformance", uuid.uuid4().hex)
        return CreditBooking(
            refund_id=refund_id,
            invoice=InvoiceReference(system=BooksSystem(self.name), invoice_id=invoice_id),
            amount=Money.of(minor_units, currency or self.currency),
            customer=CustomerContact(email="ada@example.com", name="Ada Lovelace"),
            booking_date=date.today(),
            reference="RMA-CONFORMANCE",
            payment_provider=PaymentProvider.STRIPE,
            idempotency_key=idempotency_key(refund_id, "books"),
            external_reference=refund_id,
        )

    def split_booking(self, invoice_id: str) -> CreditBooking:
        """A split-tender parent of 25.00 (in minor units of two-decimal currencies): 12.00 back to a card
        (Stripe), 8.00 to a PayPal wallet, 5.00 kept as store credit."""
        single = self.booking(invoice_id, 2_500)
        tag = single.refund_id[-8:]
        legs = [
            CreditLeg(
                index=0,
                kind=TenderKind.CARD,
                payment_provider=PaymentProvider.STRIPE,
                amount=Money.of(1_200, self.currency),
                provider_refund_id=f"re_card{tag}",
            ),
            CreditLeg(
                index=1,
                kind=TenderKind.WALLET,
                payment_provider=PaymentProvider.PAYPAL,
                amount=Money.of(800, self.currency),
                provider_refund_id=f"PAYPAL{tag}",
            ),
            CreditLeg(
                index=2, kind=TenderKind.STORE_CREDIT, payment_provider=None, amount=Money.of(500, self.currency)
            ),
        ]
        return single.model_copy(update={"legs": legs})

    def documents_naming(self, refund_id: str) -> list[str]:
        """The documents the books hold that carry ``refund_id`` (anywhere: reference, memo, external id), as JSON."""
        shown = [json.dumps(document, default=str, sort_keys=True) for document in self.sandbox.documents()]
        return [text for text in shown if refund_id in text or refund_id.upper() in text]

    def document_count(self) -> int:
        return len(self.sandbox.documents())


class BooksSuite:
    """Subclass it in a platform's tests with a ``harness`` fixture yielding a BooksHarness."""

    def test_the_capabilities_are_the_catalogs(self, harness: BooksHarness) -> None:
        declared = catalog.books_capabilities(harness.name)
        actual = harness.connector.capabilities
        assert harness.connector.name == harness.name
        assert actual.model_dump(exclude={"currencies"}) == declared.model_dump(exclude={"currencies"})
        assert actual.currencies.model_dump(exclude={"platform"}) == declared.currencies.model_dump(
            exclude={"platform"}
        )

    def test_the_simulator_offers_the_sandbox_control(self, harness: BooksHarness) -> None:
        assert isinstance(harness.sandbox, BooksSandbox)
        assert "api" in harness.sandbox.local_secrets()

    def test_an_unpaid_invoice_is_credited_by_allocation(self, harness: BooksHarness) -> None:
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency)
        booking = harness.booking(invoice_id, 2_500)
        document = harness.connector.record_credit(booking)
        assert document.kind in harness.connector.capabilities.document_kinds
        assert document.state is CreditDocumentState.POSTED
        assert (document.total, document.allocated_to_invoice) == (booking.amount, booking.amount)
        assert document.cash_refunded == Money.zero(harness.currency)
        assert booking.external_reference in (document.external_reference or "")

    def test_a_paid_invoice_is_credited_by_a_cash_refund(self, harness: BooksHarness) -> None:
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency, paid=True)
        booking = harness.booking(invoice_id, 2_500)
        document = harness.connector.record_credit(booking)
        assert (document.total, document.cash_refunded) == (booking.amount, booking.amount)
        assert document.allocated_to_invoice == Money.zero(harness.currency)
        assert document.payment_id is not None

    def test_recording_the_same_booking_again_books_once(self, harness: BooksHarness) -> None:
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency)
        before = harness.document_count()
        booking = harness.booking(invoice_id, 2_500)
        first = harness.connector.record_credit(booking)
        again = harness.connector.record_credit(booking)
        assert again.document_id == first.document_id
        assert harness.document_count() == before + 1

    def test_find_answers_only_where_declared(self, harness: BooksHarness) -> None:
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency)
        booking = harness.booking(invoice_id, 2_500)
        if not harness.connector.capabilities.find_by_reference:
            with pytest.raises(UnsupportedOperation):
                harness.connector.find_credit_document(booking)
            return
        assert harness.connector.find_credit_document(booking) is None
        recorded = harness.connector.record_credit(booking)
        found = harness.connector.find_credit_document(booking)
        assert found is not None
        assert found.document_id == recorded.document_id
        assert harness.connector.find_credit_document(harness.booking(invoice_id, 2_500)) is None

    def test_what_the_profile_refuses_is_never_written(self, harness: BooksHarness) -> None:
        profile = harness.connector.capabilities.currencies
        # a three-decimal amount whose last digit the books cannot keep, when the profile says so
        if profile.representable(Money.of(1_235, "KWD")) is None:
            pytest.skip("the books keep every KWD digit")
        invoice_id = harness.sandbox.seed_invoice(10_000, "KWD")
        before = harness.document_count()
        with pytest.raises((AmountNotRepresentable, RejectedError)):
            harness.connector.record_credit(harness.booking(invoice_id, 1_235, "KWD"))
        assert harness.document_count() == before

    def test_a_transient_failure_is_transient_and_the_retry_books_once(self, harness: BooksHarness) -> None:
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency)
        before = harness.document_count()
        booking = harness.booking(invoice_id, 2_500)
        harness.sandbox.inject_fault("record_credit", "transient")
        with pytest.raises(TransientError):
            harness.connector.record_credit(booking)
        harness.connector.record_credit(booking)
        assert harness.document_count() == before + 1

    def test_an_answer_lost_after_the_work_is_retried_into_the_one_document(self, harness: BooksHarness) -> None:
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency)
        before = harness.document_count()
        booking = harness.booking(invoice_id, 2_500)
        harness.sandbox.inject_fault("record_credit", "timeout_after_commit")
        with pytest.raises((TransientError, OutcomeUnknownError)):
            harness.connector.record_credit(booking)
        if harness.connector.capabilities.find_by_reference:
            found = harness.connector.find_credit_document(booking)
            assert found is not None
        document = harness.connector.record_credit(booking)
        assert document.total == booking.amount
        assert harness.document_count() == before + 1

    def test_a_split_refund_books_every_leg_once(self, harness: BooksHarness) -> None:
        # GIVEN a paid invoice and a split-tender parent: a card leg, a PayPal leg and a store-credit leg
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency, paid=True)
        before = harness.document_count()
        booking = harness.split_booking(invoice_id)
        # WHEN it is recorded, and recorded again (a retry)
        first = harness.connector.record_credit(booking)
        recorded = harness.documents_naming(booking.refund_id)
        again = harness.connector.record_credit(booking)
        # THEN the refund's documents are written once (QuickBooks: a memo for the store credit and a receipt for
        # the cash, one refund): the cash legs paid out, the store credit left as credit
        assert again.document_id == first.document_id
        assert recorded
        assert harness.documents_naming(booking.refund_id) == recorded
        assert harness.document_count() == before + len(recorded)
        cash = Money.of(2_000, harness.currency) if harness.pays_out_split_cash else Money.zero(harness.currency)
        assert (first.total, first.cash_refunded, again.cash_refunded) == (booking.amount, cash, cash)
        assert first.allocated_to_invoice == Money.zero(harness.currency)
        if harness.pays_out_split_cash:
            assert first.total - first.cash_refunded == booking.store_credit == Money.of(500, harness.currency)
        # AND the books show every leg (each provider refund id, and the store credit)
        shown = json.dumps(harness.sandbox.documents(), default=str).lower()
        for leg in booking.legs:
            assert (leg.provider_refund_id or "store credit").lower() in shown

    def test_a_split_refund_whose_legs_do_not_add_up_is_never_written(self, harness: BooksHarness) -> None:
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency, paid=True)
        before = harness.document_count()
        booking = harness.split_booking(invoice_id)
        short = booking.model_copy(update={"legs": booking.legs[:2]})
        with pytest.raises(RejectedError) as refused:
            harness.connector.record_credit(short)
        assert refused.value.code == "legs_mismatch"
        assert harness.document_count() == before

    def test_a_split_refund_of_an_invoice_that_still_owes_is_booked_once(self, harness: BooksHarness) -> None:
        # GIVEN an invoice that still owes more than the refund, and a split-tender parent
        invoice_id = harness.sandbox.seed_invoice(10_000, harness.currency)
        booking = harness.split_booking(invoice_id)
        # WHEN it is recorded twice
        first = harness.connector.record_credit(booking)
        recorded = harness.documents_naming(booking.refund_id)
        again = harness.connector.record_credit(booking)
        # THEN once, for the whole refund: what the invoice owes is credited, nothing beyond the store credit is
        # left unsettled
        assert again.document_id == first.document_id
        assert harness.documents_naming(booking.refund_id) == recorded
        assert first.total == booking.amount
        settled = first.allocated_to_invoice + first.cash_refunded
        if harness.pays_out_split_cash:
            assert booking.amount - booking.store_credit <= settled <= booking.amount
