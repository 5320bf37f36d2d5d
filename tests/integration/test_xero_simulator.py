"""The Xero simulator is as strict as Xero for what refundflow calls: auth, tokens, idempotency, accounting rules."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

from local.simulators.base import exact_json
from local.simulators.xero import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    DEFAULT_TENANT_ID,
    NOT_FOUND_TEXT,
    XeroSimulator,
)
from tests.support.clocks import FakeClock

API = "/api.xro/2.0"


def refresh(base_url: str, refresh_token: str, *, secret: str = DEFAULT_CLIENT_SECRET) -> requests.Response:
    return requests.post(
        f"{base_url}/identity/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(DEFAULT_CLIENT_ID, secret),
        timeout=5,
    )


@pytest.fixture
def token(base_url: str) -> str:
    answer = refresh(base_url, DEFAULT_REFRESH_TOKEN)
    assert answer.status_code == 200
    return str(answer.json()["access_token"])


def call(base_url: str, token: str, method: str, path: str, body: Any = None, **headers: str) -> requests.Response:
    merged = {"Authorization": f"Bearer {token}", "xero-tenant-id": DEFAULT_TENANT_ID, "Accept": "application/json"}
    merged.update({name.replace("_", "-"): value for name, value in headers.items()})
    data = exact_json(body) if body is not None else None
    if data is not None:
        merged["Content-Type"] = "application/json"
    return requests.request(method, f"{base_url}{API}{path}", data=data, headers=merged, timeout=5)


def decimals(answer: requests.Response) -> Any:
    return json.loads(answer.content, parse_float=Decimal)


def messages(answer: requests.Response) -> list[str]:
    body = answer.json()
    return [error["Message"] for element in body["Elements"] for error in element["ValidationErrors"]]


def credit_note_body(contact_id: str, amount: str = "30.00", status: str = "AUTHORISED") -> dict[str, Any]:
    return {
        "CreditNotes": [
            {
                "Type": "ACCRECCREDIT",
                "Status": status,
                "Contact": {"ContactID": contact_id},
                "Date": "2026-05-01",
                "CurrencyCode": "USD",
                "LineAmountTypes": "Inclusive",
                "Reference": "rf_test refund",
                "LineItems": [
                    {"Description": "Refund", "Quantity": 1, "UnitAmount": Decimal(amount), "AccountCode": "200"}
                ],
            }
        ]
    }


@pytest.fixture
def customer(sim: XeroSimulator) -> dict[str, Any]:
    return sim.add_contact("Ada Lovelace", "ada@example.com")


# ---------------------------------------------------------------- identity


def test_refresh_rotates_the_token_and_the_old_one_only_works_during_the_grace_period(
    base_url: str, clock: FakeClock
) -> None:
    # GIVEN a first refresh that rotated the initial refresh token
    first = refresh(base_url, DEFAULT_REFRESH_TOKEN).json()

    # WHEN the old token is presented again within 30 minutes, and again after them
    clock.advance(29 * 60)
    within_grace = refresh(base_url, DEFAULT_REFRESH_TOKEN)
    clock.advance(2 * 60)
    after_grace = refresh(base_url, DEFAULT_REFRESH_TOKEN)

    # THEN within the grace period it still works and hands back the newest token; afterwards invalid_grant
    assert first["refresh_token"] != DEFAULT_REFRESH_TOKEN
    assert first["expires_in"] == 1800
    assert first["token_type"] == "Bearer"
    assert within_grace.status_code == 200
    assert within_grace.json()["refresh_token"] == first["refresh_token"]
    assert after_grace.status_code == 400
    assert after_grace.json() == {"error": "invalid_grant"}


def test_unused_refresh_token_expires_after_60_days(base_url: str, clock: FakeClock) -> None:
    # GIVEN a refresh token nobody used for more than 60 days
    clock.advance(61 * 24 * 3600)

    # WHEN it is presented / THEN invalid_grant
    answer = refresh(base_url, DEFAULT_REFRESH_TOKEN)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client(base_url: str) -> None:
    # GIVEN the right refresh token with the wrong client secret / WHEN refreshed / THEN invalid_client
    answer = refresh(base_url, DEFAULT_REFRESH_TOKEN, secret="wrong")
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_client"}


def test_access_token_expires_after_30_minutes(base_url: str, token: str, clock: FakeClock) -> None:
    # GIVEN an access token 30 minutes old
    clock.advance(30 * 60)

    # WHEN it is used / THEN 401 in Xero's problem shape, saying the token expired
    answer = call(base_url, token, "GET", "/Accounts")
    assert answer.status_code == 401
    assert answer.json()["Title"] == "Unauthorized"
    assert answer.json()["Detail"].startswith("TokenExpired: token expired at")


def test_missing_bearer_is_401_and_wrong_tenant_is_403(base_url: str, token: str) -> None:
    # GIVEN requests without a token and with another tenant
    unauthenticated = requests.get(
        f"{base_url}{API}/Accounts", headers={"xero-tenant-id": DEFAULT_TENANT_ID}, timeout=5
    )
    wrong_tenant = call(base_url, token, "GET", "/Accounts", xero_tenant_id=str(uuid.uuid4()))

    # THEN Xero's 401 and 403 problem bodies
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["Detail"] == "AuthenticationUnsuccessful"
    assert wrong_tenant.status_code == 403
    assert wrong_tenant.json()["Title"] == "Forbidden"


# ---------------------------------------------------------------- idempotency


def test_same_idempotency_key_replays_the_first_answer(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN a credit note created under a key
    body = credit_note_body(customer["ContactID"])
    first = call(base_url, token, "PUT", "/CreditNotes", body, Idempotency_Key="key-1")

    # WHEN the identical request is sent again with the same key
    second = call(base_url, token, "PUT", "/CreditNotes", body, Idempotency_Key="key-1")

    # THEN the same answer comes back and only one credit note exists
    assert first.status_code == second.status_code == 200
    assert second.json()["CreditNotes"][0]["CreditNoteID"] == first.json()["CreditNotes"][0]["CreditNoteID"]
    assert len(sim.all_credit_notes()) == 1


def test_same_key_with_another_request_is_refused_until_the_key_expires(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator, clock: FakeClock
) -> None:
    # GIVEN a key used for a 30.00 credit note
    call(base_url, token, "PUT", "/CreditNotes", credit_note_body(customer["ContactID"]), Idempotency_Key="key-2")

    # WHEN the key is reused for 40.00 now, and again after six minutes (with a fresh access token)
    reused = call(
        base_url,
        token,
        "PUT",
        "/CreditNotes",
        credit_note_body(customer["ContactID"], "40.00"),
        Idempotency_Key="key-2",
    )
    clock.advance(6 * 60 + 1)
    fresh_token = refresh(base_url, sim.current_refresh_token).json()["access_token"]
    later = call(
        base_url,
        fresh_token,
        "PUT",
        "/CreditNotes",
        credit_note_body(customer["ContactID"], "40.00"),
        Idempotency_Key="key-2",
    )

    # THEN first refused as a different request, then processed as a new key
    assert reused.status_code == 400
    assert "is used with a different request" in reused.json()["Message"]
    assert later.status_code == 200
    assert sorted(note["Total"] for note in sim.all_credit_notes()) == [Decimal("30.00"), Decimal("40.00")]


def test_idempotency_key_longer_than_128_characters_is_refused(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN a 129-character key / WHEN used / THEN 400 and nothing created
    answer = call(
        base_url, token, "PUT", "/CreditNotes", credit_note_body(customer["ContactID"]), Idempotency_Key="k" * 129
    )
    assert answer.status_code == 400
    assert sim.all_credit_notes() == []


# ---------------------------------------------------------------- accounting rules


def test_invoice_totals_are_exact_decimals_with_tax_carved_out_of_inclusive_lines(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN an invoice of two lamps at 39.50 and a desk at 249.00, GST 15 % included
    invoice = sim.add_invoice(
        customer["ContactID"], [("Lamp", 2, "39.50", "200", "OUTPUT2"), ("Desk", 1, "249.00", "200", "OUTPUT2")]
    )

    # WHEN it is read through the API
    answer = call(base_url, token, "GET", f"/Invoices/{invoice['InvoiceID']}")

    # THEN the JSON numbers are exact, tax is per line, and the dates are Xero's /Date()/ form
    read = decimals(answer)["Invoices"][0]
    assert b'"Total":328.00' in answer.content
    assert read["Total"] == Decimal("328.00")
    assert read["TotalTax"] == Decimal("10.30") + Decimal("32.48")
    assert read["SubTotal"] == read["Total"] - read["TotalTax"]
    assert read["AmountDue"] == read["Total"]
    assert read["Date"].startswith("/Date(")
    assert read["Date"].endswith("+0000)/")


def test_unknown_invoice_is_404_with_xeros_plain_text(base_url: str, token: str) -> None:
    # GIVEN an id that does not exist / WHEN read / THEN 404 with Xero's text body
    answer = call(base_url, token, "GET", f"/Invoices/{uuid.uuid4()}")
    assert answer.status_code == 404
    assert answer.text == NOT_FOUND_TEXT


def allocate(base_url: str, token: str, credit_note_id: str, invoice_id: str, amount: str) -> requests.Response:
    body = {"Allocations": [{"Invoice": {"InvoiceID": invoice_id}, "Amount": Decimal(amount), "Date": "2026-05-01"}]}
    return call(base_url, token, "PUT", f"/CreditNotes/{credit_note_id}/Allocations", body)


def create_credit_note(
    base_url: str, token: str, contact_id: str, amount: str = "30.00", status: str = "AUTHORISED"
) -> dict[str, Any]:
    answer = call(base_url, token, "PUT", "/CreditNotes", credit_note_body(contact_id, amount, status))
    assert answer.status_code == 200, answer.text
    return dict(decimals(answer)["CreditNotes"][0])


def test_allocation_above_the_amount_due_is_refused_with_xeros_message(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN an invoice with 20.00 due and a 30.00 credit note
    invoice = sim.add_invoice(customer["ContactID"], [("Item", 1, "50.00")])
    sim.pay_invoice(invoice["InvoiceID"], "30.00")
    note = create_credit_note(base_url, token, customer["ContactID"])

    # WHEN 25.00 is allocated / THEN refused, and nothing changed
    answer = allocate(base_url, token, note["CreditNoteID"], invoice["InvoiceID"], "25.00")
    assert answer.status_code == 400
    assert answer.json()["Type"] == "ValidationException"
    assert "Credit Note cannot be allocated as amount is greater than amount outstanding" in messages(answer)
    assert sim.invoice(invoice["InvoiceID"])["AmountDue"] == Decimal("20.00")


def test_allocation_to_a_paid_invoice_is_refused(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN a paid invoice and a credit note for the same customer
    invoice = sim.add_invoice(customer["ContactID"], [("Item", 1, "50.00")])
    sim.pay_invoice(invoice["InvoiceID"])
    note = create_credit_note(base_url, token, customer["ContactID"])

    # WHEN the credit note is allocated to it / THEN Xero's "already been paid off" refusal
    answer = allocate(base_url, token, note["CreditNoteID"], invoice["InvoiceID"], "10.00")
    assert answer.status_code == 400
    assert "The invoice you are trying to allocate to has already been paid off" in messages(answer)


def test_allocation_from_a_draft_credit_note_or_to_another_customer_is_refused(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN a draft credit note, and an invoice of another customer
    draft = create_credit_note(base_url, token, customer["ContactID"], status="DRAFT")
    other = sim.add_contact("Charles Babbage")
    invoice = sim.add_invoice(other["ContactID"], [("Item", 1, "50.00")])

    # WHEN the draft is allocated to that invoice / THEN both rules are reported
    answer = allocate(base_url, token, draft["CreditNoteID"], invoice["InvoiceID"], "10.00")
    assert answer.status_code == 400
    assert "Only AUTHORISED credit notes with remaining credit can be allocated" in messages(answer)
    assert "The credit note and the invoice must belong to the same contact" in messages(answer)


def test_full_allocation_marks_invoice_and_credit_note_paid(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN an unpaid 30.00 invoice and a 30.00 credit note
    invoice = sim.add_invoice(customer["ContactID"], [("Item", 1, "30.00")])
    note = create_credit_note(base_url, token, customer["ContactID"])

    # WHEN the whole credit is allocated
    answer = allocate(base_url, token, note["CreditNoteID"], invoice["InvoiceID"], "30.00")

    # THEN both documents are PAID and the balances moved
    assert answer.status_code == 200
    after_invoice = sim.invoice(invoice["InvoiceID"])
    after_note = sim.credit_note(note["CreditNoteID"])
    assert after_invoice["Status"] == "PAID"
    assert after_invoice["AmountCredited"] == Decimal("30.00")
    assert after_note["Status"] == "PAID"
    assert after_note["RemainingCredit"] == 0
    assert answer.json()["Allocations"][0]["AllocationID"] == after_note["Allocations"][0]["AllocationID"]


@pytest.mark.parametrize(
    ("account", "amount", "expected"),
    [
        ("090", "35.00", "Payment amount exceeds the amount outstanding on this document"),
        ("200", "10.00", "Payments can only be made to BANK accounts or accounts with EnablePaymentsToAccount set"),
    ],
)
def test_cash_refund_above_remaining_credit_or_to_a_non_payment_account_is_refused(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator, account: str, amount: str, expected: str
) -> None:
    # GIVEN a 30.00 credit note
    note = create_credit_note(base_url, token, customer["ContactID"])

    # WHEN a cash refund breaks a rule / THEN refused with the reason and nothing paid
    body = {
        "Payments": [
            {
                "CreditNote": {"CreditNoteID": note["CreditNoteID"]},
                "Account": {"Code": account},
                "Amount": Decimal(amount),
                "Date": "2026-05-01",
            }
        ]
    }
    answer = call(base_url, token, "PUT", "/Payments", body)
    assert answer.status_code == 400
    assert expected in messages(answer)
    assert sim.all_payments() == []


def test_cash_refund_to_a_clearing_account_that_accepts_payments_pays_off_the_credit_note(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN a 30.00 credit note
    note = create_credit_note(base_url, token, customer["ContactID"])

    # WHEN 30.00 is refunded through the payment-provider clearing account (EnablePaymentsToAccount)
    body = {
        "CreditNote": {"CreditNoteID": note["CreditNoteID"]},
        "Account": {"Code": "855"},
        "Amount": Decimal("30.00"),
        "Date": "2026-05-01",
        "Reference": "refund",
    }
    answer = call(base_url, token, "POST", "/Payments", body)

    # THEN it is an AR credit payment and the credit note is PAID
    assert answer.status_code == 200
    assert answer.json()["Payments"][0]["PaymentType"] == "ARCREDITPAYMENT"
    assert sim.credit_note(note["CreditNoteID"])["Status"] == "PAID"


def test_where_filter_finds_credit_notes_by_reference(base_url: str, token: str, customer: dict[str, Any]) -> None:
    # GIVEN a credit note with a reference
    created = create_credit_note(base_url, token, customer["ContactID"])

    # WHEN credit notes are listed with a where filter on the reference prefix, and on another prefix
    where = 'Type=="ACCRECCREDIT" AND Reference!=null AND Reference.StartsWith("rf_test")'
    found = requests.get(
        f"{base_url}{API}/CreditNotes",
        params={"where": where},
        headers={"Authorization": f"Bearer {token}", "xero-tenant-id": DEFAULT_TENANT_ID},
        timeout=5,
    )
    missed = requests.get(
        f"{base_url}{API}/CreditNotes",
        params={"where": 'Reference.StartsWith("rf_other")'},
        headers={"Authorization": f"Bearer {token}", "xero-tenant-id": DEFAULT_TENANT_ID},
        timeout=5,
    )

    # THEN only the matching credit note comes back
    assert [note["CreditNoteID"] for note in found.json()["CreditNotes"]] == [created["CreditNoteID"]]
    assert missed.json()["CreditNotes"] == []


def test_amount_with_more_than_two_decimals_is_refused(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN a credit note line priced at 1.005 (Xero keeps two decimals unless unitdp=4)
    body = credit_note_body(customer["ContactID"])
    body["CreditNotes"][0]["LineItems"][0]["UnitAmount"] = Decimal("1.005")

    # WHEN it is created / THEN refused rather than rounded
    answer = call(base_url, token, "PUT", "/CreditNotes", body)
    assert answer.status_code == 400
    assert any("more than 2 decimal places" in message for message in messages(answer))
    assert sim.all_credit_notes() == []


def test_what_xero_fills_in_or_drops_is_booked_as_xero_would_and_recorded(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator, clock: FakeClock
) -> None:
    # GIVEN a credit note whose date is misspelt, and whose line has no tax type (the org's "today" is fixed)
    body = credit_note_body(customer["ContactID"])
    note = body["CreditNotes"][0]
    note["Dat"] = note.pop("Date")
    del note["LineAmountTypes"]
    # WHEN it is created, then paid out without a date or a reference
    answer = call(base_url, token, "PUT", "/CreditNotes", body)
    assert answer.status_code == 200, answer.text
    created = answer.json()["CreditNotes"][0]
    payment = {
        "Payments": [
            {"CreditNote": {"CreditNoteID": created["CreditNoteID"]}, "Account": {"Code": "090"}, "Amount": 30}
        ]
    }
    assert call(base_url, token, "PUT", "/Payments", payment).status_code == 200
    # THEN Xero accepted both, and booked what it would: today's date, tax-exclusive lines with the account's
    # tax type (so 30.00 plus 15 % tax), a payment dated today with no reference
    today = datetime.fromtimestamp(clock.now, UTC).date().isoformat()
    [booked] = sim.booked()
    assert (booked["Date"], booked["LineAmountTypes"], booked["LineItems"][0]["TaxType"]) == (
        today,
        "Exclusive",
        "OUTPUT2",
    )
    assert booked["Total"] == Decimal("34.50")
    [paid] = booked["Payments"]
    assert (paid["Date"], paid["Reference"]) == (today, "")
    # AND the record says what Xero filled in and what it dropped, for tests to hold the client to
    assert booked["defaulted"] == ["Date", "LineAmountTypes", "LineItems[0].TaxType"]
    assert booked["ignored"] == ["Dat"]
    assert (paid["defaulted"], paid["ignored"]) == (["Date", "Reference"], [])
    # AND the control route serves the same record
    served = json.loads(requests.get(f"{base_url}/_control/booked", timeout=5).content, parse_float=Decimal)
    assert served["CreditNotes"] == [booked]


def test_allocation_without_a_date_is_refused(
    base_url: str, token: str, customer: dict[str, Any], sim: XeroSimulator
) -> None:
    # GIVEN an unpaid invoice and an authorised credit note for the same customer
    invoice = sim.add_invoice(customer["ContactID"], [("Lamp", 1, "30.00", "200", "OUTPUT2")])
    created = call(base_url, token, "PUT", "/CreditNotes", credit_note_body(customer["ContactID"]))
    note = created.json()["CreditNotes"][0]
    # WHEN it is allocated without a date
    body = {"Allocations": [{"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": 30}]}
    answer = call(base_url, token, "PUT", f"/CreditNotes/{note['CreditNoteID']}/Allocations", body)
    # THEN Xero refuses it (the spec requires Amount, Invoice and Date) and nothing is allocated
    assert answer.status_code == 400
    assert "Date is required" in messages(answer)
    assert sim.invoice(invoice["InvoiceID"])["AmountDue"] == Decimal("30.00")
