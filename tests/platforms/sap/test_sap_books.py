"""SAP's own behaviour beyond the conformance suite: exact amounts and tax, the CSRF token and the communication
user, pending credit memos per policy, a crash between the request and its billing, error mapping, and the request
bodies against the services' documented properties."""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest

from local.simulators.base import FaultRule
from local.simulators.sap import SapSimulator
from refundflow.errors import NotFound, RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import (
    BooksSystem,
    CreditDocumentKind,
    CreditDocumentState,
    CustomerContact,
    InvoiceReference,
    PaymentProvider,
    RefundLine,
)
from refundflow.money import Money
from refundflow.platforms.sap.connector import SapBooks, net_for_gross, odata_date
from refundflow.ports import CreditBooking
from tests.platforms.sap.conftest import SecretStore, make_books

REQUESTS_PATH = "/sap/opu/odata/sap/API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest"

# The properties the connector may send, as the services' entity types name them (API_CREDIT_MEMO_REQUEST_SRV:
# A_CreditMemoRequestType, A_CreditMemoRequestItemType, A_CreditMemoReqItemPrcgElmntType; creatable ones only:
# ReferenceSDDocumentCategory, TransactionCurrency and NetAmount of an item are not).
DOCUMENTED_HEADER = {
    "CreditMemoRequestType",
    "SalesOrganization",
    "DistributionChannel",
    "OrganizationDivision",
    "SoldToParty",
    "PurchaseOrderByCustomer",
    "CustomerPurchaseOrderDate",
    "TransactionCurrency",
    "SDDocumentReason",
    "ReferenceSDDocument",
    "PaymentMethod",
    "to_Item",
}
DOCUMENTED_ITEM = {
    "CreditMemoRequestItem",
    "Material",
    "CreditMemoRequestItemText",
    "RequestedQuantity",
    "RequestedQuantityUnit",
    "to_PricingElement",
}
DOCUMENTED_PRICING = {"ConditionType", "ConditionRateValue", "ConditionCurrency"}


def booking(
    invoice_id: str,
    minor_units: int,
    currency: str = "EUR",
    *,
    lines: list[RefundLine] | None = None,
    provider: PaymentProvider = PaymentProvider.STRIPE,
) -> CreditBooking:
    refund_id = derive_refund_id("sap-tests", uuid.uuid4().hex)
    return CreditBooking(
        refund_id=refund_id,
        invoice=InvoiceReference(system=BooksSystem.SAP, invoice_id=invoice_id),
        amount=Money.of(minor_units, currency),
        lines=lines or [],
        customer=CustomerContact(email="ada@example.com", name="Ada Lovelace"),
        booking_date=date(2026, 12, 6),
        reference="RMA-1",
        payment_provider=provider,
        idempotency_key=idempotency_key(refund_id, "books"),
        external_reference=refund_id,
    )


def posts(sandbox: SapSimulator) -> list[dict[str, Any]]:
    return [json.loads(seen["body"]) for seen in sandbox.requests_seen if seen["method"] == "POST"]


# ---------------------------------------------------------------- amounts and tax


def test_a_partial_refund_of_a_taxed_invoice_credits_exactly_the_gross(books: SapBooks, sandbox: SapSimulator) -> None:
    # GIVEN a paid invoice of 100.00 EUR gross with 19 % tax (84.03 net + 15.97 tax)
    invoice_id = sandbox.seed_invoice(10_000, "EUR", paid=True)
    assert (
        sandbox.billing_documents[invoice_id]["TotalNetAmount"],
        sandbox.billing_documents[invoice_id]["TaxAmount"],
    ) == ("84.03", "15.97")
    # WHEN 33.33 EUR of it is refunded
    document = books.record_credit(booking(invoice_id, 3_333))
    # THEN SAP was sent the net price whose tax gives back exactly that gross, and the credit memo totals 33.33
    (body,) = posts(sandbox)
    assert body["to_Item"][0]["to_PricingElement"] == [
        {"ConditionType": "PMP0", "ConditionRateValue": "28.01", "ConditionCurrency": "EUR"}
    ]
    (memo,) = sandbox.credit_memos()
    assert (memo["TotalNetAmount"], memo["TaxAmount"], memo["TotalGrossAmount"]) == ("28.01", "5.32", "33.33")
    assert (document.kind, document.state) == (CreditDocumentKind.CREDIT_MEMO, CreditDocumentState.POSTED)
    assert document.total == document.cash_refunded == Money.of(3_333, "EUR")
    # AND the cash refund leaves by the payment provider's payment method, its accounting document is the payment's
    assert body["PaymentMethod"] == "S"
    assert document.payment_id == memo["AccountingDocument"]


