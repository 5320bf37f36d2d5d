"""The books after the money moved (R11): a refusal for good needs a person and never pays twice; a
short outage heals by itself with one credit note."""

from __future__ import annotations

import uuid
from decimal import Decimal

from local.stack import LocalStack
from tests.e2e.harness import E2EClient, Orders, eventually


def test_books_refusing_the_credit_note_for_good_needs_attention_after_paying_once(
    client: E2EClient, orders: Orders, stack: LocalStack, sent_emails: object
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


def test_credit_note_whose_answer_is_lost_is_booked_once(client: E2EClient, orders: Orders, stack: LocalStack) -> None:
    # GIVEN Xero stores the credit note but the answers to the first two writes are lost (503 after the work)
    order = orders.paid(1700, name="books-lost")
    attempts_before = stack.functions.invocations["UpdateInvoiceFunction"]
    lost = {"method": "PUT", "path": "^/api\\.xro/2\\.0/CreditNotes$", "status": 503, "when": "after", "times": 2}
    with client.faults("xero", lost):
        # WHEN the refund is processed
        refund_id = orders.submit(Orders.request(order))
        refund = orders.settle(refund_id, timeout=90)
    # THEN the books step ran again after the lost answer, and found the note instead of writing a second one
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert stack.functions.invocations["UpdateInvoiceFunction"] - attempts_before >= 2
    assert len(client.stripe_refunds(order.payment_id)) == 1
    [note] = client.credit_notes(refund_id)
    assert Decimal(str(note["Total"])) == Decimal("17.00")
    assert refund["credit_document"]["credit_note_id"] == note["CreditNoteID"]
    seen = client.control("xero", "GET", "/requests").json()["requests"]
    writes = [item for item in seen if item["method"] == "PUT" and item["path"].endswith("/CreditNotes")]
    assert len([item for item in writes if refund_id in item["body"]]) == 1
    assert stack.wait_for_execution(refund_id)["status"] == "SUCCEEDED"
