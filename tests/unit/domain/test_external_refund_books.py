"""Refunds made outside refundflow get their credit document with no person (issue 12): the books platform's queue
receives their ``RefundIssued`` (origin external, books named) and books them exactly once; a failure is
``books_update_failed`` (delivered again) or ``books_rejected`` (a person, told in an accountant's words); the
ticket of refundflow's own refund of that payment is told; the customer is not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from refundflow import settings
from refundflow.domain.books import update_invoice
from refundflow.domain.external import NOT_BOOKED, book_external_refund, external_refund_id
from refundflow.domain.intake import accept_refund_request
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.recorder import BOOKS_REJECTED, BOOKS_UPDATE_FAILED
from refundflow.domain.tickets import ticket_update, write_back
from refundflow.domain.validation import validate_refund
from refundflow.errors import RejectedError, TransientError
from refundflow.events import RefundEvent
from refundflow.models import RefundOrigin
from refundflow.ports import ProviderRefundStatus, TicketPlatform, TicketUpdate, VerifiedSource
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, completed, eur
from tests.support.fakes import TIMING, World, provider_event, refund_request_body

S = RefundStatus


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EXTERNAL_REFUND_BOOKING", raising=False)
    settings.load.cache_clear()
    yield
    settings.load.cache_clear()


def refunded_in_the_dashboard(env: World, minor_units: int = 2_500) -> tuple[str, RefundEvent]:
    """refundflow refunded 40.00 (booked on inv-1001); then someone refunded ``minor_units`` in the dashboard and
    its news arrived: the external refund and the event its books platform's queue receives."""
    outside = env.provider.refund_outside(PAYMENT, eur(minor_units))
    env.deliver(provider_event(outside))
    refund_id = external_refund_id("stripe", outside.provider_refund_id)
    issued = [
        event for event in env.publisher.events if event.refund_id == refund_id and event.detail_type == "RefundIssued"
    ]
    return refund_id, issued[-1]


def test_the_books_queue_books_the_credit_note_once_and_completes_the_refund(paid: World) -> None:
    env = paid
    completed(env)
    refund_id, event = refunded_in_the_dashboard(env)
    assert (event.origin, event.books) == (RefundOrigin.EXTERNAL, "xero")
    # WHEN the books platform's queue delivers the event, then delivers it again
    booked = book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=5)
    again = book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=5)
    # THEN one credit note of 25.00 on inv-1001, under the external refund's own reference, and the refund completed
    assert booked is not None
    assert again is not None
    assert (booked.status, again.status) == (S.COMPLETED, S.COMPLETED)
    document = env.books.documents[refund_id]
    assert (document.total, booked.credit_document) == (eur(2_500), document)
    assert [booking.invoice.invoice_id for booking in env.books.record_calls if booking.refund_id == refund_id] == [
        "inv-1001"
    ]
    published = env.publisher.for_refund(refund_id)
    assert published.count("InvoiceUpdated") == 1
    assert published[-1] == "RefundCompleted"


def test_books_that_cannot_be_reached_are_tried_again_until_they_book(paid: World) -> None:
    env = paid
    completed(env)
    refund_id, event = refunded_in_the_dashboard(env)
    env.books.failures = [TransientError("Xero answered 503", code="unavailable", platform="xero")]
    # WHEN the first delivery finds Xero down: the delivery fails (the queue delivers it again)
    with pytest.raises(TransientError, match="tried again"):
        book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=5)
    waiting = env.repository.get(refund_id)
    assert (waiting.status, waiting.attention_reason, waiting.books_attempts) == (
        S.NEEDS_ATTENTION,
        BOOKS_UPDATE_FAILED,
        1,
    )
    # AND the next delivery books it
    booked = book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=5)
    assert booked is not None
    assert booked.status is S.COMPLETED
    assert len([doc for ref, doc in env.books.documents.items() if ref == refund_id]) == 1


def test_books_that_refuse_the_credit_note_hand_it_to_a_person_in_an_accountants_words(paid: World) -> None:
    env = paid
    completed(env)
    refund_id, event = refunded_in_the_dashboard(env)
    env.books.failures = [RejectedError("the invoice is voided", code="validation_error", platform="xero")]
    # WHEN the books refuse it: no retry (the delivery succeeds), a person's queue
    refused = book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=5)
    assert refused is not None
    assert (refused.status, refused.attention_reason) == (S.NEEDS_ATTENTION, BOOKS_REJECTED)
    told = [entry for entry in env.repository.timeline(refund_id) if entry.type == NOT_BOOKED]
    assert len(told) == 1
    words = str(told[0].details["books"])
    for expected in ("made outside refundflow", "inv-1001", "xero", "the invoice is voided", "refundflow retry"):
        assert expected in words
    # AND once fixed, the books run again (what `refundflow retry` starts) books it once
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    assert env.repository.get(refund_id).status is S.COMPLETED
    assert refund_id in env.books.documents


def test_the_retries_are_bounded(paid: World) -> None:
    env = paid
    completed(env)
    _, event = refunded_in_the_dashboard(env)
    env.books.failures = [TransientError("503", code="unavailable"), TransientError("503", code="unavailable")]
    with pytest.raises(TransientError):
        book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=2)
    # WHEN the last allowed attempt fails too, the refund waits for a person (the message is not retried again)
    stopped = book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=2)
    assert stopped is not None
    assert (stopped.status, stopped.attention_reason, stopped.books_attempts) == (S.NEEDS_ATTENTION, BOOKS_REJECTED, 2)


