"""NetSuite books connector: a refund becomes a credit memo transformed from its invoice and, for what the invoice no
longer owes, a customer refund paying the credit memo out, each exactly once.

Flow (SuiteTalk REST record service, ``/services/rest/record/v1``; each step reads NetSuite before it writes, so a crash
between steps resumes without duplicates):

1. ``GET /invoice/{id}`` and its currency (``GET /currency/{id}``, the ISO code is its ``symbol``): the invoice must be
   in the booking's currency and not voided; its customer (``entity``) is the credit memo's and the refund's.
2. ``GET /creditMemo/eid:{refund id}`` or ``POST /invoice/{id}/!transform/creditMemo`` (204, ``Location``) with our
   refund id as ``externalId``, our lines replacing the invoice's (``replace=item``), and the part the invoice still
   owes applied to it in the same request (``apply``).
3. What the credit memo leaves unapplied is paid out: ``GET /customerRefund/eid:{refund id}`` or ``POST
   /customerRefund`` (the same externalId, unique per record type) from the clearing account of the payment provider
   and currency, applying the credit memo.

NetSuite honours ``X-NetSuite-Idempotency-Key`` only for asynchronous requests, so none is sent: the externalId is the
key (NetSuite refuses a second record of a type with the same externalId) and the lookup by it comes before any
create. Amounts cross as exact JSON numbers (``Decimal`` both ways, never ``float``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors import exact_json
from refundflow.connectors.books import BooksAmounts, check_booking, per_provider, require_refund_id
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, retry_after_seconds
from refundflow.connectors.oauth_tokens import send_with_token
from refundflow.errors import (
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.models import BooksSystem, CreditDocument, CreditDocumentKind, CreditDocumentState, PaymentProvider
from refundflow.money import Money, exponent
from refundflow.platforms.netsuite.auth import PLATFORM, NetSuiteTokenSource
from refundflow.ports import BooksCapabilities, BooksConnector, CreditBooking

RECORD_PATH = "/services/rest/record/v1"
TITLE = "NetSuite"
# The longest memo written (the transaction body's memo field; the connector always cut it here).
MEMO_LENGTH = 999
# Error codes and texts NetSuite answers when the transaction date falls in a closed or locked accounting period.
_PERIOD_CODES = {"PERIOD_CLOSED", "INVALID_PERIOD", "ACCT_PERIOD_CLOSED"}
_PERIOD_WORDS = ("closed period", "period is closed", "period is locked", "locked period")
_VOID_STATUSES = {"voided", "void", "rejected", "pending approval"}


# ---------------------------------------------------------------- exact amounts and JSON


AMOUNTS = BooksAmounts(platform=PLATFORM, title=TITLE, bad_amount_code="netsuite_bad_amount")
# NetSuite's amounts: three-decimal currencies in hundredths (an account's own precision is checked too).
capabilities = AMOUNTS.capabilities
profile = AMOUNTS.profile
to_netsuite_amount = AMOUNTS.to_platform
dump_json = AMOUNTS.dump_json
load_json = exact_json.loads
"""JSON with every non-integer number as an exact ``Decimal`` (``connectors.exact_json``)."""


def from_netsuite_amount(value: Any, currency: str) -> Money:
    """NetSuite's JSON number as exact ``Money`` (``BooksAmounts.from_platform``); a field NetSuite leaves out is zero.

    Raises:
        RejectedError: not a number, or more decimals than NetSuite keeps in the currency.
    """
    return Money.zero(currency) if value is None else AMOUNTS.from_platform(value, currency)


def parse_mapping(text: str, setting: str, *, keyed: Callable[[str], bool]) -> dict[str, str]:
    """``a=1,b=2`` as a mapping whose keys pass ``keyed``.

    Raises:
        ConfigurationError: a malformed entry (the message names the setting).
    """
    found: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, value = (part.strip() for part in item.partition("="))
        if not separator or not value or not keyed(key):
            raise ConfigurationError(f"{setting}: {item!r} is not a valid entry", platform=PLATFORM)
        found[key] = value
    return found


def _clearing_key(key: str) -> bool:
    provider, colon, currency = key.partition(":")
    return bool(colon and provider and currency)


def _currency_key(key: str) -> bool:
    return key == "*" or (len(key) == 3 and key.isalpha() and key.isupper())


# ---------------------------------------------------------------- the books


class NetSuiteBooks(BooksConnector):
    """The refund's credit memo, applied to its invoice, and the customer refund, in one NetSuite account."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self,
        *,
        tokens: NetSuiteTokenSource,
        api_base: str,
        refund_item: str,
        payment_account: str = "",
        clearing_accounts: Mapping[str, str] | None = None,
        tax_codes: Mapping[str, str] | None = None,
        http: HttpClient | None = None,
    ) -> None:
        """``clearing_accounts``: the bank account (internal id) each payment provider's cash refunds are paid from,
        keyed ``<provider>:<CURRENCY>``, ``<provider>:*`` or ``*:<CURRENCY>`` (most specific wins);
        ``payment_account`` for everything else. ``tax_codes``: the line's tax code per currency (or ``*``)."""
        self._tokens = tokens
        self._http = http or HttpClient(platform=PLATFORM, base_url=f"{api_base.rstrip('/')}{RECORD_PATH}")
        self._refund_item = refund_item
        self._payment_account = payment_account
        self._clearing_accounts = dict(clearing_accounts or {})
        self._tax_codes = dict(tax_codes or {})
        self._currency_codes: dict[str, str] = {}
        self._precisions: dict[str, int] = {}

    @property
    def capabilities(self) -> BooksCapabilities:
        return capabilities()

    def clearing_account(self, provider: PaymentProvider, currency: str) -> str:
        """The bank account the cash refund of ``provider`` in ``currency`` is paid from.

        Raises:
            RejectedError: none is configured for it.
        """
        configured = per_provider(self._clearing_accounts, provider, currency)
        if configured is not None:
            return configured
        if not self._payment_account:
            raise RejectedError(
                f"no NetSuite bank account is set for {provider.value} refunds in {currency}: "
                "set NetSuiteClearingAccounts",
                code="no_clearing_account",
                platform=PLATFORM,
            )
        return self._payment_account

    def tax_code(self, currency: str) -> str | None:
        return self._tax_codes.get(currency) or self._tax_codes.get("*")

    # ------------------------------------------------------------ port

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        """Create (exactly once) the credit memo applied to the invoice and the customer refund of the rest.

        Safe to call again after any failure: every step first reads what NetSuite already holds.

        Raises:
            TransientError: NetSuite could not be reached, was rate-limited or did not answer a write (the next call
                finds what was created by its externalId).
            RejectedError: refused for good, in words an accountant can act on: ``currency_mismatch``,
                ``books_period_closed``, ``invoice_status``, ``over_credit``, ``credit_memo_conflict``,
                ``netsuite_validation`` (NetSuite's own messages), ``netsuite_forbidden``, ``netsuite_auth_refused``.
            NotFound: the invoice does not exist in the account.
        """
        try:
            return self._record(booking)
        except OutcomeUnknownError as error:
            raise TransientError(
                f"{error.message}; the next attempt finds what NetSuite made by its external id before writing",
                code="netsuite_outcome_unknown",
                platform=PLATFORM,
            ) from error

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The credit memo (and customer refund) already recorded for this booking, found by its externalId.

        Raises:
            TransientError: NetSuite could not answer now.
            RejectedError: NetSuite refused the read.
        """
        require_refund_id(booking.external_reference, platform=PLATFORM)
        try:
            memo = self._by_external_id("creditMemo", booking.external_reference)
            if memo is None:
                return None
            refunds = [
                found
                for external_id in _refund_external_ids(booking)
                if (found := self._by_external_id("customerRefund", external_id)) is not None
            ]
        except OutcomeUnknownError as error:  # the token request went unanswered: nothing was booked by it
            raise TransientError(error.message, code="netsuite_unavailable", platform=PLATFORM) from error
        return self._document(memo, refunds, booking)

    # ------------------------------------------------------------ steps

    def _record(self, booking: CreditBooking) -> CreditDocument:
        self._check_booking(booking)
        invoice = self._get("invoice", booking.invoice.invoice_id)
        self._check_invoice(invoice, booking)
        memo = self._by_external_id("creditMemo", booking.external_reference)
        if memo is None:
            try:
                memo_id = self._transform(booking, invoice)
            except RejectedError:
                # Another attempt may have made it meanwhile (NetSuite refuses a second credit memo with our
                # externalId): take that one rather than refuse the booking.
                memo = self._by_external_id("creditMemo", booking.external_reference)
                if memo is None:
                    raise
                memo_id = _text(memo, "id")
            memo = self._get("creditMemo", memo_id, expand=True)
        self._check_credit_memo(memo, booking)
        # What the credit memo leaves unapplied: its total less what is applied (to the invoice, or by a refund), less
        # a split refund's store credit, which stays on the memo as the customer's credit.
        unapplied = (
            from_netsuite_amount(memo.get("total"), booking.currency)
            - from_netsuite_amount(memo.get("applied"), booking.currency)
            - booking.store_credit
        )
        # One customer refund per cash leg (a customer refund pays from one account): a refund of one payment has one,
        # under our refund id; a split refund's leg N has ``<refund id>-legN``.
        refunds: list[dict[str, Any]] = []
        paid = False
        for external_id, leg in zip(_refund_external_ids(booking), booking.cash_legs(), strict=True):
            refund = self._by_external_id("customerRefund", external_id)
            amount = leg.amount.min(unapplied) if booking.legs else unapplied
            if refund is None and amount.is_positive() and leg.payment_provider is not None:
                refund_id = self._pay_out(booking, invoice, memo, amount, external_id, leg.payment_provider)
                refund = self._get("customerRefund", refund_id, expand=True)
                unapplied = unapplied - amount
                paid = True
            if refund is not None:
                refunds.append(refund)
        if paid:
            memo = self._get("creditMemo", _text(memo, "id"), expand=True)
        return self._document(memo, refunds, booking)

    def _check_booking(self, booking: CreditBooking) -> None:
        check_booking(
            booking,
            system=BooksSystem.NETSUITE,
            platform=PLATFORM,
            invoice="a NetSuite invoice",
            document="a refund credit memo",
            to_platform=to_netsuite_amount,
        )
        if not booking.invoice.invoice_id.isdigit():
            raise NotFound(
                f"invoice {booking.invoice.invoice_id!r} is not a NetSuite internal id (digits only)", platform=PLATFORM
            )
        if not self._refund_item:
            raise ConfigurationError(
                "NETSUITE_REFUND_ITEM is not set: the item credit memo lines book on", platform=PLATFORM
            )

    def _currency_code(self, record: Mapping[str, Any]) -> str:
        reference = record.get("currency")
        currency_id = reference.get("id") if isinstance(reference, Mapping) else None
        if not isinstance(currency_id, str) or not currency_id:
            raise TransientError("NetSuite answered a transaction without its currency", platform=PLATFORM)
        if currency_id not in self._currency_codes:
            found = self._get("currency", currency_id)
            precision = _precision(found.get("currencyPrecision"))
            if precision is not None:
                self._precisions[currency_id] = precision
            self._currency_codes[currency_id] = str(found.get("symbol") or "").upper()
        return self._currency_codes[currency_id]

    def _check_precision(self, record: Mapping[str, Any], booking: CreditBooking) -> None:
        """Refuse an amount the account's own currency record cannot keep (its ``currencyPrecision``: 0, 1 or 2
        decimals), rather than let NetSuite round it."""
        reference = record.get("currency")
        precision = self._precisions.get(str(reference.get("id"))) if isinstance(reference, Mapping) else None
        if precision is None:
            return
        for money in [booking.amount, *(line.amount for line in booking.lines)]:
            surplus = exponent(money.currency) - precision
            if surplus > 0 and money.minor_units % 10**surplus:
                decimals = "1 decimal" if precision == 1 else f"{precision} decimals"
                raise RejectedError(
                    f"this NetSuite account keeps {money.currency} with {decimals}: {money} cannot be booked exactly",
                    code="amount_not_representable",
                    platform=PLATFORM,
                )

    def _check_invoice(self, invoice: Mapping[str, Any], booking: CreditBooking) -> None:
        number = invoice.get("tranId") or invoice.get("id")
        currency = self._currency_code(invoice)
        if currency != booking.currency:
            raise RejectedError(
                f"invoice {number} is in {currency}, the refund in {booking.currency}: a credit memo must be in the "
                "invoice's currency",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        self._check_precision(invoice, booking)
        status = _ref_name(invoice.get("status")).lower()
        if status in _VOID_STATUSES:
            raise RejectedError(
                f"invoice {number} is {_ref_name(invoice.get('status'))} in NetSuite: "
                "only open or paid invoices are credited",
                code="invoice_status",
                platform=PLATFORM,
            )
        entity = invoice.get("entity")
        if not isinstance(entity, Mapping) or not entity.get("id"):
            raise RejectedError(f"invoice {number} has no customer", platform=PLATFORM)

    def _by_external_id(self, record: str, external_id: str) -> dict[str, Any] | None:
        try:
            return self._get(record, f"eid:{external_id}", expand=True)
        except NotFound:
            return None

    def _transform(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> str:
        currency = booking.currency
        total = from_netsuite_amount(invoice.get("total"), currency)
        if booking.amount > total:
            raise RejectedError(
                f"refund {booking.amount} is more than invoice {invoice.get('tranId')} totals ({total})",
                code="over_credit",
                platform=PLATFORM,
            )
        body: dict[str, Any] = {
            "externalId": booking.external_reference,
            "tranDate": booking.booking_date.isoformat(),
            "memo": _memo(booking, invoice),
            # Never let NetSuite apply the credit to the customer's oldest open receivable (another invoice).
            "autoApply": False,
            "item": {"items": self._lines(booking, invoice)},
        }
        due = from_netsuite_amount(invoice.get("amountRemaining"), currency)
        applied = due.min(booking.amount) if due.is_positive() else Money.zero(currency)
        if applied.is_positive():
            body["apply"] = {
                "items": [{"doc": {"id": _text(invoice, "id")}, "apply": True, "amount": to_netsuite_amount(applied)}]
            }
        response = self._call(
            "POST", f"/invoice/{_text(invoice, 'id')}/!transform/creditMemo", params={"replace": "item"}, body=body
        )
        return _created_id(response)

    def _lines(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> list[dict[str, Any]]:
        if booking.lines:
            parts = [(line.description, line.quantity, line.amount) for line in booking.lines]
        else:
            parts = [
                (
                    f"Refund {booking.reference} of invoice {invoice.get('tranId') or invoice.get('id')}",
                    1,
                    booking.amount,
                )
            ]
        tax_code = self.tax_code(booking.currency)
        items = []
        for description, quantity, amount in parts:
            unit = Money.of(amount.minor_units // quantity, amount.currency)
            if amount.minor_units % quantity or profile().representable(unit) is not None:
                # The line amount is what must be exact: book it as one unit rather than round a rate.
                description, quantity, unit = f"{description} (x{quantity})", 1, amount
            item: dict[str, Any] = {
                "item": {"id": self._refund_item},
                "description": description[:4000],
                "quantity": quantity,
                "rate": to_netsuite_amount(unit),
                "amount": to_netsuite_amount(amount),
            }
            if tax_code:
                item["taxCode"] = {"id": tax_code}
            items.append(item)
        return items

    def _check_credit_memo(self, memo: Mapping[str, Any], booking: CreditBooking) -> None:
        number = memo.get("tranId") or memo.get("id")
        currency = self._currency_code(memo)
        if currency != booking.currency:
            raise RejectedError(
                f"credit memo {number} is in {currency}", code="credit_memo_conflict", platform=PLATFORM
            )
        total = from_netsuite_amount(memo.get("total"), booking.currency)
        if total != booking.amount:
            raise RejectedError(
                f"credit memo {number} for refund {booking.refund_id} totals {total}, the refund is {booking.amount} "
                "(tax added on top, or edited in NetSuite): correct or delete it in NetSuite",
                code="credit_memo_conflict",
                platform=PLATFORM,
            )

    def _pay_out(
        self,
        booking: CreditBooking,
        invoice: Mapping[str, Any],
        memo: Mapping[str, Any],
        amount: Money,
        external_id: str,
        provider: PaymentProvider,
    ) -> str:
        entity = invoice["entity"]
        body = {
            "externalId": external_id,
            "customer": {"id": str(entity["id"])},
            "account": {"id": self.clearing_account(provider, booking.currency)},
            "currency": {"id": str(invoice["currency"]["id"])},
            "tranDate": booking.booking_date.isoformat(),
            "memo": _memo(booking, invoice),
            "apply": {
                "items": [{"doc": {"id": _text(memo, "id")}, "apply": True, "amount": to_netsuite_amount(amount)}]
            },
        }
        return _created_id(self._call("POST", "/customerRefund", body=body))

    def _document(
        self, memo: Mapping[str, Any], refunds: Sequence[Mapping[str, Any]], booking: CreditBooking
    ) -> CreditDocument:
        currency = booking.currency
        invoice_id = booking.invoice.invoice_id
        allocated = Money.zero(currency)
        for line in _items(memo.get("apply")):
            if line.get("apply") and str(_ref_id(line.get("doc"))) == invoice_id:
                allocated = allocated + from_netsuite_amount(line.get("amount"), currency)
        cash = Money.zero(currency)
        for refund in refunds:
            cash = cash + from_netsuite_amount(refund.get("total"), currency)
        return CreditDocument(
            system=BooksSystem.NETSUITE,
            kind=CreditDocumentKind.CREDIT_MEMO,
            state=CreditDocumentState.POSTED,
            document_id=_text(memo, "id"),
            number=str(memo.get("tranId") or "") or None,
            external_reference=str(memo.get("externalId") or "") or None,
            total=from_netsuite_amount(memo.get("total"), currency),
            allocated_to_invoice=allocated,
            cash_refunded=cash,
            allocation_id=invoice_id if allocated.is_positive() else None,
            payment_id=_text(refunds[0], "id") if refunds else None,
        )

    # ------------------------------------------------------------ HTTP

    def _get(self, record: str, record_id: str, *, expand: bool = False) -> dict[str, Any]:
        params = {"expandSubResources": "true"} if expand else None
        payload = _payload(self._call("GET", f"/{record}/{record_id}", params=params))
        if not isinstance(payload, dict):
            raise TransientError(f"NetSuite answered {record} {record_id} without a record", platform=PLATFORM)
        return payload

    def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None
    ) -> HttpResponse:
        """One record call; a 401 asks for a new token once and repeats the call."""
        data = dump_json(body) if body is not None else None

        def send(token: str) -> HttpResponse:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            return self._http.request(method, path, params=params, data=data, headers=headers)

        response = send_with_token(self._tokens, send)
        if not response.ok:
            _raise(method, path, response)
        return response


def _payload(response: HttpResponse) -> Any:
    try:
        return load_json(response.body)
    except ValueError as error:
        raise TransientError("NetSuite answered with unreadable JSON", platform=PLATFORM) from error


def _created_id(response: HttpResponse) -> str:
    """The internal id of the record a 204 create or transform made (the last segment of its ``Location``)."""
    location = response.headers.get("Location") or response.headers.get("location") or ""
    record_id = location.rstrip("/").rsplit("/", 1)[-1]
    if not record_id.isdigit():
        raise TransientError(
            "NetSuite created a record without saying which; the next attempt finds it by its external id",
            code="netsuite_outcome_unknown",
            platform=PLATFORM,
        )
    return record_id


def error_details(response: HttpResponse) -> list[tuple[str, str]]:
    """``(o:errorCode, detail)`` of each of NetSuite's ``o:errorDetails``."""
    try:
        payload = load_json(response.body)
    except ValueError:
        return [("", response.body.decode("utf-8", "replace")[:300])]
    if not isinstance(payload, Mapping):
        return []
    details = []
    for item in payload.get("o:errorDetails") or []:
        if isinstance(item, Mapping):
            details.append((str(item.get("o:errorCode") or ""), str(item.get("detail") or "")))
    if not details and payload.get("title"):
        details.append(("", str(payload["title"])))
    return details


