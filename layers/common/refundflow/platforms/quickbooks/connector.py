"""QuickBooks Online books connector: a refund becomes a CreditMemo applied to the invoice for what it still owes
and a RefundReceipt for the money that went back from the provider's clearing account (a paid invoice: the receipt
only; an unpaid one: the memo only), exactly once.

Flow (each step reads QuickBooks before writing, so a crash between steps resumes without duplicates):

1. ``GET /v3/company/{realmId}/invoice/{id}``: the invoice, in the booking's currency; its customer, items and tax
   code become the document's.
2. Find our documents by ``DocNumber`` (``CM`` / ``RR`` and the refund id's first 19 hex digits: QuickBooks keeps
   21 characters) with the query endpoint, else among the customer's documents (a company where QuickBooks numbers
   documents itself), checked on ``PrivateNote`` (which carries the whole refund id). What is missing is created,
   decided once by what the invoice owes when nothing exists yet:
   - ``POST /creditmemo`` for what the invoice still owes, up to the refund;
   - ``POST /refundreceipt`` for the rest, paid from the clearing account of the payment provider and currency
     (``DepositToAccountRef``): the whole refund for a paid invoice, the part above what a partly paid one owes.
3. A credit memo with credit left while the invoice owes is applied with a zero-amount ``POST /payment`` linking
   the invoice and the credit memo (QuickBooks' way of applying a credit), before the refund receipt.

Every create carries ``requestid`` (the domain's key, the step and a fingerprint of the body, at most 50 characters,
unique per company):
QuickBooks answers a repeated requestid with its first answer. Intuit documents no retention period for it, so the
look-up by our reference guards everything after the network retry. Amounts cross the boundary as exact JSON
numbers built from ``Money`` (``Decimal`` both ways, never ``float``); ``minorversion`` is pinned on every call.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from pydantic import Field

from refundflow import settings
from refundflow.connectors import exact_json
from refundflow.connectors.books import BooksAmounts, check_booking, parse_per_provider, per_provider, require_refund_id
from refundflow.connectors.http import HttpClient, HttpResponse, retry_after_seconds
from refundflow.connectors.oauth_tokens import RefreshTokenGrant, SecretLoader, SecretSaver, send_with_token
from refundflow.errors import (
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.models import BooksSystem, CreditDocument, CreditDocumentKind, CreditDocumentState, PaymentProvider
from refundflow.money import Money
from refundflow.ports import BooksCapabilities, BooksConnector, CreditBooking, CreditLeg

PLATFORM = "quickbooks"
REQUEST_ID_MAX_LENGTH = 50
DOC_NUMBER_LENGTH = 21
# The most a query returns in one page (Intuit's limit).
QUERY_MAX_RESULTS = 1000
# QuickBooks keeps at most 4000 characters of a transaction's PrivateNote.
PRIVATE_NOTE_LENGTH = 4000
# Intuit's access tokens live one hour: refresh a little before, so a call never starts with a dying token.
TOKEN_EXPIRY_MARGIN_SECONDS = 300.0
# Fault codes (Fault.Error[].code) and the words QuickBooks uses for them.
_NOT_FOUND_CODES = {"610"}
_INVALID_REFERENCE_CODES = {"2500"}
_PERIOD_CLOSED_CODES = {"6200"}
_DUPLICATE_NUMBER_CODES = {"6140"}


# ---------------------------------------------------------------- exact amounts and JSON


AMOUNTS = BooksAmounts(platform=PLATFORM, title="QuickBooks Online", bad_amount_code="quickbooks_bad_amount")
capabilities = AMOUNTS.capabilities
profile = AMOUNTS.profile
to_qbo_amount = AMOUNTS.to_platform
from_qbo_amount = AMOUNTS.from_platform
dump_json = AMOUNTS.dump_json
load_json = exact_json.loads
"""JSON with every non-integer number as an exact ``Decimal`` (``connectors.exact_json``)."""

# ---------------------------------------------------------------- OAuth2 tokens


class QuickBooksTokenSource(RefreshTokenGrant):
    """Access tokens from Intuit's refresh-token grant, cached until shortly before they expire.

    Intuit may answer a refresh with a new refresh token, and only the newest one keeps working, so it is stored
    through ``save_secret`` at once. When another process rotated it first, Intuit answers ``invalid_grant``: the
    secret is re-read once, bypassing caches, and the refresh retried with the newer token.
    """

    service = "Intuit's token service"
    unavailable_code = "quickbooks_oauth_unavailable"
    reconnect_code = "quickbooks_reconnect_required"
    reconnect_hint = "reconnect the QuickBooks app and store the new refresh token"
    secret_store_code = "quickbooks_secret_store"

    def __init__(
        self,
        *,
        token_url: str,
        load_secret: SecretLoader,
        save_secret: SecretSaver,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float = TOKEN_EXPIRY_MARGIN_SECONDS,
    ) -> None:
        super().__init__(
            platform=PLATFORM,
            title="QuickBooks",
            http=http or HttpClient(platform=PLATFORM, base_url=token_url),
            load_secret=load_secret,
            save_secret=save_secret,
            clock=clock,
            expiry_margin_seconds=expiry_margin_seconds,
        )
        self._token_url = token_url

    @property
    def realm_id(self) -> str:
        """The QuickBooks company (realmId) the secret is connected to.

        Raises:
            ConfigurationError: the secret has no realm_id.
        """
        return self.secret_field("realm_id")

    def _token_request(self, secret: Mapping[str, Any]) -> HttpResponse:
        return self._http.request(
            "POST",
            "",
            absolute_url=self._token_url,
            data={"grant_type": "refresh_token", "refresh_token": self._field(secret, "refresh_token")},
            headers={"Accept": "application/json"},
            auth=(self._field(secret, "client_id"), self._field(secret, "client_secret")),
        )


# ---------------------------------------------------------------- the books


class QuickBooksBooks(BooksConnector):
    """The refund's refund receipt, or credit memo and its application, in one QuickBooks Online company."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self,
        *,
        tokens: QuickBooksTokenSource,
        api_base: str = "https://quickbooks.api.intuit.com",
        minor_version: str = "75",
        refund_item: str = "",
        tax_code: str = "",
        refund_account: str = "",
        clearing_accounts: Mapping[str, str] | None = None,
        http: HttpClient | None = None,
    ) -> None:
        """``clearing_accounts``: the account id each payment provider's refund receipts are paid from, keyed
        ``<provider>:<CURRENCY>``, ``<provider>:*`` or ``*:<CURRENCY>`` (most specific wins); ``refund_account``
        for everything else."""
        self._tokens = tokens
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)
        self._minor_version = minor_version
        self._refund_item = refund_item
        self._tax_code = tax_code
        self._refund_account = refund_account
        self._clearing_accounts = dict(clearing_accounts or {})

    @property
    def capabilities(self) -> BooksCapabilities:
        return capabilities()

    def clearing_account(self, provider: PaymentProvider, currency: str) -> str:
        """The account id the refund receipt of ``provider`` in ``currency`` is paid from.

        Raises:
            RejectedError: ``no_clearing_account``, none configured for that provider and currency.
        """
        configured = per_provider(self._clearing_accounts, provider, currency)
        if configured is not None:
            return configured
        if self._refund_account:
            return self._refund_account
        raise RejectedError(
            f"no QuickBooks account is configured to pay {provider.value} refunds in {currency} from "
            "(QuickBooksClearingAccounts / QuickBooksRefundAccount)",
            code="no_clearing_account",
            platform=PLATFORM,
        )

    # ------------------------------------------------------------ port

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        """Create (exactly once) the refund receipt, or the credit memo applied to the invoice.

        Safe to call again after any failure: every step first reads what QuickBooks already holds.

        Raises:
            TransientError: QuickBooks could not be reached, was throttled, or did not answer a write (outcome
                unknown: the next call finds what was created).
            RejectedError: QuickBooks or this connector refuses the booking for good: a closed period
                (``books_period_closed``), an invoice in another currency (``currency_mismatch``), documents of this
                refund changed by hand, an inactive customer, item or account, QuickBooks' validation messages, or a
                refresh token Intuit no longer accepts.
            NotFound: the invoice does not exist in the company.
        """
        try:
            return self._record(booking)
        except OutcomeUnknownError as error:
            raise TransientError(
                f"{error.message}; the next attempt reads QuickBooks before writing again",
                code="quickbooks_outcome_unknown",
                platform=PLATFORM,
            ) from error

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The documents already recorded for this booking (credit memo, refund receipt or both), found by its
        external reference; their ``total`` is the booking's, so a booking half done reads as not settled.

        Raises:
            TransientError: QuickBooks could not answer now.
            RejectedError: several documents of a kind carry the reference, or they do not add up to the booking.
            NotFound: the invoice does not exist any more.
        """
        invoice = self._read("Invoice", booking.invoice.invoice_id)
        if booking.legs:
            memo, receipts = self._find_split(booking, _ref_value(invoice.get("CustomerRef")))
            if memo is None and not receipts:
                return None
            return self._split_document(memo, receipts, booking)
        found = self._find(booking.external_reference, _ref_value(invoice.get("CustomerRef")))
        if not found:
            return None
        memo, receipt = found.get(CreditDocumentKind.CREDIT_MEMO), found.get(CreditDocumentKind.REFUND_RECEIPT)
        self._check_parts(memo, receipt, booking)
        return self._document(memo, receipt, booking)

    # ------------------------------------------------------------ steps

    def _record(self, booking: CreditBooking) -> CreditDocument:
        self._check_booking(booking)
        invoice = self._read("Invoice", booking.invoice.invoice_id)
        self._check_invoice(invoice, booking)
        if booking.legs:
            return self._record_split(booking, invoice)
        found = self._find(booking.external_reference, _ref_value(invoice.get("CustomerRef")))
        memo, receipt = found.get(CreditDocumentKind.CREDIT_MEMO), found.get(CreditDocumentKind.REFUND_RECEIPT)
        if memo is None and receipt is None:
            # Decided once, by what the invoice owes now: credit what it owes, pay back the rest.
            owed = from_qbo_amount(invoice.get("Balance", 0), booking.currency).min(booking.amount)
            if owed.is_positive():
                memo = self._create_credit_memo(booking, invoice, owed)
        self._check_parts(memo, receipt, booking)
        allocation_id = None
        credited = Money.zero(booking.currency)
        if memo is not None:
            credited = from_qbo_amount(memo.get("TotalAmt"), booking.currency)
            allocation_id = self._apply(memo, invoice, booking)
            if allocation_id is not None:
                memo = self._read("CreditMemo", _text(memo, "Id"))
        rest = booking.amount - credited
        if receipt is None and rest.is_positive():
            receipt = self._create_refund_receipt(booking, invoice, rest)
            self._check_parts(memo, receipt, booking)
        return self._document(memo, receipt, booking, allocation_id=allocation_id)

    def _record_split(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> CreditDocument:
        """A split-tender refund: the credit memo (what the invoice owes, and the store credit, left unapplied as the
        customer's credit) and one refund receipt per cash leg, each deposited from its provider's clearing account
        (a receipt has one ``DepositToAccountRef``), numbered ``R<leg>`` and the refund id's first hex digits and
        marked ``refundflow <refund id> leg <n>:`` in its private note."""
        memo, receipts = self._find_split(booking, _ref_value(invoice.get("CustomerRef")))
        if memo is None and not receipts:
            kept = booking.store_credit
            owed = from_qbo_amount(invoice.get("Balance", 0), booking.currency).min(booking.amount - kept)
            if (owed + kept).is_positive():
                memo = self._create_credit_memo(booking, invoice, owed + kept)
        self._check_parts(memo, None, booking)
        allocation_id = None
        budget = booking.amount
        if memo is not None:
            budget = budget - from_qbo_amount(memo.get("TotalAmt"), booking.currency)
            allocation_id = self._apply(memo, invoice, booking)
            if allocation_id is not None:
                memo = self._read("CreditMemo", _text(memo, "Id"))
        for leg in booking.cash_legs():
            receipt = receipts.get(leg.index)
            if receipt is None and leg.payment_provider is not None and leg.amount.min(budget).is_positive():
                receipt = self._create_leg_receipt(booking, invoice, leg, leg.amount.min(budget))
                receipts[leg.index] = receipt
            if receipt is not None:
                budget = budget - from_qbo_amount(receipt.get("TotalAmt"), booking.currency)
        return self._split_document(memo, receipts, booking, allocation_id=allocation_id)

    def _find_split(
        self, booking: CreditBooking, customer_id: str | None
    ) -> tuple[dict[str, Any] | None, dict[int, dict[str, Any]]]:
        """A split refund's credit memo and its receipts by leg, by their DocNumbers, else (a company numbering its
        documents itself) among the customer's documents; the private note decides.

        Raises:
            RejectedError: ``duplicate_documents``, two memos or two receipts of one leg carry the refund.
        """
        refund_id = booking.external_reference
        require_refund_id(refund_id, platform=PLATFORM)
        memo_kind, receipt_kind = CreditDocumentKind.CREDIT_MEMO, CreditDocumentKind.REFUND_RECEIPT
        matches = self._matches(refund_id, memo_kind, "DocNumber", doc_number(refund_id, memo_kind))
        for leg in booking.cash_legs():
            matches += self._matches(refund_id, receipt_kind, "DocNumber", leg_doc_number(refund_id, leg.index))
        if not matches and customer_id is not None and customer_id.isdigit():
            matches = [
                match for kind in _ENTITIES for match in self._matches(refund_id, kind, "CustomerRef", customer_id)
            ]
        memos = [item for kind, item in matches if kind is memo_kind]
        receipts: dict[int, dict[str, Any]] = {}
        for kind, item in matches:
            if kind is not receipt_kind:
                continue
            index = _receipt_leg(item, refund_id)
            if index is None:
                continue
            if index in receipts:
                memos.append(item)  # reported below with the duplicate memos
                memos.append(receipts[index])
            receipts[index] = item
        if len(memos) > 1:
            numbers = ", ".join(f"{item.get('DocNumber') or item.get('Id')}" for item in memos)
            raise RejectedError(
                f"several QuickBooks documents carry refund {refund_id} ({numbers}): void the extra ones",
                code="duplicate_documents",
                platform=PLATFORM,
            )
        return (memos[0] if memos else None), receipts

    def _create_leg_receipt(
        self, booking: CreditBooking, invoice: Mapping[str, Any], leg: CreditLeg, amount: Money
    ) -> dict[str, Any]:
        assert leg.payment_provider is not None
        body = self._base_document(booking, invoice, CreditDocumentKind.REFUND_RECEIPT, amount)
        body["DocNumber"] = leg_doc_number(booking.external_reference, leg.index)
        body["PrivateNote"] = _cut(
            f"{_leg_marker(booking.external_reference, leg.index)} {leg.words()}; {body['PrivateNote']}"
        )
        body["DepositToAccountRef"] = {"value": self.clearing_account(leg.payment_provider, booking.currency)}
        return self._create("RefundReceipt", body, _request_id(booking, f"r{leg.index}", body))

    def _split_document(
        self,
        memo: Mapping[str, Any] | None,
        receipts: Mapping[int, Mapping[str, Any]],
        booking: CreditBooking,
        *,
        allocation_id: str | None = None,
    ) -> CreditDocument:
        """A split refund's documents as one: the memo (allocated to the invoice, the store credit left on it) and the
        receipts (cash refunded). Its total is the booking's, so a booking still missing a receipt is not settled."""
        currency = booking.currency
        allocated = cash = Money.zero(currency)
        if memo is not None:
            total = from_qbo_amount(memo.get("TotalAmt"), currency)
            allocated = total - from_qbo_amount(memo.get("RemainingCredit", memo.get("Balance", 0)), currency)
        ordered = [receipts[index] for index in sorted(receipts)]
        for receipt in ordered:
            cash = cash + from_qbo_amount(receipt.get("TotalAmt"), currency)
        primary = memo if memo is not None else ordered[0]
        return CreditDocument(
            system=BooksSystem.QUICKBOOKS,
            kind=CreditDocumentKind.CREDIT_MEMO if memo is not None else CreditDocumentKind.REFUND_RECEIPT,
            state=CreditDocumentState.POSTED,
            document_id=_text(primary, "Id"),
            number=primary.get("DocNumber") or None,
            external_reference=booking.external_reference
            if booking.external_reference in str(primary.get("PrivateNote") or "")
            else None,
            total=booking.amount,
            allocated_to_invoice=allocated,
            cash_refunded=cash,
            allocation_id=allocation_id,
            payment_id=_text(ordered[0], "Id") if ordered else None,
        )

    def _check_booking(self, booking: CreditBooking) -> None:
        check_booking(
            booking,
            system=BooksSystem.QUICKBOOKS,
            platform=PLATFORM,
            invoice="a QuickBooks invoice",
            document="a refund document",
            to_platform=to_qbo_amount,
        )

    def _check_invoice(self, invoice: Mapping[str, Any], booking: CreditBooking) -> None:
        currency = _ref_value(invoice.get("CurrencyRef"))
        if currency is not None and currency != booking.currency:
            raise RejectedError(
                f"invoice {_number(invoice)} is in {currency}, the refund in {booking.currency}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        if _ref_value(invoice.get("CustomerRef")) is None:
            raise RejectedError(f"invoice {_number(invoice)} has no customer", platform=PLATFORM)
        total = from_qbo_amount(invoice.get("TotalAmt"), booking.currency)
        if booking.amount > total:
            raise RejectedError(
                f"the refund of {booking.amount} is more than invoice {_number(invoice)} totals ({total})",
                code="over_credit",
                platform=PLATFORM,
            )

    def _find(self, refund_id: str, customer_id: str | None) -> dict[CreditDocumentKind, dict[str, Any]]:
        """Our documents by their DocNumbers, else (a company where QuickBooks numbers documents itself, so our
        DocNumber was not kept) among the customer's documents; PrivateNote, which holds the whole refund id, decides.

        Raises:
            RejectedError: ``duplicate_documents``, several documents of one kind carry the refund.
        """
        # Refund ids are rf_ + 32 hex digits and customer ids digits: nothing to escape in the queries.
        require_refund_id(refund_id, platform=PLATFORM)
        matches = [
            match
            for kind in _ENTITIES
            for match in self._matches(refund_id, kind, "DocNumber", doc_number(refund_id, kind))
        ]
        if not matches and customer_id is not None and customer_id.isdigit():
            matches = [
                match for kind in _ENTITIES for match in self._matches(refund_id, kind, "CustomerRef", customer_id)
            ]
        found: dict[CreditDocumentKind, dict[str, Any]] = {}
        for kind, item in matches:
            if kind in found:
                numbers = ", ".join(f"{_ENTITIES[kind]} {item.get('Id')}" for _, item in matches)
                raise RejectedError(
                    f"several QuickBooks documents carry refund {refund_id} ({numbers}): void the extra ones",
                    code="duplicate_documents",
                    platform=PLATFORM,
                )
            found[kind] = item
        return found

    def _matches(
        self, refund_id: str, kind: CreditDocumentKind, field: str, value: str
    ) -> list[tuple[CreditDocumentKind, dict[str, Any]]]:
        entity = _ENTITIES[kind]
        query = f"select * from {entity} where {field} = '{value}' maxresults {QUERY_MAX_RESULTS}"  # noqa: S608
        payload = self._call("GET", "query", params={"query": query})
        response = payload.get("QueryResponse") if isinstance(payload, Mapping) else None
        items = response.get(entity) if isinstance(response, Mapping) else None
        return [
            (kind, item)
            for item in items or []
            if isinstance(item, dict) and refund_id in str(item.get("PrivateNote") or "")
        ]

    def _base_document(
        self, booking: CreditBooking, invoice: Mapping[str, Any], kind: CreditDocumentKind, amount: Money
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "CustomerRef": {"value": _ref_value(invoice.get("CustomerRef"))},
            "CurrencyRef": {"value": booking.currency},
            "TxnDate": booking.booking_date.isoformat(),
            "DocNumber": doc_number(booking.external_reference, kind),
            "PrivateNote": _private_note(booking, invoice),
            "Line": self._lines(booking, invoice, amount),
        }
        if invoice.get("GlobalTaxCalculation") == "TaxInclusive":
            # The customer gets a gross amount back: the lines are gross, as on the invoice.
            body["GlobalTaxCalculation"] = "TaxInclusive"
        return body

    def _create_refund_receipt(
        self, booking: CreditBooking, invoice: Mapping[str, Any], amount: Money
    ) -> dict[str, Any]:
        body = self._base_document(booking, invoice, CreditDocumentKind.REFUND_RECEIPT, amount)
        body["DepositToAccountRef"] = {"value": self.clearing_account(booking.payment_provider, booking.currency)}
        return self._create("RefundReceipt", body, _request_id(booking, "r", body))

    def _create_credit_memo(self, booking: CreditBooking, invoice: Mapping[str, Any], amount: Money) -> dict[str, Any]:
        body = self._base_document(booking, invoice, CreditDocumentKind.CREDIT_MEMO, amount)
        return self._create("CreditMemo", body, _request_id(booking, "c", body))

    def _lines(self, booking: CreditBooking, invoice: Mapping[str, Any], amount: Money) -> list[dict[str, Any]]:
        """The document's lines: the refund's own when the document carries the whole refund, else one line."""
        invoice_lines = [
            line.get("SalesItemLineDetail")
            for line in invoice.get("Line") or []
            if isinstance(line, Mapping) and line.get("DetailType") == "SalesItemLineDetail"
        ]
        details = [detail for detail in invoice_lines if isinstance(detail, Mapping)]
        items = {_ref_value(detail.get("ItemRef")) for detail in details} - {None}
        taxes = {_ref_value(detail.get("TaxCodeRef")) for detail in details}
        item = self._refund_item or (next(iter(items)) if len(items) == 1 else None)
        if item is None:
            raise RejectedError(
                f"invoice {_number(invoice)} has {len(items)} items: set QuickBooksRefundItem to the item refunds "
                "are booked on",
                code="no_refund_item",
                platform=PLATFORM,
            )
        tax_code = self._tax_code or (next(iter(taxes)) if len(taxes) == 1 else None)
        if booking.lines and amount == booking.amount:
            parts = [(line.description, line.quantity, line.amount) for line in booking.lines]
        else:
            part = "" if amount == booking.amount else f" (part: {amount} of {booking.amount})"
            parts = [(f"Refund {booking.reference} of invoice {_number(invoice)}{part}", 1, amount)]
        lines: list[dict[str, Any]] = []
        for description, quantity, amount in parts:
            unit = Money.of(amount.minor_units // quantity, amount.currency)
            if amount.minor_units % quantity or profile().representable(unit) is not None:
                # The gross line amount is what must be exact: one unit rather than a rounded price.
                description, quantity, unit = f"{description} (x{quantity})", 1, amount
            detail: dict[str, Any] = {"ItemRef": {"value": item}, "Qty": quantity, "UnitPrice": to_qbo_amount(unit)}
            if tax_code is not None:
                detail["TaxCodeRef"] = {"value": tax_code}
            lines.append(
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": to_qbo_amount(amount),
                    "Description": description[:4000],
                    "SalesItemLineDetail": detail,
                }
            )
        return lines

    def _check_parts(
        self, memo: Mapping[str, Any] | None, receipt: Mapping[str, Any] | None, booking: CreditBooking
    ) -> None:
        """Our documents are in the booking's currency and add up to it (a memo alone may still await its receipt).

        Raises:
            RejectedError: ``currency_mismatch`` or ``document_total_mismatch`` (someone changed a document).
        """
        currency = booking.currency
        credited = Money.zero(currency)
        for kind, document in ((CreditDocumentKind.CREDIT_MEMO, memo), (CreditDocumentKind.REFUND_RECEIPT, receipt)):
            if document is None:
                continue
            what = f"{_ENTITIES[kind]} {document.get('DocNumber') or document.get('Id')}"
            found = _ref_value(document.get("CurrencyRef"))
            if found is not None and found != currency:
                raise RejectedError(f"{what} is in {found}", code="currency_mismatch", platform=PLATFORM)
            total = from_qbo_amount(document.get("TotalAmt"), currency)
            expected = booking.amount - credited if kind is CreditDocumentKind.REFUND_RECEIPT else None
            if total > booking.amount or (expected is not None and total != expected):
                already = f" of which {credited} was credited" if credited.is_positive() else ""
                raise RejectedError(
                    f"{what} for refund {booking.refund_id} totals {total}, the refund is {booking.amount}{already}: "
                    "correct it in QuickBooks",
                    code="document_total_mismatch",
                    platform=PLATFORM,
                )
            credited = credited + total

    def _apply(self, memo: Mapping[str, Any], invoice: Mapping[str, Any], booking: CreditBooking) -> str | None:
        """Apply what the credit memo has left to what the invoice owes; the Payment id, or None if nothing to do.

        Raises:
            RejectedError: credit left on the memo while the invoice owes nothing any more.
        """
        currency = booking.currency
        remaining = from_qbo_amount(memo.get("RemainingCredit", memo.get("Balance", 0)), currency)
        if booking.legs:
            # A split refund's store credit stays on the memo as the customer's credit.
            remaining = remaining - booking.store_credit.min(remaining)
        if not remaining.is_positive():
            return None
        due = from_qbo_amount(invoice.get("Balance", 0), currency)
        if not due.is_positive():
            raise RejectedError(
                f"credit memo {memo.get('DocNumber')} has {remaining} left but invoice {_number(invoice)} owes nothing "
                "now: refund the credit in QuickBooks",
                code="credit_left_unapplied",
                platform=PLATFORM,
            )
        amount = to_qbo_amount(due.min(remaining))
        body = {
            "CustomerRef": {"value": _ref_value(memo.get("CustomerRef")) or _ref_value(invoice.get("CustomerRef"))},
            "CurrencyRef": {"value": currency},
            "TotalAmt": Decimal(0),
            "TxnDate": booking.booking_date.isoformat(),
            "PrivateNote": f"refundflow {booking.external_reference}: credit memo applied to invoice",
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": _text(invoice, "Id"), "TxnType": "Invoice"}]},
                {"Amount": amount, "LinkedTxn": [{"TxnId": _text(memo, "Id"), "TxnType": "CreditMemo"}]},
            ],
        }
        payment = self._create("Payment", body, _request_id(booking, "a", body))
        return _text(payment, "Id")

    def _document(
        self,
        memo: Mapping[str, Any] | None,
        receipt: Mapping[str, Any] | None,
        booking: CreditBooking,
        *,
        allocation_id: str | None = None,
    ) -> CreditDocument:
        """The booking as one credit document: the credit memo (allocated to the invoice) and the refund receipt
        (cash refunded). Its total is the booking's, so a booking still missing a part is not settled."""
        currency = booking.currency
        allocated = cash = Money.zero(currency)
        if memo is not None:
            total = from_qbo_amount(memo.get("TotalAmt"), currency)
            allocated = total - from_qbo_amount(memo.get("RemainingCredit", memo.get("Balance", 0)), currency)
        if receipt is not None:
            cash = from_qbo_amount(receipt.get("TotalAmt"), currency)
        primary = memo if memo is not None else receipt
        assert primary is not None
        notes = " ".join(str(part.get("PrivateNote") or "") for part in (memo, receipt) if part is not None)
        return CreditDocument(
            system=BooksSystem.QUICKBOOKS,
            kind=CreditDocumentKind.CREDIT_MEMO if memo is not None else CreditDocumentKind.REFUND_RECEIPT,
            state=CreditDocumentState.POSTED,
            document_id=_text(primary, "Id"),
            number=primary.get("DocNumber") or None,
            external_reference=booking.external_reference if booking.external_reference in notes else None,
            total=booking.amount,
            allocated_to_invoice=allocated,
            cash_refunded=cash,
            allocation_id=allocation_id,
            payment_id=_text(receipt, "Id") if receipt is not None else None,
        )

    # ------------------------------------------------------------ HTTP

    def _read(self, entity: str, entity_id: str) -> dict[str, Any]:
        if not entity_id.isdigit():
            raise NotFound(f"{entity} {entity_id!r} is not a QuickBooks id", platform=PLATFORM)
        return _entity(self._call("GET", f"{entity.lower()}/{entity_id}", reading=True), entity)

    def _create(self, entity: str, body: Mapping[str, Any], request_id: str) -> dict[str, Any]:
        return _entity(self._call("POST", entity.lower(), body=body, request_id=request_id), entity)

    def _call(
        self,
        method: str,
        resource: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        request_id: str | None = None,
        reading: bool = False,
    ) -> Any:
        """One Accounting API call; a 401 refreshes the token once and repeats the call."""
        path = f"/v3/company/{self._tokens.realm_id}/{resource}"
        query = {**(params or {}), "minorversion": self._minor_version}
        if request_id is not None:
            query["requestid"] = request_id
        data = dump_json(body) if body is not None else None

        def send(token: str) -> HttpResponse:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            return self._http.request(method, path, params=query, data=data, headers=headers)

        return _payload_or_raise(method, resource, send_with_token(self._tokens, send), reading=reading)


