"""Dynamics 365 Finance books connector: a refund becomes one free text credit note (a free text invoice with a
negative line) and, for a paid invoice, one customer payment journal that pays it out, exactly once.

Finance's OData endpoint is ``https://<environment>.operations.dynamics.com/data/<EntitySet>`` (OData v4, "Open Data
Protocol (OData)": https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata). Entity set
names are case sensitive and plural. Company-specific data lives in legal entities (``dataAreaId``); a query sees only
the app user's default company unless it says ``cross-company=true`` ("Cross-company behavior of data entities":
https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/cross-company-behavior), so every read
here says ``cross-company=true`` and filters on the merchant's ``dataAreaId``, and every write names it.

Finance keeps no idempotency key, so every write is preceded by a read that finds what an earlier attempt left, by our
refund id in ``CustomerReference`` of the free text invoice header and in ``Description`` of the payment journal
header. The flow, resumable after a crash between any two steps:

1. ``SalesInvoiceHeadersV2`` (``InvoiceNumber``): the invoice's customer (``InvoiceCustomerAccountNumber``), currency
   and total ("Sales invoice headers V2", SalesInvoiceHeaderV2Entity: https://learn.microsoft.com/common-data-model/
   schema/core/operationscommon/entities/finance/accountsreceivable/salesinvoiceheaderv2entity); what it still owes
   from its customer transaction (``CustomerTransactions``; that entity's name and fields are not on a public page
   and are unverified).
2. Find the credit note (``FreeTextInvoiceHeaders?$filter=CustomerReference eq '<refund id>'``) or create it:
   ``CustomerAccount``, ``InvoiceDate``, ``CurrencyCode``, ``InclTax`` (the line amount is gross), and, while the
   invoice still owes at least the refund, the invoice's number in ``CustomerRequisition`` for its settlement
   ("Customer free text invoice", FreeTextInvoiceHeaderEntity: https://learn.microsoft.com/common-data-model/schema/
   core/operationscommon/entities/finance/accountsreceivable/freetextinvoiceheaderentity).
3. Its one line (``FreeTextInvoiceLines``, ``ParentRecId`` = the header's ``InvoiceIdentifier``): the refund's gross
   amount as a negative unit price on the refund main account (a free text invoice with a negative amount is a
   credit note). One line, so the merchant's posting batch can never post half a credit note.
4. Finance's OData offers no action that posts a free text invoice (none is documented; the page "Create free text
   invoices", https://learn.microsoft.com/dynamics365/finance/accounts-receivable/create-free-text-invoice-new, posts
   it from the form): it waits for the merchant's periodic posting batch job. Until the header reads back ``IsPosted``
   the booking is pending, and ``DYNAMICS_FINANCE_PENDING_POLICY`` decides: ``wait`` (retried through the books-retry
   wait, like SAP's billing run) or ``record`` (the refund completes with a pending credit note). A ledger period's
   status (Open, On hold, Permanently closed; General ledger > Calendars > Ledger calendars) decides what may be
   *posted* into it (Microsoft documents it for the same form of Dynamics AX 2012, "Ledger calendar (form)":
   https://learn.microsoft.com/dynamicsax-2012/ledger-calendar-form; no Finance page says the entity's create checks
   it), so
   a closed period mostly shows at posting: the credit note stays unposted and the waiting refund's message says to
   check the period; a create Finance refuses for its date is ``closed_period``.
5. A paid invoice's refund is paid out: a customer payment journal of the merchant's journal name
   (``CustomerPaymentJournalHeaders``) with one line (``CustomerPaymentJournalLines``): the customer debited with the
   refund, offset by the clearing main account of the payment provider and currency (``OffsetAccountType`` Ledger),
   marked against the posted credit note (``MarkedInvoice``) ("Customer payment journal line",
   CustomerPaymentJournalLineEntity: https://learn.microsoft.com/common-data-model/schema/core/operationscommon/
   entities/finance/accountsreceivable/customerpaymentjournallineentity). It too is posted by the merchant's batch.

Errors are OData's ``{"error": {"code", "message", "innererror": {"message", "type"}}}``; Finance puts its Infolog in
``innererror.message``, which is what an accountant reads. Throttling (service protection and priority-based
throttling) answers 429 with ``Retry-After`` seconds ("Throttling prioritization": https://learn.microsoft.com/
dynamics365/fin-ops-core/dev-itpro/data-entities/priority-based-throttling; "Service protection retry operations":
https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/service-protection-retry-operations).
Tokens: Microsoft Entra ID client credentials with the scope ``<environment URL>/.default``, through the token source
shared with Business Central (``refundflow.connectors.entra``). Amounts are exact JSON numbers (``Decimal`` both ways).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field

from refundflow import settings
from refundflow.connectors import exact_json
from refundflow.connectors.books import BooksAmounts, check_booking, parse_per_provider, per_provider, require_refund_id
from refundflow.connectors.entra import DEFAULT_LOGIN_BASE, EntraTokenSource
from refundflow.connectors.factory import SecretBoundConnector, bad_secret, secret_strings
from refundflow.connectors.http import HttpClient, HttpResponse, retry_after_seconds
from refundflow.connectors.oauth_tokens import send_with_token
from refundflow.errors import (
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.models import BooksSystem, CreditDocument, CreditDocumentKind, CreditDocumentState, PaymentProvider
from refundflow.money import Money
from refundflow.ports import BooksCapabilities, BooksConnector, CreditBooking

PLATFORM = "dynamics_finance"
TITLE = "Dynamics 365 Finance"
DEFAULT_API_BASE = "https://yourenvironment.operations.dynamics.com"
PENDING_RETRY_SECONDS = 900.0
DESCRIPTION_LENGTH = 60
YES = "Yes"

PendingPolicy = Literal["wait", "record"]

INVOICES = "SalesInvoiceHeadersV2"
TRANSACTIONS = "CustomerTransactions"
NOTES = "FreeTextInvoiceHeaders"
NOTE_LINES = "FreeTextInvoiceLines"
JOURNALS = "CustomerPaymentJournalHeaders"
JOURNAL_LINES = "CustomerPaymentJournalLines"

_CLOSED_PERIOD_WORDS = ("closed", "on hold", "not open")


# ---------------------------------------------------------------- exact amounts and JSON


AMOUNTS = BooksAmounts(platform=PLATFORM, title=TITLE, bad_amount_code="finance_bad_amount")
capabilities = AMOUNTS.capabilities
profile = AMOUNTS.profile
to_finance_amount = AMOUNTS.to_platform
from_finance_amount = AMOUNTS.from_platform
dump_json = AMOUNTS.dump_json
load_json = exact_json.loads
"""JSON with every non-integer number as an exact ``Decimal`` (``connectors.exact_json``)."""


def finance_date(day: date) -> str:
    """An ``Edm.DateTimeOffset`` for a date, as Finance's date fields take one (midday UTC keeps the day)."""
    return f"{day.isoformat()}T12:00:00Z"