def test_refund_lines_become_items_each_exact_in_a_three_decimal_currency(
    books: SapBooks, sandbox: SapSimulator
) -> None:
    # GIVEN an open KWD invoice (SAP keeps three decimals for KWD)
    invoice_id = sandbox.seed_invoice(50_000, "KWD")
    lines = [
        RefundLine(description="Lamp", quantity=1, amount=Money.of(12_345, "KWD")),
        RefundLine(description="Bulb", quantity=2, amount=Money.of(1_001, "KWD")),
    ]
    # WHEN the refund is booked line by line
    document = books.record_credit(booking(invoice_id, 13_346, "KWD", lines=lines))
    # THEN each line is an item whose net gives back its gross, and the credit is set against the open invoice
    (body,) = posts(sandbox)
    prices = [item["to_PricingElement"][0]["ConditionRateValue"] for item in body["to_Item"]]
    for price, line in zip(prices, lines, strict=True):
        net = Decimal(price)
        assert net + (net * Decimal("0.19")).quantize(Decimal("0.001"), ROUND_HALF_UP) == line.amount.to_decimal()
    assert [item["CreditMemoRequestItemText"] for item in body["to_Item"]] == ["Lamp", "Bulb"]
    assert document.allocated_to_invoice == document.total == Money.of(13_346, "KWD")
    assert (document.cash_refunded, document.allocation_id) == (Money.zero("KWD"), invoice_id)
    assert "PaymentMethod" not in body


def test_a_gross_no_net_amount_reaches_is_refused_rather_than_rounded() -> None:
    # GIVEN 19 % tax rounded half up: a net one cent up adds 1.19 cents of gross, so some gross amounts no net reaches
    rate = Fraction(19, 100)
    reachable = {net + round(Decimal(net) * Decimal("0.19")) for net in range(1, 200)}
    skipped = next(gross for gross in range(2, 200) if gross not in reachable)
    # WHEN / THEN such a gross is refused (never booked a cent off), and a reachable one finds its net
    with pytest.raises(RejectedError) as caught:
        net_for_gross(Money.of(skipped, "EUR"), rate)
    assert caught.value.code == "sap_tax_rounding"
    assert net_for_gross(Money.of(119, "EUR"), rate) == Money.of(100, "EUR")
    assert net_for_gross(Money.of(500, "JPY"), Fraction(0)) == Money.of(500, "JPY")


# ---------------------------------------------------------------- request bodies against the documented properties


def test_the_request_body_uses_only_documented_properties_and_links_the_invoice_and_customer(
    books: SapBooks, sandbox: SapSimulator
) -> None:
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    the_booking = booking(invoice_id, 2_500)
    books.record_credit(the_booking)
    (body,) = posts(sandbox)
    assert set(body) <= DOCUMENTED_HEADER
    for item in body["to_Item"]:
        assert set(item) <= DOCUMENTED_ITEM
        for condition in item["to_PricingElement"]:
            assert set(condition) <= DOCUMENTED_PRICING
    invoice = sandbox.billing_documents[invoice_id]
    assert body["ReferenceSDDocument"] == invoice_id
    assert body["SoldToParty"] == invoice["SoldToParty"]
    assert (body["SalesOrganization"], body["DistributionChannel"], body["OrganizationDivision"]) == (
        "1010",
        "10",
        "00",
    )
    assert body["PurchaseOrderByCustomer"] == the_booking.external_reference
    assert body["CustomerPurchaseOrderDate"] == odata_date(date(2026, 12, 6)) == "/Date(1796515200000)/"
    assert body["CreditMemoRequestType"] == "CR"


# ---------------------------------------------------------------- CSRF and the communication user


def test_the_csrf_token_is_fetched_once_and_fetched_again_when_sap_requires_it(
    books: SapBooks, sandbox: SapSimulator
) -> None:
    # GIVEN a first booking (one token fetch before the write)
    books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 1_000))
    fetches = [seen for seen in sandbox.requests_seen if seen["headers"].get("X-Csrf-Token") == "Fetch"]
    assert len(fetches) == 1
    # WHEN SAP forgets the session (a restart, the token expired) and another refund is booked
    sandbox.sessions.clear()
    document = books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 2_000))
    # THEN the write was refused once with "Required", the token fetched again, and the write made once
    fetches = [seen for seen in sandbox.requests_seen if seen["headers"].get("X-Csrf-Token") == "Fetch"]
    assert len(fetches) == 2
    assert document.total == Money.of(2_000, "EUR")
    assert len(sandbox.documents()) == 2


