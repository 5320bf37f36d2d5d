"""Zoho Books' own behaviour against its simulator: exact amounts and taxes, the documented request fields, OAuth
refresh, error mapping in an accountant's words, and resuming a booking that crashed between its steps."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest

from local.simulators.base import FaultRule
from local.simulators.zoho_books import (
    BANK_ACCOUNT_ID,
    CLEARING_ACCOUNT_ID,
    EXPENSE_ACCOUNT_ID,
    STANDARD_TAX_ID,
    ZERO_TAX_ID,
    ZohoBooksSimulator,
)
from refundflow.errors import AmountNotRepresentable, NotFound, RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import BooksSystem, CustomerContact, InvoiceReference, PaymentProvider, RefundLine
from refundflow.money import Money
from refundflow.platforms.zoho_books.connector import ZohoBooks, dump_json, from_zoho_amount, load_json
from refundflow.ports import CreditBooking
from tests.platforms.zoho_books.conftest import SecretStore, build_books

Served = tuple[ZohoBooksSimulator, str]

# The fields Zoho Books' API pages list for each write (www.zoho.com/books/api/v3/credit-notes/).
CREDIT_NOTE_FIELDS = {"customer_id", "date", "reference_number", "is_inclusive_tax", "line_items", "notes"}
LINE_FIELDS = {"description", "quantity", "rate", "account_id", "tax_id"}
APPLY_FIELDS = {"invoice_id", "amount_applied"}
REFUND_FIELDS = {"date", "refund_mode", "reference_number", "amount", "from_account_id", "description"}


def booking(
    invoice_id: str,
    minor_units: int,
    currency: str = "EUR",
    *,
    lines: list[RefundLine] | None = None,
    provider: PaymentProvider = PaymentProvider.STRIPE,
    day: date | None = None,
) -> CreditBooking:
    refund_id = derive_refund_id("test", uuid.uuid4().hex)
    return CreditBooking(
        refund_id=refund_id,
        invoice=InvoiceReference(system=BooksSystem.ZOHO_BOOKS, invoice_id=invoice_id),
        amount=Money.of(minor_units, currency),
        lines=lines or [],
        customer=CustomerContact(email="ada@example.com", name="Ada Lovelace"),
        booking_date=day or date.today(),
        reference="RMA-7",
        payment_provider=provider,
        idempotency_key=idempotency_key(refund_id, "books"),
        external_reference=refund_id,
    )


def writes(simulator: ZohoBooksSimulator, pattern: str) -> list[dict[str, Any]]:
    import re

    return [seen for seen in simulator.requests_seen if seen["method"] == "POST" and re.search(pattern, seen["path"])]


def only_note(simulator: ZohoBooksSimulator, refund_id: str) -> dict[str, Any]:
    notes = [note for note in simulator.documents() if note["reference_number"] == refund_id]
    assert len(notes) == 1, notes
    return notes[0]


# ---------------------------------------------------------------- amounts and taxes


def test_lines_and_tax_are_booked_exactly_and_tax_inclusive(served: Served, store: SecretStore) -> None:
    # GIVEN an unpaid EUR invoice whose line carries the standard tax, and a refund of two lines
    simulator, url = served
    books = build_books(url, store)
    invoice_id = simulator.seed_invoice(10_000, "EUR")
    lines = [
        RefundLine(description="Mug", quantity=2, amount=Money.of(2_468, "EUR")),
        RefundLine(description="Spoon", quantity=3, amount=Money.of(100, "EUR")),
    ]
    request = booking(invoice_id, 2_568, lines=lines)

    # WHEN it is recorded
    document = books.record_credit(request)

    # THEN the credit note totals the refund to the cent, its lines are the refund's gross lines with the invoice's tax
    note = only_note(simulator, request.refund_id)
    assert note["total"] == Decimal("25.68")
    assert note["is_inclusive_tax"] is True
    assert [(line["description"], line["quantity"], line["rate"]) for line in note["line_items"]] == [
        ("Mug", 2, Decimal("12.34")),
        ("Spoon (x3)", 1, Decimal("1.00")),  # 1.00 / 3 is no exact price: one unit of the gross amount
    ]
    assert {line["tax_id"] for line in note["line_items"]} == {STANDARD_TAX_ID}
    assert sum(line["tax_amount"] for line in note["line_items"]) == Decimal("4.11") + Decimal(
        "0.17"
    )  # 20 % inside 24.68 and 1.00
    # AND all of it is applied to what the invoice owes
    assert (document.allocated_to_invoice, document.cash_refunded) == (request.amount, Money.zero("EUR"))
    assert simulator.invoice(invoice_id)["balance"] == Decimal("74.32")


def test_a_mapped_tax_and_account_replace_the_invoices(served: Served, store: SecretStore) -> None:
    simulator, url = served
    books = build_books(url, store, tax_ids={STANDARD_TAX_ID: ZERO_TAX_ID}, refund_account_id="460000000000100")
    invoice_id = simulator.seed_invoice(5_000, "EUR")
    request = booking(invoice_id, 1_000)
    books.record_credit(request)
    (line,) = only_note(simulator, request.refund_id)["line_items"]
    assert (line["tax_id"], line["account_id"], line["tax_amount"]) == (ZERO_TAX_ID, "460000000000100", Decimal(0))


def test_three_decimal_and_zero_decimal_currencies_are_exact(served: Served, store: SecretStore) -> None:
    simulator, url = served
    books = build_books(url, store)
    kwd = booking(simulator.seed_invoice(10_000, "KWD", paid=True), 1_235, "KWD")
    jpy = booking(simulator.seed_invoice(10_000, "JPY"), 1_235, "JPY")
    assert books.record_credit(kwd).cash_refunded == Money.of(1_235, "KWD")
    assert books.record_credit(jpy).allocated_to_invoice == Money.of(1_235, "JPY")
    refund_body = json.loads(writes(simulator, r"/refunds$")[-1]["body"], parse_float=Decimal)
    assert refund_body["amount"] == Decimal("1.235")
    assert only_note(simulator, jpy.refund_id)["total"] == Decimal(1235)


def test_amounts_cross_the_boundary_without_floats() -> None:
    assert dump_json({"amount": Decimal("0.10")}) == '{"amount":0.10}'
    with pytest.raises(TypeError):
        dump_json({"amount": 0.1})
    assert from_zoho_amount(load_json(b'{"a": 12.345}')["a"], "KWD") == Money.of(12_345, "KWD")
    with pytest.raises(RejectedError):
        from_zoho_amount(load_json(b'{"a": 12.345}')["a"], "EUR")


# ---------------------------------------------------------------- request bodies


def test_the_writes_send_only_documented_fields_with_our_reference(served: Served, store: SecretStore) -> None:
    # GIVEN a paid invoice, and stripe's EUR refunds paid from a clearing account of their own
    simulator, url = served
    books = build_books(url, store, clearing_accounts={"stripe:EUR": BANK_ACCOUNT_ID})
    invoice_id = simulator.seed_invoice(8_000, "EUR", paid=True)
    request = booking(invoice_id, 8_000)

    # WHEN it is recorded
    document = books.record_credit(request)

    # THEN one credit note linked to the invoice and its customer, refunded in cash from stripe's EUR account
    (create,) = writes(simulator, r"/creditnotes$")
    query = parse_qs(create["query"])
    assert query["invoice_id"] == [invoice_id]
    assert query["organization_id"] == [store.value["organization_id"]]
    assert create["headers"]["Authorization"].startswith("Zoho-oauthtoken 1000.")
    body = json.loads(create["body"], parse_float=Decimal)
    assert set(body) <= CREDIT_NOTE_FIELDS
    assert all(set(line) <= LINE_FIELDS for line in body["line_items"])
    assert body["customer_id"] == simulator.invoice(invoice_id)["customer_id"]
    assert (body["reference_number"], body["date"]) == (request.refund_id, request.booking_date.isoformat())
    (refund,) = writes(simulator, r"/refunds$")
    refund_body = json.loads(refund["body"], parse_float=Decimal)
    assert set(refund_body) <= REFUND_FIELDS
    assert (refund_body["amount"], refund_body["from_account_id"]) == (Decimal("80.00"), BANK_ACCOUNT_ID)
    assert refund_body["reference_number"] == request.refund_id
    assert writes(simulator, r"/invoices$") == []
    assert document.cash_refunded == request.amount
    assert document.payment_id is not None


def test_a_part_paid_invoice_is_applied_what_it_owes_and_the_rest_refunded(served: Served, store: SecretStore) -> None:
    simulator, url = served
    books = build_books(url, store)
    invoice_id = simulator.seed_invoice(10_000, "EUR")
    books.record_credit(booking(invoice_id, 9_000))  # the invoice now owes 10.00
    request = booking(invoice_id, 2_500)
    document = books.record_credit(request)
    apply_body = json.loads(writes(simulator, r"/invoices$")[-1]["body"], parse_float=Decimal)
    assert set(apply_body["invoices"][0]) == APPLY_FIELDS
    assert (document.allocated_to_invoice, document.cash_refunded) == (Money.of(1_000, "EUR"), Money.of(1_500, "EUR"))
    assert simulator.invoice(invoice_id)["status"] == "paid"


# ---------------------------------------------------------------- OAuth


def test_the_access_token_is_cached_and_refreshed_once_after_a_401(served: Served, store: SecretStore) -> None:
    simulator, url = served
    books = build_books(url, store)
    books.record_credit(booking(simulator.seed_invoice(1_000, "EUR"), 500))
    books.record_credit(booking(simulator.seed_invoice(1_000, "EUR"), 500))
    assert simulator.token_grants == 1
    # WHEN Zoho stops accepting the token, the next call refreshes once and goes on
    simulator.revoke_access_tokens()
    books.record_credit(booking(simulator.seed_invoice(1_000, "EUR"), 500))
    assert simulator.token_grants == 2


def test_a_refused_refresh_token_is_read_again_then_needs_a_person(served: Served, store: SecretStore) -> None:
    simulator, url = served
    store.value["refresh_token"] = "1000.revoked"
    books = build_books(url, store)
    with pytest.raises(RejectedError, match="generate a new refresh token") as refused:
        books.record_credit(booking(simulator.seed_invoice(1_000, "EUR"), 500))
    assert refused.value.code == "zoho_reconnect_required"
    assert store.fresh_reads == 1
    assert simulator.token_grants == 0


def test_a_refresh_token_replaced_in_the_secret_is_picked_up(served: Served, store: SecretStore) -> None:
    simulator, url = served
    good = store.value["refresh_token"]
    store.value["refresh_token"] = "1000.old"

    class Replaced(SecretStore):
        def load(self, force: bool) -> dict[str, Any]:
            value = super().load(force)
            return {**value, "refresh_token": good} if force else value

    replaced = Replaced(store.value)
    books = build_books(url, replaced)
    assert books.record_credit(booking(simulator.seed_invoice(1_000, "EUR"), 500)).total == Money.of(500, "EUR")
    assert replaced.fresh_reads == 1


# ---------------------------------------------------------------- errors


def test_an_unknown_invoice_is_not_found(served: Served, store: SecretStore) -> None:
    _, url = served
    with pytest.raises(NotFound, match="Invoice does not exist"):
        build_books(url, store).record_credit(booking("460000099999999", 500))


def test_a_currency_mismatch_is_refused_before_any_write(served: Served, store: SecretStore) -> None:
    simulator, url = served
    with pytest.raises(RejectedError, match="is in EUR, the refund in USD") as refused:
        build_books(url, store).record_credit(booking(simulator.seed_invoice(1_000, "EUR"), 500, "USD"))
    assert refused.value.code == "currency_mismatch"
    assert simulator.documents() == []


def test_a_locked_period_is_a_closed_period_in_words(served: Served, store: SecretStore) -> None:
    simulator, url = served
    simulator.lock_transactions(date.today())
    try:
        with pytest.raises(RejectedError, match="the period is closed in Zoho Books") as refused:
            build_books(url, store).record_credit(booking(simulator.seed_invoice(1_000, "EUR"), 500))
    finally:
        simulator.lock_transactions(None)
    assert refused.value.code == "books_period_closed"
    assert simulator.documents() == []


def test_zohos_validation_message_is_carried(served: Served, store: SecretStore) -> None:
    # GIVEN refunds configured to be paid from an expense account, which Zoho refuses
    simulator, url = served
    books = build_books(url, store, payment_account_id=EXPENSE_ACCOUNT_ID)
    with pytest.raises(RejectedError, match="from_account_id") as refused:
        books.record_credit(booking(simulator.seed_invoice(1_000, "EUR", paid=True), 500))
    assert refused.value.code == "zoho_validation"


def test_no_clearing_account_for_the_provider_needs_a_person(served: Served, store: SecretStore) -> None:
    simulator, url = served
    books = build_books(url, store, payment_account_id="", clearing_accounts={"stripe:*": CLEARING_ACCOUNT_ID})
    with pytest.raises(RejectedError, match="adyen payments in EUR") as refused:
        books.record_credit(
            booking(simulator.seed_invoice(1_000, "EUR", paid=True), 500, provider=PaymentProvider.ADYEN)
        )
    assert refused.value.code == "zoho_no_clearing_account"


def test_rate_limits_are_transient(served: Served, store: SecretStore) -> None:
    simulator, url = served
    simulator.inject_fault("record_credit", "transient")
    with pytest.raises(TransientError) as transient:
        build_books(url, store).record_credit(booking(simulator.seed_invoice(1_000, "EUR"), 500))
    assert transient.value.code == "zoho_rate_limited"


# ---------------------------------------------------------------- resume after a crash between steps


@pytest.mark.parametrize(
    ("paid", "step"), [(True, r"/status/open$"), (True, r"/refunds$"), (False, r"/creditnotes/\d+/invoices$")]
)
def test_a_step_done_but_unanswered_is_not_done_again(
    served: Served, store: SecretStore, paid: bool, step: str
) -> None:
    # GIVEN the application or refund goes through but its answer is lost (a 500 after the work)
    simulator, url = served
    books = build_books(url, store)
    request = booking(simulator.seed_invoice(4_000, "EUR", paid=paid), 4_000)
    simulator.add_fault(FaultRule(method="POST", path=step, status=500, when="after"))
    with pytest.raises(TransientError):
        books.record_credit(request)

    # WHEN the booking is recorded again
    document = build_books(url, store).record_credit(request)

    # THEN there is one credit note, settled once
    note = only_note(simulator, request.refund_id)
    assert note["status"] == "closed"
    assert len(note["invoices_credited"]) + len(note["creditnote_refunds"]) == 1
    assert len(writes(simulator, step)) == 1
    assert document.allocated_to_invoice + document.cash_refunded == request.amount


def test_a_crash_after_the_credit_note_resumes_with_its_refund(served: Served, store: SecretStore) -> None:
    # GIVEN the credit note was created but the refund step failed before Zoho did anything
    simulator, url = served
    books = build_books(url, store)
    request = booking(simulator.seed_invoice(4_000, "EUR", paid=True), 4_000)
    simulator.add_fault(FaultRule(method="POST", path=r"/refunds$", status=503))
    with pytest.raises(TransientError):
        books.record_credit(request)
    assert only_note(simulator, request.refund_id)["balance"] == Decimal("40.00")
    found = books.find_credit_document(request)
    assert found is not None
    assert found.cash_refunded == Money.zero("EUR")

    # WHEN it is recorded again THEN the same credit note is refunded, none created
    document = books.record_credit(request)
    assert document.document_id == found.document_id
    assert document.cash_refunded == request.amount
    assert len(writes(simulator, r"/creditnotes$")) == 1


def test_a_credit_note_for_the_refund_with_another_total_is_a_conflict(served: Served, store: SecretStore) -> None:
    simulator, url = served
    books = build_books(url, store)
    invoice_id = simulator.seed_invoice(4_000, "EUR")
    first = booking(invoice_id, 1_000)
    books.record_credit(first)
    changed = first.model_copy(update={"amount": Money.of(1_500, "EUR"), "booking_date": date.today() + timedelta(0)})
    with pytest.raises(RejectedError) as refused:
        books.record_credit(changed)
    assert refused.value.code == "credit_note_conflict"


def test_the_books_name_the_platform(served: Served, store: SecretStore) -> None:
    assert isinstance(build_books(served[1], store), ZohoBooks)
    assert ZohoBooks.name == "zoho_books"


def test_a_four_decimal_currency_is_refused_before_any_write(served: Served, store: SecretStore) -> None:
    simulator, url = served
    invoice_id = simulator.seed_invoice(100_000, "CLF")
    with pytest.raises((RejectedError, AmountNotRepresentable)):
        build_books(url, store).record_credit(booking(invoice_id, 12_345, "CLF"))
    assert simulator.documents() == []
    assert writes(simulator, r".") == []


def test_a_credit_note_awaiting_approval_waits_for_the_approver(served: Served, store: SecretStore) -> None:
    # GIVEN an organization whose credit notes need an approver
    simulator, url = served
    books = build_books(url, store)
    request = booking(simulator.seed_invoice(4_000, "EUR", paid=True), 4_000)
    simulator.require_approval(True)
    try:
        with pytest.raises(RejectedError, match="waits for approval in Zoho Books") as waiting:
            books.record_credit(request)
    finally:
        simulator.require_approval(False)
    assert waiting.value.code == "credit_note_awaiting_approval"

    # WHEN the approver approves it and the books step is retried THEN that credit note is refunded, none created
    simulator.approve(only_note(simulator, request.refund_id)["creditnote_id"])
    assert books.record_credit(request).cash_refunded == request.amount
    assert len(writes(simulator, r"/creditnotes$")) == 1