def parse_clearing_accounts(text: str) -> dict[str, str]:
    """``stripe:EUR=110180,stripe:*=110181,*:USD=110190`` as a mapping (most specific wins).

    Raises:
        ConfigurationError: a malformed entry.
    """
    return parse_per_provider(text, "DYNAMICS_FINANCE_CLEARING_ACCOUNTS", value="main account")


# ---------------------------------------------------------------- the books


class DynamicsFinanceBooks(BooksConnector):
    """The refund's free text credit note (and, for a paid invoice, its payment journal) in one legal entity."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self,
        *,
        tokens: EntraTokenSource,
        company: str,
        api_base: str = DEFAULT_API_BASE,
        refund_account: str = "401100",
        sales_tax_group: str = "",
        item_sales_tax_group: str = "",
        payment_journal: str = "CustPay",
        clearing_account: str = "",
        clearing_accounts: Mapping[str, str] | None = None,
        pending_policy: PendingPolicy = "wait",
        http: HttpClient | None = None,
    ) -> None:
        """``company``: the legal entity (``dataAreaId``); ``refund_account``: the main account of the credit note
        line; ``sales_tax_group`` / ``item_sales_tax_group``: the line's tax groups (empty: the customer's and the
        account's defaults); ``payment_journal``: the journal name of the refund payment journals;
        ``clearing_accounts``: the main account each payment provider's cash refunds are paid from, keyed
        ``<provider>:<CURRENCY>``, ``<provider>:*`` or ``*:<CURRENCY>``; ``clearing_account`` for the rest (empty: such
        a refund is refused)."""
        self._tokens = tokens
        self._company = company.lower()
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)
        self._refund_account = refund_account
        self._sales_tax_group = sales_tax_group
        self._item_sales_tax_group = item_sales_tax_group
        self._payment_journal = payment_journal
        self._clearing_account = clearing_account
        self._clearing_accounts = dict(clearing_accounts or {})
        self._pending_policy = pending_policy

    @property
    def capabilities(self) -> BooksCapabilities:
        return capabilities()

    def clearing_account(self, provider: PaymentProvider, currency: str) -> str:
        """The main account the cash refund of ``provider`` in ``currency`` is paid from.

        Raises:
            RejectedError: ``no_clearing_account``, none is configured for that provider and currency.
        """
        configured = per_provider(self._clearing_accounts, provider, currency)
        if configured is not None:
            return configured
        if not self._clearing_account:
            raise RejectedError(
                f"no clearing account is configured for {provider.value} refunds in {currency}: set "
                "DynamicsFinanceClearingAccounts",
                code="no_clearing_account",
                platform=PLATFORM,
            )
        return self._clearing_account

    # ------------------------------------------------------------ port

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        """Create (exactly once) the free text credit note and, for a paid invoice, the payment journal paying it out;
        safe to call again after any failure: every step first reads what Finance already holds.

        Raises:
            TransientError: Finance or Entra ID could not answer now, a write went unanswered, or
                (``pending_policy`` wait) the merchant's posting batch has not posted the documents yet.
            RejectedError: refused for good (closed period, currency mismatch, validation, a credit note for this
                refund that no longer totals the refund).
            NotFound: the invoice does not exist in the legal entity.
        """
        try:
            document = self._record(booking)
        except OutcomeUnknownError as error:
            raise TransientError(
                f"{error.message}; the next attempt reads {TITLE} before writing again",
                code="finance_outcome_unknown",
                platform=PLATFORM,
            ) from error
        if document.state is CreditDocumentState.PENDING and self._pending_policy == "wait":
            raise TransientError(
                f"credit note {document.number or document.document_id} for refund {booking.refund_id} is waiting "
                f"for the posting batch in {TITLE} (it posts only into an open ledger period: if the batch leaves it "
                f"unposted, check the period of {booking.booking_date.isoformat()} in the ledger calendar)",
                code="finance_posting_pending",
                platform=PLATFORM,
                retry_after_seconds=PENDING_RETRY_SECONDS,
            )
        return document

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The credit note already recorded for this booking (found by ``CustomerReference``), posted or pending, with
        its payment journal as far as it got.

        Raises:
            TransientError; RejectedError: the read was refused (credentials, permissions).
        """
        require_refund_id(booking.external_reference, platform=PLATFORM)
        note = self._find_note(booking.external_reference)
        if note is None:
            return None
        journal = None if self._settles_invoice(note) else self._found_journal(booking)
        return self._document(note, booking, journal)

    def _found_journal(self, booking: CreditBooking) -> dict[str, Any] | None:
        """The booking's payment journal as far as it got; a split refund's: one of a cash leg not posted (or not
        written) yet if any, else the first."""
        if not booking.legs:
            return self._find_journal(booking.external_reference)
        journals = [
            self._find_journal(f"{booking.external_reference} leg {leg.index + 1}") for leg in booking.cash_legs()
        ]
        if any(journal is None for journal in journals):
            return None
        return next((journal for journal in journals if journal is not None and not _posted(journal)), journals[0])

    # ------------------------------------------------------------ steps

    def _record(self, booking: CreditBooking) -> CreditDocument:
        self._check_booking(booking)
        invoice = self._invoice(booking)
        note = self._find_note(booking.external_reference)
        if note is None:
            owes = self._still_owed(invoice, booking.currency)
            if owes < booking.amount:
                self.clearing_account(booking.payment_provider, booking.currency)
            note = self._create_note(booking, invoice, settles=owes >= booking.amount)
        self._check_note(note, booking)
        identifier = _identifier(note)
        if not _posted(note):
            self._add_line(identifier, booking, invoice)
            note = self._read_note(identifier)
        self._check_total(note, booking)
        if not _posted(note) or self._settles_invoice(note):
            return self._document(note, booking, None)
        if booking.legs:
            return self._document(note, booking, self._pay_out_legs(note, booking))
        journal = self._find_journal(booking.external_reference) or self._create_journal(booking)
        if not _posted(journal):
            text = f"Refund {booking.reference} ({booking.payment_provider.value})"
            self._add_payment_line(journal, note, booking, booking.amount, booking.payment_provider, text)
            journal = self._find_journal(booking.external_reference) or journal
        return self._document(note, booking, journal)

    def _pay_out_legs(self, note: Mapping[str, Any], booking: CreditBooking) -> dict[str, Any] | None:
        """A split refund's cash legs, each paid by a payment journal of its own (one line, offset by its provider's
        clearing account, so the posting batch never posts half of one), described ``<refund id> leg <n>``; the
        store credit stays on the credit note. Returns a journal not posted yet if any (the booking is pending
        until the batch posts it), else the first."""
        journals = []
        for leg in booking.cash_legs():
            assert leg.payment_provider is not None
            description = f"{booking.external_reference} leg {leg.index + 1}"
            journal = self._find_journal(description) or self._create_journal(booking, description)
            if not _posted(journal):
                self._add_payment_line(journal, note, booking, leg.amount, leg.payment_provider, leg.words())
                journal = self._find_journal(description) or journal
            journals.append(journal)
        return next((journal for journal in journals if not _posted(journal)), journals[0] if journals else None)

    def _check_booking(self, booking: CreditBooking) -> None:
        check_booking(
            booking,
            system=BooksSystem.DYNAMICS_FINANCE,
            platform=PLATFORM,
            invoice=f"a {TITLE} invoice",
            document="a credit note",
            to_platform=to_finance_amount,
        )

    def _invoice(self, booking: CreditBooking) -> dict[str, Any]:
        number = booking.invoice.invoice_id
        found = self._list(INVOICES, f"InvoiceNumber eq '{_quote(number)}'")
        if not found:
            raise NotFound(f"invoice {number} is not in {TITLE} legal entity {self._company}", platform=PLATFORM)
        invoice = found[0]
        currency = str(invoice.get("CurrencyCode") or "").upper()
        if currency != booking.currency:
            raise RejectedError(
                f"invoice {number} is in {currency or 'another currency'}, the refund in {booking.currency}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        if booking.amount > from_finance_amount(invoice.get("TotalInvoiceAmount"), currency):
            raise RejectedError(
                f"refund {booking.amount} is more than invoice {number} totals", code="over_credit", platform=PLATFORM
            )
        if not invoice.get("InvoiceCustomerAccountNumber"):
            raise RejectedError(f"invoice {number} has no invoice account", platform=PLATFORM)
        return invoice

    def _still_owed(self, invoice: Mapping[str, Any], currency: str) -> Money:
        """What the invoice's customer transaction still owes (amount less what has been settled)."""
        filter_text = (
            f"Invoice eq '{_quote(str(invoice['InvoiceNumber']))}' and "
            f"AccountNum eq '{_quote(str(invoice['InvoiceCustomerAccountNumber']))}'"
        )
        owed = Money.zero(currency)
        for transaction in self._list(TRANSACTIONS, filter_text):
            amount = from_finance_amount(transaction.get("AmountCur"), currency)
            settled = from_finance_amount(transaction.get("SettleAmountCur", 0), currency)
            owed = owed + amount - settled
        return owed if owed.is_positive() else Money.zero(currency)

    def _find_note(self, reference: str) -> dict[str, Any] | None:
        found = [note for note in self._list(NOTES, f"CustomerReference eq '{reference}'") if _ours(note, reference)]
        if len(found) > 1:
            numbers = ", ".join(str(note.get("InvoiceId") or note.get("InvoiceIdentifier")) for note in found)
            raise RejectedError(
                f"several free text invoices carry refund {reference} ({numbers}): delete the extra ones in {TITLE}",
                code="duplicate_credit_notes",
                platform=PLATFORM,
            )
        return found[0] if found else None

    def _read_note(self, identifier: int) -> dict[str, Any]:
        found = self._list(NOTES, f"InvoiceIdentifier eq {identifier}")
        if not found:
            raise TransientError(f"free text invoice {identifier} cannot be read back yet", platform=PLATFORM)
        return found[0]

    def _create_note(self, booking: CreditBooking, invoice: Mapping[str, Any], *, settles: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "dataAreaId": self._company,
            "CustomerAccount": invoice["InvoiceCustomerAccountNumber"],
            "InvoiceDate": finance_date(booking.booking_date),
            "CurrencyCode": booking.currency,
            "CustomerReference": booking.external_reference,
            # The line amount is the gross refund: Finance computes the tax inside it.
            "InclTax": YES,
            # The invoice the posted credit note is settled against while it still owes the refund; empty: the credit
            # is paid out by a payment journal.
            "CustomerRequisition": str(invoice["InvoiceNumber"]) if settles else "",
        }
        created = self._call("POST", NOTES, body=body)
        if not isinstance(created, dict):
            raise TransientError(f"POST {NOTES}: {TITLE} answered without the header", platform=PLATFORM)
        return created

    def _check_note(self, note: Mapping[str, Any], booking: CreditBooking) -> None:
        if str(note.get("CurrencyCode") or "").upper() != booking.currency:
            raise RejectedError(
                f"free text credit note {_number(note)} for refund {booking.refund_id} is in "
                f"{note.get('CurrencyCode')}",
                code="currency_mismatch",
                platform=PLATFORM,
            )

    def _lines(self, identifier: int) -> list[dict[str, Any]]:
        return self._list(NOTE_LINES, f"ParentRecId eq {identifier}")

    def _add_line(self, identifier: int, booking: CreditBooking, invoice: Mapping[str, Any]) -> None:
        if self._lines(identifier):
            return
        if booking.lines:
            what = "; ".join(line.description for line in booking.lines)
        else:
            what = f"Refund {booking.reference} of invoice {invoice['InvoiceNumber']}"
        if booking.store_credit.is_positive():
            # A split refund's cash legs are named by their payment journal lines; the store credit stays here.
            what = f"Store credit {booking.store_credit}; {what}"
        line: dict[str, Any] = {
            "dataAreaId": self._company,
            "ParentRecId": identifier,
            "LineNumber": Decimal(1),
            "Description": what[:DESCRIPTION_LENGTH],
            "MainAccountDisplayValue": self._refund_account,
            "Quantity": Decimal(1),
            # A negative amount makes the free text invoice a credit note.
            "UnitPrice": -to_finance_amount(booking.amount),
        }
        if self._sales_tax_group:
            line["SalesTaxGroupId"] = self._sales_tax_group
        if self._item_sales_tax_group:
            line["SalesTaxItemGroupId"] = self._item_sales_tax_group
        self._call("POST", NOTE_LINES, body=line)

    def _note_total(self, note: Mapping[str, Any], currency: str) -> Money:
        """The credit note's total as a positive credit: the gross of its lines (``InclTax``) or net plus tax."""
        total = Decimal(0)
        for line in self._lines(_identifier(note)):
            amount = line.get("TransactionCurrencyAmount")
            tax = line.get("SalesTaxAmount", 0)
            if not isinstance(amount, Decimal | int) or not isinstance(tax, Decimal | int):
                raise TransientError(f"{TITLE} sent a line without amounts", platform=PLATFORM)
            total += amount if note.get("InclTax") == YES else amount + tax
        return from_finance_amount(-total, currency) if total < 0 else Money.zero(currency)

    def _check_total(self, note: Mapping[str, Any], booking: CreditBooking) -> None:
        total = self._note_total(note, booking.currency)
        if total != booking.amount:
            raise RejectedError(
                f"free text credit note {_number(note)} for refund {booking.refund_id} totals {total} including tax, "
                f"the refund is {booking.amount}: a line or the prices-include-tax setting was changed in {TITLE}; "
                "correct or delete it",
                code="finance_total_mismatch",
                platform=PLATFORM,
            )

    def _settles_invoice(self, note: Mapping[str, Any]) -> bool:
        return bool(note.get("CustomerRequisition"))

    # ------------------------------------------------------------ the cash refund

    def _find_journal(self, reference: str) -> dict[str, Any] | None:
        found = [
            journal
            for journal in self._list(JOURNALS, f"Description eq '{reference}'")
            if _ours_desc(journal, reference)
        ]
        return found[0] if found else None

    def _create_journal(self, booking: CreditBooking, description: str | None = None) -> dict[str, Any]:
        body = {
            "dataAreaId": self._company,
            "JournalName": self._payment_journal,
            "Description": description or booking.external_reference,
        }
        created = self._call("POST", JOURNALS, body=body)
        if not isinstance(created, dict) or not created.get("JournalBatchNumber"):
            raise TransientError(f"POST {JOURNALS}: {TITLE} answered without a journal batch number", platform=PLATFORM)
        return created

    def _add_payment_line(
        self,
        journal: Mapping[str, Any],
        note: Mapping[str, Any],
        booking: CreditBooking,
        amount: Money,
        provider: PaymentProvider,
        text: str,
    ) -> None:
        batch = str(journal["JournalBatchNumber"])
        if self._list(JOURNAL_LINES, f"JournalBatchNumber eq '{_quote(batch)}'"):
            return
        line = {
            "dataAreaId": self._company,
            "JournalBatchNumber": batch,
            "LineNumber": Decimal(1),
            "AccountType": "Cust",
            "AccountDisplayValue": note["CustomerAccount"],
            "TransactionDate": finance_date(booking.booking_date),
            # A debit on the customer: money paid back, settled against the credit note.
            "DebitAmount": to_finance_amount(amount),
            "CreditAmount": Decimal(0),
            "CurrencyCode": booking.currency,
            "MarkedInvoice": note["InvoiceId"],
            "OffsetAccountType": "Ledger",
            "OffsetAccountDisplayValue": self.clearing_account(provider, booking.currency),
            "TransactionText": text[:DESCRIPTION_LENGTH],
            "PaymentReference": booking.refund_id,
        }
        self._call("POST", JOURNAL_LINES, body=line)

    # ------------------------------------------------------------ the document

    def _document(
        self, note: Mapping[str, Any], booking: CreditBooking, journal: Mapping[str, Any] | None
    ) -> CreditDocument:
        currency = booking.currency
        nothing = Money.zero(currency)
        settles = self._settles_invoice(note)
        posted = _posted(note) and (settles or (journal is not None and _posted(journal)))
        total = self._note_total(note, currency) if posted else booking.amount
        return CreditDocument(
            system=BooksSystem.DYNAMICS_FINANCE,
            kind=CreditDocumentKind.CREDIT_NOTE,
            state=CreditDocumentState.POSTED if posted else CreditDocumentState.PENDING,
            document_id=str(_identifier(note)),
            number=str(note.get("InvoiceId") or "") or None,
            external_reference=str(note.get("CustomerReference") or "") or None,
            total=total,
            allocated_to_invoice=total if posted and settles else nothing,
            cash_refunded=total - booking.store_credit if posted and not settles else nothing,
            allocation_id=str(note.get("CustomerRequisition")) if posted and settles else None,
            payment_id=str(journal["JournalBatchNumber"]) if journal is not None else None,
        )

    # ------------------------------------------------------------ HTTP

    def _list(self, entity_set: str, filter_text: str) -> list[dict[str, Any]]:
        params = {"cross-company": "true", "$filter": f"dataAreaId eq '{_quote(self._company)}' and {filter_text}"}
        payload = self._call("GET", entity_set, params=params)
        items = payload.get("value") if isinstance(payload, Mapping) else None
        if not isinstance(items, list):
            raise TransientError(f"GET {entity_set}: {TITLE} answered without a value list", platform=PLATFORM)
        return [item for item in items if isinstance(item, dict)]

    def _call(self, method: str, entity_set: str, *, params: Mapping[str, str] | None = None, body: Any = None) -> Any:
        """One call to ``/data/<entity set>``; a 401 fetches a new token once and repeats the call."""
        data = dump_json(body) if body is not None else None

        def send(token: str) -> HttpResponse:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            return self._http.request(method, f"/data/{entity_set}", params=params, data=data, headers=headers)

        return _payload_or_raise(method, entity_set, send_with_token(self._tokens, send))


def _payload_or_raise(method: str, entity_set: str, response: HttpResponse) -> Any:
    where = f"{method} {entity_set}"
    if response.ok:
        try:
            return load_json(response.body)
        except ValueError as error:
            raise TransientError(f"{where}: {TITLE} answered with unreadable JSON", platform=PLATFORM) from error
    status = response.status
    message = _odata_error(response)
    if status == 400:
        lowered = message.lower()
        if "period" in lowered and any(word in lowered for word in _CLOSED_PERIOD_WORDS):
            raise RejectedError(
                f"{TITLE} refused the date: its ledger period is closed or on hold. {message}",
                code="closed_period",
                platform=PLATFORM,
            )
        raise RejectedError(f"{TITLE} refused {where}: {message}", code="finance_validation", platform=PLATFORM)
    if status == 401:
        raise RejectedError(
            f"{where}: {TITLE} refused a fresh token: is the app registered under Microsoft Entra applications "
            f"in {TITLE}?",
            code="finance_unauthorized",
            platform=PLATFORM,
        )
    if status == 403:
        raise RejectedError(
            f"{where}: forbidden ({message}): give the app's {TITLE} user the security roles it needs",
            code="finance_forbidden",
            platform=PLATFORM,
        )
    if status == 404:
        raise RejectedError(f"{where}: not found in {TITLE} ({message})", code="finance_not_found", platform=PLATFORM)
    if status in {409, 412, 429} or status >= 500:
        raise TransientError(
            f"{where}: {TITLE} answered {status} ({message})",
            code="finance_throttled" if status == 429 else f"finance_http_{status}",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    raise RejectedError(
        f"{where}: {TITLE} answered {status} ({message})", code=f"finance_http_{status}", platform=PLATFORM
    )


def _odata_error(response: HttpResponse) -> str:
    """The words of OData's ``{"error": {"code", "message", "innererror": {"message"}}}``: Finance's Infolog, in
    ``innererror.message``, when there is one (its generic ``message`` says only "An error has occurred.")."""
    try:
        payload = load_json(response.body)
    except ValueError:
        return response.body.decode("utf-8", "replace")[:300] or f"HTTP {response.status}"
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(error, Mapping):
        return f"HTTP {response.status}"
    inner = error.get("innererror")
    detail = str(inner.get("message") or "") if isinstance(inner, Mapping) else ""
    if "Infolog:" in detail:
        detail = detail.split("Infolog:", 1)[1].strip()
    return (detail or str(error.get("message") or "")).strip()[:500] or f"HTTP {response.status}"


# ---------------------------------------------------------------- helpers


def _posted(record: Mapping[str, Any]) -> bool:
    return record.get("IsPosted") == YES


def _identifier(note: Mapping[str, Any]) -> int:
    value = note.get("InvoiceIdentifier")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TransientError(f"{TITLE} answered without the free text invoice's InvoiceIdentifier", platform=PLATFORM)
    return value


def _number(note: Mapping[str, Any]) -> str:
    return str(note.get("InvoiceId") or note.get("InvoiceIdentifier"))


def _ours(note: Mapping[str, Any], reference: str) -> bool:
    return note.get("CustomerReference") == reference


def _ours_desc(journal: Mapping[str, Any], reference: str) -> bool:
    return journal.get("Description") == reference


def _quote(text: str) -> str:
    return text.replace("'", "''")


# ---------------------------------------------------------------- factory


class DynamicsFinanceSettings(settings.EnvModel):
    """Dynamics 365 Finance's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="DYNAMICS_FINANCE_API_BASE")
    login_base: str = Field(default=DEFAULT_LOGIN_BASE, alias="DYNAMICS_FINANCE_LOGIN_BASE")
    refund_account: str = Field(default="401100", alias="DYNAMICS_FINANCE_REFUND_ACCOUNT")
    sales_tax_group: str = Field(default="", alias="DYNAMICS_FINANCE_SALES_TAX_GROUP")
    item_sales_tax_group: str = Field(default="", alias="DYNAMICS_FINANCE_ITEM_SALES_TAX_GROUP")
    payment_journal: str = Field(default="CustPay", alias="DYNAMICS_FINANCE_PAYMENT_JOURNAL")
    clearing_account: str = Field(default="", alias="DYNAMICS_FINANCE_CLEARING_ACCOUNT")
    clearing_accounts: str = Field(default="", alias="DYNAMICS_FINANCE_CLEARING_ACCOUNTS")
    pending_policy: PendingPolicy = Field(default="wait", alias="DYNAMICS_FINANCE_PENDING_POLICY")


_SECRET_KEYS = ("tenant_id", "client_id", "client_secret", "resource", "company")


def _build(config: DynamicsFinanceSettings, name: str, secret: Mapping[str, Any]) -> DynamicsFinanceBooks:
    """From the DYNAMICS_FINANCE_* settings and the API secret (tenant_id, client_id, client_secret, resource: the
    environment URL the token is for, company: the legal entity's dataAreaId).

    Raises:
        ConfigurationError: a secret of another shape, or malformed settings.
    """
    values = dict(zip(_SECRET_KEYS, secret_strings(secret, name, _SECRET_KEYS, platform=PLATFORM), strict=True))
    resource = values["resource"].rstrip("/")
    if not resource.startswith("https://"):
        raise bad_secret(name, "resource must be the environment's https:// URL", platform=PLATFORM)
    tokens = EntraTokenSource(
        platform=PLATFORM,
        title=TITLE,
        scope=f"{resource}/.default",
        login_base=config.login_base,
        tenant_id=values["tenant_id"],
        client_id=values["client_id"],
        client_secret=values["client_secret"],
    )
    return DynamicsFinanceBooks(
        tokens=tokens,
        company=values["company"],
        api_base=config.api_base,
        refund_account=config.refund_account,
        sales_tax_group=config.sales_tax_group,
        item_sales_tax_group=config.item_sales_tax_group,
        payment_journal=config.payment_journal,
        clearing_account=config.clearing_account,
        clearing_accounts=parse_clearing_accounts(config.clearing_accounts),
        pending_policy=config.pending_policy,
    )


connector: SecretBoundConnector[DynamicsFinanceSettings, DynamicsFinanceBooks] = SecretBoundConnector(
    PLATFORM, DynamicsFinanceSettings, _build
)
"""The process's DynamicsFinanceBooks, built from DynamicsFinanceSettings and its API secret
(``<SecretsPrefix>dynamics_finance``), again when either changes (see refundflow.connectors.factory)."""
