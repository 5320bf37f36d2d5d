"""NetSuite's own behaviour beyond the conformance suite: the documents booked (bodies, lines, tax, amounts exact),
the resumable two-step flow, the client-credentials token, and errors in words an accountant can act on."""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.simulators.netsuite import CLEARING_ACCOUNT, REFUND_ITEM
from refundflow.api import RefundRequestBody
from refundflow.errors import NotFound, RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import BooksSystem, CustomerContact, InvoiceReference, PaymentProvider, RefundLine
from refundflow.money import Money
from refundflow.platforms.netsuite.auth import NetSuiteTokenSource
from refundflow.ports import CreditBooking
from tests.platforms.netsuite.conftest import Wired, wire

EVENTS = Path(__file__).resolve().parents[3] / "events" / "netsuite"


def booking(invoice_id: str, minor: int, currency: str = "EUR", lines: list[RefundLine] | None = None) -> CreditBooking:
    refund_id = derive_refund_id("netsuite-test", uuid.uuid4().hex)
    return CreditBooking(
        refund_id=refund_id,
        invoice=InvoiceReference(system=BooksSystem.NETSUITE, invoice_id=invoice_id),
        amount=Money.of(minor, currency),
        lines=lines or [],
        customer=CustomerContact(email="ada@example.com", name="Ada Lovelace"),
        booking_date=date(2026, 12, 6),
        reference="RMA-77",
        payment_provider=PaymentProvider.STRIPE,
        idempotency_key=idempotency_key(refund_id, "books"),
        external_reference=refund_id,
    )


def writes(wired: Wired) -> list[dict[str, Any]]:
    return [seen for seen in wired.simulator.requests_seen if seen["method"] == "POST" and "/record/" in seen["path"]]


