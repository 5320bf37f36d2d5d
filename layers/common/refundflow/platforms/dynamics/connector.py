"""Business Central books connector (API v2.0): a refund becomes one posted sales credit memo, exactly once.

Business Central keeps no idempotency key, so every write is preceded by a read that finds what an earlier attempt
left behind, by our refund id in the credit memo's ``externalDocumentNumber`` (a Code[35] field: Business Central
stores it in upper case, and a refund id, ``rf_`` and 32 hex digits, is exactly 35 characters). The flow resumes
after a crash between any two steps:

1. ``GET salesInvoices({id})``: a posted invoice (Open or Paid) in the booking's currency; its customer is the
   credit memo's customer.
2. Find the credit memo (``$filter=externalDocumentNumber eq 'RF_...'``) or ``POST salesCreditMemos`` as a Draft.
   While the invoice still owes at least the refund, the memo names it (``invoiceId``), so posting applies the
   credit to the invoice; a paid invoice is named in the line description only.
3. Add the lines still missing (``POST salesCreditMemos({id})/salesCreditMemoLines``, G/L account lines, gross
   unit prices), check the Draft's ``totalAmountIncludingTax`` is the refund, then post it
   (``POST salesCreditMemos({id})/Microsoft.NAV.post``, 204).
4. A memo not applied to the invoice is paid out: a general journal line for the customer (a positive amount: money
   back to the customer) balanced by the clearing account of the payment provider and currency, in refundflow's own
   journal batch, posted with ``POST journals({id})/Microsoft.NAV.post``. It is found first among the posted G/L
   entries (the memo's number on the clearing account), then among the batch's lines, before it is written.

Tokens: Microsoft Entra ID client credentials (``/{tenant}/oauth2/v2.0/token``, scope
``https://api.businesscentral.dynamics.com/.default``), cached until shortly before they expire, by the token source
shared with the other Microsoft platforms (``refundflow.connectors.entra``). Amounts are
exact JSON numbers built from ``Money`` (``Decimal`` both ways, never ``float``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from refundflow import settings
from refundflow.connectors import exact_json
from refundflow.connectors.books import BooksAmounts, check_booking, parse_per_provider, per_provider, require_refund_id
from refundflow.connectors.entra import DEFAULT_LOGIN_BASE, TOKEN_EXPIRY_MARGIN_SECONDS, EntraTokenSource
from refundflow.connectors.factory import SecretBoundConnector, secret_strings
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

PLATFORM = "dynamics"
TITLE = "Business Central"
SCOPE = "https://api.businesscentral.dynamics.com/.default"
DEFAULT_API_BASE = "https://api.businesscentral.dynamics.com/v2.0"
EXTERNAL_DOCUMENT_NUMBER_LENGTH = 35
DESCRIPTION_LENGTH = 100

_INVOICE_STATUSES_FOR_REFUND = {"Open", "Paid"}
_POSTED_MEMO_STATUSES = {"Open", "Paid"}
_CLOSED_PERIOD_MARKERS = ("allowed posting dates", "posting date is not within", "accounting period")


# ---------------------------------------------------------------- exact amounts and JSON


AMOUNTS = BooksAmounts(platform=PLATFORM, title=TITLE, bad_amount_code="dynamics_bad_amount")
capabilities = AMOUNTS.capabilities
profile = AMOUNTS.profile
to_bc_amount = AMOUNTS.to_platform
from_bc_amount = AMOUNTS.from_platform
dump_json = AMOUNTS.dump_json
load_json = exact_json.loads
"""JSON with every non-integer number as an exact ``Decimal`` (``connectors.exact_json``)."""

# ---------------------------------------------------------------- Entra ID tokens


class BusinessCentralTokens(EntraTokenSource):
    """Entra ID client-credentials tokens for Business Central's API scope (the shared token source)."""

    def __init__(
        self,
        *,
        login_base: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float = TOKEN_EXPIRY_MARGIN_SECONDS,
    ) -> None:
        super().__init__(
            platform=PLATFORM,
            title=TITLE,
            scope=SCOPE,
            login_base=login_base,
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            http=http,
            clock=clock,
            expiry_margin_seconds=expiry_margin_seconds,
        )