def _raise(method: str, path: str, response: HttpResponse) -> NoReturn:
    status = response.status
    details = error_details(response)
    codes = {code for code, _ in details}
    text = "; ".join(dict.fromkeys(detail for _, detail in details if detail)) or f"HTTP {status}"
    where = f"{method} {path.split('?')[0]}"
    if status == 404 or "NONEXISTENT_ID" in codes:
        raise NotFound(f"{where}: not found in NetSuite ({text})", platform=PLATFORM)
    if status == 429 or status >= 500 or codes & {"CONCURRENCY_LIMIT_EXCEEDED", "REQUEST_LIMIT_EXCEEDED"}:
        raise TransientError(
            f"{where}: NetSuite is busy or unavailable ({text})",
            code="netsuite_unavailable",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    if codes & _PERIOD_CODES or any(word in text.lower() for word in _PERIOD_WORDS):
        raise RejectedError(
            f"NetSuite refused the credit memo because its date falls in a closed accounting period ({text}): reopen "
            "the period or allow posting to it, then retry the refund's books",
            code="books_period_closed",
            platform=PLATFORM,
        )
    if status == 401:
        raise RejectedError(
            f"{where}: NetSuite refused a new access token ({text})", code="netsuite_unauthorized", platform=PLATFORM
        )
    if status == 403:
        raise RejectedError(
            f"{where}: the integration's role may not do this in NetSuite ({text})",
            code="netsuite_forbidden",
            platform=PLATFORM,
        )
    raise RejectedError(f"NetSuite refused {where}: {text}", code="netsuite_validation", platform=PLATFORM)


# ---------------------------------------------------------------- payload helpers


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise TransientError(f"NetSuite answered without {name}", platform=PLATFORM)
    return value


def _ref_id(reference: Any) -> str | None:
    value = reference.get("id") if isinstance(reference, Mapping) else None
    return str(value) if value is not None else None


def _ref_name(reference: Any) -> str:
    value = reference.get("refName") if isinstance(reference, Mapping) else reference
    return str(value or "")


def _precision(value: Any) -> int | None:
    """A currency record's ``currencyPrecision`` as a number of decimals (a number, or a select's id such as ``2``
    or ``_two``); None when NetSuite did not say."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    names = {"_zero": 0, "_one": 1, "_two": 2, "_three": 3}
    if isinstance(value, str):
        return int(value) if value.isdigit() else names.get(value.lower())
    return None


def _items(sublist: Any) -> list[Mapping[str, Any]]:
    items = sublist.get("items") if isinstance(sublist, Mapping) else None
    return [item for item in items or [] if isinstance(item, Mapping)]


def _refund_external_ids(booking: CreditBooking) -> list[str]:
    """The externalId of each customer refund, one per cash leg: our refund id for a refund of one payment,
    ``<refund id>-leg<N>`` for a split refund's cash leg N (NetSuite keeps an externalId unique per record type)."""
    if not booking.legs:
        return [booking.external_reference]
    return [f"{booking.external_reference}-leg{leg.index + 1}" for leg in booking.cash_legs()]


def _memo(booking: CreditBooking, invoice: Mapping[str, Any]) -> str:
    """The memo of the credit memo and the customer refund: the refund, its invoice and a split refund's every leg
    (one customer refund pays from one account: the cash legs are named here)."""
    memo = f"Refund {booking.reference} ({booking.refund_id}) of invoice {invoice.get('tranId') or invoice.get('id')}"
    if booking.legs:
        memo = f"{memo}: {booking.legs_in_words(MEMO_LENGTH - len(memo) - 2)}"
    return memo[:MEMO_LENGTH]


# ---------------------------------------------------------------- factory


class NetSuiteSettings(settings.EnvModel):
    """NetSuite's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default="https://{account}.suitetalk.api.netsuite.com", alias="NETSUITE_API_BASE")
    refund_item: str = Field(default="", alias="NETSUITE_REFUND_ITEM")
    tax_codes: str = Field(default="", alias="NETSUITE_TAX_CODES")
    payment_account: str = Field(default="", alias="NETSUITE_PAYMENT_ACCOUNT")
    clearing_accounts: str = Field(default="", alias="NETSUITE_CLEARING_ACCOUNTS")


def account_host(account_id: str) -> str:
    """The account id as NetSuite writes it in host names: ``1234567_SB1`` -> ``1234567-sb1``."""
    return account_id.strip().lower().replace("_", "-")


def _build(config: NetSuiteSettings, secret_name: str, secret: Mapping[str, Any]) -> NetSuiteBooks:
    """From the settings and the API secret ``{"account_id", "client_id", "certificate_id", "private_key"}``.

    Raises:
        ConfigurationError: a secret of another shape, or a malformed mapping setting.
    """
    fields = {}
    for name in ("account_id", "client_id", "certificate_id", "private_key"):
        value = secret.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"secret {secret_name}: {name} must be a non-empty string", platform=PLATFORM)
        fields[name] = value
    host = account_host(fields["account_id"])
    if not all(char.isalnum() or char == "-" for char in host):
        raise ConfigurationError(f"secret {secret_name}: account_id is a NetSuite account id", platform=PLATFORM)
    api_base = config.api_base.replace("{account}", host)
    tokens = NetSuiteTokenSource(
        api_base=api_base,
        client_id=fields["client_id"],
        certificate_id=fields["certificate_id"],
        private_key=fields["private_key"],
    )
    return NetSuiteBooks(
        tokens=tokens,
        api_base=api_base,
        refund_item=config.refund_item,
        payment_account=config.payment_account,
        clearing_accounts=parse_mapping(config.clearing_accounts, "NETSUITE_CLEARING_ACCOUNTS", keyed=_clearing_key),
        tax_codes=parse_mapping(config.tax_codes, "NETSUITE_TAX_CODES", keyed=_currency_key),
    )


connector: SecretBoundConnector[NetSuiteSettings, NetSuiteBooks] = SecretBoundConnector(
    PLATFORM, NetSuiteSettings, _build
)
"""The process's books (see refundflow.connectors.factory: a replaced certificate key is used without a cold start)."""