def test_a_paid_invoice_gets_a_credit_memo_and_a_customer_refund_with_the_documented_fields(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR", paid=True)
    document = wired.books.record_credit(booking(invoice_id, 1_234))

    transform, refund = writes(wired)
    assert transform["path"] == f"/services/rest/record/v1/invoice/{invoice_id}/!transform/creditMemo"
    assert transform["query"] == "replace=item"
    memo_body = json.loads(transform["body"], parse_float=Decimal)
    assert set(memo_body) == {"externalId", "tranDate", "memo", "autoApply", "item"}  # nothing to apply: it is paid
    assert memo_body["autoApply"] is False  # never to the customer's oldest open receivable
    assert memo_body["externalId"] == document.external_reference
    assert memo_body["tranDate"] == "2026-12-06"
    [line] = memo_body["item"]["items"]
    assert line == {
        "item": {"id": REFUND_ITEM},
        "description": line["description"],
        "quantity": 1,
        "rate": Decimal("12.34"),
        "amount": Decimal("12.34"),
    }
    assert '"amount":12.34' in transform["body"]  # an exact JSON number, never a float's digits
    refund_body = json.loads(refund["body"], parse_float=Decimal)
    assert refund["path"] == "/services/rest/record/v1/customerRefund"
    assert refund_body["account"] == {"id": CLEARING_ACCOUNT}  # stripe:EUR's clearing account
    assert refund_body["apply"]["items"] == [
        {"doc": {"id": document.document_id}, "apply": True, "amount": Decimal("12.34")}
    ]
    assert refund_body["externalId"] == document.external_reference
    assert all("X-Netsuite-Idempotency-Key" not in seen["headers"] for seen in writes(wired))
    assert (document.cash_refunded, document.allocated_to_invoice) == (Money.of(1_234, "EUR"), Money.zero("EUR"))
    [held] = wired.simulator.documents()
    assert [item["total"] for item in held["customerRefunds"]] == [Decimal("12.34")]


def test_an_open_invoice_is_credited_by_applying_what_it_owes_and_the_rest_is_paid_out(wired: Wired) -> None:
    # GIVEN an invoice of 100.00 of which 80.00 was paid: it owes 20.00
    customer = wired.simulator.add_customer("Grace", "EUR")
    invoice_id = wired.simulator.add_invoice(customer, [("Desk", 1, Decimal("100.00"))], currency="EUR")
    wired.simulator.invoices[invoice_id]["amountPaid"] = Decimal("80.00")

    # WHEN 30.00 is refunded
    document = wired.books.record_credit(booking(invoice_id, 3_000))

    # THEN 20.00 is applied to the invoice in the transform itself and 10.00 paid out by a customer refund
    transform, refund = writes(wired)
    assert json.loads(transform["body"], parse_float=Decimal)["apply"]["items"] == [
        {"doc": {"id": invoice_id}, "apply": True, "amount": Decimal("20.00")}
    ]
    assert json.loads(refund["body"], parse_float=Decimal)["apply"]["items"][0]["amount"] == Decimal("10.00")
    assert (document.allocated_to_invoice, document.cash_refunded) == (Money.of(2_000, "EUR"), Money.of(1_000, "EUR"))
    assert wired.simulator.invoice(invoice_id)["amountRemaining"] == 0


def test_refund_lines_book_exactly_with_the_mapped_tax_code(served: Any, wired: Wired) -> None:
    books = wire(wired.simulator, wired.url, tax_codes={"EUR": "-7"}).books
    invoice_id = wired.simulator.seed_invoice(20_000, "EUR")
    lines = [
        RefundLine(description="Chair", quantity=3, amount=Money.of(9_000, "EUR")),
        RefundLine(description="Cushion", quantity=3, amount=Money.of(1_000, "EUR")),
    ]
    document = books.record_credit(booking(invoice_id, 10_000, lines=lines))

    [transform] = writes(wired)
    items = json.loads(transform["body"], parse_float=Decimal)["item"]["items"]
    # 90.00 for 3 is 30.00 each; 10.00 for 3 has no exact rate, so it is one unit of 10.00
    assert [(item["description"], item["quantity"], item["rate"], item["amount"]) for item in items] == [
        ("Chair", 3, Decimal("30.00"), Decimal("90.00")),
        ("Cushion (x3)", 1, Decimal("10.00"), Decimal("10.00")),
    ]
    assert {item["taxCode"]["id"] for item in items} == {"-7"}
    assert document.total == document.allocated_to_invoice == Money.of(10_000, "EUR")


def test_a_tax_code_that_adds_tax_on_top_is_refused_in_words(served: Any, wired: Wired) -> None:
    books = wire(wired.simulator, wired.url, tax_codes={"*": "12"}).books
    invoice_id = wired.simulator.seed_invoice(20_000, "EUR")
    with pytest.raises(RejectedError) as refused:
        books.record_credit(booking(invoice_id, 5_000))
    assert refused.value.code == "credit_memo_conflict"
    assert "totals 60.00 EUR, the refund is 50.00 EUR" in refused.value.message


def test_zero_decimal_currencies_go_out_in_whole_units(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(9_000, "JPY", paid=True)
    document = wired.books.record_credit(booking(invoice_id, 1_500, "JPY"))
    [transform, _] = writes(wired)
    assert '"rate":1500,' in transform["body"]
    assert document.cash_refunded == Money.of(1_500, "JPY")


def test_a_crash_between_the_credit_memo_and_the_customer_refund_resumes_without_duplicates(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR", paid=True)
    the_booking = booking(invoice_id, 4_000)
    wired.simulator.inject_fault("pay_out", "transient")
    with pytest.raises(TransientError):
        wired.books.record_credit(the_booking)

    # the credit memo exists, found by our reference, but nothing is paid out yet: the domain records again
    found = wired.books.find_credit_document(the_booking)
    assert found is not None
    assert (found.total, found.cash_refunded) == (Money.of(4_000, "EUR"), Money.zero("EUR"))

    document = wired.books.record_credit(the_booking)
    assert document.document_id == found.document_id
    assert document.cash_refunded == Money.of(4_000, "EUR")
    assert len(wired.simulator.credit_memos) == len(wired.simulator.customer_refunds) == 1
    assert wired.books.record_credit(the_booking) == document  # and again: read back, nothing written
    assert len(writes(wired)) == 3  # transform, the refused refund, the refund


def test_the_access_token_is_cached_and_asked_for_again_after_a_401(wired: Wired) -> None:
    first = wired.simulator.seed_invoice(10_000, "EUR")
    second = wired.simulator.seed_invoice(10_000, "EUR")
    wired.books.record_credit(booking(first, 1_000))
    assert wired.tokens.grants == 1
    wired.simulator.revoke_access_tokens()
    wired.books.record_credit(booking(second, 1_000))
    assert wired.tokens.grants == 2
    assert len(wired.simulator.credit_memos) == 2
    claims = wired.simulator.assertions[-1]
    assert claims["iss"] == wired.simulator.client_id
    assert claims["scope"] == "rest_webservices"
    assert claims["aud"] == f"{wired.url}/services/rest/auth/oauth2/v1/token"
    assert 0 < claims["exp"] - claims["iat"] < 3600


def test_an_rsa_certificate_signs_ps256(wired: Wired) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wired.simulator.register_certificate("cert-rsa-1", key.public_key())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tokens = NetSuiteTokenSource(
        api_base=wired.url, client_id=wired.simulator.client_id, certificate_id="cert-rsa-1", private_key=pem.decode()
    )
    assert tokens.access_token()
    assert wired.simulator.assertions[-1]["iss"] == wired.simulator.client_id


def test_an_unmapped_certificate_is_refused_for_good(wired: Wired) -> None:
    secret = wired.simulator.local_secrets()["api"]
    tokens = NetSuiteTokenSource(
        api_base=wired.url,
        client_id=secret["client_id"],
        certificate_id="not-mapped",
        private_key=secret["private_key"],
    )
    with pytest.raises(RejectedError) as refused:
        tokens.access_token()
    assert refused.value.code == "netsuite_auth_refused"
    assert "invalid_client" in refused.value.message


def test_a_closed_period_is_refused_in_an_accountants_words_and_nothing_is_booked(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR")
    wired.simulator.closed_before = date(2027, 1, 1)
    with pytest.raises(RejectedError) as refused:
        wired.books.record_credit(booking(invoice_id, 1_000))
    assert refused.value.code == "books_period_closed"
    assert "closed accounting period" in refused.value.message
    assert wired.simulator.credit_memos == {}


def test_an_invoice_in_another_currency_is_a_currency_mismatch(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "USD")
    with pytest.raises(RejectedError) as refused:
        wired.books.record_credit(booking(invoice_id, 1_000, "EUR"))
    assert refused.value.code == "currency_mismatch"
    assert "is in USD, the refund in EUR" in refused.value.message


def test_an_unknown_invoice_is_not_found(wired: Wired) -> None:
    with pytest.raises(NotFound, match="not found in NetSuite"):
        wired.books.record_credit(booking("999999", 1_000))


def test_netsuite_validation_messages_are_carried(served: Any, wired: Wired) -> None:
    books = wire(wired.simulator, wired.url, refund_item="999").books
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR")
    with pytest.raises(RejectedError) as refused:
        books.record_credit(booking(invoice_id, 1_000))
    assert refused.value.code == "netsuite_validation"
    assert "Invalid item reference key 999" in refused.value.message


def test_a_busy_account_is_transient(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR")
    wired.simulator.inject_fault("record_credit", "transient")
    with pytest.raises(TransientError) as busy:
        wired.books.record_credit(booking(invoice_id, 1_000))
    assert busy.value.code == "netsuite_unavailable"
    assert wired.simulator.credit_memos == {}


def test_no_clearing_account_for_the_provider_is_refused_before_paying_out(served: Any, wired: Wired) -> None:
    books = wire(wired.simulator, wired.url, payment_account="", clearing_accounts={}).books
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR", paid=True)
    with pytest.raises(RejectedError) as refused:
        books.record_credit(booking(invoice_id, 1_000))
    assert refused.value.code == "no_clearing_account"
    assert wired.simulator.customer_refunds == {}


def test_the_sample_request_is_a_valid_refund_request_for_a_netsuite_invoice() -> None:
    body = RefundRequestBody.model_validate(json.loads((EVENTS / "refund_request_paid_invoice.json").read_text()))
    assert body.invoice is not None
    assert body.invoice.system is BooksSystem.NETSUITE
    assert body.invoice.invoice_id.isdigit()


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (
            403,
            {"o:errorDetails": [{"detail": "Permission Violation", "o:errorCode": "INSUFFICIENT_PERMISSION"}]},
            RejectedError,
            "netsuite_forbidden",
        ),
        (
            401,
            {"o:errorDetails": [{"detail": "Invalid login attempt.", "o:errorCode": "INVALID_LOGIN"}]},
            RejectedError,
            "netsuite_unauthorized",
        ),
        (
            400,
            {
                "o:errorDetails": [
                    {"detail": "Concurrent request limit exceeded.", "o:errorCode": "CONCURRENCY_LIMIT_EXCEEDED"}
                ]
            },
            TransientError,
            "netsuite_unavailable",
        ),
        (503, None, TransientError, "netsuite_unavailable"),
        (400, {"title": "Bad Request", "status": 400}, RejectedError, "netsuite_validation"),
    ],
)
def test_netsuite_answers_map_to_the_small_set_of_errors(
    status: int, body: dict[str, Any] | None, kind: type[Exception], code: str
) -> None:
    from refundflow.connectors.http import HttpResponse
    from refundflow.platforms.netsuite.connector import _raise

    raw = json.dumps(body).encode() if body is not None else b"<html>busy</html>"
    with pytest.raises(kind) as raised:
        _raise("POST", "/customerRefund", HttpResponse(status=status, headers={}, body=raw))
    assert getattr(raised.value, "code", None) == code


def test_an_amount_the_accounts_currency_cannot_keep_is_refused_before_anything_is_written(wired: Wired) -> None:
    # GIVEN an account whose TWD currency record keeps one decimal (ISO 4217 has two)
    invoice_id = wired.simulator.seed_invoice(100_000, "TWD")
    # WHEN 10.05 TWD is refunded THEN it is refused, not rounded by NetSuite
    with pytest.raises(RejectedError) as refused:
        wired.books.record_credit(booking(invoice_id, 1_005, "TWD"))
    assert refused.value.code == "amount_not_representable"
    assert "keeps TWD with 1 decimal: 10.05 TWD cannot be booked exactly" in refused.value.message
    assert wired.simulator.credit_memos == {}
    # AND 10.50 TWD books
    assert wired.books.record_credit(booking(invoice_id, 1_050, "TWD")).total == Money.of(1_050, "TWD")


def test_the_simulator_auto_applies_to_the_oldest_open_receivable_when_asked(wired: Wired) -> None:
    # The reason the connector sends autoApply false: NetSuite would credit another invoice of the customer.
    customer = wired.simulator.add_customer("Grace", "EUR")
    older = wired.simulator.add_invoice(customer, [("Lamp", 1, Decimal("40.00"))], currency="EUR")
    newer = wired.simulator.add_invoice(customer, [("Desk", 1, Decimal("100.00"))], currency="EUR", paid=True)
    token = wired.tokens.access_token()
    response = requests.post(
        f"{wired.url}/services/rest/record/v1/invoice/{newer}/!transform/creditMemo?replace=item",
        data=json.dumps(
            {"autoApply": True, "item": {"items": [{"item": {"id": REFUND_ITEM}, "rate": 25, "amount": 25}]}}
        ),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 204
    assert wired.simulator.invoice(older)["amountRemaining"] == Decimal("15.00")


def test_a_credit_memo_made_by_a_concurrent_attempt_is_taken_not_duplicated(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a credit memo already made for the booking, which this attempt's first lookup did not see (a race)
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR")
    the_booking = booking(invoice_id, 2_000)
    first = wired.books.record_credit(the_booking)
    lookup = wired.books._by_external_id
    calls: list[str] = []

    def racing(record: str, external_id: str) -> dict[str, Any] | None:
        calls.append(record)
        return None if calls == ["creditMemo"] else lookup(record, external_id)

    monkeypatch.setattr(wired.books, "_by_external_id", racing)
    # WHEN it records: NetSuite refuses a second credit memo with our externalId
    again = wired.books.record_credit(the_booking)
    # THEN the one that exists is taken
    assert again.document_id == first.document_id
    assert len(wired.simulator.credit_memos) == 1


def test_the_simulator_refuses_what_netsuite_would_not_book(wired: Wired) -> None:
    invoice_id = wired.simulator.seed_invoice(10_000, "EUR")
    headers = {"Authorization": f"Bearer {wired.tokens.access_token()}", "Content-Type": "application/json"}
    url = f"{wired.url}/services/rest/record/v1/invoice/{invoice_id}/!transform/creditMemo?replace=item"
    line = {"item": {"id": REFUND_ITEM}, "quantity": 1, "rate": 10, "amount": 10}

    def transform(body: dict[str, Any]) -> requests.Response:
        return requests.post(url, data=json.dumps(body), headers=headers, timeout=5)

    typo = transform({"externalid": "rf-typo", "item": {"items": [line]}})
    assert (typo.status_code, typo.json()["o:errorDetails"][0]["o:errorCode"]) == (400, "INVALID_CONTENT")
    uneven = transform({"item": {"items": [{**line, "amount": 11}]}})
    assert uneven.status_code == 400
    assert transform({"externalId": "rf-dup", "item": {"items": [line]}}).status_code == 204
    duplicate = transform({"externalId": "rf-dup", "item": {"items": [line]}})
    assert (duplicate.status_code, duplicate.json()["o:errorDetails"][0]["o:errorCode"]) == (400, "DUP_RCRD")
    unsigned = requests.get(f"{wired.url}/services/rest/record/v1/invoice/{invoice_id}", timeout=5)
    assert (unsigned.status_code, unsigned.json()["o:errorDetails"][0]["o:errorCode"]) == (401, "INVALID_LOGIN")
    assert len(wired.simulator.credit_memos) == 1
