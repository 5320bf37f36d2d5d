"""Dynamics 365 Finance sandbox simulator: Entra ID's token endpoint and the OData data entities refundflow calls.

Mounted by the local stack at ``/_sandbox/dynamics_finance`` with the real paths below it:

- ``POST /login/{tenant}/oauth2/v2.0/token``: the client-credentials grant (form body); ``scope`` must be the
  environment URL's ``/.default``; errors as Entra ID answers them. Access tokens last an hour.
- ``GET|POST /data/{EntitySet}`` for ``SalesInvoiceHeadersV2`` and ``CustomerTransactions`` (read only),
  ``FreeTextInvoiceHeaders``, ``FreeTextInvoiceLines``, ``CustomerPaymentJournalHeaders`` and
  ``CustomerPaymentJournalLines``. Entity set names are case sensitive (another spelling is 404). Bearer token
  required (401, empty body, as Finance answers). ``$filter`` takes ``Field eq 'text'`` / ``Field eq 123`` clauses
  joined by ``and``. A read sees the app user's default company (``DAT``) unless it says ``cross-company=true``; a
  write must name a legal entity that exists (``dataAreaId``). Unknown or read-only fields are refused. Errors are
  ``{"error": {"code": "", "message": "An error has occurred.", "innererror": {"message": "...Infolog: ...",
  "type": ..., "stacktrace": ""}}}`` with 400. No idempotency key: a repeated POST creates a second record.

The periodic posting batch (free text invoices and journals posted by batch) is emulated:
with ``auto_post`` on (the default) it runs before every API request, as if the batch had come since; with it off,
``POST /_control/posting-batch`` runs it once (``{"auto": true|false}`` switches the mode). It posts every free text
invoice with lines (a number, ``IsPosted`` Yes, a customer transaction; a credit note naming an open invoice of its
customer in ``CustomerRequisition`` is settled against it, standing in for the merchant's settlement) and every
payment journal with lines (settling the credit note its line marks, ``MarkedInvoice``). Documents dated inside a
closed period (``closed_before``) are refused at create, with the ledger's Infolog.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import EntraSimulator, FaultRule, exact_json
from refundflow.money import CURRENCY_EXPONENTS

DEFAULT_TENANT_ID = "7c2e4a10-3b5d-4f6e-8a9b-0c1d2e3f4a5b"
DEFAULT_CLIENT_ID = "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b"
DEFAULT_CLIENT_SECRET = "refundflow-local-finance-secret"
DEFAULT_RESOURCE = "https://refundflow-local.sandbox.operations.dynamics.com"
DEFAULT_COMPANY = "usmf"
DEFAULT_USER_COMPANY = "dat"
YES, NO = "Yes", "No"

_TAX_RATES = {"": Decimal(0), "FULL": Decimal("0.25"), "REDUCED": Decimal("0.10"), "EXEMPT": Decimal(0)}
_MAIN_ACCOUNTS = {
    "401100": "Sales",
    "401300": "Sales returns",
    "110180": "Payment provider clearing",
    "110181": "Wallet provider clearing",
}
_WRITABLE = {
    "FreeTextInvoiceHeaders": {
        "dataAreaId",
        "CustomerAccount",
        "InvoiceDate",
        "CurrencyCode",
        "CustomerReference",
        "CustomerRequisition",
        "InclTax",
        "DueDate",
        "PostingProfile",
        "SalesTaxGroupId",
        "InvoiceAccount",
    },
    "FreeTextInvoiceLines": {
        "dataAreaId",
        "ParentRecId",
        "LineNumber",
        "Description",
        "MainAccountDisplayValue",
        "Quantity",
        "UnitPrice",
        "TransactionCurrencyAmount",
        "SalesTaxGroupId",
        "SalesTaxItemGroupId",
        "DefaultDimensionDisplayValue",
    },
    "CustomerPaymentJournalHeaders": {"dataAreaId", "JournalName", "Description"},
    "CustomerPaymentJournalLines": {
        "dataAreaId",
        "JournalBatchNumber",
        "LineNumber",
        "AccountType",
        "AccountDisplayValue",
        "TransactionDate",
        "DebitAmount",
        "CreditAmount",
        "CurrencyCode",
        "MarkedInvoice",
        "OffsetAccountType",
        "OffsetAccountDisplayValue",
        "TransactionText",
        "PaymentReference",
        "PaymentMethodName",
    },
}
_READ_ONLY_SETS = {"SalesInvoiceHeadersV2", "CustomerTransactions"}
_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+(?:'((?:[^']|'')*)'|(-?\d+))\s*$")


class _ODataError(Exception):
    def __init__(self, status: int, message: str, entity: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.entity = status, message, entity


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(exact_json(body), status=status, mimetype="application/json", headers=dict(headers or {}))


def _digits(currency: str) -> int:
    return CURRENCY_EXPONENTS.get(currency, 2)


def _round(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-_digits(currency)), rounding=ROUND_HALF_UP)


def _infolog(status: int, entity: str, text: str) -> _ODataError:
    return _ODataError(status, f"Write failed for table row of type '{entity}'. Infolog: Error: {text}", entity)


class DynamicsFinanceSimulator(EntraSimulator):
    """One Finance environment with one Entra ID app registered and two legal entities (``USMF``, ``DAT``)."""

    name = "dynamics_finance"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "record_credit": ("POST", r"^/data/FreeTextInvoiceHeaders$"),
    }
    TRANSIENT_STATUS: ClassVar[int] = 429

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        resource: str = DEFAULT_RESOURCE,
        company: str = DEFAULT_COMPANY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.resource = resource
        self.company = company
        self.clock = clock
        self.reset_state()
        self.route("/data/<entity_set>", self._data, methods=["GET", "POST", "PATCH", "DELETE"])
        self.route("/_control/posting-batch", self._control_posting_batch, methods=["POST"])

    # ---------------------------------------------------------------- state

    def reset_state(self) -> None:
        self.tokens: dict[str, float] = {}
        self.token_grants = 0
        self.auto_post = True
        self.closed_before: date | None = None
        self.companies = {self.company, DEFAULT_USER_COMPANY}
        self.customers: dict[tuple[str, str], dict[str, Any]] = {}
        self.invoices: list[dict[str, Any]] = []
        self.transactions: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.note_lines: list[dict[str, Any]] = []
        self.journals: list[dict[str, Any]] = []
        self.journal_lines: list[dict[str, Any]] = []
        self.batch_runs = 0
        self._numbers = {"invoice": 100, "customer": 2000, "recid": 5637144576, "fti": 0, "journal": 0, "voucher": 0}

    def _next(self, kind: str) -> int:
        self._numbers[kind] += 1
        return self._numbers[kind]

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), tz=UTC).date()

    # ---------------------------------------------------------------- seeding helpers (tests, demo)

    def add_customer(self, name: str, *, company: str | None = None) -> str:
        with self.lock:
            account = f"US-{self._next('customer')}"
            self.customers[((company or self.company), account)] = {"CustomerAccount": account, "Name": name}
            return account

    def add_invoice(
        self, customer: str, total: Decimal, currency: str, *, paid: bool = False, company: str | None = None
    ) -> str:
        """A posted sales invoice of ``total`` (tax included) and its customer transaction; returns its number."""
        with self.lock:
            company = company or self.company
            number = f"CIV-{self._next('invoice'):06d}"
            self.invoices.append(
                {
                    "dataAreaId": company,
                    "InvoiceNumber": number,
                    "InvoiceDate": f"{self._today().isoformat()}T12:00:00Z",
                    "InvoiceCustomerAccountNumber": customer,
                    "CurrencyCode": currency,
                    "TotalInvoiceAmount": total,
                    "TotalTaxAmount": _round(total - total / Decimal("1.25"), currency),
                    "SalesOrderNumber": "",
                }
            )
            self.transactions.append(
                {
                    "dataAreaId": company,
                    "AccountNum": customer,
                    "Invoice": number,
                    "Voucher": f"ARI-{number}",
                    "CurrencyCode": currency,
                    "AmountCur": total,
                    "SettleAmountCur": total if paid else Decimal(0),
                }
            )
            return number

    def run_posting_batch(self) -> int:
        """The merchant's periodic posting: every complete free text invoice and payment journal; how many posted."""
        with self.lock:
            self.batch_runs += 1
            posted = 0
            for note in self.notes:
                lines = self._lines_of(note)
                if note["IsPosted"] == YES or not lines:
                    continue
                self._post_note(note, lines)
                posted += 1
            for journal in self.journals:
                lines = [
                    line for line in self.journal_lines if line["JournalBatchNumber"] == journal["JournalBatchNumber"]
                ]
                if journal["IsPosted"] == YES or not lines:
                    continue
                for line in lines:
                    self._post_payment_line(journal, line)
                journal["IsPosted"] = YES
                posted += 1
            return posted

    # ---------------------------------------------------------------- BooksSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """What the local stack seeds: the function's API secret (Finance sends no webhooks we read)."""
        return {
            "api": {
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "resource": self.resource,
                "company": self.company,
            },
            "verification": {},
        }

    def seed_invoice(self, amount_minor: int, currency: str, *, paid: bool = False) -> str:
        """A posted invoice of ``amount_minor`` ISO minor units (tax included) for a new customer, paid in full when
        ``paid``; returns its invoice number."""
        customer = self.add_customer(f"Customer {uuid.uuid4().hex[:8]}")
        return self.add_invoice(customer, Decimal(amount_minor).scaleb(-_digits(currency)), currency, paid=paid)

    def documents(self) -> list[dict[str, Any]]:
        """Every free text invoice (posted or not) with its lines, and the customer payment journal lines that pay it
        out (marked with its invoice id: a split refund's cash legs, one line each)."""
        with self.lock:
            return [
                {
                    **dict(note),
                    "Lines": [dict(line) for line in self._lines_of(note)],
                    "PaymentLines": [
                        dict(line)
                        for line in self.journal_lines
                        if note.get("InvoiceId") and line["MarkedInvoice"] == note["InvoiceId"]
                    ],
                }
                for note in self.notes
            ]

    def invoice_transaction(self, number: str) -> dict[str, Any]:
        with self.lock:
            return dict(next(row for row in self.transactions if row["Invoice"] == number))

    def payment_journals(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    **dict(journal),
                    "Lines": [
                        dict(line)
                        for line in self.journal_lines
                        if line["JournalBatchNumber"] == journal["JournalBatchNumber"]
                    ],
                }
                for journal in self.journals
            ]

    # ---------------------------------------------------------------- Entra ID

    def entra_scope(self, request: Request) -> str:
        return f"{self.resource}/.default"

    # ---------------------------------------------------------------- OData

    def _data(self, request: Request, entity_set: str) -> Response:
        if not self.bearer_valid(request):
            return Response(status=401)
        try:
            with self.lock:
                if self.auto_post:
                    self.run_posting_batch()
                if request.method == "GET":
                    return self._read(request, entity_set)
                if request.method == "POST" and entity_set in _WRITABLE:
                    return self._create(request, entity_set)
                if entity_set in _WRITABLE or entity_set in _READ_ONLY_SETS:
                    raise _ODataError(405, f"The HTTP method '{request.method}' is not allowed on {entity_set} here.")
                raise _ODataError(404, f"No HTTP resource was found that matches the request URI '/data/{entity_set}'.")
        except _ODataError as error:
            return _odata_error(error)

    def _table(self, entity_set: str) -> list[dict[str, Any]]:
        tables = {
            "SalesInvoiceHeadersV2": self.invoices,
            "CustomerTransactions": self.transactions,
            "FreeTextInvoiceHeaders": self.notes,
            "FreeTextInvoiceLines": self.note_lines,
            "CustomerPaymentJournalHeaders": self.journals,
            "CustomerPaymentJournalLines": self.journal_lines,
        }
        if entity_set not in tables:
            raise _ODataError(404, f"No HTTP resource was found that matches the request URI '/data/{entity_set}'.")
        return tables[entity_set]

    def _read(self, request: Request, entity_set: str) -> Response:
        rows = self._table(entity_set)
        cross = request.args.get("cross-company", "").lower() == "true"
        visible = [row for row in rows if cross or row["dataAreaId"] == DEFAULT_USER_COMPANY]
        matched = _filtered(visible, request.args.get("$filter"))
        return _json({"@odata.context": f"{self.resource}/data/$metadata#{entity_set}", "value": matched})

    def _create(self, request: Request, entity_set: str) -> Response:
        raw = _body(request, entity_set)
        company = str(raw.get("dataAreaId") or DEFAULT_USER_COMPANY).lower()
        if company not in self.companies:
            raise _infolog(400, entity_set, f"Company '{company}' does not exist.")
        raw["dataAreaId"] = company
        create = {
            "FreeTextInvoiceHeaders": self._create_note,
            "FreeTextInvoiceLines": self._create_note_line,
            "CustomerPaymentJournalHeaders": self._create_journal,
            "CustomerPaymentJournalLines": self._create_journal_line,
        }[entity_set]
        return _json(create(raw), 201)

    # ------------------------------------------------------------ free text invoices

    def _check_open_period(self, entity: str, day: date) -> None:
        if self.closed_before is not None and day < self.closed_before:
            raise _infolog(400, entity, f"The period for {day.isoformat()} is closed. Select a date in an open period.")

    def _create_note(self, raw: dict[str, Any]) -> dict[str, Any]:
        entity = "CustFreeTextInvoiceHeaderEntity"
        company, account = raw["dataAreaId"], str(raw.get("CustomerAccount") or "")
        if (company, account) not in self.customers:
            raise _infolog(400, entity, f"Customer account {account} does not exist.")
        currency = str(raw.get("CurrencyCode") or "")
        if currency not in CURRENCY_EXPONENTS:
            raise _infolog(400, entity, f"Currency code '{currency}' does not exist.")
        invoice_date = (
            _timestamp_date(raw.get("InvoiceDate"), entity, "InvoiceDate") if raw.get("InvoiceDate") else self._today()
        )
        self._check_open_period(entity, invoice_date)
        for text_field, longest in (("CustomerReference", 60), ("CustomerRequisition", 60)):
            if len(str(raw.get(text_field) or "")) > longest:
                raise _infolog(400, entity, f"The value in field {text_field} is longer than {longest} characters.")
        if raw.get("InclTax", NO) not in {YES, NO}:
            raise _ODataError(400, f"Cannot convert the literal '{raw.get('InclTax')}' to the expected type 'NoYes'.")
        note = {
            "dataAreaId": company,
            "InvoiceIdentifier": self._next("recid"),
            "CustomerAccount": account,
            "InvoiceAccount": account,
            "InvoiceDate": f"{invoice_date.isoformat()}T12:00:00Z",
            "CurrencyCode": currency,
            "CustomerReference": str(raw.get("CustomerReference") or ""),
            "CustomerRequisition": str(raw.get("CustomerRequisition") or ""),
            "InclTax": raw.get("InclTax", NO),
            "IsPosted": NO,
            "InvoiceId": "",
            "FreeTextNumber": "",
        }
        self.notes.append(note)
        return dict(note)

    def _lines_of(self, note: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            line
            for line in self.note_lines
            if line["ParentRecId"] == note["InvoiceIdentifier"] and line["dataAreaId"] == note["dataAreaId"]
        ]

    def _create_note_line(self, raw: dict[str, Any]) -> dict[str, Any]:
        entity = "CustFreeTextInvoiceLineEntity"
        parent = raw.get("ParentRecId")
        note = next(
            (
                row
                for row in self.notes
                if row["InvoiceIdentifier"] == parent and row["dataAreaId"] == raw["dataAreaId"]
            ),
            None,
        )
        if note is None:
            raise _infolog(400, entity, f"The free text invoice with RecId {parent} does not exist.")
        if note["IsPosted"] == YES:
            raise _infolog(400, entity, "The invoice is posted and cannot be changed.")
        account = str(raw.get("MainAccountDisplayValue") or "")
        if account not in _MAIN_ACCOUNTS:
            raise _infolog(400, entity, f"Main account {account} does not exist.")
        tax_group = str(raw.get("SalesTaxItemGroupId") or "")
        if tax_group not in _TAX_RATES:
            raise _infolog(400, entity, f"Item sales tax group {tax_group} does not exist.")
        currency = note["CurrencyCode"]
        quantity = _decimal(raw.get("Quantity", Decimal(1)), "Quantity")
        unit = _decimal(raw.get("UnitPrice", Decimal(0)), "UnitPrice")
        amount = (
            _decimal(raw["TransactionCurrencyAmount"], "TransactionCurrencyAmount")
            if "TransactionCurrencyAmount" in raw
            else quantity * unit
        )
        if amount != _round(amount, currency) or unit != _round(unit, currency):
            raise _infolog(400, entity, f"The amount {amount} has more decimals than {currency} allows.")
        if len(str(raw.get("Description") or "")) > 60:
            raise _infolog(400, entity, "The value in field Description is longer than 60 characters.")
        rate = _TAX_RATES[tax_group] if tax_group else Decimal("0.25")
        if note["InclTax"] == YES:
            tax = _round(amount - amount / (1 + rate), currency)
        else:
            tax = _round(amount * rate, currency)
        line = {
            "dataAreaId": note["dataAreaId"],
            "ParentRecId": note["InvoiceIdentifier"],
            "LineNumber": _decimal(raw.get("LineNumber", Decimal(len(self._lines_of(note)) + 1)), "LineNumber"),
            "Description": str(raw.get("Description") or ""),
            "MainAccountDisplayValue": account,
            "Quantity": quantity,
            "UnitPrice": unit,
            "TransactionCurrencyAmount": amount,
            "SalesTaxAmount": tax,
            "SalesTaxGroupId": str(raw.get("SalesTaxGroupId") or ""),
            "SalesTaxItemGroupId": tax_group,
            "CurrencyCode": currency,
        }
        self.note_lines.append(line)
        return dict(line)

    def _post_note(self, note: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        currency = note["CurrencyCode"]
        total = sum((line["TransactionCurrencyAmount"] for line in lines), Decimal(0))
        if note["InclTax"] != YES:
            total += sum((line["SalesTaxAmount"] for line in lines), Decimal(0))
        number = f"FTI-{self._next('fti'):06d}"
        note.update({"IsPosted": YES, "InvoiceId": number, "FreeTextNumber": number})
        transaction = {
            "dataAreaId": note["dataAreaId"],
            "AccountNum": note["CustomerAccount"],
            "Invoice": number,
            "Voucher": f"FTV-{number}",
            "CurrencyCode": currency,
            "AmountCur": total,
            "SettleAmountCur": Decimal(0),
        }
        self.transactions.append(transaction)
        target = next(
            (
                row
                for row in self.transactions
                if row["Invoice"] == note["CustomerRequisition"]
                and row["AccountNum"] == note["CustomerAccount"]
                and row["CurrencyCode"] == currency
                and row["dataAreaId"] == note["dataAreaId"]
            ),
            None,
        )
        if target is not None and total < 0:
            settle = min(target["AmountCur"] - target["SettleAmountCur"], -total)
            if settle > 0:
                target["SettleAmountCur"] += settle
                transaction["SettleAmountCur"] -= settle

    # ------------------------------------------------------------ customer payment journals

    def _create_journal(self, raw: dict[str, Any]) -> dict[str, Any]:
        if raw.get("JournalName") != "CustPay":
            raise _infolog(400, "LedgerJournalEntity", f"Journal name {raw.get('JournalName')} does not exist.")
        journal = {
            "dataAreaId": raw["dataAreaId"],
            "JournalBatchNumber": f"ARPM-{self._next('journal'):06d}",
            "JournalName": raw["JournalName"],
            "Description": str(raw.get("Description") or ""),
            "IsPosted": NO,
        }
        self.journals.append(journal)
        return dict(journal)

    def _create_journal_line(self, raw: dict[str, Any]) -> dict[str, Any]:
        entity = "CustomerPaymentJournalLineEntity"
        batch = str(raw.get("JournalBatchNumber") or "")
        journal = next(
            (
                row
                for row in self.journals
                if row["JournalBatchNumber"] == batch and row["dataAreaId"] == raw["dataAreaId"]
            ),
            None,
        )
        if journal is None:
            raise _infolog(400, entity, f"Journal batch number {batch} does not exist.")
        if journal["IsPosted"] == YES:
            raise _infolog(400, entity, f"Journal {batch} is posted and cannot be changed.")
        if raw.get("AccountType") != "Cust" or raw.get("OffsetAccountType") != "Ledger":
            raise _ODataError(400, "This simulator books customer lines offset by a ledger account only.")
        account = str(raw.get("AccountDisplayValue") or "")
        if (journal["dataAreaId"], account) not in self.customers:
            raise _infolog(400, entity, f"Customer account {account} does not exist.")
        offset = str(raw.get("OffsetAccountDisplayValue") or "")
        if offset not in _MAIN_ACCOUNTS:
            raise _infolog(400, entity, f"Main account {offset} does not exist.")
        day = _timestamp_date(raw.get("TransactionDate"), entity, "TransactionDate")
        self._check_open_period(entity, day)
        currency = str(raw.get("CurrencyCode") or "")
        debit = _decimal(raw.get("DebitAmount", Decimal(0)), "DebitAmount")
        credit = _decimal(raw.get("CreditAmount", Decimal(0)), "CreditAmount")
        if debit < 0 or credit < 0 or (debit == 0) == (credit == 0):
            raise _infolog(400, entity, "Enter either a debit or a credit amount.")
        marked = str(raw.get("MarkedInvoice") or "")
        if marked and not any(row["Invoice"] == marked and row["AccountNum"] == account for row in self.transactions):
            raise _infolog(400, entity, f"Invoice {marked} is not an open transaction of customer {account}.")
        line = {
            "dataAreaId": journal["dataAreaId"],
            "JournalBatchNumber": batch,
            "LineNumber": _decimal(raw.get("LineNumber", Decimal(1)), "LineNumber"),
            "AccountType": "Cust",
            "AccountDisplayValue": account,
            "TransactionDate": f"{day.isoformat()}T12:00:00Z",
            "DebitAmount": debit,
            "CreditAmount": credit,
            "CurrencyCode": currency,
            "MarkedInvoice": marked,
            "OffsetAccountType": "Ledger",
            "OffsetAccountDisplayValue": offset,
            "TransactionText": str(raw.get("TransactionText") or ""),
            "PaymentReference": str(raw.get("PaymentReference") or ""),
            "Voucher": "",
        }
        self.journal_lines.append(line)
        return dict(line)

    def _post_payment_line(self, journal: Mapping[str, Any], line: dict[str, Any]) -> None:
        line["Voucher"] = f"APV-{self._next('voucher'):06d}"
        amount = line["DebitAmount"] - line["CreditAmount"]
        payment = {
            "dataAreaId": journal["dataAreaId"],
            "AccountNum": line["AccountDisplayValue"],
            "Invoice": "",
            "Voucher": line["Voucher"],
            "CurrencyCode": line["CurrencyCode"],
            "AmountCur": amount,
            "SettleAmountCur": Decimal(0),
        }
        self.transactions.append(payment)
        marked = next(
            (row for row in self.transactions if line["MarkedInvoice"] and row["Invoice"] == line["MarkedInvoice"]),
            None,
        )
        if marked is not None and marked["AmountCur"] < 0 < amount:
            settle = min(-(marked["AmountCur"] - marked["SettleAmountCur"]), amount)
            marked["SettleAmountCur"] -= settle
            payment["SettleAmountCur"] += settle

    # ---------------------------------------------------------------- control

    def _control_posting_batch(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        if "auto" in payload:
            if not isinstance(payload["auto"], bool):
                return _json({"error": "auto must be true or false"}, 400)
            with self.lock:
                self.auto_post = payload["auto"]
            return _json({"auto": self.auto_post})
        return _json({"posted": self.run_posting_batch()})

    # ---------------------------------------------------------------- faults in Finance's shape

    def fault_response(self, fault: FaultRule) -> Response:
        status = fault.status or 500
        if status == 429:
            headers = {"Retry-After": "7", **fault.headers}
            return _json({"error": {"code": "", "message": "Too many requests."}}, 429, headers)
        return _odata_error(_ODataError(status, "Simulated fault."))


def _odata_error(error: _ODataError) -> Response:
    body = {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {
                "message": error.message,
                "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
                if error.entity
                else "Microsoft.OData.ODataException",
                "stacktrace": "",
            },
        }
    }
    return _json(body, error.status)


def _body(request: Request, entity_set: str) -> dict[str, Any]:
    if not (request.content_type or "").startswith("application/json"):
        raise _ODataError(415, "The content type of the request is not supported.")
    try:
        raw = json.loads(request.get_data(), parse_float=Decimal)
    except ValueError as error:
        raise _ODataError(400, "The request body is not valid JSON.") from error
    if not isinstance(raw, dict):
        raise _ODataError(400, "The request body must be a JSON object.")
    for key in raw:
        if key not in _WRITABLE[entity_set]:
            raise _ODataError(
                400,
                f"The property '{key}' does not exist on type 'Microsoft.Dynamics.DataEntities.{entity_set}'. "
                "Make sure to only use property names that are defined by the type or mark the type as open type.",
            )
    return raw


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _ODataError(400, f"Cannot convert the literal '{value}' to the expected type 'Edm.Decimal' ({field}).")
    return Decimal(value)


def _timestamp_date(value: Any, entity: str, field: str) -> date:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError as error:
        raise _ODataError(
            400, f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset' ({field})."
        ) from error


def _filtered(rows: list[dict[str, Any]], text: str | None) -> list[dict[str, Any]]:
    if not text:
        return [dict(row) for row in rows]
    clauses: list[tuple[str, Any]] = []
    for part in re.split(r"\s+and\s+", text):
        match = _CLAUSE.match(part)
        if match is None:
            raise _ODataError(400, f"The query specified in the URI is not valid: '{text}'.")
        field, text_value, number = match.groups()
        clauses.append((field, int(number) if number is not None else text_value.replace("''", "'")))
    result = []
    for row in rows:
        for field, wanted in clauses:
            if field not in row:
                raise _ODataError(
                    400, f"Could not find a property named '{field}' on type 'Microsoft.Dynamics.DataEntities'."
                )
            value = row[field]
            if isinstance(wanted, int):
                if value != wanted:
                    break
            elif field == "dataAreaId":
                if str(value).lower() != wanted.lower():
                    break
            elif str(value) != wanted:
                break
        else:
            result.append(dict(row))
    return result


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import books_scenarios

        return books_scenarios("dynamics_finance")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