# ---------------------------------------------------------------- the books


class BusinessCentralBooks(BooksConnector):
    """The refund's sales credit memo (and, for a paid invoice, its cash refund) in one Business Central company."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self,
        *,
        tokens: EntraTokenSource,
        tenant_id: str,
        environment: str,
        company_id: str,
        api_base: str = DEFAULT_API_BASE,
        refund_account: str = "6110",
        tax_code: str = "",
        refund_journal: str = "REFUNDFLOW",
        clearing_account: str = "",
        clearing_accounts: Mapping[str, str] | None = None,
        http: HttpClient | None = None,
    ) -> None:
        """``refund_account``: the G/L account number of the credit memo lines (sales or sales returns);
        ``tax_code``: the lines' tax code (empty: the invoice lines' one when they share it, else the account's);
        ``refund_journal``: the general journal batch the cash refunds are posted from (refundflow's own: posting
        posts the whole batch); ``clearing_accounts``: the G/L account each payment provider's cash refunds are paid
        from, keyed ``<provider>:<CURRENCY>``, ``<provider>:*`` or ``*:<CURRENCY>`` (most specific wins);
        ``clearing_account`` for everything else (empty: none, such a refund is refused)."""
        self._tokens = tokens
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)
        self._company = f"/{tenant_id}/{environment}/api/v2.0/companies({company_id})"
        self._refund_account = refund_account
        self._tax_code = tax_code
        self._refund_journal = refund_journal
        self._clearing_account = clearing_account
        self._clearing_accounts = dict(clearing_accounts or {})
        self._local_currency: str | None = None

    @property
    def capabilities(self) -> BooksCapabilities:
        return capabilities()

    def clearing_account(self, provider: PaymentProvider, currency: str) -> str:
        """The G/L account the cash refund of ``provider`` in ``currency`` is paid from.

        Raises:
            RejectedError: ``no_clearing_account``, none is configured for that provider and currency.
        """
        configured = per_provider(self._clearing_accounts, provider, currency)
        if configured is not None:
            return configured
        if not self._clearing_account:
            raise RejectedError(
                f"no clearing account is configured for {provider.value} refunds in {currency}: set "
                "DynamicsClearingAccounts",
                code="no_clearing_account",
                platform=PLATFORM,
            )
        return self._clearing_account

    # ------------------------------------------------------------ port

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        """Create (exactly once) the posted credit memo, applied to the invoice while it owes the refund, else paid
        out from the provider's clearing account. Safe to call again after any failure: every step first reads
        what Business Central already holds.

        Raises:
            TransientError: Business Central or Entra ID could not answer now, or a write went unanswered.
            RejectedError: refused for good (closed period, currency mismatch, invoice not posted, validation).
            NotFound: the invoice does not exist in the company.
        """
        try:
            return self._record(booking)
        except OutcomeUnknownError as error:
            raise TransientError(
                f"{error.message}; the next attempt reads {TITLE} before writing again",
                code="dynamics_outcome_unknown",
                platform=PLATFORM,
            ) from error

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The credit memo already recorded for this booking (found by its external document number), with its
        application or cash refund as far as it got.

        Raises:
            TransientError; RejectedError: the read was refused (credentials, permissions).
        """
        require_refund_id(booking.external_reference, platform=PLATFORM)
        memo = self._find_memo(booking.external_reference)
        if memo is None:
            return None
        cash = None if self._applied(memo, booking) else self._find_cash_refund(memo, booking)
        return self._document(memo, booking, cash)

    # ------------------------------------------------------------ steps

    def _record(self, booking: CreditBooking) -> CreditDocument:
        self._check_booking(booking)
        invoice = self._get(f"salesInvoices({booking.invoice.invoice_id})")
        self._check_invoice(invoice, booking)
        memo = self._find_memo(booking.external_reference)
        applies = self._applied(memo, booking) if memo is not None else _applies_to(invoice, booking)
        if not applies:
            self._check_cash_currency(booking)
        if memo is None:
            memo = self._create_memo(booking, invoice)
        self._check_memo(memo, booking)
        memo_id = _text(memo, "id")
        if memo.get("status") == "Draft":
            self._add_missing_lines(memo_id, booking, invoice)
            memo = self._get(f"salesCreditMemos({memo_id})")
            total = from_bc_amount(memo.get("totalAmountIncludingTax"), booking.currency)
            if total != booking.amount:
                raise RejectedError(
                    f"draft credit memo {memo.get('number')} totals {total} including tax, the refund is "
                    f"{booking.amount}: the customer's prices exclude tax or a line was changed in {TITLE}",
                    code="dynamics_total_mismatch",
                    platform=PLATFORM,
                )
            self._call("POST", f"salesCreditMemos({memo_id})/Microsoft.NAV.post")
            # Found again by our reference (it carries over to the posted memo) rather than by the draft's id.
            posted = self._find_memo(booking.external_reference)
            if posted is None or posted.get("status") not in _POSTED_MEMO_STATUSES:
                raise TransientError(
                    f"credit memo {memo.get('number')} was posted but cannot be read back yet",
                    code="dynamics_outcome_unknown",
                    platform=PLATFORM,
                )
            memo = posted
            self._check_memo(memo, booking)
        cash = None
        if not self._applied(memo, booking):
            cash = self._find_cash_refund(memo, booking) or self._create_cash_refund(memo, booking)
        return self._document(memo, booking, cash)

    def _check_booking(self, booking: CreditBooking) -> None:
        check_booking(
            booking,
            system=BooksSystem.DYNAMICS,
            platform=PLATFORM,
            invoice=f"a {TITLE} invoice",
            document="a refund credit memo",
            to_platform=to_bc_amount,
        )

    def _check_invoice(self, invoice: Mapping[str, Any], booking: CreditBooking) -> None:
        number = invoice.get("number") or invoice.get("id")
        if invoice.get("status") not in _INVOICE_STATUSES_FOR_REFUND:
            raise RejectedError(
                f"invoice {number} is {invoice.get('status')} in {TITLE}: only a posted invoice (Open or Paid) is "
                "credited",
                code="invoice_status",
                platform=PLATFORM,
            )
        if str(invoice.get("currencyCode") or "").upper() != booking.currency:
            raise RejectedError(
                f"invoice {number} is in {invoice.get('currencyCode') or 'the local currency'}, the refund in "
                f"{booking.currency}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        if booking.amount > from_bc_amount(invoice.get("totalAmountIncludingTax"), booking.currency):
            raise RejectedError(
                f"refund {booking.amount} is more than invoice {number} totals", code="over_credit", platform=PLATFORM
            )
        if not invoice.get("customerId"):
            raise RejectedError(f"invoice {number} has no customer", platform=PLATFORM)

    def _find_memo(self, reference: str) -> dict[str, Any] | None:
        # A refund id is rf_ and hex digits: nothing to escape in the filter; stored upper case (a Code field).
        stored = _external_number(reference)
        found = self._list("salesCreditMemos", {"$filter": f"externalDocumentNumber eq '{stored}'"})
        matches = [memo for memo in found if str(memo.get("externalDocumentNumber", "")).upper() == stored]
        if len(matches) > 1:
            numbers = ", ".join(str(memo.get("number")) for memo in matches)
            raise RejectedError(
                f"several credit memos carry refund {reference} ({numbers}): fix them in {TITLE}",
                code="duplicate_credit_memos",
                platform=PLATFORM,
            )
        return matches[0] if matches else None

    def _create_memo(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "externalDocumentNumber": _external_number(booking.external_reference),
            "customerId": invoice["customerId"],
            "creditMemoDate": booking.booking_date.isoformat(),
            "postingDate": booking.booking_date.isoformat(),
            "currencyCode": booking.currency,
        }
        if _applies_to(invoice, booking):
            # Applies-to the invoice: posting sets the credit against what it owes.
            body["invoiceId"] = invoice["id"]
        return self._call("POST", "salesCreditMemos", body=body)  # type: ignore[no-any-return]

    def _check_memo(self, memo: Mapping[str, Any], booking: CreditBooking) -> None:
        number = memo.get("number") or memo.get("id")
        if memo.get("status") not in {"Draft", *_POSTED_MEMO_STATUSES}:
            raise RejectedError(
                f"credit memo {number} for refund {booking.refund_id} is {memo.get('status')} in {TITLE}",
                code="credit_memo_status",
                platform=PLATFORM,
            )
        if str(memo.get("currencyCode") or "").upper() != booking.currency:
            raise RejectedError(
                f"credit memo {number} is in {memo.get('currencyCode')}", code="currency_mismatch", platform=PLATFORM
            )
        if memo.get("status") != "Draft":
            total = from_bc_amount(memo.get("totalAmountIncludingTax"), booking.currency)
            if total != booking.amount:
                raise RejectedError(
                    f"credit memo {number} for refund {booking.refund_id} totals {total}, the refund is "
                    f"{booking.amount}",
                    code="credit_memo_conflict",
                    platform=PLATFORM,
                )

    def _wanted_lines(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> list[dict[str, Any]]:
        number = invoice.get("number") or invoice.get("id")
        if booking.lines:
            parts = [(line.description, line.quantity, line.amount) for line in booking.lines]
        elif booking.legs:
            # A split refund without lines of its own: one line per leg, so the memo names every leg.
            parts = [(leg.words(), 1, leg.amount) for leg in booking.legs]
        else:
            parts = [(f"Refund {booking.reference} of invoice {number}", 1, booking.amount)]
        tax_code = self._tax_code or self._invoice_tax_code(invoice)
        lines = []
        for description, quantity, amount in parts:
            unit = Money.of(amount.minor_units // quantity, amount.currency)
            if amount.minor_units % quantity:
                # The gross line amount is what must be exact: book it as one unit rather than round a price.
                description, quantity, unit = f"{description} (x{quantity})", 1, amount
            line: dict[str, Any] = {
                "lineType": "Account",
                "lineObjectNumber": self._refund_account,
                "description": _line_description(description, booking),
                "quantity": quantity,
                "unitPrice": to_bc_amount(unit),
            }
            if tax_code:
                line["taxCode"] = tax_code
            lines.append(line)
        return lines

    def _invoice_tax_code(self, invoice: Mapping[str, Any]) -> str:
        lines = self._list(f"salesInvoices({_text(invoice, 'id')})/salesInvoiceLines", None)
        codes = {str(line.get("taxCode") or "") for line in lines}
        if len(codes) == 1:
            (only,) = codes
            return only
        return ""

    def _add_missing_lines(self, memo_id: str, booking: CreditBooking, invoice: Mapping[str, Any]) -> None:
        path = f"salesCreditMemos({memo_id})/salesCreditMemoLines"
        present = [
            (str(line.get("description")), Decimal(str(line.get("unitPrice"))), int(line.get("quantity") or 0))
            for line in self._list(path, None)
        ]
        for line in self._wanted_lines(booking, invoice):
            signature = (line["description"], line["unitPrice"], line["quantity"])
            if signature in present:
                present.remove(signature)
                continue
            self._call("POST", path, body=line)

    def _check_cash_currency(self, booking: CreditBooking) -> None:
        """A cash refund is a journal line, and API v2.0 journal lines carry no currency: they post in the company's
        local currency. One in another currency is refused before anything is written."""
        if self._local_currency is None:
            companies = self._list("companyInformation", None)
            self._local_currency = str(companies[0].get("currencyCode") or "").upper() if companies else ""
        if booking.currency != self._local_currency:
            raise RejectedError(
                f"the invoice is paid, so refund {booking.refund_id} must be paid out in {booking.currency}, but "
                f"{TITLE}'s API books journal lines in the company's currency ({self._local_currency or 'unknown'}) "
                "only: book the credit memo and its refund by hand",
                code="cash_refund_currency",
                platform=PLATFORM,
            )

    def _applied(self, memo: Mapping[str, Any], booking: CreditBooking) -> bool:
        return str(memo.get("invoiceId") or "").lower() == booking.invoice.invoice_id.lower()

    def _journal_id(self) -> str:
        code = self._refund_journal
        journals = self._list("journals", {"$filter": f"code eq '{_quote(code)}'"})
        if not journals:
            raise RejectedError(
                f"{TITLE} has no general journal batch {code} to post refunds from: create it (refundflow's own, "
                "it posts the whole batch) or set DynamicsRefundJournal",
                code="dynamics_no_refund_journal",
                platform=PLATFORM,
            )
        return _text(journals[0], "id")

    def _find_cash_refund(self, memo: Mapping[str, Any], booking: CreditBooking) -> dict[str, Any] | None:
        """The memo's cash refund once posted: the G/L entries on the clearing accounts carrying the memo's number
        (one per account a split refund's cash legs are paid from); None until every one is posted."""
        if memo.get("status") not in _POSTED_MEMO_STATUSES or not memo.get("number"):
            return None
        number = _quote(str(memo["number"]))
        found: list[str] = []
        for account, _, _ in self._cash_payouts(booking):
            entries = self._list(
                "generalLedgerEntries",
                {"$filter": f"documentNumber eq '{number}' and accountNumber eq '{_quote(account)}'"},
            )
            if not entries:
                return None
            found.append(_text(entries[0], "id"))
        # G/L amounts are in the company's local currency: the posted lines are the ones we wrote, for what the memo
        # pays out in the memo's currency (its document number is the memo's, which no other refund uses).
        cash = booking.amount - booking.store_credit
        return {"id": found[0], "amount": to_bc_amount(cash)}

    def _cash_payouts(self, booking: CreditBooking) -> list[tuple[str, Money, str]]:
        """What the memo pays out, per clearing account: (account, amount, journal line description). A refund of one
        payment pays all of it from its provider's account; a split refund pays its cash legs, those of one account
        on one line naming them, and keeps its store credit as the customer's credit."""
        if not booking.legs:
            description = f"Refund {booking.reference} ({booking.payment_provider.value})"
            return [(self.clearing_account(booking.payment_provider, booking.currency), booking.amount, description)]
        payouts: dict[str, tuple[Money, list[str]]] = {}
        for leg in booking.cash_legs():
            assert leg.payment_provider is not None
            account = self.clearing_account(leg.payment_provider, booking.currency)
            amount, words = payouts.get(account, (Money.zero(booking.currency), []))
            payouts[account] = (amount + leg.amount, [*words, leg.words()])
        return [
            (account, amount, f"Refund {booking.reference}: {'; '.join(words)}")
            for account, (amount, words) in payouts.items()
        ]

    def _create_cash_refund(self, memo: Mapping[str, Any], booking: CreditBooking) -> dict[str, Any]:
        """Write (unless an earlier attempt left them in the batch) and post the cash refund lines."""
        journal_id = self._journal_id()
        stored = _external_number(booking.external_reference)
        lines = self._list(f"journals({journal_id})/journalLines", {"$filter": f"externalDocumentNumber eq '{stored}'"})
        written = {
            str(line.get("balancingAccountNumber") or "")
            for line in lines
            if str(line.get("externalDocumentNumber", "")).upper() == stored
        }
        for account, amount, description in self._cash_payouts(booking):
            if account in written or (not booking.legs and written):
                continue
            body = {
                "accountType": "Customer",
                "accountId": _text(memo, "customerId"),
                "postingDate": booking.booking_date.isoformat(),
                "documentNumber": _text(memo, "number"),
                "externalDocumentNumber": stored,
                # A positive amount on a customer line is a debit: money paid back to the customer.
                "amount": to_bc_amount(amount),
                "description": description[:DESCRIPTION_LENGTH],
                "balanceAccountType": "G/L Account",
                "balancingAccountNumber": account,
            }
            self._call("POST", f"journals({journal_id})/journalLines", body=body)
        self._call("POST", f"journals({journal_id})/Microsoft.NAV.post")
        found = self._find_cash_refund(memo, booking)
        if found is None:
            raise TransientError(
                f"the cash refund of credit memo {memo.get('number')} was posted but is not in the G/L entries yet",
                code="dynamics_outcome_unknown",
                platform=PLATFORM,
            )
        return found

    def _document(
        self, memo: Mapping[str, Any], booking: CreditBooking, cash: Mapping[str, Any] | None
    ) -> CreditDocument:
        currency = booking.currency
        posted = memo.get("status") in _POSTED_MEMO_STATUSES
        total = from_bc_amount(memo.get("totalAmountIncludingTax"), currency) if posted else Money.zero(currency)
        applied = posted and self._applied(memo, booking)
        return CreditDocument(
            system=BooksSystem.DYNAMICS,
            kind=CreditDocumentKind.CREDIT_MEMO,
            state=CreditDocumentState.POSTED if posted else CreditDocumentState.PENDING,
            document_id=_text(memo, "id"),
            number=memo.get("number") or None,
            # Business Central holds our refund id upper-cased (a Code field): the one it names is ours.
            external_reference=booking.external_reference
            if str(memo.get("externalDocumentNumber") or "") == _external_number(booking.external_reference)
            else str(memo.get("externalDocumentNumber") or "")[:256] or None,
            total=total,
            allocated_to_invoice=total if applied else Money.zero(currency),
            cash_refunded=from_bc_amount(cash["amount"], currency) if cash else Money.zero(currency),
            allocation_id=str(memo.get("invoiceNumber") or memo.get("invoiceId")) if applied else None,
            payment_id=str(cash["id"]) if cash else None,
        )

    # ------------------------------------------------------------ HTTP

    def _get(self, path: str) -> dict[str, Any]:
        payload = self._call("GET", path)
        if not isinstance(payload, dict):
            raise TransientError(f"GET {path}: {TITLE} answered without an object", platform=PLATFORM)
        return payload

    def _list(self, path: str, params: Mapping[str, str] | None) -> list[dict[str, Any]]:
        payload = self._call("GET", path, params=params)
        items = payload.get("value") if isinstance(payload, Mapping) else None
        if not isinstance(items, list):
            raise TransientError(f"GET {path}: {TITLE} answered without a value list", platform=PLATFORM)
        return [item for item in items if isinstance(item, dict)]

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None) -> Any:
        """One API call below the company; a 401 fetches a new token once and repeats the call."""
        data = dump_json(body) if body is not None else None

        def send(token: str) -> HttpResponse:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            return self._http.request(method, f"{self._company}/{path}", params=params, data=data, headers=headers)

        return _payload_or_raise(method, path, send_with_token(self._tokens, send))


def _payload_or_raise(method: str, path: str, response: HttpResponse) -> Any:
    where = f"{method} {path}"
    if response.ok:
        try:
            return load_json(response.body)
        except ValueError as error:
            raise TransientError(f"{where}: {TITLE} answered with unreadable JSON", platform=PLATFORM) from error
    status = response.status
    code, message = _odata_error(response)
    if status == 400:
        if any(marker in message.lower() for marker in _CLOSED_PERIOD_MARKERS):
            raise RejectedError(
                f"{TITLE} refused the posting date: it is outside the allowed posting dates (a closed period). "
                f"{message}",
                code="closed_period",
                platform=PLATFORM,
            )
        raise RejectedError(f"{where}: {message}", code="dynamics_validation", platform=PLATFORM)
    if status == 401:
        raise RejectedError(
            f"{where}: {TITLE} refused a fresh token ({code}): is the app registered in Business Central?",
            code="dynamics_unauthorized",
            platform=PLATFORM,
        )
    if status == 403:
        raise RejectedError(
            f"{where}: forbidden ({message}): give the app's Business Central user the permission sets it needs",
            code="dynamics_forbidden",
            platform=PLATFORM,
        )
    if status == 404:
        if method == "GET":
            raise NotFound(f"{where}: not found in {TITLE} ({message})", platform=PLATFORM)
        raise RejectedError(f"{where}: not found in {TITLE} ({message})", code="dynamics_not_found", platform=PLATFORM)
    if status in {409, 412, 429} or status >= 500:
        raise TransientError(
            f"{where}: {TITLE} answered {status} ({code})",
            code="dynamics_unavailable" if status >= 500 else f"dynamics_http_{status}",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    raise RejectedError(
        f"{where}: {TITLE} answered {status} ({message})", code=f"dynamics_http_{status}", platform=PLATFORM
    )


def _odata_error(response: HttpResponse) -> tuple[str, str]:
    """Business Central's ``{"error": {"code", "message"}}``, the message without its trailing correlation id."""
    try:
        payload = load_json(response.body)
    except ValueError:
        return "", response.body.decode("utf-8", "replace")[:300] or f"HTTP {response.status}"
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(error, Mapping):
        return "", f"HTTP {response.status}"
    message = str(error.get("message") or "").split("  CorrelationId:")[0].strip()
    return str(error.get("code") or ""), message or f"HTTP {response.status}"


# ---------------------------------------------------------------- helpers


def _applies_to(invoice: Mapping[str, Any], booking: CreditBooking) -> bool:
    """Whether a new memo names the invoice: while the posted invoice still owes at least the refund."""
    remaining = from_bc_amount(invoice.get("remainingAmount", 0), booking.currency)
    return invoice.get("status") == "Open" and remaining >= booking.amount


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise TransientError(f"{TITLE} answered without {name}", platform=PLATFORM)
    return value


def _line_description(description: str, booking: CreditBooking) -> str:
    """The line's text (Text[100], case kept) naming our refund id, which the upper-case external document number
    cannot show as we write it: an accountant reading a line finds the refund."""
    if booking.refund_id in description:
        return description[:DESCRIPTION_LENGTH]
    suffix = f" [{booking.refund_id}]"
    return description[: DESCRIPTION_LENGTH - len(suffix)] + suffix


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _external_number(reference: str) -> str:
    """Our reference as Business Central stores it in a Code[35] field (upper case)."""
    stored = reference.upper()
    if len(stored) > EXTERNAL_DOCUMENT_NUMBER_LENGTH:
        raise RejectedError(f"reference {reference} is longer than {TITLE} keeps", platform=PLATFORM)
    return stored


# ---------------------------------------------------------------- factory


class DynamicsSettings(settings.EnvModel):
    """Business Central's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="DYNAMICS_API_BASE")
    login_base: str = Field(default=DEFAULT_LOGIN_BASE, alias="DYNAMICS_LOGIN_BASE")
    refund_account: str = Field(default="6110", alias="DYNAMICS_REFUND_ACCOUNT")
    tax_code: str = Field(default="", alias="DYNAMICS_TAX_CODE")
    refund_journal: str = Field(default="REFUNDFLOW", alias="DYNAMICS_REFUND_JOURNAL")
    clearing_account: str = Field(default="", alias="DYNAMICS_CLEARING_ACCOUNT")
    clearing_accounts: str = Field(default="", alias="DYNAMICS_CLEARING_ACCOUNTS")


def parse_clearing_accounts(text: str) -> dict[str, str]:
    """``stripe:EUR=2910,stripe:*=2911,*:USD=2920`` as a mapping (see ``clearing_account``).

    Raises:
        ConfigurationError: a malformed entry.
    """
    return parse_per_provider(text, "DYNAMICS_CLEARING_ACCOUNTS", value="account")


_SECRET_KEYS = ("tenant_id", "client_id", "client_secret", "environment", "company_id")


def _build(config: DynamicsSettings, name: str, secret: Mapping[str, Any]) -> BusinessCentralBooks:
    """From the DYNAMICS_* settings and the API secret (tenant_id, client_id, client_secret, environment,
    company_id).

    Raises:
        ConfigurationError: a secret of another shape, or malformed settings.
    """
    values = dict(zip(_SECRET_KEYS, secret_strings(secret, name, _SECRET_KEYS, platform=PLATFORM), strict=True))
    tokens = BusinessCentralTokens(
        login_base=config.login_base,
        tenant_id=values["tenant_id"],
        client_id=values["client_id"],
        client_secret=values["client_secret"],
    )
    return BusinessCentralBooks(
        tokens=tokens,
        tenant_id=values["tenant_id"],
        environment=values["environment"],
        company_id=values["company_id"],
        api_base=config.api_base,
        refund_account=config.refund_account,
        tax_code=config.tax_code,
        refund_journal=config.refund_journal,
        clearing_account=config.clearing_account,
        clearing_accounts=parse_clearing_accounts(config.clearing_accounts),
    )


connector: SecretBoundConnector[DynamicsSettings, BusinessCentralBooks] = SecretBoundConnector(
    PLATFORM, DynamicsSettings, _build
)
"""The process's BusinessCentralBooks, built from DynamicsSettings and its API secret (``<SecretsPrefix>dynamics``),
again when either changes (see refundflow.connectors.factory)."""
