"""XeroBooks against the Xero simulator over HTTP: credit note, allocation, cash refund, exactly once."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.xero import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    DEFAULT_TENANT_ID,
    XeroSimulator,
)
from refundflow.connectors.http import HttpClient
from refundflow.errors import NotFound, RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import BooksSystem, CustomerContact, InvoiceReference, PaymentProvider, RefundLine
from refundflow.money import Money
from refundflow.platforms.xero.connector import XeroBooks, XeroTokenSource
from refundflow.ports import CreditBooking
from tests.support.clocks import FakeClock

BOOKING_DATE = date(2026, 5, 1)


class SecretBackend:
    """Secrets Manager stand-in: the stored value and every version written."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = dict(value)
        self.versions = [dict(value)]


class SecretView:
    """One Lambda's cached view of the secret (a stale cache unless a fresh read is forced)."""

    def __init__(self, backend: SecretBackend) -> None:
        self.backend = backend
        self.cache: dict[str, Any] | None = None

    def load(self, force: bool) -> dict[str, Any]:
        if force or self.cache is None:
            self.cache = dict(self.backend.value)
        return dict(self.cache)

    def save(self, value: dict[str, Any]) -> None:
        self.backend.value = dict(value)
        self.backend.versions.append(dict(value))
        self.cache = dict(value)


@pytest.fixture
def secret() -> SecretBackend:
    return SecretBackend(
        {
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "refresh_token": DEFAULT_REFRESH_TOKEN,
            "tenant_id": DEFAULT_TENANT_ID,
        }
    )


def make_tokens(
    base_url: str, view: SecretView, clock: FakeClock, timeout: tuple[float, float] = (2.0, 5.0)
) -> XeroTokenSource:
    return XeroTokenSource(
        identity_base=f"{base_url}/identity",
        load_secret=view.load,
        save_secret=view.save,
        clock=clock,
        http=HttpClient(platform="xero", base_url=f"{base_url}/identity", timeout=timeout),
    )


def make_ledger(
    base_url: str,
    view: SecretView,
    clock: FakeClock,
    *,
    read_timeout: float = 5.0,
    refund_account_code: str = "200",
    payment_account_code: str = "090",
) -> XeroBooks:
    timeout = (2.0, read_timeout)
    return XeroBooks(
        tokens=make_tokens(base_url, view, clock, timeout),
        api_base=f"{base_url}/api.xro/2.0",
        refund_account_code=refund_account_code,
        payment_account_code=payment_account_code,
        http=HttpClient(platform="xero", base_url=f"{base_url}/api.xro/2.0", timeout=timeout),
    )


@pytest.fixture
def books(base_url: str, secret: SecretBackend, clock: FakeClock) -> XeroBooks:
    return make_ledger(base_url, SecretView(secret), clock)


def make_booking(
    invoice_id: str,
    minor_units: int,
    currency: str = "USD",
    *,
    lines: list[RefundLine] | None = None,
    refund_id: str | None = None,
) -> CreditBooking:
    booking_id = refund_id or derive_refund_id("tests", uuid.uuid4().hex)
    return CreditBooking(
        refund_id=booking_id,
        invoice=InvoiceReference(system=BooksSystem.XERO, invoice_id=invoice_id),
        amount=Money.of(minor_units, currency),
        lines=lines or [],
        customer=CustomerContact(email="ada@example.com", name="Ada Lovelace"),
        booking_date=BOOKING_DATE,
        reference="RMA-1001",
        payment_provider=PaymentProvider.STRIPE,
        idempotency_key=idempotency_key(booking_id, "books"),
        external_reference=booking_id,
    )


def new_invoice(
    sim: XeroSimulator, lines: list[tuple[str, Any, Any]], *, currency: str = "USD", paid: Any = None
) -> dict[str, Any]:
    """An AUTHORISED sales invoice (GST-inclusive lines at OUTPUT2); ``paid``: True for all, or an amount."""
    contact = sim.add_contact(f"Customer {uuid.uuid4().hex[:8]}", "customer@example.com")
    invoice = sim.add_invoice(
        contact["ContactID"],
        [(description, quantity, unit, "200", "OUTPUT2") for description, quantity, unit in lines],
        currency=currency,
    )
    if paid is True:
        sim.pay_invoice(invoice["InvoiceID"])
    elif paid is not None:
        sim.pay_invoice(invoice["InvoiceID"], amount=paid)
    return sim.invoice(invoice["InvoiceID"])


