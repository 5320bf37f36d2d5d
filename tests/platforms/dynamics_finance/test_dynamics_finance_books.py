"""Dynamics 365 Finance's own behaviour against its simulator: the posting batch (pending until posted), the payment
journal of a paid invoice, the resume after a crash between steps, the legal entity on every call, error mapping,
throttling and the Entra ID token cache."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.dynamics_finance import DynamicsFinanceSimulator
from refundflow.errors import NotFound, RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import BooksSystem, CreditDocumentState, CustomerContact, InvoiceReference, PaymentProvider
from refundflow.money import Money
from refundflow.platforms.dynamics_finance.connector import DynamicsFinanceBooks
from refundflow.ports import CreditBooking
from tests.platforms.dynamics_finance.conftest import make_books


def booking_for(
    invoice_id: str,
    minor_units: int,
    currency: str = "USD",
    *,
    provider: PaymentProvider = PaymentProvider.STRIPE,
    booking_date: date | None = None,
) -> CreditBooking:
    refund_id = derive_refund_id("finance-test", uuid.uuid4().hex)
    return CreditBooking(
        refund_id=refund_id,
        invoice=InvoiceReference(system=BooksSystem.DYNAMICS_FINANCE, invoice_id=invoice_id),
        amount=Money.of(minor_units, currency),
        customer=CustomerContact(email="ada@example.com", name="Ada Lovelace"),
        booking_date=booking_date or date.today(),
        reference="RMA-77",
        payment_provider=provider,
        idempotency_key=idempotency_key(refund_id, "books"),
        external_reference=refund_id,
    )


def batch_mode(url: str, *, auto: bool) -> None:
    requests.post(f"{url}/_control/posting-batch", json={"auto": auto}, timeout=5).raise_for_status()


def run_batch(url: str) -> int:
    answer = requests.post(f"{url}/_control/posting-batch", json={}, timeout=5)
    answer.raise_for_status()
    return int(answer.json()["posted"])


def writes(simulator: DynamicsFinanceSimulator, entity_set: str) -> list[dict[str, object]]:
    return [
        json.loads(seen["body"], parse_float=Decimal)
        for seen in simulator.requests_seen
        if seen["method"] == "POST" and seen["path"] == f"/data/{entity_set}"
    ]


# ---------------------------------------------------------------- the posting batch


def test_a_credit_note_waits_for_the_posting_batch_and_is_never_written_twice(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks, url: str
) -> None:
    # GIVEN the merchant's posting batch runs on its own schedule (not since our write)
    batch_mode(url, auto=False)
    invoice = simulator.seed_invoice(10_000, "USD")
    booking = booking_for(invoice, 2_500)
    # WHEN the refund is booked THEN it waits (books-retry wait), the credit note written but not posted
    with pytest.raises(TransientError) as raised:
        books.record_credit(booking)
    assert raised.value.code == "finance_posting_pending"
    assert raised.value.retry_after_seconds == 900
    # (Finance posts only into an open ledger period: the message says where to look when the batch cannot post it)
    assert f"check the period of {booking.booking_date.isoformat()}" in raised.value.message
    with pytest.raises(TransientError):
        books.record_credit(booking)
    assert len(simulator.documents()) == 1
    assert len(simulator.documents()[0]["Lines"]) == 1
    # WHEN the batch has posted it THEN the retry reads it back posted and set against the invoice
    assert run_batch(url) == 1
    document = books.record_credit(booking)
    assert document.state is CreditDocumentState.POSTED
    assert document.allocated_to_invoice == Money.of(2_500, "USD")
    assert document.number == simulator.documents()[0]["InvoiceId"]
    assert simulator.invoice_transaction(invoice)["SettleAmountCur"] == Decimal("25.00")
    assert len(writes(simulator, "FreeTextInvoiceHeaders")) == 1


def test_with_the_record_policy_the_pending_credit_note_completes_the_refund(
    simulator: DynamicsFinanceSimulator, url: str
) -> None:
    # GIVEN DYNAMICS_FINANCE_PENDING_POLICY=record and a batch that has not run
    batch_mode(url, auto=False)
    books = make_books(simulator, url, pending_policy="record")
    booking = booking_for(simulator.seed_invoice(10_000, "USD"), 2_500)
    # WHEN booked THEN the credit note is recorded as pending, nothing allocated yet
    document = books.record_credit(booking)
    assert document.state is CreditDocumentState.PENDING
    assert document.allocated_to_invoice == Money.zero("USD")
    assert document.external_reference == booking.external_reference
    # AND once posted, the find reads it posted
    run_batch(url)
    found = books.find_credit_document(booking)
    assert found is not None
    assert found.state is CreditDocumentState.POSTED
    assert found.document_id == document.document_id


# ---------------------------------------------------------------- the credit note and the cash refund


def test_the_credit_note_is_a_negative_gross_line_for_the_invoice_customer_in_the_legal_entity(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks
) -> None:
    invoice = simulator.seed_invoice(10_000, "USD")
    booking = booking_for(invoice, 1_234)
    books.record_credit(booking)
    (header,) = writes(simulator, "FreeTextInvoiceHeaders")
    (line,) = writes(simulator, "FreeTextInvoiceLines")
    customer = simulator.invoice_transaction(invoice)["AccountNum"]
    assert header == {
        "dataAreaId": "usmf",
        "CustomerAccount": customer,
        "InvoiceDate": f"{booking.booking_date.isoformat()}T12:00:00Z",
        "CurrencyCode": "USD",
        "CustomerReference": booking.external_reference,
        "InclTax": "Yes",
        "CustomerRequisition": invoice,
    }
    assert line["UnitPrice"] == Decimal("-12.34")
    assert line["Quantity"] == 1
    assert line["MainAccountDisplayValue"] == "401100"
    assert line["ParentRecId"] == simulator.documents()[0]["InvoiceIdentifier"]


def test_a_paid_invoice_is_paid_out_by_a_payment_journal_marked_against_the_credit_note(
    simulator: DynamicsFinanceSimulator, url: str
) -> None:
    # GIVEN clearing accounts per provider and currency
    books = make_books(simulator, url, clearing_account="", clearing_accounts={"adyen:USD": "110180"})
    invoice = simulator.seed_invoice(10_000, "USD", paid=True)
    booking = booking_for(invoice, 4_000, provider=PaymentProvider.ADYEN)
    # WHEN booked
    document = books.record_credit(booking)
    # THEN the credit note is not set against the paid invoice; the journal pays it out from Adyen's clearing account
    (journal,) = simulator.payment_journals()
    (line,) = journal["Lines"]
    note = simulator.documents()[0]
    assert note["CustomerRequisition"] == ""
    assert journal["Description"] == booking.external_reference
    assert journal["IsPosted"] == "Yes"
    assert (line["DebitAmount"], line["CreditAmount"]) == (Decimal("40.00"), Decimal(0))
    assert line["MarkedInvoice"] == note["InvoiceId"]
    assert (line["OffsetAccountType"], line["OffsetAccountDisplayValue"]) == ("Ledger", "110180")
    assert document.cash_refunded == Money.of(4_000, "USD")
    assert document.payment_id == journal["JournalBatchNumber"]
    # AND the credit note's own transaction is settled by the payment
    assert simulator.invoice_transaction(note["InvoiceId"])["SettleAmountCur"] == Decimal("-40.00")


def test_a_paid_invoice_without_a_clearing_account_is_refused_before_anything_is_written(
    simulator: DynamicsFinanceSimulator, url: str
) -> None:
    books = make_books(simulator, url, clearing_account="")
    with pytest.raises(RejectedError, match="no clearing account is configured for stripe refunds in USD") as raised:
        books.record_credit(booking_for(simulator.seed_invoice(5_000, "USD", paid=True), 5_000))
    assert raised.value.code == "no_clearing_account"
    assert simulator.documents() == []


# ---------------------------------------------------------------- resume after a crash between steps


def test_a_crash_between_the_header_and_its_line_resumes_with_the_line(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks
) -> None:
    booking = booking_for(simulator.seed_invoice(10_000, "USD"), 3_000)
    simulator.add_fault(FaultRule(method="POST", path=r"^/data/FreeTextInvoiceLines$", status=503))
    with pytest.raises(TransientError):
        books.record_credit(booking)
    assert [len(note["Lines"]) for note in simulator.documents()] == [0]
    document = books.record_credit(booking)
    assert document.state is CreditDocumentState.POSTED
    assert [len(note["Lines"]) for note in simulator.documents()] == [1]
    assert len(writes(simulator, "FreeTextInvoiceHeaders")) == 1


def test_a_crash_between_the_journal_and_its_line_resumes_in_the_same_journal(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks
) -> None:
    booking = booking_for(simulator.seed_invoice(6_000, "USD", paid=True), 6_000)
    simulator.add_fault(FaultRule(method="POST", path=r"^/data/CustomerPaymentJournalLines$", status=500))
    with pytest.raises(TransientError):
        books.record_credit(booking)
    document = books.record_credit(booking)
    assert document.cash_refunded == Money.of(6_000, "USD")
    assert len(simulator.payment_journals()) == 1
    assert len(simulator.payment_journals()[0]["Lines"]) == 1
    assert len(simulator.documents()) == 1


def test_a_credit_note_changed_by_hand_so_it_no_longer_totals_the_refund_goes_to_a_person(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks, url: str
) -> None:
    # GIVEN a credit note waiting for the batch, whose prices-include-tax switch a person turned off
    batch_mode(url, auto=False)
    booking = booking_for(simulator.seed_invoice(10_000, "USD"), 2_000)
    with pytest.raises(TransientError):
        books.record_credit(booking)
    with simulator.lock:
        simulator.notes[0]["InclTax"] = "No"
    # WHEN retried THEN it is refused in words, never posted over
    with pytest.raises(RejectedError, match=r"totals 24\.00 USD including tax, the refund is 20\.00 USD") as raised:
        books.record_credit(booking)
    assert raised.value.code == "finance_total_mismatch"


# ---------------------------------------------------------------- refusals in an accountant's words


def test_a_closed_period_is_refused_as_closed_period(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks
) -> None:
    simulator.closed_before = date.today()
    booking = booking_for(simulator.seed_invoice(10_000, "USD"), 1_000, booking_date=date.today() - timedelta(days=40))
    with pytest.raises(RejectedError, match="is closed") as raised:
        books.record_credit(booking)
    assert raised.value.code == "closed_period"
    assert simulator.documents() == []


def test_an_invoice_in_another_currency_is_refused_before_anything_is_written(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks
) -> None:
    with pytest.raises(RejectedError, match="is in EUR, the refund in USD") as raised:
        books.record_credit(booking_for(simulator.seed_invoice(10_000, "EUR"), 1_000))
    assert raised.value.code == "currency_mismatch"
    assert simulator.documents() == []


def test_an_unknown_invoice_is_not_found(books: DynamicsFinanceBooks) -> None:
    with pytest.raises(NotFound, match="CIV-999999"):
        books.record_credit(booking_for("CIV-999999", 1_000))


def test_finances_infolog_is_carried_to_the_refusal(simulator: DynamicsFinanceSimulator, url: str) -> None:
    books = make_books(simulator, url, refund_account="999999")
    with pytest.raises(RejectedError) as raised:
        books.record_credit(booking_for(simulator.seed_invoice(10_000, "USD"), 1_000))
    assert raised.value.code == "finance_validation"
    assert "Main account 999999 does not exist." in raised.value.message
    assert "An error has occurred" not in raised.value.message


def test_throttling_is_transient_with_finances_retry_after(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks
) -> None:
    simulator.add_fault(FaultRule(method="GET", path=r"^/data/SalesInvoiceHeadersV2$", status=429))
    with pytest.raises(TransientError) as raised:
        books.record_credit(booking_for(simulator.seed_invoice(10_000, "USD"), 1_000))
    assert raised.value.code == "finance_throttled"
    assert raised.value.retry_after_seconds == 7


# ---------------------------------------------------------------- the legal entity


def test_every_read_is_cross_company_and_filtered_on_the_merchants_legal_entity(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks
) -> None:
    books.record_credit(booking_for(simulator.seed_invoice(10_000, "USD"), 1_000))
    reads = [parse_qs(seen["query"]) for seen in simulator.requests_seen if seen["method"] == "GET"]
    assert reads
    for query in reads:
        assert query["cross-company"] == ["true"]
        assert query["$filter"][0].startswith("dataAreaId eq 'usmf' and ")


def test_without_cross_company_finance_shows_the_users_default_company_only(
    simulator: DynamicsFinanceSimulator, url: str
) -> None:
    # GIVEN an invoice in USMF, the app user's default company being DAT (the simulator's, as in Finance)
    invoice = simulator.seed_invoice(10_000, "USD")
    token = make_books(simulator, url)._tokens.access_token()
    headers = {"Authorization": f"Bearer {token}"}
    query = f"dataAreaId eq 'usmf' and InvoiceNumber eq '{invoice}'"
    plain = requests.get(f"{url}/data/SalesInvoiceHeadersV2", params={"$filter": query}, headers=headers, timeout=5)
    cross = requests.get(
        f"{url}/data/SalesInvoiceHeadersV2",
        params={"$filter": query, "cross-company": "true"},
        headers=headers,
        timeout=5,
    )
    assert plain.json()["value"] == []
    assert [row["InvoiceNumber"] for row in cross.json()["value"]] == [invoice]


# ---------------------------------------------------------------- Entra ID


def test_the_token_is_for_the_environment_cached_and_fetched_again_after_a_401(
    simulator: DynamicsFinanceSimulator, books: DynamicsFinanceBooks
) -> None:
    books.record_credit(booking_for(simulator.seed_invoice(10_000, "USD"), 1_000))
    assert simulator.token_grants == 1
    simulator.revoke_tokens()
    books.record_credit(booking_for(simulator.seed_invoice(10_000, "USD"), 1_000))
    assert simulator.token_grants == 2
    grant = next(seen for seen in simulator.requests_seen if seen["path"].endswith("/oauth2/v2.0/token"))
    assert parse_qs(grant["body"])["scope"] == [f"{simulator.resource}/.default"]


def test_a_wrong_client_secret_is_refused_for_good(simulator: DynamicsFinanceSimulator, url: str) -> None:
    books = make_books(simulator, url, client_secret="wrong")
    with pytest.raises(RejectedError, match="AADSTS7000215") as raised:
        books.record_credit(booking_for(simulator.seed_invoice(1_000, "USD"), 1_000))
    assert raised.value.code == "dynamics_finance_credentials"
    assert simulator.documents() == []


# ---------------------------------------------------------------- the simulator is as strict as Finance


def test_the_simulator_refuses_what_finance_refuses(simulator: DynamicsFinanceSimulator, url: str) -> None:
    token = make_books(simulator, url)._tokens.access_token()
    headers = {"Authorization": f"Bearer {token}"}
    # no token: 401
    assert requests.get(f"{url}/data/FreeTextInvoiceHeaders", timeout=5).status_code == 401
    # entity set names are case sensitive
    assert requests.get(f"{url}/data/freetextinvoiceheaders", headers=headers, timeout=5).status_code == 404
    # an unknown property is refused in OData's error shape
    answer = requests.post(
        f"{url}/data/FreeTextInvoiceHeaders", json={"dataAreaId": "usmf", "Amount": 1}, headers=headers, timeout=5
    )
    assert answer.status_code == 400
    assert "The property 'Amount' does not exist" in answer.json()["error"]["innererror"]["message"]
    # a legal entity that does not exist is refused
    answer = requests.post(f"{url}/data/FreeTextInvoiceHeaders", json={"dataAreaId": "zzz"}, headers=headers, timeout=5)
    assert "Company 'zzz' does not exist." in answer.json()["error"]["innererror"]["message"]
    assert simulator.documents() == []
