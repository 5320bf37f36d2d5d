"""The books after the money moved (R11): what Xero booked for a paid and for an unpaid invoice (every
field, as the Xero sandbox recorded it); a refusal for good needs a person and never pays twice; a short
outage heals by itself with one credit note."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders, eventually

REFUND_ACCOUNT = "200"  # XeroRefundAccountCode on the local stack (the template's default)
PAYMENT_ACCOUNT = "090"  # XeroPaymentAccountCode


def booked(client: E2EClient, refund_id: str) -> dict[str, Any]:
    """The refund's one credit note as the Xero sandbox booked it (with what it defaulted or dropped)."""
    notes = json.loads(client.control("xero", "GET", "/booked").text, parse_float=Decimal)["CreditNotes"]
    [note] = [note for note in notes if note["Reference"].startswith(f"{refund_id} ")]
    document: dict[str, Any] = note
    return document


def booking_days(refund: dict[str, Any]) -> tuple[date, date]:
    """The UTC days between which the books step ran (after REFUNDED, before INVOICE_UPDATED)."""

    def day(status: str) -> date:
        [entry] = [entry for entry in refund["timeline"] if entry["to_status"] == status]
        return datetime.fromisoformat(entry["at"]).astimezone(UTC).date()

    return day("REFUNDED"), day("INVOICE_UPDATED")


def invoice(client: E2EClient, invoice_id: str) -> dict[str, Any]:
    response = client.xero("GET", f"/Invoices/{invoice_id}")
    response.raise_for_status()
    document: dict[str, Any] = json.loads(response.text, parse_float=Decimal)["Invoices"][0]
    return document


def assert_credit_note_is_the_refunds(note: dict[str, Any], refund: dict[str, Any], sold: dict[str, Any]) -> None:
    """Dated the booking day, for the invoice's customer and currency, one gross line of the refund on the refund
    account with the invoice's tax type, our reference naming the invoice; nothing defaulted or dropped by Xero."""
    first, last = booking_days(refund)
    assert first <= date.fromisoformat(note["Date"]) <= last, note["Date"]
    assert (note["Type"], note["Contact"], note["CurrencyCode"], note["LineAmountTypes"]) == (
        "ACCRECCREDIT",
        sold["Contact"]["ContactID"],
        sold["CurrencyCode"],
        "Inclusive",
    )
    assert note["Reference"] == f"{refund['refund_id']} refund of {sold['InvoiceNumber']}"
    amount = Decimal(refund["amount"]["minor_units"]).scaleb(-2)
    [line] = note["LineItems"]
    assert (line["AccountCode"], line["TaxType"], line["LineAmount"]) == (
        REFUND_ACCOUNT,
        sold["LineItems"][0]["TaxType"],
        amount,
    )
    assert note["Total"] == amount
    assert (note["defaulted"], note["ignored"]) == ([], [])
    for item in [*note["Allocations"], *note["Payments"]]:
        assert (item["defaulted"], item["ignored"]) == ([], []), item
        assert date.fromisoformat(item["Date"]) == date.fromisoformat(note["Date"])


def test_refund_of_a_paid_invoice_books_a_credit_note_paid_back_in_cash(client: E2EClient, orders: Orders) -> None:
    # GIVEN a paid order whose invoice is paid in full
    order = orders.paid(3100, name="books-paid")
    assert order.invoice_id is not None
    sold = invoice(client, order.invoice_id)
    # WHEN it is refunded
    refund_id = orders.submit(Orders.request(order))
    refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED", refund["failure"]
    # THEN Xero holds the refund's credit note, nothing allocated (the invoice owes nothing), and the whole of it
    # paid back from the payment account under the credit note's reference
    note = booked(client, refund_id)
    assert_credit_note_is_the_refunds(note, refund, sold)
    assert note["Allocations"] == []
    [payment] = note["Payments"]
    assert (payment["Account"], payment["Amount"], payment["Reference"]) == (
        PAYMENT_ACCOUNT,
        Decimal("31.00"),
        note["Reference"],
    )
    assert note["Status"] == "PAID"
    assert refund["credit_document"]["payment_id"] == payment["PaymentID"]
    assert refund["credit_document"]["cash_refunded"]["minor_units"] == 3100