def test_a_changed_password_is_read_again_once_and_a_wrong_one_is_refused(
    served: tuple[SapSimulator, str], sandbox: SapSimulator
) -> None:
    url = served[1]
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    # GIVEN a function whose cached secret is stale: the password was changed and stored meanwhile
    stale = SecretStore({"username": sandbox.username, "password": "old"})
    books = make_books(url, stale)
    books._session.authorization()
    stale.value["password"] = sandbox.password
    # WHEN it books / THEN SAP's 401 made it read the secret again once, bypassing caches, and the booking went through
    assert books.record_credit(booking(invoice_id, 1_000)).total == Money.of(1_000, "EUR")
    assert stale.fresh_reads == 1
    # AND a password SAP never accepts is refused for good, in words that say what to check
    wrong = make_books(url, SecretStore({"username": sandbox.username, "password": "wrong"}))
    with pytest.raises(RejectedError) as caught:
        wrong.record_credit(booking(invoice_id, 1_000))
    assert caught.value.code == "sap_unauthorized"
    assert "communication arrangement" in caught.value.message


# ---------------------------------------------------------------- pending credit memos


def test_a_request_blocked_for_billing_waits_then_books_once_when_released(
    books: SapBooks, sandbox: SapSimulator
) -> None:
    # GIVEN credit memo requests blocked for billing (review by a person in SAP) and the policy "wait"
    sandbox.billing_block = "08"
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    the_booking = booking(invoice_id, 2_500)
    # WHEN the refund is booked: the request is made, but it is not billed, so the refund waits (transient)
    with pytest.raises(TransientError) as caught:
        books.record_credit(the_booking)
    assert caught.value.code == "sap_credit_memo_pending"
    assert "blocked for billing, reason 08" in caught.value.message
    found = books.find_credit_document(the_booking)
    assert found is not None
    assert found.state is CreditDocumentState.PENDING
    # AND a retry before the release makes no second request
    with pytest.raises(TransientError):
        books.record_credit(the_booking)
    (request,) = sandbox.documents()
    # WHEN a person releases the block / THEN the retry reads the posted credit memo, still one request
    sandbox.release_billing_block(request["CreditMemoRequest"])
    document = books.record_credit(the_booking)
    assert (document.state, document.allocated_to_invoice) == (CreditDocumentState.POSTED, the_booking.amount)
    assert len(sandbox.documents()) == 1
    assert len(posts(sandbox)) == 1


def test_with_the_record_policy_a_blocked_request_is_recorded_pending(
    served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore
) -> None:
    books = make_books(served[1], secret, pending_policy="record")
    sandbox.billing_block = "08"
    the_booking = booking(sandbox.seed_invoice(10_000, "EUR"), 2_500)
    document = books.record_credit(the_booking)
    (request,) = sandbox.documents()
    assert (document.kind, document.state) == (CreditDocumentKind.CREDIT_MEMO, CreditDocumentState.PENDING)
    assert (document.document_id, document.external_reference) == (
        request["CreditMemoRequest"],
        the_booking.external_reference,
    )
    assert document.allocated_to_invoice == document.cash_refunded == Money.zero("EUR")


# ---------------------------------------------------------------- a crash between the steps


def test_a_crash_after_the_request_was_made_resumes_into_the_one_credit_memo(
    books: SapBooks, sandbox: SapSimulator
) -> None:
    # GIVEN SAP makes the request, but the answer is lost (a 500 after the work, as a dropped gateway would)
    invoice_id = sandbox.seed_invoice(10_000, "EUR", paid=True)
    the_booking = booking(invoice_id, 4_000)
    sandbox.add_fault(FaultRule(method="POST", path=r"A_CreditMemoRequest$", status=500, when="after"))
    with pytest.raises(TransientError):
        books.record_credit(the_booking)
    assert len(sandbox.documents()) == 1
    # WHEN the books step runs again
    document = books.record_credit(the_booking)
    # THEN it found the request by our reference and read its credit memo: one request, one credit memo
    assert len(posts(sandbox)) == 1
    assert len(sandbox.credit_memos()) == 1
    assert document.cash_refunded == Money.of(4_000, "EUR")


# ---------------------------------------------------------------- errors in an accountant's words


def test_an_unknown_invoice_is_not_found(books: SapBooks, sandbox: SapSimulator) -> None:
    with pytest.raises(NotFound):
        books.record_credit(booking("90999999", 1_000))
    assert posts(sandbox) == []


def test_an_invoice_in_another_currency_is_refused_before_any_write(books: SapBooks, sandbox: SapSimulator) -> None:
    invoice_id = sandbox.seed_invoice(10_000, "USD")
    with pytest.raises(RejectedError) as caught:
        books.record_credit(booking(invoice_id, 1_000, "EUR"))
    assert caught.value.code == "currency_mismatch"
    assert "is in USD, the refund in EUR" in caught.value.message
    assert posts(sandbox) == []


def test_a_credit_memo_sap_cannot_post_is_a_closed_period_for_a_person(books: SapBooks, sandbox: SapSimulator) -> None:
    sandbox.closed_period = True
    with pytest.raises(RejectedError) as caught:
        books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 1_000))
    assert caught.value.code == "closed_period"
    assert "could not post it to accounting" in caught.value.message