def identity_calls(sim: XeroSimulator) -> int:
    return sum(1 for seen in sim.requests_seen if seen["path"] == "/identity/connect/token")


def writes(sim: XeroSimulator, path_suffix: str) -> int:
    return sum(1 for seen in sim.requests_seen if seen["method"] == "PUT" and seen["path"].endswith(path_suffix))


# ---------------------------------------------------------------- the accounting flow


def test_paid_invoice_gets_credit_note_and_cash_refund(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a fully paid invoice of 115.00 USD (GST inclusive)
    invoice = new_invoice(sim, [("Walnut desk", 1, "115.00")], paid=True)
    booking = make_booking(invoice["InvoiceID"], 11500)

    # WHEN the refund is recorded
    document = books.record_credit(booking)

    # THEN an authorised, tax-inclusive credit note was paid out in cash from account 090, nothing allocated
    note = sim.credit_note(document.document_id)
    assert note["Type"] == "ACCRECCREDIT"
    assert note["LineAmountTypes"] == "Inclusive"
    assert note["Total"] == Decimal("115.00")
    assert note["TotalTax"] == Decimal("15.00")
    assert note["LineItems"][0]["TaxType"] == "OUTPUT2"
    assert note["LineItems"][0]["AccountCode"] == "200"
    assert booking.refund_id in note["Reference"]
    assert invoice["InvoiceNumber"] in note["Reference"]
    assert note["Contact"]["ContactID"] == invoice["Contact"]["ContactID"]
    assert note["Status"] == "PAID"
    assert note["RemainingCredit"] == 0
    assert note["Allocations"] == []
    (payment,) = [p for p in sim.all_payments() if "CreditNote" in p]
    assert payment["PaymentType"] == "ARCREDITPAYMENT"
    assert payment["Account"]["Code"] == "090"
    assert payment["Amount"] == Decimal("115.00")
    assert document.total == Money.of(11500, "USD")
    assert document.cash_refunded == Money.of(11500, "USD")
    assert document.allocated_to_invoice == Money.zero("USD")
    assert document.payment_id == payment["PaymentID"]
    assert document.allocation_id is None
    assert document.number == note["CreditNoteNumber"]


def test_unpaid_invoice_is_settled_by_allocation_without_cash(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN an invoice of 79.00 USD nobody has paid yet
    invoice = new_invoice(sim, [("Desk lamp", 2, "39.50")])

    # WHEN the whole amount is refunded
    document = books.record_credit(make_booking(invoice["InvoiceID"], 7900))

    # THEN the credit note is allocated to the invoice, which is now paid off, and no cash moved
    after = sim.invoice(invoice["InvoiceID"])
    assert after["Status"] == "PAID"
    assert after["AmountDue"] == 0
    assert after["AmountCredited"] == Decimal("79.00")
    assert document.allocated_to_invoice == Money.of(7900, "USD")
    assert document.cash_refunded == Money.zero("USD")
    assert document.allocation_id is not None
    assert document.payment_id is None
    assert not [p for p in sim.all_payments() if "CreditNote" in p]


def test_partly_paid_invoice_gets_allocation_for_amount_due_and_cash_for_the_rest(
    sim: XeroSimulator, books: XeroBooks
) -> None:
    # GIVEN a 200.00 invoice of which 150.00 was paid (50.00 still due)
    invoice = new_invoice(sim, [("Bookshelf", 1, "200.00")], paid="150.00")

    # WHEN 120.00 is refunded
    document = books.record_credit(make_booking(invoice["InvoiceID"], 12000))

    # THEN 50.00 is allocated (never more than the amount due) and 70.00 is refunded in cash
    assert document.allocated_to_invoice == Money.of(5000, "USD")
    assert document.cash_refunded == Money.of(7000, "USD")
    assert sim.invoice(invoice["InvoiceID"])["Status"] == "PAID"
    assert sim.credit_note(document.document_id)["RemainingCredit"] == 0


def test_partial_refunds_of_one_paid_invoice_make_one_credit_note_each(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a paid invoice of 249.00
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)

    # WHEN two different partial refunds are recorded
    first = books.record_credit(make_booking(invoice["InvoiceID"], 4900))
    second = books.record_credit(make_booking(invoice["InvoiceID"], 2500))

    # THEN each has its own credit note paid out in cash for exactly its amount
    assert first.document_id != second.document_id
    assert first.cash_refunded == Money.of(4900, "USD")
    assert second.cash_refunded == Money.of(2500, "USD")
    assert sorted(note["Total"] for note in sim.all_credit_notes()) == [Decimal("25.00"), Decimal("49.00")]


def test_refund_lines_become_credit_note_lines(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a paid invoice with a desk and two lamps, and a refund of the desk, both lamps and 3 plugs at 10.00
    invoice = new_invoice(
        sim, [("Walnut desk", 1, "249.00"), ("Desk lamp", 2, "39.50"), ("Plug", 3, "3.34")], paid=True
    )
    lines = [
        RefundLine(description="Walnut desk", quantity=1, amount=Money.of(24900, "USD")),
        RefundLine(description="Desk lamp", quantity=2, amount=Money.of(7900, "USD")),
        RefundLine(description="Plug", quantity=3, amount=Money.of(1000, "USD")),
    ]

    # WHEN the refund is recorded line by line
    document = books.record_credit(make_booking(invoice["InvoiceID"], 33800, lines=lines))

    # THEN the credit note repeats the lines with exact unit prices; an indivisible line is booked as one unit
    note = sim.credit_note(document.document_id)
    booked = [(line["Description"], line["Quantity"], line["UnitAmount"]) for line in note["LineItems"]]
    assert booked == [
        ("Walnut desk", 1, Decimal("249.00")),
        ("Desk lamp", 2, Decimal("39.50")),
        ("Plug (x3)", 1, Decimal("10.00")),
    ]
    assert {line["TaxType"] for line in note["LineItems"]} == {"OUTPUT2"}
    assert note["Total"] == Decimal("338.00")
    assert document.total == Money.of(33800, "USD")


def test_lines_that_do_not_add_up_to_the_refund_are_refused_before_any_write(
    sim: XeroSimulator, books: XeroBooks
) -> None:
    # GIVEN a refund whose lines add up to less than its amount
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)
    lines = [RefundLine(description="Walnut desk", amount=Money.of(20000, "USD"))]

    # WHEN it is recorded / THEN it is refused and Xero was not even asked
    with pytest.raises(RejectedError) as refused:
        books.record_credit(make_booking(invoice["InvoiceID"], 24900, lines=lines))
    assert refused.value.code == "lines_mismatch"
    assert sim.requests_seen == []


@pytest.mark.parametrize(
    ("currency", "unit", "refund_minor", "expected_total"),
    [
        ("JPY", "12000", 5000, Decimal(5000)),
        ("EUR", "80.00", 1999, Decimal("19.99")),
        ("KWD", "12.500", 1250, Decimal("1.25")),
    ],
)
def test_amounts_are_booked_exactly_in_the_invoice_currency(
    sim: XeroSimulator, books: XeroBooks, currency: str, unit: str, refund_minor: int, expected_total: Decimal
) -> None:
    # GIVEN a paid invoice in a zero-, two- or three-decimal currency
    invoice = new_invoice(sim, [("Item", 1, unit)], currency=currency, paid=True)

    # WHEN a partial refund is recorded
    document = books.record_credit(make_booking(invoice["InvoiceID"], refund_minor, currency))

    # THEN Xero holds exactly that amount and the document reports it in minor units
    assert sim.credit_note(document.document_id)["Total"] == expected_total
    assert document.cash_refunded == Money.of(refund_minor, currency)


def test_kwd_amount_xero_would_round_is_refused_before_any_write(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a KWD refund with a third decimal Xero cannot store
    invoice = new_invoice(sim, [("Item", 1, "12.500")], currency="KWD", paid=True)

    # WHEN it is recorded / THEN it is refused instead of silently rounded, and nothing was sent
    with pytest.raises(RejectedError) as refused:
        books.record_credit(make_booking(invoice["InvoiceID"], 1255, "KWD"))
    assert refused.value.code == "amount_not_representable"
    assert sim.requests_seen == []


# ---------------------------------------------------------------- exactly once


@pytest.mark.parametrize("crash_after", ["/CreditNotes$", "/Allocations$", "/Payments$"])
def test_crash_between_steps_then_retry_completes_without_duplicates(
    sim: XeroSimulator, books: XeroBooks, crash_after: str
) -> None:
    # GIVEN a 200.00 invoice with 50.00 due (so the refund needs a credit note, an allocation and a payment)
    invoice = new_invoice(sim, [("Bookshelf", 1, "200.00")], paid="150.00")
    booking = make_booking(invoice["InvoiceID"], 12000)
    # AND Xero does the write but the answer is lost (the function dies after the call)
    sim.add_fault(FaultRule(method="PUT", path=crash_after, status=502, when="after"))

    # WHEN the first attempt fails and the step is retried
    with pytest.raises(TransientError):
        books.record_credit(booking)
    document = books.record_credit(booking)

    # THEN the refund is fully booked, and no credit note, allocation or payment was created twice
    assert document.allocated_to_invoice == Money.of(5000, "USD")
    assert document.cash_refunded == Money.of(7000, "USD")
    (note,) = sim.all_credit_notes()
    assert len(note["Allocations"]) == 1
    assert len(note["Payments"]) == 1
    assert writes(sim, "/CreditNotes") == 1
    assert writes(sim, "/Allocations") == 1
    assert writes(sim, "/Payments") == 1


def test_calling_again_after_success_changes_nothing(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a refund already recorded
    invoice = new_invoice(sim, [("Bookshelf", 1, "200.00")], paid="150.00")
    booking = make_booking(invoice["InvoiceID"], 12000)
    first = books.record_credit(booking)

    # WHEN the step runs again (redelivery, redrive)
    again = books.record_credit(booking)

    # THEN the same document comes back and no write was sent the second time
    assert again == first
    assert writes(sim, "/CreditNotes") == writes(sim, "/Allocations") == writes(sim, "/Payments") == 1


def test_write_timeout_is_transient_and_the_retry_finds_what_was_created(
    sim: XeroSimulator, base_url: str, secret: SecretBackend, clock: FakeClock
) -> None:
    # GIVEN Xero that creates the credit note and whose answer is lost on the way (a read timeout)
    books = make_ledger(base_url, SecretView(secret), clock)
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)
    booking = make_booking(invoice["InvoiceID"], 24900)
    sim.add_fault(FaultRule(method="PUT", path="/CreditNotes$", status=None, when="after", lose_answer=True))

    # WHEN the call gets no answer after sending
    with pytest.raises(TransientError) as unknown:
        books.record_credit(booking)
    assert len(sim.all_credit_notes()) == 1
    document = books.record_credit(booking)

    # THEN it was reported as retryable, and the retry completed the refund on the one credit note
    assert unknown.value.code == "xero_outcome_unknown"
    assert len(sim.all_credit_notes()) == 1
    assert document.cash_refunded == Money.of(24900, "USD")


def test_same_refund_with_a_different_amount_is_refused(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a refund booked for 49.00
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)
    booking = make_booking(invoice["InvoiceID"], 4900)
    books.record_credit(booking)

    # WHEN the same refund comes back asking for 59.00
    changed = booking.model_copy(update={"amount": Money.of(5900, "USD")})
    with pytest.raises(RejectedError) as refused:
        books.record_credit(changed)

    # THEN it is refused with a clear error and nothing more was written
    assert refused.value.code == "credit_note_conflict"
    assert writes(sim, "/CreditNotes") == 1
    assert writes(sim, "/Payments") == 1


def test_find_credit_document_returns_none_before_and_the_document_after(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a refund not yet booked
    invoice = new_invoice(sim, [("Desk lamp", 2, "39.50")])
    booking = make_booking(invoice["InvoiceID"], 7900)

    # WHEN it is looked up before and after booking
    before = books.find_credit_document(booking)
    recorded = books.record_credit(booking)
    after = books.find_credit_document(booking)

    # THEN there is nothing before and the same document after
    assert before is None
    assert after == recorded


def test_books_failure_after_money_moved_is_fixed_by_a_later_retry(
    sim: XeroSimulator, base_url: str, secret: SecretBackend, clock: FakeClock
) -> None:
    # GIVEN a connector configured with a payment account Xero refuses payments to (sales account 200)
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)
    booking = make_booking(invoice["InvoiceID"], 24900)
    misconfigured = make_ledger(base_url, SecretView(secret), clock, payment_account_code="200")

    # WHEN the refund is booked and refused at the payment step, then retried with the configuration fixed,
    # first inside Xero's six-minute idempotency window and then after it
    with pytest.raises(RejectedError) as refused:
        misconfigured.record_credit(booking)
    fixed_ledger = make_ledger(base_url, SecretView(secret), clock)
    with pytest.raises(TransientError) as too_soon:
        fixed_ledger.record_credit(booking)
    clock.advance(6 * 60 + 1)
    fixed = fixed_ledger.record_credit(booking)

    # THEN the refusal carries Xero's message; the changed payment under the same key waits out the window
    # (retryable, with Retry-After), and the later retry completes on the one credit note
    assert "EnablePaymentsToAccount" in refused.value.message
    assert too_soon.value.code == "xero_idempotency_window"
    assert too_soon.value.retry_after_seconds == 360
    assert len(sim.all_credit_notes()) == 1
    assert fixed.cash_refunded == Money.of(24900, "USD")


# ---------------------------------------------------------------- tokens


def test_expired_access_token_is_refreshed_and_the_rotated_token_persisted(
    sim: XeroSimulator, books: XeroBooks, secret: SecretBackend, clock: FakeClock
) -> None:
    # GIVEN a connector that already holds an access token
    invoice = new_invoice(sim, [("Desk lamp", 2, "39.50")], paid=True)
    books.record_credit(make_booking(invoice["InvoiceID"], 3950))
    first_rotation = secret.value["refresh_token"]

    # WHEN 31 minutes pass (Xero access tokens live 30) and another refund is booked
    clock.advance(31 * 60)
    books.record_credit(make_booking(invoice["InvoiceID"], 3950))

    # THEN the token was refreshed before use (no call was repeated after a 401), and each rotation was stored
    assert len(sim.token_grants) == 2
    assert sum(1 for seen in sim.requests_seen if seen["path"].startswith("/api.xro/2.0/Invoices/")) == 2
    assert [version["refresh_token"] for version in secret.versions] == [
        DEFAULT_REFRESH_TOKEN,
        first_rotation,
        sim.current_refresh_token,
    ]


def test_401_refreshes_the_token_once_and_repeats_the_call(
    sim: XeroSimulator, books: XeroBooks, secret: SecretBackend
) -> None:
    # GIVEN a connector with a cached access token that Xero has since revoked
    invoice = new_invoice(sim, [("Desk lamp", 2, "39.50")], paid=True)
    booking = make_booking(invoice["InvoiceID"], 3950)
    assert books.find_credit_document(booking) is None
    sim.revoke_access_tokens()

    # WHEN the refund is booked
    document = books.record_credit(booking)

    # THEN one refresh happened, the call was repeated with the new token, and the rotation was stored
    assert document.cash_refunded == Money.of(3950, "USD")
    assert len(sim.token_grants) == 2
    assert secret.value["refresh_token"] == sim.current_refresh_token


def test_invalid_grant_after_another_lambda_rotated_rereads_the_secret(
    sim: XeroSimulator, base_url: str, secret: SecretBackend, clock: FakeClock
) -> None:
    # GIVEN two Lambdas that both read the secret, and one of them refreshes (rotating the token)
    view_a, view_b = SecretView(secret), SecretView(secret)
    view_b.load(False)
    ledger_a = make_ledger(base_url, view_a, clock)
    ledger_b = make_ledger(base_url, view_b, clock)
    invoice = new_invoice(sim, [("Desk lamp", 2, "39.50")], paid=True)
    ledger_a.record_credit(make_booking(invoice["InvoiceID"], 3950))
    # AND the grace period of the old refresh token is over
    clock.advance(31 * 60)

    # WHEN the other Lambda, still holding the old token in its cache, books a refund
    document = ledger_b.record_credit(make_booking(invoice["InvoiceID"], 3950))

    # THEN Xero's invalid_grant made it re-read the secret and refresh with the rotated token, which it stored
    rotated_by_a = secret.versions[1]["refresh_token"]
    assert document.cash_refunded == Money.of(3950, "USD")
    assert identity_calls(sim) == 3  # A's refresh, B's refused stale token, B's retry
    assert sim.token_grants[-1]["presented"] == rotated_by_a
    assert secret.value["refresh_token"] == sim.current_refresh_token != rotated_by_a
    assert len(secret.versions) == 3


def test_refresh_token_refused_for_good_asks_for_reconnection(
    sim: XeroSimulator, base_url: str, secret: SecretBackend, clock: FakeClock
) -> None:
    # GIVEN a stored refresh token Xero does not know (revoked app connection)
    secret.value["refresh_token"] = "revoked-token"
    books = make_ledger(base_url, SecretView(secret), clock)
    invoice = new_invoice(sim, [("Desk lamp", 2, "39.50")], paid=True)

    # WHEN a refund is booked / THEN it is refused with a reconnect code and no accounting call was made
    with pytest.raises(RejectedError) as refused:
        books.record_credit(make_booking(invoice["InvoiceID"], 3950))
    assert refused.value.code == "xero_reconnect_required"
    assert not any(seen["path"].startswith("/api.xro") for seen in sim.requests_seen)


def test_identity_outage_is_transient_and_a_bad_client_secret_asks_for_reconnection(
    sim: XeroSimulator, base_url: str, secret: SecretBackend, clock: FakeClock
) -> None:
    # GIVEN the identity service answering 503 once, and then a secret whose client secret is wrong
    tokens = make_tokens(base_url, SecretView(secret), clock)
    sim.add_fault(FaultRule(method="POST", path="^/identity/connect/token$", status=503, body={}))

    # WHEN a token is asked for during the outage, and with the wrong client secret
    with pytest.raises(TransientError) as outage:
        tokens.access_token()
    secret.value["client_secret"] = "not-the-secret"
    with pytest.raises(RejectedError) as refused:
        make_tokens(base_url, SecretView(secret), clock).access_token()

    # THEN the outage is retryable, the bad client is final, and the stored refresh token was not rotated
    assert outage.value.code == "xero_identity_unavailable"
    assert refused.value.code == "xero_reconnect_required"
    assert "invalid_client" in refused.value.message
    assert secret.value["refresh_token"] == DEFAULT_REFRESH_TOKEN


def test_failure_to_store_the_rotated_token_is_transient_and_the_next_refresh_stores_it(
    sim: XeroSimulator, base_url: str, secret: SecretBackend, clock: FakeClock
) -> None:
    # GIVEN a secret store that fails once when writing
    view = SecretView(secret)
    failures = [RuntimeError("secrets manager throttled")]

    def flaky_save(value: dict[str, Any]) -> None:
        if failures:
            raise failures.pop()
        view.save(value)

    tokens = XeroTokenSource(
        identity_base=f"{base_url}/identity",
        load_secret=view.load,
        save_secret=flaky_save,
        clock=clock,
        http=HttpClient(platform="xero", base_url=f"{base_url}/identity", timeout=(2.0, 5.0)),
    )

    # WHEN a token is asked for twice
    with pytest.raises(TransientError) as unstored:
        tokens.access_token()
    tokens.access_token()

    # THEN the second refresh used the rotated token kept in memory and stored the newest one
    assert unstored.value.code == "xero_secret_store"
    assert sim.token_grants[1]["presented"] == sim.token_grants[0]["refresh_token"]
    assert secret.value["refresh_token"] == sim.current_refresh_token


# ---------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("status", "headers", "code", "retry_after"),
    [
        (429, {"Retry-After": "30", "X-Rate-Limit-Problem": "minute"}, "xero_rate_limited", 30.0),
        (503, {}, "xero_unavailable", None),
    ],
)
def test_rate_limit_and_outage_are_transient_and_a_retry_succeeds(
    sim: XeroSimulator,
    books: XeroBooks,
    status: int,
    headers: dict[str, str],
    code: str,
    retry_after: float | None,
) -> None:
    # GIVEN Xero answering the invoice read with a rate limit or an outage
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)
    booking = make_booking(invoice["InvoiceID"], 24900)
    sim.add_fault(FaultRule(method="GET", path="/Invoices/", status=status, headers=headers, body={}))

    # WHEN the refund is booked, then retried
    with pytest.raises(TransientError) as transient:
        books.record_credit(booking)
    document = books.record_credit(booking)

    # THEN the failure is transient with Xero's Retry-After, and the retry books the refund once
    assert transient.value.code == code
    assert transient.value.retry_after_seconds == retry_after
    assert document.cash_refunded == Money.of(24900, "USD")
    assert len(sim.all_credit_notes()) == 1


def test_unknown_invoice_is_not_found(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN an invoice id Xero does not know
    booking = make_booking(str(uuid.uuid4()), 1000)

    # WHEN the refund is booked / THEN NotFound, and nothing was written
    with pytest.raises(NotFound):
        books.record_credit(booking)
    assert writes(sim, "") == 0


def test_currency_mismatch_is_rejected(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a EUR invoice and a USD refund
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], currency="EUR", paid=True)

    # WHEN the refund is booked / THEN it is rejected before any write
    with pytest.raises(RejectedError) as refused:
        books.record_credit(make_booking(invoice["InvoiceID"], 24900, "USD"))
    assert refused.value.code == "currency_mismatch"
    assert writes(sim, "") == 0


def test_draft_invoice_is_rejected(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN an invoice still in DRAFT
    contact = sim.add_contact("Draft Customer")
    invoice = sim.add_invoice(contact["ContactID"], [("Desk", 1, "10.00")], status="DRAFT")

    # WHEN a refund is booked against it / THEN it is rejected
    with pytest.raises(RejectedError) as refused:
        books.record_credit(make_booking(invoice["InvoiceID"], 1000))
    assert refused.value.code == "invoice_status"


def test_xero_validation_messages_reach_the_rejection(
    sim: XeroSimulator, base_url: str, secret: SecretBackend, clock: FakeClock
) -> None:
    # GIVEN a connector configured with a refund account code the organisation does not have
    books = make_ledger(base_url, SecretView(secret), clock, refund_account_code="999")
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)

    # WHEN the refund is booked / THEN Xero's 400 ValidationException message is in the RejectedError
    with pytest.raises(RejectedError) as refused:
        books.record_credit(make_booking(invoice["InvoiceID"], 24900))
    assert refused.value.code == "xero_validation"
    assert "Account code '999' is not a valid code" in refused.value.message


def test_wrong_tenant_is_forbidden(sim: XeroSimulator, base_url: str, secret: SecretBackend, clock: FakeClock) -> None:
    # GIVEN a secret naming an organisation the app is not connected to
    secret.value["tenant_id"] = str(uuid.uuid4())
    books = make_ledger(base_url, SecretView(secret), clock)
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)

    # WHEN a refund is booked / THEN Xero's 403 is a final rejection
    with pytest.raises(RejectedError) as refused:
        books.record_credit(make_booking(invoice["InvoiceID"], 24900))
    assert refused.value.code == "xero_forbidden"