def test_the_books_queue_ignores_refunds_of_ours(paid: World) -> None:
    env = paid
    ours = env.reserved(refund_request_body(reference="RMA-ours", amount=1_000), "dlv-ours")
    issue_refund(ours, recorder=env.recorder, provider=env.provider)
    event = [e for e in env.publisher.events if e.refund_id == ours and e.detail_type == "RefundIssued"][-1]
    assert (event.origin, event.books) == (RefundOrigin.REFUNDFLOW, "xero")
    # WHEN it reaches the books queue (the rule would not route it there; the function checks anyway)
    assert book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=5) is None
    # THEN the workflow's own books step keeps it: nothing booked here
    assert env.books.record_calls == []
    assert env.repository.get(ours).status is S.REFUNDED


def test_with_booking_none_the_event_names_no_books(paid: World, monkeypatch: pytest.MonkeyPatch) -> None:
    env = paid
    monkeypatch.setenv("EXTERNAL_REFUND_BOOKING", "none")
    settings.load.cache_clear()
    completed(env)
    refund_id, event = refunded_in_the_dashboard(env)
    assert event.books is None
    assert book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=5) is None
    assert env.repository.get(refund_id).status is S.COMPLETED
    assert refund_id not in env.books.documents


# ---------------------------------------------------------------- the ticket is told


class RecordingTickets(TicketPlatform):
    name = "zendesk"

    def __init__(self) -> None:
        self.updates: list[tuple[str, TicketUpdate]] = []

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        raise AssertionError("not read for a write-back")

    def has_update(self, ticket_id: str, marker: str) -> bool:
        return any(written == ticket_id and update.marker == marker for written, update in self.updates)

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        self.updates.append((ticket_id, update))


def completed_from_a_zendesk_ticket(env: World) -> str:
    body = refund_request_body(amount=4_000, source={"system": "zendesk", "reference": "4242", "ticket_id": "4242"})
    accepted = accept_refund_request(
        body,
        source=VerifiedSource("zendesk"),
        delivery_id="zd-1",
        recorder=env.recorder,
        starter=env.starter,
        timing=TIMING,
        channel="zendesk",
    )
    refund_id = accepted.refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    env.approve(refund_id)
    reserve_amount(refund_id, recorder=env.recorder)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    return refund_id


def test_the_ticket_of_our_earlier_refund_is_told_of_the_dashboard_refund(paid: World) -> None:
    env = paid
    ours = completed_from_a_zendesk_ticket(env)
    assert env.repository.get(ours).source_platform == "zendesk"
    refund_id, event = refunded_in_the_dashboard(env, 1_000)
    # THEN the external refund is linked to that ticket: the help desk's write-back subscription matches it
    recorded = env.repository.get(refund_id)
    assert (recorded.source_platform, recorded.source.ticket_id, recorded.source.system) == (
        "zendesk",
        "4242",
        "stripe",
    )
    assert (event.source.platform, event.source.ticket_id) == ("zendesk", "4242")
    tickets = RecordingTickets()
    assert write_back(event, platform="zendesk", tickets=tickets, repository=env.repository) is True
    [(ticket_id, update)] = tickets.updates
    assert ticket_id == "4242"
    assert update.text.startswith("Refund made outside refundflow, at stripe: 10.00 EUR.")
    # AND the credit note booked afterwards goes to the same ticket
    book_external_refund(event, recorder=env.recorder, books=env.books, max_attempts=5)
    completed_event = [e for e in env.publisher.events if e.refund_id == refund_id][-1]
    assert completed_event.detail_type == "RefundCompleted"
    assert "Credit document" in ticket_update(completed_event, env.repository.get(refund_id)).text


def test_no_ticket_is_named_when_our_refund_came_from_no_help_desk(paid: World) -> None:
    env = paid
    completed(env)  # POST /refund-requests with a ticket id of the returns portal: no help desk writes to it
    refund_id, event = refunded_in_the_dashboard(env)
    recorded = env.repository.get(refund_id)
    assert (recorded.source_platform, recorded.source.ticket_id) == ("stripe", None)
    assert write_back(event, platform="zendesk", tickets=RecordingTickets(), repository=env.repository) is False


def test_a_pending_dashboard_refund_is_booked_once_it_succeeds(paid: World) -> None:
    env = paid
    completed(env)
    outside = env.provider.refund_outside(PAYMENT, eur(1_200))
    env.provider.settle(outside.provider_refund_id, ProviderRefundStatus.PENDING)
    env.deliver(provider_event(env.provider.refunds[outside.provider_refund_id], event_id="evt_pending"))
    refund_id = external_refund_id("stripe", outside.provider_refund_id)
    # GIVEN it is pending: nothing for the books yet (no RefundIssued)
    assert env.repository.get(refund_id).status is S.REFUND_PENDING
    assert "RefundIssued" not in env.publisher.for_refund(refund_id)
    # WHEN the provider reports it succeeded
    succeeded = env.provider.settle(outside.provider_refund_id, ProviderRefundStatus.SUCCEEDED)
    env.deliver(provider_event(succeeded, event_id="evt_succeeded"))
    # THEN its RefundIssued names the books, and the books' queue books it
    [issued] = [e for e in env.publisher.events if e.refund_id == refund_id and e.detail_type == "RefundIssued"]
    assert (issued.origin, issued.books) == (RefundOrigin.EXTERNAL, "xero")
    booked = book_external_refund(issued, recorder=env.recorder, books=env.books, max_attempts=5)
    assert booked is not None
    assert booked.status is S.COMPLETED
    assert env.books.documents[refund_id].total == eur(1_200)
