"""QuickBooks Online's own behaviour against its simulator: the documents' bodies, exact amounts, the resumable
credit memo and its application, OAuth2 rotation, and QuickBooks' faults in an accountant's words."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from local.simulators.base import FaultRule
from refundflow.errors import NotFound, RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import (
    BooksSystem,
    CreditDocumentKind,
    CustomerContact,
    InvoiceReference,
    PaymentProvider,
    RefundLine,
)
from refundflow.money import Money
from refundflow.ports import CreditBooking
from tests.platforms.quickbooks.conftest import Wired, wire


def booking(invoice_id: str, minor: int, currency: str = "USD", **changes: Any) -> CreditBooking:
    refund_id = derive_refund_id("qbo-test", uuid.uuid4().hex)
    fields: dict[str, Any] = {
        "refund_id": refund_id,
        "invoice": InvoiceReference(system=BooksSystem.QUICKBOOKS, invoice_id=invoice_id),
        "amount": Money.of(minor, currency),
        "customer": CustomerContact(email="ada@example.com"),
        "booking_date": date.today(),
        "reference": "RMA-7",
        "payment_provider": PaymentProvider.STRIPE,
        "idempotency_key": idempotency_key(refund_id, "books"),
        "external_reference": refund_id,
    }
    return CreditBooking(**{**fields, **changes})


def writes(wired: Wired, resource: str) -> list[dict[str, Any]]:
    seen = [r for r in wired.simulator.requests_seen if r["method"] == "POST" and r["path"].endswith(f"/{resource}")]
    return [{"query": parse_qs(r["query"]), "body": json.loads(r["body"], parse_float=Decimal)} for r in seen]


def test_a_paid_invoice_gets_a_refund_receipt_from_the_providers_clearing_account(wired: Wired) -> None:
    # GIVEN a paid EUR invoice and Stripe's EUR refunds paid from account 92
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR", paid=True)
    request = booking(invoice_id, 3_333, "EUR")

    # WHEN the refund is booked
    document = wired.books.record_credit(request)

    # THEN one refund receipt holds it, with the documented fields and the exact decimal amount
    assert document.kind is CreditDocumentKind.REFUND_RECEIPT
    assert (document.cash_refunded, document.payment_id) == (Money.of(3_333, "EUR"), document.document_id)
    (sent,) = writes(wired, "refundreceipt")
    body, query = sent["body"], sent["query"]
    invoice = wired.simulator.invoice(invoice_id)
    assert body["CustomerRef"] == {"value": invoice["CustomerRef"]["value"]}
    assert body["CurrencyRef"] == {"value": "EUR"}
    assert body["DepositToAccountRef"] == {"value": "92"}
    assert body["DocNumber"] == "RR" + request.refund_id[3:22]
    assert request.refund_id in body["PrivateNote"]
    assert "INV-" in body["PrivateNote"]
    assert body["GlobalTaxCalculation"] == "TaxInclusive"
    (line,) = body["Line"]
    assert line["Amount"] == Decimal("33.33")
    assert line["SalesItemLineDetail"] == {
        "ItemRef": {"value": "1"},
        "Qty": 1,
        "UnitPrice": Decimal("33.33"),
        "TaxCodeRef": {"value": "2"},
    }
    assert query["minorversion"] == ["75"]
    assert len(query["requestid"][0]) <= 50
    assert query["requestid"][0].startswith(request.idempotency_key)


def test_refund_lines_keep_exact_amounts_and_a_price_that_does_not_divide_becomes_one_unit(wired: Wired) -> None:
    # GIVEN a paid JPY invoice and a refund of two lines, one of 3 units for 1,000 yen
    invoice_id = wired.simulator.seed_invoice(5_000, "JPY", paid=True)
    lines = [
        RefundLine(description="Mugs", quantity=3, amount=Money.of(1_000, "JPY")),
        RefundLine(description="Plates", quantity=2, amount=Money.of(1_200, "JPY")),
    ]
    # WHEN it is booked
    document = wired.books.record_credit(booking(invoice_id, 2_200, "JPY", lines=lines))
    # THEN the lines are exact whole yen, the first as one unit of 1,000
    (sent,) = writes(wired, "refundreceipt")
    amounts = [
        (line["SalesItemLineDetail"]["Qty"], line["SalesItemLineDetail"]["UnitPrice"]) for line in sent["body"]["Line"]
    ]
    assert amounts == [(1, Decimal(1000)), (2, Decimal(600))]
    assert sent["body"]["Line"][0]["Description"] == "Mugs (x3)"
    assert document.total == Money.of(2_200, "JPY")


def test_a_crash_between_the_credit_memo_and_its_application_resumes_without_a_second_memo(wired: Wired) -> None:
    # GIVEN an unpaid invoice, and QuickBooks failing the application payment once
    invoice_id = wired.simulator.seed_invoice(10_000, "USD")
    request = booking(invoice_id, 4_000)
    wired.simulator.add_fault(FaultRule(method="POST", path=r"/payment$", status=503))
    with pytest.raises(TransientError):
        wired.books.record_credit(request)
    # the memo exists, not applied yet: found, but not settled
    found = wired.books.find_credit_document(request)
    assert found is not None
    assert found.allocated_to_invoice == Money.zero("USD")

    # WHEN the booking is recorded again
    document = wired.books.record_credit(request)

    # THEN the same memo is applied once and the invoice owes the rest
    assert document.document_id == found.document_id
    assert document.allocated_to_invoice == Money.of(4_000, "USD")
    assert document.allocation_id is not None
    assert len(writes(wired, "creditmemo")) == 1
    assert wired.simulator.invoice(invoice_id)["Balance"] == Decimal("60.00")
    # AND once more changes nothing
    again = wired.books.record_credit(request)
    assert again.allocated_to_invoice == Money.of(4_000, "USD")
    assert len(writes(wired, "payment")) == 2  # the failed one and the one that applied


def test_the_rotated_refresh_token_is_written_back_and_a_revoked_access_token_is_refreshed(wired: Wired) -> None:
    # GIVEN one booking done (the first token grant rotated the refresh token)
    invoice_id = wired.simulator.seed_invoice(10_000, "USD", paid=True)
    wired.books.record_credit(booking(invoice_id, 1_000))
    assert wired.store.value["refresh_token"] == wired.simulator.current_refresh_token
    assert len(wired.store.saved) == 1
    # WHEN QuickBooks stops accepting the access token
    wired.simulator.revoke_access_tokens()
    wired.books.record_credit(booking(invoice_id, 1_000))
    # THEN the connector refreshed once more and stored the newest refresh token again
    assert wired.simulator.token_grants == 2
    assert wired.store.value["refresh_token"] == wired.simulator.current_refresh_token


def test_a_token_rotated_by_another_process_is_read_again_from_the_secret(wired: Wired) -> None:
    # GIVEN another function instance that refreshed first (Intuit now refuses the token this one holds)
    other = wire(wired.simulator, wired.url)
    other.tokens.access_token()
    wired.store.newer = dict(other.store.value)
    # WHEN this instance needs a token
    token = wired.tokens.access_token()
    # THEN it read the secret again, refreshed with the newer token, and stored what Intuit rotated it to
    assert token
    assert wired.simulator.token_grants == 2
    assert wired.store.value["refresh_token"] == wired.simulator.current_refresh_token


def test_a_refresh_token_intuit_refuses_needs_a_reconnect(wired: Wired) -> None:
    wired.store.value["refresh_token"] = "AB11-revoked"
    with pytest.raises(RejectedError) as error:
        wired.tokens.access_token()
    assert error.value.code == "quickbooks_reconnect_required"


def test_a_closed_period_is_refused_in_an_accountants_words(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "USD", paid=True)
    wired.simulator.closing_date = date.today() + timedelta(days=1)
    with pytest.raises(RejectedError) as error:
        wired.books.record_credit(booking(invoice_id, 1_000))
    assert error.value.code == "books_period_closed"
    assert "reopen the period" in error.value.message
    assert wired.simulator.documents() == []


def test_an_unknown_invoice_is_not_found(wired: Wired) -> None:
    with pytest.raises(NotFound):
        wired.books.record_credit(booking("999999", 1_000))


def test_an_invoice_in_another_currency_is_refused_before_anything_is_written(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "GBP", paid=True)
    with pytest.raises(RejectedError) as error:
        wired.books.record_credit(booking(invoice_id, 1_000, "EUR"))
    assert error.value.code == "currency_mismatch"
    assert wired.simulator.documents() == []


def test_an_inactive_item_is_carried_as_quickbooks_validation(wired: Wired) -> None:
    simulator = wired.simulator
    wired = wire(simulator, wired.url, refund_item="777")
    invoice_id = simulator.seed_invoice(10_000, "USD", paid=True)
    with pytest.raises(RejectedError) as error:
        wired.books.record_credit(booking(invoice_id, 1_000))
    assert error.value.code == "quickbooks_invalid_reference"
    assert "Item 777" in error.value.message


def test_a_partly_paid_invoice_is_credited_for_what_it_owes_and_the_rest_paid_back(wired: Wired) -> None:
    # GIVEN an invoice of 100.00 that still owes 10.00 (a memo of another refund took 90.00)
    invoice_id = wired.simulator.seed_invoice(10_000, "USD")
    wired.books.record_credit(booking(invoice_id, 9_000))
    request = booking(invoice_id, 2_500)
    # AND the refund receipt failing once after the memo was applied (a crash between the steps)
    wired.simulator.add_fault(FaultRule(method="POST", path=r"/refundreceipt$", status=503))
    with pytest.raises(TransientError):
        wired.books.record_credit(request)
    half = wired.books.find_credit_document(request)
    assert half is not None
    assert half.allocated_to_invoice + half.cash_refunded != half.total

    # WHEN it is recorded again
    document = wired.books.record_credit(request)

    # THEN 10.00 is credited to the invoice and 15.00 paid back, one memo and one receipt for this refund
    assert (document.total, document.allocated_to_invoice, document.cash_refunded) == (
        Money.of(2_500, "USD"),
        Money.of(1_000, "USD"),
        Money.of(1_500, "USD"),
    )
    assert document.payment_id is not None
    mine = [doc for doc in wired.simulator.documents() if request.refund_id in doc["PrivateNote"]]
    assert sorted((doc["_type"], doc["TotalAmt"]) for doc in mine) == [
        ("CreditMemo", Decimal("10.00")),
        ("RefundReceipt", Decimal("15.00")),
    ]
    assert wired.simulator.invoice(invoice_id)["Balance"] == Decimal(0)
    (receipt,) = writes(wired, "refundreceipt")[-1:]
    assert "(part: 15.00 USD of 25.00 USD)" in receipt["body"]["Line"][0]["Description"]


def test_a_document_changed_by_hand_goes_to_a_person(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "USD", paid=True)
    request = booking(invoice_id, 2_000)
    document = wired.books.record_credit(request)
    wired.simulator.refund_receipts[document.document_id]["TotalAmt"] = Decimal("21.00")
    with pytest.raises(RejectedError) as error:
        wired.books.record_credit(request)
    assert error.value.code == "document_total_mismatch"


def test_a_refund_receipt_without_a_configured_account_is_refused(wired: Wired) -> None:
    simulator = wired.simulator
    wired = wire(simulator, wired.url, clearing_accounts={}, refund_account="")
    invoice_id = simulator.seed_invoice(10_000, "USD", paid=True)
    with pytest.raises(RejectedError) as error:
        wired.books.record_credit(booking(invoice_id, 1_000))
    assert error.value.code == "no_clearing_account"


def test_the_simulator_answers_a_repeated_requestid_with_its_first_answer_and_creates_nothing(wired: Wired) -> None:
    # GIVEN a credit memo created under a requestid
    invoice_id = wired.simulator.seed_invoice(10_000, "USD")
    request = booking(invoice_id, 1_000)
    wired.books.record_credit(request)
    (sent,) = writes(wired, "creditmemo")
    token = wired.tokens.access_token()
    path = f"{wired.url}/v3/company/{wired.simulator.realm_id}/creditmemo"
    # WHEN the same request is sent again under the same requestid
    answer = requests.post(
        path,
        params={"minorversion": "75", "requestid": sent["query"]["requestid"][0]},
        data=json.dumps(sent["body"], default=str),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=5,
    )
    # THEN the first answer comes back and there is still one memo
    assert answer.status_code == 200
    assert answer.json()["CreditMemo"]["Id"] == wired.books.find_credit_document(request).document_id  # type: ignore[union-attr]
    assert len(wired.simulator.documents()) == 1


def test_a_company_numbering_its_own_documents_still_finds_ours_among_the_customers(wired: Wired) -> None:
    # GIVEN a company without custom transaction numbers (our DocNumber is not kept), and a memo booked there
    wired.simulator.custom_txn_numbers = False
    invoice_id = wired.simulator.seed_invoice(10_000, "USD")
    request = booking(invoice_id, 2_000)
    first = wired.books.record_credit(request)
    assert first.number != "CM" + request.refund_id[3:22]
    # WHEN it is looked up and recorded again
    found = wired.books.find_credit_document(request)
    again = wired.books.record_credit(request)
    # THEN it is the one memo, found by the refund id in its PrivateNote among the customer's documents
    assert found is not None
    assert found.document_id == first.document_id == again.document_id
    assert len(wired.simulator.documents()) == 1


def test_the_merchants_item_and_tax_code_replace_the_invoices(wired: Wired) -> None:
    # GIVEN a merchant who books refunds on item 2 with tax code 6
    books = wire(wired.simulator, wired.url, refund_item="2", tax_code="6").books
    invoice_id = wired.simulator.seed_invoice(10_000, "USD")
    # WHEN a refund is booked
    books.record_credit(booking(invoice_id, 1_250))
    # THEN the memo's line carries them, with the exact amount
    (sent,) = writes(wired, "creditmemo")
    (line,) = sent["body"]["Line"]
    assert line["SalesItemLineDetail"]["ItemRef"] == {"value": "2"}
    assert line["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "6"}
    assert line["Amount"] == Decimal("12.50")


def test_a_request_corrected_by_a_setting_is_not_answered_with_the_earlier_refusal(wired: Wired) -> None:
    # GIVEN a refund refused because the configured item does not exist
    invoice_id = wired.simulator.seed_invoice(10_000, "USD", paid=True)
    request = booking(invoice_id, 1_000)
    refused = wire(wired.simulator, wired.url, refund_item="777")
    with pytest.raises(RejectedError):
        refused.books.record_credit(request)
    # WHEN the merchant corrects the item and the refund is booked again
    corrected = wire(wired.simulator, wired.url, refund_item="2")
    corrected.store.value = dict(refused.store.value)
    document = corrected.books.record_credit(request)
    # THEN it went through under another requestid, and the same request keeps the same one
    first, second = (sent["query"]["requestid"][0] for sent in writes(wired, "refundreceipt"))
    assert first != second
    assert first.startswith(f"{request.idempotency_key}:r:")
    assert document.cash_refunded == Money.of(1_000, "USD")