def test_connections_lists_the_connected_tenant(base_url: str, secret: SecretBackend, clock: FakeClock) -> None:
    # GIVEN an access token from the connector's token source
    tokens = make_tokens(base_url, SecretView(secret), clock)
    token = tokens.access_token()

    # WHEN the connections are listed
    answer = requests.get(f"{base_url}/connections", headers={"Authorization": f"Bearer {token}"}, timeout=5)

    # THEN the tenant the secret names is there
    assert answer.status_code == 200
    assert [connection["tenantId"] for connection in answer.json()] == [tokens.tenant_id] == [DEFAULT_TENANT_ID]


def test_refund_id_that_could_break_the_where_filter_is_refused(sim: XeroSimulator, books: XeroBooks) -> None:
    # GIVEN a booking whose refund id is not one of ours (a quote would end Xero's filter string)
    invoice = new_invoice(sim, [("Walnut desk", 1, "249.00")], paid=True)
    booking = make_booking(invoice["InvoiceID"], 24900).model_copy(
        update={"refund_id": 'rf_x") OR Type!=("', "external_reference": 'rf_x") OR Type!=("'}
    )

    # WHEN it is booked or looked up / THEN both are refused before any call to Xero
    with pytest.raises(RejectedError) as refused:
        books.record_credit(booking)
    with pytest.raises(RejectedError):
        books.find_credit_document(booking)
    assert refused.value.code == "bad_refund_id"
    assert sim.requests_seen == []