def test_refund_against_an_unpaid_invoice_is_allocated_to_what_it_owes(client: E2EClient, orders: Orders) -> None:
    # GIVEN a payment taken by Stripe whose Xero invoice of 40.00 is still unpaid (nothing reconciled yet)
    order = orders.paid(4000, invoice=False, name="books-unpaid")
    tag = uuid.uuid4().hex[:10]
    created = client.create_invoice(f"books-unpaid {tag}", f"Order {tag}", Decimal("40.00"), "EUR", paid=False)
    sold = invoice(client, str(created["InvoiceID"]))
    assert (sold["Status"], sold["AmountDue"]) == ("AUTHORISED", Decimal("40.00"))
    request = Orders.request(order, amount=1500)
    request["invoice"] = {"system": "xero", "invoice_id": sold["InvoiceID"]}
    # WHEN 15.00 of it is refunded
    refund_id = orders.submit(request)
    refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED", refund["failure"]
    # THEN the credit note is allocated to the invoice, on the booking day, for all 15.00: no cash goes out in the
    # books (the customer owes less instead) and the invoice now owes 25.00
    note = booked(client, refund_id)
    assert_credit_note_is_the_refunds(note, refund, sold)
    [allocation] = note["Allocations"]
    assert (allocation["Invoice"], allocation["Amount"]) == (sold["InvoiceID"], Decimal("15.00"))
    assert note["Payments"] == []
    assert note["Status"] == "PAID"  # fully used up by the allocation
    after = invoice(client, sold["InvoiceID"])
    assert (after["Status"], after["AmountDue"], after["AmountCredited"]) == (
        "AUTHORISED",
        Decimal("25.00"),
        Decimal("15.00"),
    )
    # AND refundflow recorded the same: allocated 15.00, nothing paid out, the allocation's id
    document = refund["credit_document"]
    assert (document["allocated_to_invoice"]["minor_units"], document["cash_refunded"]["minor_units"]) == (1500, 0)
    assert document["allocation_id"] == allocation["AllocationID"]
    assert len(client.stripe_refunds(order.payment_id)) == 1


def test_books_refusing_the_credit_note_for_good_needs_attention_after_paying_once(
    client: E2EClient, orders: Orders, stack: DevStack, sent_emails: object
) -> None:
    # GIVEN a paid order whose refund names an invoice Xero does not have
    order = orders.paid(2300, invoice=False, name="books-refused")
    request = Orders.request(order)
    request["invoice"] = {"system": "xero", "invoice_id": str(uuid.uuid4())}
    # WHEN the refund is processed
    refund_id = orders.submit(request)
    refund = client.wait_for(refund_id, {"NEEDS_ATTENTION", "COMPLETED", "FAILED", "REJECTED"})
    # THEN the money moved exactly once and the refund waits for a person, with the books' refusal on record
    assert refund["status"] == "NEEDS_ATTENTION", refund
    assert refund["attention_reason"] == "books_rejected"
    assert refund["failure"]["platform"] == "xero"
    assert [stripe_refund["amount"] for stripe_refund in client.stripe_refunds(order.payment_id)] == [2300]
    assert refund["provider_status"] == "succeeded"
    assert client.credit_notes(refund_id) == []
    # AND the workflow ends failed with the error ops alarm on, without retrying a refusal forever
    execution = stack.wait_for_execution(refund_id)
    assert execution["status"] == "FAILED"
    assert execution.get("error") == "RefundNeedsAttention", execution
    attempts = [entry for entry in client.refund(refund_id)["timeline"] if entry["actor"] == "step:HandleFailure"]
    assert len(attempts) == 1, attempts
    # AND ops are told
    ops = eventually(
        lambda: [
            mail
            for mail in sent_emails(to="ops@example.com")  # type: ignore[operator]
            if mail["data"].get("refund_id") == refund_id and mail["data"].get("event") == "RefundNeedsAttention"
        ],
        what="the ops alert for the refund that needs attention",
    )
    assert len(ops) == 1


def test_credit_note_whose_answer_is_lost_is_booked_once(client: E2EClient, orders: Orders, stack: DevStack) -> None:
    # GIVEN Xero stores the credit note but the answers to the first two writes are lost (503 after the work)
    order = orders.paid(1700, name="books-lost")
    attempts_before = stack.functions.invocations["BooksXeroFunction"]
    lost = {"method": "PUT", "path": "^/api\\.xro/2\\.0/CreditNotes$", "status": 503, "when": "after", "times": 2}
    with client.faults("xero", lost):
        # WHEN the refund is processed
        refund_id = orders.submit(Orders.request(order))
        refund = orders.settle(refund_id, timeout=90)
    # THEN the books step ran again after the lost answer, and found the note instead of writing a second one
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert stack.functions.invocations["BooksXeroFunction"] - attempts_before >= 2
    assert len(client.stripe_refunds(order.payment_id)) == 1
    [note] = client.credit_notes(refund_id)
    assert Decimal(str(note["Total"])) == Decimal("17.00")
    assert refund["credit_document"]["document_id"] == note["CreditNoteID"]
    seen = client.control("xero", "GET", "/requests").json()["requests"]
    writes = [item for item in seen if item["method"] == "PUT" and item["path"].endswith("/CreditNotes")]
    assert len([item for item in writes if refund_id in item["body"]]) == 1
    assert stack.wait_for_execution(refund_id)["status"] == "SUCCEEDED"