_ENTITIES: dict[CreditDocumentKind, str] = {
    CreditDocumentKind.REFUND_RECEIPT: "RefundReceipt",
    CreditDocumentKind.CREDIT_MEMO: "CreditMemo",
}


def _payload_or_raise(method: str, resource: str, response: HttpResponse, *, reading: bool) -> Any:
    where = f"{method} {resource.split('/')[0]}"
    if response.ok:
        try:
            return load_json(response.body)
        except ValueError as error:
            raise TransientError(f"{where}: QuickBooks answered with unreadable JSON", platform=PLATFORM) from error
    status = response.status
    faults = _faults(response)
    codes = {code for code, _ in faults}
    message = "; ".join(dict.fromkeys(text for _, text in faults)) or f"HTTP {status}"
    if status == 429 or status >= 500:
        raise TransientError(
            f"{where}: QuickBooks answered {status} ({message})",
            code="quickbooks_throttled" if status == 429 else "quickbooks_unavailable",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    if status == 401:
        raise RejectedError(
            f"{where}: QuickBooks refused a fresh access token", code="quickbooks_unauthorized", platform=PLATFORM
        )
    if status == 403:
        raise RejectedError(
            f"{where}: forbidden (the app lacks the com.intuit.quickbooks.accounting scope, or the company's "
            "subscription does not allow it)",
            code="quickbooks_forbidden",
            platform=PLATFORM,
        )
    if status == 404 or (reading and codes & _NOT_FOUND_CODES):
        raise NotFound(f"{where}: not found in QuickBooks ({message})", platform=PLATFORM)
    if codes & _PERIOD_CLOSED_CODES or "period closed" in message.lower():
        raise RejectedError(
            f"the books are closed for the refund's date in QuickBooks: reopen the period (or change the closing "
            f"date) and retry ({message})",
            code="books_period_closed",
            platform=PLATFORM,
        )
    if codes & _DUPLICATE_NUMBER_CODES:
        # Our DocNumber is taken: a create of ours that answered too late, or another process. The next attempt
        # finds the document by it before writing again.
        raise TransientError(f"{where}: {message}", code="quickbooks_duplicate_number", platform=PLATFORM)
    if codes & (_NOT_FOUND_CODES | _INVALID_REFERENCE_CODES):
        raise RejectedError(
            f"{where}: something the refund uses is missing or inactive in QuickBooks (customer, item, account or "
            f"tax code): {message}",
            code="quickbooks_invalid_reference",
            platform=PLATFORM,
        )
    raise RejectedError(f"{where}: {message}", code="quickbooks_validation", platform=PLATFORM)


def _faults(response: HttpResponse) -> list[tuple[str, str]]:
    """``Fault.Error[]`` as (code, "Message: Detail")."""
    try:
        payload = load_json(response.body)
    except ValueError:
        return []
    fault = payload.get("Fault") if isinstance(payload, Mapping) else None
    errors = fault.get("Error") if isinstance(fault, Mapping) else None
    found: list[tuple[str, str]] = []
    for error in errors or []:
        if isinstance(error, Mapping):
            text = ": ".join(str(part) for part in (error.get("Message"), error.get("Detail")) if part)
            found.append((str(error.get("code") or ""), text or "error"))
    return found


# ---------------------------------------------------------------- payload helpers


def doc_number(refund_id: str, kind: CreditDocumentKind) -> str:
    """Our DocNumber (QuickBooks keeps 21 characters): ``CM`` or ``RR`` and the refund id's first 19 hex digits
    (76 bits), distinct per kind so a refund's memo and receipt never share a number."""
    return ("CM" if kind is CreditDocumentKind.CREDIT_MEMO else "RR") + refund_id[3 : 3 + DOC_NUMBER_LENGTH - 2]


def leg_doc_number(refund_id: str, index: int) -> str:
    """A split refund's receipt of cash leg ``index``: ``R<leg number>`` and as many of the refund id's hex digits as
    QuickBooks' 21 characters leave (at least 18: 72 bits)."""
    prefix = f"R{index + 1}"
    return prefix + refund_id[3 : 3 + DOC_NUMBER_LENGTH - len(prefix)]


def _leg_marker(refund_id: str, index: int) -> str:
    return f"refundflow {refund_id} leg {index + 1}:"


def _receipt_leg(receipt: Mapping[str, Any], refund_id: str) -> int | None:
    """Which cash leg of ``refund_id`` a refund receipt pays (by the marker its private note starts with)."""
    note = str(receipt.get("PrivateNote") or "")
    prefix = f"refundflow {refund_id} leg "
    if not note.startswith(prefix):
        return None
    number = note[len(prefix) :].split(":", 1)[0]
    return int(number) - 1 if number.isdigit() and int(number) > 0 else None


def _cut(note: str) -> str:
    return note if len(note) <= PRIVATE_NOTE_LENGTH else note[: PRIVATE_NOTE_LENGTH - 3] + "..."


def _private_note(booking: CreditBooking, invoice: Mapping[str, Any]) -> str:
    """The documents' private note: our refund id (how they are found), and a split refund's every leg (a refund
    receipt pays from one account: the cash legs are named here)."""
    note = f"refundflow {booking.external_reference} ({booking.reference}) refund of invoice {_number(invoice)}"
    if not booking.legs:
        return note
    return f"{note}: {booking.legs_in_words(PRIVATE_NOTE_LENGTH - len(note) - 2)}"


def _entity(payload: Any, entity: str) -> dict[str, Any]:
    item = payload.get(entity) if isinstance(payload, Mapping) else None
    if not isinstance(item, dict):
        raise TransientError(f"QuickBooks answered without a {entity}", platform=PLATFORM)
    return item


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise TransientError(f"QuickBooks answered without {name}", platform=PLATFORM)
    return value


def _ref_value(reference: Any) -> str | None:
    value = reference.get("value") if isinstance(reference, Mapping) else None
    return str(value) if value not in (None, "") else None


def _number(invoice: Mapping[str, Any]) -> str:
    return str(invoice.get("DocNumber") or invoice.get("Id"))


def _request_id(booking: CreditBooking, step: str, body: Mapping[str, Any]) -> str:
    """The requestid of one write: the domain's key, the step and a fingerprint of the body (a hash of all three
    above 50 characters). The same request always carries the same id; a request changed by a corrected setting (an
    account, an item, a tax code) carries another, so QuickBooks never answers it with an earlier refusal."""
    fingerprint = hashlib.sha256(dump_json(body).encode()).hexdigest()[:6]
    key = f"{booking.idempotency_key}:{step}:{fingerprint}"
    if len(key) <= REQUEST_ID_MAX_LENGTH:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:REQUEST_ID_MAX_LENGTH]


