"""Refunds made outside refundflow, end to end on the local stack (issue 12): a person refunds in the Stripe
Dashboard (the sandbox's control route), Stripe's signed webhook reaches intake, the Stripe function records the
refund (origin external, the payment's balance corrected), the bus hands its ``RefundIssued`` to Xero's queue, and
Xero's own function books its credit note: no person, once. The ticket of refundflow's own refund of the payment is
told; the customer is not."""

from __future__ import annotations

import uuid
from decimal import Decimal

from local.client import TERMINAL
from local.scenarios import ScenarioContext
from local.stack import DevStack
from refundflow import catalog
from refundflow.domain.external import external_refund_id
from tests.e2e.harness import E2EClient, Orders, eventually
from tests.e2e.test_help_desks import scenario
from tests.e2e.test_reconciliation import HEADER, reconcile, refund_row


def test_a_dashboard_refund_is_recorded_and_its_credit_note_booked_with_no_person(
    stack: DevStack, client: E2EClient, orders: Orders
) -> None:
    # GIVEN a paid order of 60.00 (invoice in Xero) of which refundflow refunded 20.00
    order = orders.paid(6000, name="dashboard")
    ours = orders.settle(orders.submit(Orders.request(order, amount=2000)))
    assert ours["status"] == "COMPLETED", ours
    books = catalog.platform("xero").logical_id("books")
    booked_before = stack.functions.invocations[books]
    # WHEN someone refunds 15.00 in the Stripe Dashboard
    made = client.stripe_dashboard_refund(order.payment_id, 1500)
    refund_id = external_refund_id("stripe", made["id"])
    # THEN refundflow records it (origin external) and completes it once its credit note is booked (a books outage
    # on the way is retried by the queue: NEEDS_ATTENTION books_update_failed is not where it ends)
    eventually(lambda: client.refund_or_none(refund_id), timeout=60, what=f"the record of {made['id']}")
    refund = client.wait_for(refund_id, TERMINAL, timeout=90)
    assert (refund["status"], refund["origin"]) == ("COMPLETED", "external"), refund
    assert refund["provider_refund_id"] == made["id"]
    statuses = [entry["to_status"] for entry in refund["timeline"] if entry["to_status"]]
    assert statuses[0] == "REFUNDED", statuses
    assert statuses[-2:] == ["INVOICE_UPDATED", "COMPLETED"], statuses
    # AND Xero holds exactly one credit note for it, of 15.00 against the order's invoice, booked by Xero's function
    [note] = client.credit_notes(refund_id)
    assert Decimal(str(note["Total"])) == Decimal("15.00")
    assert refund["credit_document"]["document_id"] == note["CreditNoteID"]
    assert stack.functions.invocations[books] > booked_before
    # AND Stripe holds the two refunds, and a request for everything left gets only the 25.00 left
    rest = orders.settle(orders.submit(Orders.request(order)))
    assert rest["status"] == "COMPLETED", rest
    assert rest["amount"]["minor_units"] == 2500
    assert sorted(item["amount"] for item in client.stripe_refunds(order.payment_id)) == [1500, 2000, 2500]


def test_the_ticket_of_our_earlier_refund_is_told_of_the_dashboard_refund(stack: DevStack, client: E2EClient) -> None:
    # GIVEN a refund a team lead approved in a Zendesk ticket, completed at Stripe
    simulator = stack.simulators["zendesk"]
    outcome = scenario("zendesk", "team lead approves in the ticket")(ScenarioContext(client, "zendesk", simulator))
    assert outcome.problems == [], outcome.problems
    ours = client.refund(outcome.refund_ids[0])
    ticket_id = ours["source"]["ticket_id"]
    # WHEN someone refunds the rest of that payment in the Stripe Dashboard
    made = client.stripe_dashboard_refund(ours["payment"]["payment_id"])
    refund_id = external_refund_id("stripe", made["id"])
    refund = eventually(lambda: client.refund_or_none(refund_id), timeout=60, what=f"the record of {made['id']}")
    assert refund["origin"] == "external"

    # THEN the ticket gets a note saying so, with the Stripe refund's id (the write-back subscription wrote it)
    def told() -> list[str]:
        notes = [str(note) for note in simulator.ticket_view(ticket_id)["notes"]]
        return [note for note in notes if "Refund made outside refundflow" in note and made["id"] in note]

    assert eventually(told, timeout=60, what=f"the note of {refund_id} on ticket {ticket_id}")


def test_a_dashboard_refunds_settlement_line_matches_its_record_and_settles_it(
    stack: DevStack, client: E2EClient, orders: Orders
) -> None:
    # GIVEN a dashboard refund of 12.00 refundflow recorded and booked (refundflow refunded 10.00 of the order first)
    order = orders.paid(5000, name="dashboard-settled")
    ours = orders.settle(orders.submit(Orders.request(order, amount=1000)))
    made = client.stripe_dashboard_refund(order.payment_id, 1200)
    refund_id = external_refund_id("stripe", made["id"])
    eventually(lambda: client.refund_or_none(refund_id), timeout=60, what=f"the record of {made['id']}")
    assert client.wait_for(refund_id, TERMINAL, timeout=90)["status"] == "COMPLETED"
    # WHEN Stripe's settlement lists both refunds
    body = (
        HEADER
        + refund_row(f"txn_{uuid.uuid4().hex[:12]}", ours["provider_refund_id"], 1000)
        + refund_row(f"txn_{uuid.uuid4().hex[:12]}", made["id"], 1200)
    )
    summary = reconcile(stack, body)
    # THEN both lines match their refunds (no unexpected_in_settlement) and the dashboard refund is SETTLED
    assert summary["counts"] == {"matched": 2}
    assert client.refund(refund_id)["status"] == "SETTLED"


def test_lost_answers_from_the_books_are_retried_by_the_queue_into_one_credit_note(
    stack: DevStack, client: E2EClient, orders: Orders
) -> None:
    # GIVEN refundflow refunded 10.00 of an order; then Xero stores credit notes but loses its first two answers
    order = orders.paid(4000, name="dashboard-books-lost")
    ours = orders.settle(orders.submit(Orders.request(order, amount=1000)))
    assert ours["status"] == "COMPLETED", ours
    lost = {"method": "PUT", "path": "^/api\\.xro/2\\.0/CreditNotes$", "status": 503, "when": "after", "times": 2}
    with client.faults("xero", lost):
        # WHEN someone refunds 8.00 in the Stripe Dashboard
        made = client.stripe_dashboard_refund(order.payment_id, 800)
        refund_id = external_refund_id("stripe", made["id"])
        eventually(lambda: client.refund_or_none(refund_id), timeout=60, what=f"the record of {made['id']}")
        refund = client.wait_for(refund_id, TERMINAL, timeout=120)
    # THEN the queue delivered it again after the failures (books_update_failed on the way) and it completed
    assert refund["status"] == "COMPLETED", refund
    assert "StatusChanged:NEEDS_ATTENTION" in [entry["type"] for entry in refund["timeline"]]
    # AND Xero holds one credit note for it, written once (the retry found it by our reference)
    [note] = client.credit_notes(refund_id)
    assert Decimal(str(note["Total"])) == Decimal("8.00")
    seen = client.control("xero", "GET", "/requests").json()["requests"]
    writes = [item for item in seen if item["method"] == "PUT" and item["path"].endswith("/CreditNotes")]
    assert len([item for item in writes if refund_id in item["body"]]) == 1