@pytest.mark.parametrize(
    ("status", "body", "code", "words"),
    [
        (
            400,
            {"error": {"code": "F5/201", "message": {"lang": "en", "value": "Posting period 012 2026 is not open"}}},
            "closed_period",
            "posting period is closed",
        ),
        (
            400,
            {
                "error": {
                    "code": "V1/212",
                    "message": {"lang": "en", "value": "Enter a value for field 'SDDocumentReason'"},
                    "innererror": {
                        "errordetails": [
                            {
                                "code": "V1/212",
                                "message": "Order reason is required for type CR",
                                "severity": "error",
                            },
                            {"code": "V1/000", "message": "informational", "severity": "info"},
                        ]
                    },
                }
            },
            "sap_validation",
            "Order reason is required",
        ),
        (
            403,
            {"error": {"code": "/IWFND/CM_CONSUMER/101", "message": {"value": "No authorization"}}},
            "sap_forbidden",
            "SAP_COM_0158",
        ),
    ],
)
def test_sap_refusals_are_carried_in_words_an_accountant_understands(
    books: SapBooks, sandbox: SapSimulator, status: int, body: dict[str, Any], code: str, words: str
) -> None:
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    sandbox.add_fault(FaultRule(method="POST", path=r"A_CreditMemoRequest$", status=status, body=body))
    with pytest.raises(RejectedError) as caught:
        books.record_credit(booking(invoice_id, 1_000))
    assert caught.value.code == code
    assert words in caught.value.message
    assert "informational" not in caught.value.message
    assert sandbox.documents() == []


def test_sap_busy_is_transient(books: SapBooks, sandbox: SapSimulator) -> None:
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    sandbox.add_fault(FaultRule(method="GET", path=r"A_BillingDocument\(", status=503, headers={"Retry-After": "30"}))
    with pytest.raises(TransientError) as caught:
        books.record_credit(booking(invoice_id, 1_000))
    assert caught.value.retry_after_seconds == 30.0


def test_the_simulator_refuses_what_sap_gateway_refuses(
    served: tuple[SapSimulator, str], sandbox: SapSimulator
) -> None:
    import requests

    url = served[1] + "/sap/opu/odata/sap/API_CREDIT_MEMO_REQUEST_SRV"
    auth = (sandbox.username, sandbox.password)
    session = requests.Session()
    # no token: 403 Required
    refused = session.post(f"{url}/A_CreditMemoRequest", json={}, auth=auth, timeout=5)
    assert (refused.status_code, refused.headers["x-csrf-token"]) == (403, "Required")
    token = session.get(f"{url}/", headers={"x-csrf-token": "Fetch"}, auth=auth, timeout=5).headers["x-csrf-token"]
    # an unknown property: 400 in OData's error shape
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    unknown = session.post(
        f"{url}/A_CreditMemoRequest",
        json={"CreditMemoRequestType": "CR", "ReferenceSDDocument": invoice_id, "Amount": "1.00"},
        headers={"x-csrf-token": token},
        auth=auth,
        timeout=5,
    )
    assert unknown.status_code == 400
    assert "Property 'Amount' is invalid" in unknown.json()["error"]["message"]["value"]
    # a filter SAP does not take here: 400
    bad_filter = session.get(
        f"{url}/A_CreditMemoRequest", params={"$filter": "substringof('rf', X)"}, auth=auth, timeout=5
    )
    assert bad_filter.status_code == 400


def test_a_credit_memo_sap_billed_for_another_amount_is_a_conflict_for_a_person(
    books: SapBooks, sandbox: SapSimulator
) -> None:
    # GIVEN the refund's credit memo, changed in SAP afterwards to 20.00 EUR gross (a person repriced the request)
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    the_booking = booking(invoice_id, 2_500)
    books.record_credit(the_booking)
    (memo,) = sandbox.credit_memos()
    sandbox.billing_documents[memo["BillingDocument"]].update(
        TotalNetAmount="16.81", TaxAmount="3.19", TotalGrossAmount="20.00"
    )
    # WHEN the booking is read again / THEN it is not taken as the refund's document: a person decides
    with pytest.raises(RejectedError) as caught:
        books.record_credit(the_booking)
    assert caught.value.code == "credit_memo_conflict"
    assert "totals 20.00 EUR, the refund is 25.00 EUR" in caught.value.message
    # AND totals that do not add up are refused rather than trusted
    sandbox.billing_documents[memo["BillingDocument"]].update(TotalGrossAmount="25.00")
    with pytest.raises(RejectedError) as caught:
        books.find_credit_document(the_booking)
    assert caught.value.code == "sap_bad_amount"
    assert len(sandbox.documents()) == 1
