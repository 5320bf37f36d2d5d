"""Business Central's own behaviour against its simulator: exact amounts and tax, the documented request bodies, the
Entra ID token cache, error mapping, clearing accounts per provider and the resume after a crash between steps."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from local.simulators.base import FaultRule
from local.simulators.dynamics import BusinessCentralSimulator
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
from refundflow.platforms.dynamics.connector import BusinessCentralBooks
from tests.platforms.dynamics.conftest import make_books

# The writable properties of each resource, from the API v2.0 reference (resources/dynamics_*.md).
DOCUMENTED = {
    "salesCreditMemos": {
        "externalDocumentNumber",
        "creditMemoDate",
        "postingDate",
        "dueDate",
        "customerId",
        "customerNumber",
        "currencyCode",
        "invoiceId",
        "invoiceNumber",
    },
    "salesCreditMemoLines": {"lineType", "lineObjectNumber", "description", "quantity", "unitPrice", "taxCode"},
    "journalLines": {
        "accountType",
        "accountId",
        "postingDate",
        "documentNumber",
        "externalDocumentNumber",
        "amount",
        "description",
        "balanceAccountType",
        "balancingAccountNumber",
    },
}


def booking_for(
    invoice_id: str,
    minor: int,
    currency: str = "EUR",
    *,
    lines: list[RefundLine] | None = None,
    provider: PaymentProvider = PaymentProvider.STRIPE,
    day: date | None = None,
) -> Any:
    from refundflow.ports import CreditBooking

    refund_id = derive_refund_id("test", uuid.uuid4().hex)
    return CreditBooking(
        refund_id=refund_id,
        invoice=InvoiceReference(system=BooksSystem.DYNAMICS, invoice_id=invoice_id),
        amount=Money.of(minor, currency),
        lines=lines or [],
        customer=CustomerContact(email="ada@example.com"),
        booking_date=day or date.today(),
        reference=refund_id,
        payment_provider=provider,
        idempotency_key=idempotency_key(refund_id, "books"),
        external_reference=refund_id,
    )


def writes(simulator: BusinessCentralSimulator, resource: str) -> list[dict[str, Any]]:
    return [
        json.loads(seen["body"], parse_float=Decimal)
        for seen in simulator.requests_seen
        if seen["method"] == "POST" and seen["path"].endswith(f"/{resource}")
    ]


# ---------------------------------------------------------------- amounts, tax and bodies


def test_lines_book_the_exact_gross_amounts_with_the_invoices_tax_code(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks
) -> None:
    # GIVEN an open invoice of 200.00 EUR (25 % tax included) and a refund of two lines, one not divisible by its
    # quantity
    invoice_id = simulator.seed_invoice(20_000, "EUR")
    lines = [
        RefundLine(description="Desk lamp", quantity=3, amount=Money.of(9_999, "EUR")),
        RefundLine(description="Cable", quantity=3, amount=Money.of(1_000, "EUR")),
    ]
    booking = booking_for(invoice_id, 10_999, lines=lines)

    # WHEN recorded
    document = books.record_credit(booking)

    # THEN one posted credit memo of exactly 109.99, applied to the invoice, with the tax split out per line
    assert (document.kind, document.state) == (CreditDocumentKind.CREDIT_MEMO, CreditDocumentState.POSTED)
    assert (document.total, document.allocated_to_invoice) == (booking.amount, booking.amount)
    (memo,) = simulator.documents()
    assert memo["totalAmountIncludingTax"] == Decimal("109.99")
    assert memo["totalTaxAmount"] == Decimal("22.00")
    assert simulator.invoice(invoice_id)["remainingAmount"] == Decimal("90.01")
    sent = writes(simulator, "salesCreditMemoLines")
    assert [(line["quantity"], line["unitPrice"]) for line in sent] == [(3, Decimal("33.33")), (1, Decimal("10.00"))]
    assert sent[1]["description"] == f"Cable (x3) [{booking.refund_id}]"
    assert {line["taxCode"] for line in sent} == {"VAT25"}
    # AND every body carries only the documented properties, amounts as exact JSON numbers
    for resource in ("salesCreditMemos", "salesCreditMemoLines"):
        for body in writes(simulator, resource):
            assert set(body) <= DOCUMENTED[resource], resource
    raw = next(
        seen["body"]
        for seen in simulator.requests_seen
        if seen["method"] == "POST" and seen["path"].endswith("salesCreditMemoLines")
    )
    assert '"unitPrice":33.33' in raw
    (created,) = writes(simulator, "salesCreditMemos")
    assert created["externalDocumentNumber"] == booking.refund_id.upper()
    assert created["invoiceId"] == invoice_id


@pytest.mark.parametrize(("currency", "minor", "unit"), [("JPY", 1_500, "1500"), ("KWD", 1_235, "1.235")])
def test_zero_and_three_decimal_currencies_are_written_exactly(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks, currency: str, minor: int, unit: str
) -> None:
    invoice_id = simulator.seed_invoice(minor * 2, currency)
    document = books.record_credit(booking_for(invoice_id, minor, currency))
    assert document.total == Money.of(minor, currency)
    (line,) = writes(simulator, "salesCreditMemoLines")
    assert line["unitPrice"] == Decimal(unit)


def test_a_configured_tax_code_wins_and_prices_without_tax_are_refused_before_posting(
    simulator: BusinessCentralSimulator, served: tuple[BusinessCentralSimulator, str]
) -> None:
    # GIVEN a customer whose prices exclude tax, and books told to use tax code VAT10
    customer = simulator.add_customer("Net Prices Ltd", prices_include_tax=False)
    invoice = simulator.add_invoice(customer["id"], [("Goods", 1, Decimal("100.00"), "VAT25")])
    books = make_books(simulator, served[1], tax_code="VAT10")
    booking = booking_for(invoice["id"], 5_000)

    # WHEN recorded THEN refused in an accountant's words: the draft would total 55.00, not 50.00, and is not posted
    with pytest.raises(RejectedError, match="prices exclude tax") as raised:
        books.record_credit(booking)
    assert raised.value.code == "dynamics_total_mismatch"
    (memo,) = simulator.documents()
    assert memo["status"] == "Draft"
    assert memo["salesCreditMemoLines"][0]["taxCode"] == "VAT10"
    assert simulator.invoice(invoice["id"])["remainingAmount"] == Decimal("125.00")


# ---------------------------------------------------------------- cash refunds and clearing accounts


def test_a_paid_invoice_is_paid_out_from_the_providers_clearing_account(
    simulator: BusinessCentralSimulator, served: tuple[BusinessCentralSimulator, str]
) -> None:
    # GIVEN a paid EUR invoice and Stripe's EUR refunds mapped to clearing account 2920
    invoice_id = simulator.seed_invoice(4_500, "EUR", paid=True)
    books = make_books(simulator, served[1], clearing_accounts={"stripe:EUR": "2920"})
    booking = booking_for(invoice_id, 4_500, "EUR")

    # WHEN recorded
    document = books.record_credit(booking)

    # THEN the memo is not applied to the paid invoice; its cash refund is posted from 2920 under the memo's number
    assert (document.allocated_to_invoice, document.cash_refunded) == (Money.zero("EUR"), booking.amount)
    (memo,) = simulator.documents()
    assert memo["invoiceId"] == "00000000-0000-0000-0000-000000000000"
    (entry,) = simulator.entries("2920")
    assert (entry["documentNumber"], entry["creditAmount"], entry["id"]) == (
        document.number,
        Decimal("45.00"),
        document.payment_id,
    )
    assert simulator.journal_lines_waiting() == []
    (body,) = writes(simulator, "journalLines")
    assert set(body) <= DOCUMENTED["journalLines"]
    assert (body["accountType"], body["amount"], body["balancingAccountNumber"]) == (
        "Customer",
        Decimal("45.00"),
        "2920",
    )
    assert books.clearing_account(PaymentProvider.ADYEN, "EUR") == "2910"


def test_a_journal_batch_that_does_not_exist_is_named_in_the_refusal(
    simulator: BusinessCentralSimulator, served: tuple[BusinessCentralSimulator, str]
) -> None:
    invoice_id = simulator.seed_invoice(4_500, "EUR", paid=True)
    books = make_books(simulator, served[1], refund_journal="NOSUCH")
    with pytest.raises(RejectedError, match="no general journal batch NOSUCH") as raised:
        books.record_credit(booking_for(invoice_id, 4_500, "EUR"))
    assert raised.value.code == "dynamics_no_refund_journal"


# ---------------------------------------------------------------- resume after a crash between steps


def test_a_crash_after_the_draft_resumes_into_one_memo_with_its_lines(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks
) -> None:
    # GIVEN the line's create fails after the draft was created
    invoice_id = simulator.seed_invoice(10_000, "EUR")
    booking = booking_for(invoice_id, 2_500)
    simulator.add_fault(FaultRule(method="POST", path=r"/salesCreditMemoLines$", status=503))
    with pytest.raises(TransientError):
        books.record_credit(booking)
    (draft,) = simulator.documents()
    assert (draft["status"], draft["salesCreditMemoLines"]) == ("Draft", [])
    assert books.find_credit_document(booking).state is CreditDocumentState.PENDING  # type: ignore[union-attr]

    # WHEN recorded again THEN the same memo gets its line and is posted, once
    document = books.record_credit(booking)
    (memo,) = simulator.documents()
    assert (memo["id"], memo["status"], len(memo["salesCreditMemoLines"])) == (document.document_id, "Paid", 1)
    assert len(writes(simulator, "salesCreditMemos")) == 1


def test_a_crash_between_the_refund_line_and_its_posting_resumes_without_paying_twice(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks
) -> None:
    # GIVEN a paid invoice whose journal posting fails after the refund line was written
    invoice_id = simulator.seed_invoice(4_500, "EUR", paid=True)
    booking = booking_for(invoice_id, 4_500)
    simulator.add_fault(FaultRule(method="POST", path=r"/journals\([^)]+\)/Microsoft\.NAV\.post$", status=503))
    with pytest.raises(TransientError):
        books.record_credit(booking)
    assert len(simulator.journal_lines_waiting()) == 1

    # THEN the memo is found posted but not paid out yet (the domain records it again)
    found = books.find_credit_document(booking)
    assert found is not None
    assert (found.state, found.cash_refunded) == (CreditDocumentState.POSTED, Money.zero("EUR"))

    # WHEN recorded again, and once more
    first = books.record_credit(booking)
    again = books.record_credit(booking)

    # THEN the waiting line was posted, not written again: one memo, one refund on the clearing account
    assert first.cash_refunded == again.cash_refunded == booking.amount
    assert len(writes(simulator, "journalLines")) == 1
    assert len(simulator.entries("2910")) == 1
    assert len(simulator.documents()) == 1


def test_a_closed_period_at_the_cash_refund_is_refused_and_nothing_is_posted(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks
) -> None:
    invoice_id = simulator.seed_invoice(4_500, "EUR", paid=True)
    booking = booking_for(invoice_id, 4_500)
    books.record_credit(booking_for(simulator.seed_invoice(1_000, "EUR"), 1_000))  # warm the token
    simulator.add_fault(FaultRule(method="POST", path=r"/journalLines$", status=503))
    with pytest.raises(TransientError):
        books.record_credit(booking)
    simulator.allowed_posting_from = date.today() + timedelta(days=1)
    with pytest.raises(RejectedError) as raised:
        books.record_credit(booking)
    assert raised.value.code == "closed_period"
    assert simulator.entries("2910") == []


# ---------------------------------------------------------------- errors an accountant reads


def test_an_unknown_invoice_is_not_found(simulator: BusinessCentralSimulator, books: BusinessCentralBooks) -> None:
    with pytest.raises(NotFound, match="Sales Invoice does not exist"):
        books.record_credit(booking_for(str(uuid.uuid4()), 1_000))


def test_an_invoice_in_another_currency_is_a_currency_mismatch(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks
) -> None:
    invoice_id = simulator.seed_invoice(10_000, "GBP")
    with pytest.raises(RejectedError, match=r"invoice .* is in GBP, the refund in EUR") as raised:
        books.record_credit(booking_for(invoice_id, 1_000))
    assert raised.value.code == "currency_mismatch"
    assert simulator.documents() == []


def test_a_closed_period_is_refused_in_words_an_accountant_reads(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks
) -> None:
    invoice_id = simulator.seed_invoice(10_000, "EUR")
    simulator.allowed_posting_from = date.today() + timedelta(days=1)
    with pytest.raises(RejectedError, match="outside the allowed posting dates") as raised:
        books.record_credit(booking_for(invoice_id, 1_000))
    assert raised.value.code == "closed_period"
    assert "CorrelationId" not in raised.value.message


def test_a_validation_error_carries_business_centrals_message(
    simulator: BusinessCentralSimulator, served: tuple[BusinessCentralSimulator, str]
) -> None:
    invoice_id = simulator.seed_invoice(10_000, "EUR")
    books = make_books(simulator, served[1], refund_account="9999")
    with pytest.raises(RejectedError, match="The G/L Account does not exist") as raised:
        books.record_credit(booking_for(invoice_id, 1_000))
    assert raised.value.code == "dynamics_validation"


# ---------------------------------------------------------------- Entra ID tokens


def test_the_token_is_cached_and_fetched_again_after_a_401(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks
) -> None:
    invoice_id = simulator.seed_invoice(10_000, "EUR")
    books.record_credit(booking_for(invoice_id, 1_000))
    assert simulator.token_grants == 1
    simulator.revoke_tokens()
    books.record_credit(booking_for(invoice_id, 1_000))
    assert simulator.token_grants == 2
    grant = next(seen for seen in simulator.requests_seen if seen["path"].endswith("/oauth2/v2.0/token"))
    assert "scope=https%3A%2F%2Fapi.businesscentral.dynamics.com%2F.default" in grant["body"]
    assert "grant_type=client_credentials" in grant["body"]


def test_a_wrong_client_secret_is_refused_for_good(
    simulator: BusinessCentralSimulator, served: tuple[BusinessCentralSimulator, str]
) -> None:
    books = make_books(simulator, served[1], client_secret="wrong")
    with pytest.raises(RejectedError, match="AADSTS7000215") as raised:
        books.record_credit(booking_for(simulator.seed_invoice(1_000, "EUR"), 1_000))
    assert raised.value.code == "dynamics_credentials"


def test_a_token_about_to_expire_is_replaced_before_the_call(
    simulator: BusinessCentralSimulator, served: tuple[BusinessCentralSimulator, str]
) -> None:
    # GIVEN a token source whose clock we move
    from refundflow.connectors.entra import TOKEN_EXPIRY_MARGIN_SECONDS
    from refundflow.connectors.http import HttpClient
    from refundflow.platforms.dynamics.connector import BusinessCentralTokens

    now = [1_000_000.0]
    secret = simulator.local_secrets()["api"]
    tokens = BusinessCentralTokens(
        login_base=f"{served[1]}/login",
        tenant_id=secret["tenant_id"],
        client_id=secret["client_id"],
        client_secret=secret["client_secret"],
        http=HttpClient(platform="dynamics", base_url=f"{served[1]}/login", timeout=(5.0, 30.0)),
        clock=lambda: now[0],
    )
    first = tokens.access_token()
    # WHEN still well inside its hour THEN it is reused; WHEN within the margin of its expiry THEN it is replaced
    now[0] += 3599 - TOKEN_EXPIRY_MARGIN_SECONDS - 1
    assert tokens.access_token() == first
    now[0] += 2
    assert tokens.access_token() != first
    assert simulator.token_grants == 2


def test_a_paid_invoice_in_another_currency_than_the_companys_is_refused_before_anything_is_written(
    simulator: BusinessCentralSimulator, books: BusinessCentralBooks
) -> None:
    # GIVEN a EUR company and a paid USD invoice: its cash refund would be a journal line, which carries no currency
    invoice_id = simulator.seed_invoice(4_500, "USD", paid=True)
    with pytest.raises(RejectedError, match="book the credit memo and its refund by hand") as raised:
        books.record_credit(booking_for(invoice_id, 4_500, "USD"))
    assert raised.value.code == "cash_refund_currency"
    assert simulator.documents() == []
    # AND an open USD invoice is still credited (the memo carries its currency and is applied to the invoice)
    open_id = simulator.seed_invoice(4_500, "USD")
    assert books.record_credit(booking_for(open_id, 4_500, "USD")).allocated_to_invoice == Money.of(4_500, "USD")
