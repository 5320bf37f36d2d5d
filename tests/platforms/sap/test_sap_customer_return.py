"""SAP's customer_return variant (SAP_CREDIT_DOCUMENT=customer_return): the refund's credit is booked by a customer
return (API_CUSTOMER_RETURN_SRV, deep insert with reference to the invoice) that SAP bills into the credit memo; a
return the merchant's returns process already created for the refund is used, never doubled; the books conformance
suite holds for this variant too."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.sap import SapSimulator
from refundflow.errors import RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import BooksSystem, CreditDocumentState, CustomerContact, InvoiceReference, PaymentProvider
from refundflow.money import Money
from refundflow.platforms.sap.connector import SapBooks
from refundflow.ports import CreditBooking
from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.platforms.sap.conftest import SecretStore, make_books

RETURNS_PATH = "/sap/opu/odata/sap/API_CUSTOMER_RETURN_SRV/A_CustomerReturn"
REQUESTS_PATH = "/sap/opu/odata/sap/API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest"
# A_CustomerReturnType / A_CustomerReturnItemType / its item pricing element: the properties the connector may set
# (SAP Cloud SDK for JavaScript, @sap/cloud-sdk-vdm-customer-return-service, CustomerReturnType and
# CustomerReturnItemType interfaces).
DOCUMENTED_HEADER = {
    "CustomerReturnType",
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
    "CustomerReturnItem",
    "Material",
    "CustomerReturnItemText",
    "RequestedQuantity",
    "RequestedQuantityUnit",
    "to_PricingElement",
}


@pytest.fixture
def return_books(served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore) -> SapBooks:
    return make_books(
        served[1],
        secret,
        payment_methods={"stripe:EUR": "S", "*:USD": "U"},
        credit_document="customer_return",
        order_reason="101",
    )


class TestSapCustomerReturnConformance(BooksSuite):
    @pytest.fixture
    def harness(self, return_books: SapBooks, sandbox: SapSimulator) -> BooksHarness:
        return BooksHarness(name="sap", connector=return_books, sandbox=sandbox, pays_out_split_cash=False)


def booking(invoice_id: str, minor_units: int, currency: str = "EUR", *, refund_id: str | None = None) -> CreditBooking:
    refund_id = refund_id or derive_refund_id("sap-returns", uuid.uuid4().hex)
    return CreditBooking(
        refund_id=refund_id,
        invoice=InvoiceReference(system=BooksSystem.SAP, invoice_id=invoice_id),
        amount=Money.of(minor_units, currency),
        customer=CustomerContact(email="ada@example.com", name="Ada Lovelace"),
        booking_date=date(2026, 12, 6),
        reference="RMA-7",
        payment_provider=PaymentProvider.STRIPE,
        idempotency_key=idempotency_key(refund_id, "books"),
        external_reference=refund_id,
    )


def writes(sandbox: SapSimulator) -> list[tuple[str, dict[str, Any]]]:
    return [(seen["path"], json.loads(seen["body"])) for seen in sandbox.requests_seen if seen["method"] == "POST"]


def test_the_credit_is_booked_by_a_customer_return_that_sap_bills_into_the_credit_memo(
    return_books: SapBooks, sandbox: SapSimulator
) -> None:
    # GIVEN a paid invoice of 100.00 EUR gross (19 % tax)
    invoice_id = sandbox.seed_invoice(10_000, "EUR", paid=True)
    refund = booking(invoice_id, 3_333)
    # WHEN the refund is booked with SAP_CREDIT_DOCUMENT=customer_return
    document = return_books.record_credit(refund)
    # THEN one customer return was posted (no credit memo request), a deep insert of documented properties only
    ((path, body),) = [(path, body) for path, body in writes(sandbox) if not path.endswith("/")]
    assert path.endswith(RETURNS_PATH)
    assert set(body) <= DOCUMENTED_HEADER
    assert all(set(item) <= DOCUMENTED_ITEM for item in body["to_Item"])
    assert (body["CustomerReturnType"], body["SDDocumentReason"], body["ReferenceSDDocument"]) == (
        "CBAR",
        "101",
        invoice_id,
    )
    assert body["PurchaseOrderByCustomer"] == refund.refund_id
    assert body["SoldToParty"] == sandbox.billing_documents[invoice_id]["SoldToParty"]
    assert body["to_Item"][0]["to_PricingElement"][0]["ConditionRateValue"] == "28.01"
    assert body["PaymentMethod"] == "S"
    assert sandbox.credit_memo_requests == {}
    # AND the document is the credit memo SAP billed from the return, exactly the refund, paid out
    (memo,) = sandbox.credit_memos()
    (returned,) = sandbox.customer_returns.values()
    assert document.state is CreditDocumentState.POSTED
    assert document.document_id == memo["BillingDocument"]
    assert memo["TotalGrossAmount"] == "33.33"
    assert document.total == document.cash_refunded == Money.of(3_333, "EUR")
    assert document.external_reference == refund.refund_id == returned["PurchaseOrderByCustomer"]


def test_the_return_that_triggered_the_refund_is_used_not_doubled(
    served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore
) -> None:
    # GIVEN an open invoice, and the merchant's returns process already created the customer return for the refund
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    refund = booking(invoice_id, 2_500)
    number = sandbox.create_customer_return(refund.refund_id, invoice=invoice_id, amount_minor=2_500)
    waiting = make_books(served[1], secret, credit_document="customer_return")
    recording = make_books(served[1], secret, credit_document="customer_return", pending_policy="record")
    # WHEN the books are asked before the goods are back (SAP bills the return after its goods receipt)
    with pytest.raises(TransientError, match=f"customer return {number}.*goods receipt") as caught:
        waiting.record_credit(refund)
    assert caught.value.code == "sap_credit_memo_pending"
    pending = recording.record_credit(refund)
    # THEN no second return (and no credit memo request) was created: the pending document is that return
    assert [path for path, _ in writes(sandbox) if not path.endswith("/")] == []
    assert (pending.state, pending.document_id) == (CreditDocumentState.PENDING, number)
    assert pending.external_reference == refund.refund_id
    # AND once the goods receipt is posted, SAP's credit memo from that return is the refund's document
    sandbox.post_goods_receipt(number)
    posted = waiting.record_credit(refund)
    (memo,) = sandbox.credit_memos()
    assert (posted.state, posted.document_id) == (CreditDocumentState.POSTED, memo["BillingDocument"])
    assert posted.allocated_to_invoice == posted.total == Money.of(2_500, "EUR")
    assert posted.allocation_id == invoice_id
    assert len(sandbox.customer_returns) == 1


def test_a_triggering_return_is_found_by_the_merchants_refund_field(
    served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore
) -> None:
    # GIVEN the merchant's returns process keeps our refund id in a custom field of the return
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    refund = booking(invoice_id, 2_500)
    number = sandbox.create_customer_return(
        refund.refund_id, field="YY1_RefundId_SDH", invoice=invoice_id, amount_minor=2_500
    )
    sandbox.post_goods_receipt(number)
    books = make_books(served[1], secret, credit_document="customer_return", return_refund_field="YY1_RefundId_SDH")
    # WHEN the refund is booked
    document = books.record_credit(refund)
    # THEN that return's credit memo is the document, and nothing was created
    assert [path for path, _ in writes(sandbox) if not path.endswith("/")] == []
    (memo,) = sandbox.credit_memos()
    assert document.document_id == memo["BillingDocument"]
    assert document.external_reference == refund.refund_id
    assert books.find_credit_document(refund) == document


def test_a_triggering_return_of_another_amount_is_reported_not_booked_twice(
    return_books: SapBooks, sandbox: SapSimulator
) -> None:
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    refund = booking(invoice_id, 2_500)
    number = sandbox.create_customer_return(refund.refund_id, invoice=invoice_id, amount_minor=4_000)
    sandbox.post_goods_receipt(number)
    with pytest.raises(RejectedError, match="correct it in SAP") as caught:
        return_books.record_credit(refund)
    assert caught.value.code == "credit_memo_conflict"
    assert len(sandbox.customer_returns) == 1


def test_two_live_returns_for_one_refund_need_a_person(return_books: SapBooks, sandbox: SapSimulator) -> None:
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    refund = booking(invoice_id, 2_500)
    first = sandbox.create_customer_return(refund.refund_id, invoice=invoice_id, amount_minor=2_500)
    second = sandbox.create_customer_return(refund.refund_id, invoice=invoice_id, amount_minor=2_500)
    with pytest.raises(RejectedError, match=f"{first}, {second}") as caught:
        return_books.record_credit(refund)
    assert caught.value.code == "duplicate_customer_returns"


def test_a_billing_block_on_the_return_keeps_the_credit_pending_until_released(
    return_books: SapBooks, sandbox: SapSimulator
) -> None:
    sandbox.billing_block = "08"
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    refund = booking(invoice_id, 1_000)
    with pytest.raises(TransientError, match="blocked for billing, reason 08"):
        return_books.record_credit(refund)
    (number,) = sandbox.customer_returns
    sandbox.release_billing_block(number)
    document = return_books.record_credit(refund)
    assert document.state is CreditDocumentState.POSTED
    assert len(sandbox.customer_returns) == 1


@pytest.mark.parametrize(
    ("status", "body", "code", "words"),
    [
        (
            400,
            {
                "error": {
                    "code": "V1/045",
                    "message": {"lang": "en", "value": "Return reason 101 is not defined for return type CBAR"},
                    "innererror": {"errordetails": [{"code": "V1/045", "message": "x", "severity": "info"}]},
                }
            },
            "sap_validation",
            "SAP refuses the customer return: Return reason 101 is not defined",
        ),
        (
            400,
            {"error": {"code": "F5/201", "message": {"lang": "en", "value": "Posting period 012 2026 is not open"}}},
            "closed_period",
            "SAP refuses the customer return: the posting period is closed",
        ),
        (
            403,
            {"error": {"code": "/IWFND/CM_CONSUMER/101", "message": {"lang": "en", "value": "No authorization"}}},
            "sap_forbidden",
            "SAP_COM_0157",
        ),
    ],
)
def test_sap_refusals_of_the_return_are_carried_in_words_an_accountant_understands(
    return_books: SapBooks, sandbox: SapSimulator, status: int, body: dict[str, Any], code: str, words: str
) -> None:
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    sandbox.add_fault(FaultRule(method="POST", path=r"A_CustomerReturn$", status=status, body=body))
    with pytest.raises(RejectedError) as caught:
        return_books.record_credit(booking(invoice_id, 1_000))
    assert caught.value.code == code
    assert words in caught.value.message
    assert sandbox.customer_returns == {}


def test_the_simulator_refuses_a_return_sap_would_refuse(
    return_books: SapBooks, sandbox: SapSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A property A_CustomerReturnType does not let a create set is refused with SAP's OData error body
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    books_refund = booking(invoice_id, 1_000)
    original = return_books._items

    def with_net_amount(*args: Any) -> list[dict[str, Any]]:
        items = original(*args)
        items[0]["NetAmount"] = "8.40"
        return items

    monkeypatch.setattr(return_books, "_items", with_net_amount)
    with pytest.raises(
        RejectedError, match="Property 'NetAmount' is invalid for entity type 'A_CustomerReturnItemType'"
    ):
        return_books.record_credit(books_refund)
    assert sandbox.customer_returns == {}


def test_the_simulator_guards_the_customer_return_service_like_sap_gateway(
    served: tuple[SapSimulator, str], sandbox: SapSimulator
) -> None:
    url = f"{served[1]}/sap/opu/odata/sap/API_CUSTOMER_RETURN_SRV"
    user = (sandbox.username, sandbox.password)
    # a write without the CSRF token of a fetch is refused with SAP Gateway's answer
    refused = requests.post(f"{url}/A_CustomerReturn", json={"CustomerReturnType": "CBAR"}, auth=user, timeout=5)
    assert (refused.status_code, refused.headers["x-csrf-token"]) == (403, "Required")
    # no credentials: 401
    assert (
        requests.get(f"{url}/A_CustomerReturn", params={"$filter": "SoldToParty eq '1'"}, timeout=5).status_code == 401
    )
    # a property the entity type does not have cannot be filtered on: the OData v2 error body
    unknown = requests.get(f"{url}/A_CustomerReturn", params={"$filter": "Nonsense eq '1'"}, auth=user, timeout=5)
    error = unknown.json()["error"]
    assert unknown.status_code == 400
    assert error["message"] == {"lang": "en", "value": "Property 'Nonsense' not found in type 'A_CustomerReturnType'"}
    assert error["innererror"]["errordetails"][0]["severity"] == "error"
    assert sandbox.customer_returns == {}