# ---------------------------------------------------------------- factory


class QuickBooksSettings(settings.EnvModel):
    """QuickBooks' own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default="https://quickbooks.api.intuit.com", alias="QUICKBOOKS_API_BASE")
    token_url: str = Field(
        default="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer", alias="QUICKBOOKS_TOKEN_URL"
    )
    minor_version: str = Field(default="75", alias="QUICKBOOKS_MINOR_VERSION")
    refund_item: str = Field(default="", alias="QUICKBOOKS_REFUND_ITEM")
    tax_code: str = Field(default="", alias="QUICKBOOKS_TAX_CODE")
    refund_account: str = Field(default="", alias="QUICKBOOKS_REFUND_ACCOUNT")
    clearing_accounts: str = Field(default="", alias="QUICKBOOKS_CLEARING_ACCOUNTS")


def parse_clearing_accounts(text: str) -> dict[str, str]:
    """``stripe:EUR=35,stripe:*=36,*:USD=37`` as a mapping (see ``QuickBooksBooks.clearing_account``).

    Raises:
        ConfigurationError: a malformed entry.
    """
    return parse_per_provider(text, "QUICKBOOKS_CLEARING_ACCOUNTS", value="id")


@cache
def connector() -> QuickBooksBooks:
    """The process-wide QuickBooks books, from ``QuickBooksSettings`` and its API secret (``<SecretsPrefix>quickbooks``:
    client_id, client_secret, refresh_token, realm_id; rotated in place), built on first use.

    Raises:
        ConfigurationError: no secret name, or malformed settings.
    """
    from refundflow.adapters.secrets import get_json_secret, platform_secret_name, put_json_secret

    config = settings.load(QuickBooksSettings)
    name = platform_secret_name(PLATFORM)

    def load_secret(force: bool) -> Mapping[str, Any]:
        return get_json_secret(name, force_fetch=force)

    def save_secret(value: dict[str, Any]) -> None:
        put_json_secret(name, value)

    tokens = QuickBooksTokenSource(token_url=config.token_url, load_secret=load_secret, save_secret=save_secret)
    return QuickBooksBooks(
        tokens=tokens,
        api_base=config.api_base,
        minor_version=config.minor_version,
        refund_item=config.refund_item,
        tax_code=config.tax_code,
        refund_account=config.refund_account,
        clearing_accounts=parse_clearing_accounts(config.clearing_accounts),
    )
