"""Business Central sandbox simulator: Entra ID's token endpoint and the API v2.0 resources refundflow calls.

Mounted by the local stack at ``/_sandbox/dynamics`` with the real paths below it:

- ``POST /login/{tenant}/oauth2/v2.0/token``: the client-credentials grant (form body, ``scope`` must be
  ``https://api.businesscentral.dynamics.com/.default``); errors as Entra ID answers them
  (``{"error": "invalid_client", "error_description": "AADSTS7000215: ..."}``). Access tokens last an hour.
- ``/v2.0/{tenant}/{environment}/api/v2.0/companies({id})/``: ``customers``, ``companyInformation``,
  ``salesInvoices`` (+ ``salesInvoiceLines``), ``salesCreditMemos`` (+ ``salesCreditMemoLines``,
  ``Microsoft.NAV.post``), ``journals`` (+ ``journalLines``, ``Microsoft.NAV.post``), ``generalLedgerEntries``.
  Bearer token required (401 ``Authentication_InvalidCredentials``); unknown or read-only properties in a body are
  refused (400 ``BadRequest``) as OData does; errors are ``{"error": {"code", "message"}}`` with a correlation id in
  the message. ``$filter`` takes ``field eq 'value'`` clauses joined by ``and``. There is no idempotency key: a
  repeated POST creates a second record.

Business Central behaviour kept: ``externalDocumentNumber`` is a Code[35] field (stored upper case, longer refused);
a credit memo is a Draft until ``Microsoft.NAV.post``, which checks the posting date against the allowed posting
dates (``allowed_posting_from``), takes a posted number, applies the memo to the invoice it names (``invoiceId``:
the invoice's ``remainingAmount`` falls, the memo is Paid) and writes G/L entries; prices include tax when the
customer's do (tax split out per line at the tax code's rate, rounded to the currency). Customer payment lines wait
in their batch until the batch is posted (``journals({id})/Microsoft.NAV.post`` posts every line in it, after the
same posting-date check), which turns each into G/L entries on the customer's receivables and its balancing account.
"""

from __future__ import annotations

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

DEFAULT_TENANT_ID = "5f1c7e2a-0b3d-4c8e-9a1f-2d3c4b5a6e7f"
DEFAULT_CLIENT_ID = "8a2b4c6d-1e3f-4a5b-8c7d-9e0f1a2b3c4d"
DEFAULT_CLIENT_SECRET = "refundflow-local-business-central-secret"
DEFAULT_ENVIRONMENT = "sandbox"
DEFAULT_COMPANY_ID = "a3f0c1d2-4b5e-4f60-8172-93a4b5c6d7e8"
SCOPE = "https://api.businesscentral.dynamics.com/.default"
RECEIVABLES_ACCOUNT = "2310"

_TAX_RATES = {"VAT25": Decimal("0.25"), "VAT10": Decimal("0.10"), "NOVAT": Decimal(0), "": Decimal(0)}
_MEMO_WRITABLE = {
    "externalDocumentNumber",
    "creditMemoDate",
    "postingDate",
    "dueDate",
    "customerId",
    "customerNumber",
    "currencyCode",
    "invoiceId",
    "invoiceNumber",
    "customerReturnReasonId",
    "paymentTermsId",
    "salesperson",
    "email",
    "phoneNumber",
}
_MEMO_LINE_WRITABLE = {
    "sequence",
    "lineType",
    "lineObjectNumber",
    "itemId",
    "accountId",
    "description",
    "description2",
    "quantity",
    "unitPrice",
    "taxCode",
    "discountPercent",
    "discountAmount",
    "unitOfMeasureCode",
}
_JOURNAL_LINE_WRITABLE = {
    "lineNumber",
    "accountType",
    "accountId",
    "accountNumber",
    "postingDate",
    "documentNumber",
    "externalDocumentNumber",
    "amount",
    "description",
    "comment",
    "taxCode",
    "balanceAccountType",
    "balancingAccountId",
    "balancingAccountNumber",
}
_ACCOUNTS = {
    "6110": "Sales, Retail - Dom.",
    "6120": "Sales Returns",
    "2910": "Payment Provider Clearing",
    "2920": "Stripe EUR Clearing",
}
_FILTER_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$")
_COMPANY_PATH = re.compile(r"^/v2\.0/([^/]+)/([^/]+)/api/v2\.0/companies\(([^)]+)\)(/.*)?$")


class _ODataError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _bc_json(body: Any, status: int = 200) -> Response:
    return Response(exact_json(body), status=status, mimetype="application/json")


def _digits(currency: str) -> int:
    return CURRENCY_EXPONENTS.get(currency, 2)


def _round(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-_digits(currency)), rounding=ROUND_HALF_UP)


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _ODataError(
            400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type 'Edm.Decimal'."
        )
    return Decimal(value)


def _date(value: Any, field: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as error:
        raise _ODataError(
            400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type 'Edm.Date'."
        ) from error


class BusinessCentralSimulator(EntraSimulator):
    """One Business Central company in one environment of one tenant, with one Entra ID app registered."""

    name = "dynamics"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "record_credit": ("POST", r"/salesCreditMemos$"),
    }
    TRANSIENT_STATUS: ClassVar[int] = 503

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        environment: str = DEFAULT_ENVIRONMENT,
        company_id: str = DEFAULT_COMPANY_ID,
        local_currency: str = "EUR",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.environment = environment
        self.company_id = company_id
        self.local_currency = local_currency
        self.clock = clock
        self.reset_state()
        self.route("/v2.0/<path:rest>", self._api, methods=["GET", "POST", "PATCH", "DELETE"])

    # ---------------------------------------------------------------- state

    def reset_state(self) -> None:
        self.tokens: dict[str, float] = {}
        self.token_grants = 0
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.invoice_lines: dict[str, list[dict[str, Any]]] = {}
        self.memos: dict[str, dict[str, Any]] = {}
        self.memo_lines: dict[str, list[dict[str, Any]]] = {}
        self.journals: dict[str, dict[str, Any]] = {}
        self.journal_lines: dict[str, list[dict[str, Any]]] = {}
        self.ledger: list[dict[str, Any]] = []
        self.allowed_posting_from: date | None = None
        self._numbers = {"invoice": 103000, "draft": 1000, "memo": 104000, "entry": 0}
        self.add_journal("REFUNDFLOW")

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), tz=UTC).date()

    def _next(self, kind: str) -> int:
        self._numbers[kind] += 1
        return self._numbers[kind]

    # ---------------------------------------------------------------- seeding helpers (tests, demo)

    def add_journal(self, code: str) -> dict[str, Any]:
        """A general journal batch (no balancing account of its own: each line names one)."""
        with self.lock:
            journal = {
                "id": str(uuid.uuid4()),
                "code": code,
                "displayName": f"{code} refunds",
                "balancingAccountNumber": "",
                "lastModifiedDateTime": self._stamp(),
            }
            self.journals[journal["id"]] = journal
            self.journal_lines[journal["id"]] = []
            return dict(journal)

    def add_customer(self, name: str, *, prices_include_tax: bool = True) -> dict[str, Any]:
        with self.lock:
            number = f"C{len(self.customers) + 10000:05d}"
            customer: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "number": number,
                "displayName": name,
                "email": "customer@example.com",
                "pricesIncludeTax": prices_include_tax,
            }
            self.customers[customer["id"]] = customer
            return dict(customer)

    def add_invoice(
        self,
        customer_id: str,
        lines: list[tuple[str, int, Decimal, str]],
        *,
        currency: str | None = None,
        paid: bool = False,
    ) -> dict[str, Any]:
        """A posted sales invoice from ``(description, quantity, unit price, tax code)`` lines."""
        with self.lock:
            currency = currency or self.local_currency
            customer = self.customers[customer_id]
            invoice_id = str(uuid.uuid4())
            rendered = [
                self._line(invoice_id, index, "Account", "6110", description, quantity, unit, tax, currency, customer)
                for index, (description, quantity, unit, tax) in enumerate(lines)
            ]
            total = sum((line["amountIncludingTax"] for line in rendered), Decimal(0))
            invoice = {
                "id": invoice_id,
                "number": str(self._next("invoice")),
                "customerId": customer_id,
                "customerNumber": customer["number"],
                "customerName": customer["displayName"],
                "invoiceDate": self._today().isoformat(),
                "postingDate": self._today().isoformat(),
                "currencyCode": currency,
                "pricesIncludeTax": customer["pricesIncludeTax"],
                "totalAmountExcludingTax": sum((line["amountExcludingTax"] for line in rendered), Decimal(0)),
                "totalTaxAmount": sum((line["totalTaxAmount"] for line in rendered), Decimal(0)),
                "totalAmountIncludingTax": total,
                "remainingAmount": Decimal(0) if paid else total,
                "status": "Paid" if paid else "Open",
                "lastModifiedDateTime": self._stamp(),
            }
            self.invoices[invoice_id] = invoice
            self.invoice_lines[invoice_id] = rendered
            return dict(invoice)

    # ---------------------------------------------------------------- BooksSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """What the local stack seeds: the function's API secret (Business Central sends no webhooks we read)."""
        return {
            "api": {
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "environment": self.environment,
                "company_id": self.company_id,
            },
            "verification": {},
        }

    def seed_invoice(self, amount_minor: int, currency: str, *, paid: bool = False) -> str:
        """A posted invoice of one line (25 % tax included) of ``amount_minor`` ISO minor units for a new customer,
        paid in full when ``paid``; returns its id."""
        value = Decimal(amount_minor).scaleb(-_digits(currency))
        customer = self.add_customer(f"Customer {uuid.uuid4().hex[:8]}")
        return str(self.add_invoice(customer["id"], [("Goods", 1, value, "VAT25")], currency=currency, paid=paid)["id"])

    def documents(self) -> list[dict[str, Any]]:
        """Every sales credit memo (draft or posted) with its lines, as ``$expand=salesCreditMemoLines`` shows it."""
        with self.lock:
            return [
                {
                    **self._render_memo(memo),
                    "salesCreditMemoLines": [dict(line) for line in self.memo_lines[memo["id"]]],
                }
                for memo in self.memos.values()
            ]

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.invoices[invoice_id])

    def journal_lines_waiting(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(line) for lines in self.journal_lines.values() for line in lines]

    def entries(self, account: str) -> list[dict[str, Any]]:
        """The G/L entries on ``account``, oldest first."""
        with self.lock:
            return [dict(entry) for entry in self.ledger if entry["accountNumber"] == account]

    # ---------------------------------------------------------------- Entra ID

    def entra_scope(self, request: Request) -> str:
        return SCOPE

    # ---------------------------------------------------------------- the API

    def _api(self, request: Request, rest: str) -> Response:
        try:
            self._authenticate(request)
            match = _COMPANY_PATH.match(request.path)
            if match is None or match.group(1) != self.tenant_id or match.group(2) != self.environment:
                raise _ODataError(404, "BadRequest_NotFound", "The request URL was not found.")
            if match.group(3) != self.company_id:
                raise _ODataError(
                    404,
                    "Internal_CompanyNotFound",
                    f"Cannot process the request because the company '{match.group(3)}' does not exist.",
                )
            with self.lock:
                return self._resource(request, match.group(4) or "/")
        except _ODataError as error:
            return _odata_error(error)

    def _authenticate(self, request: Request) -> None:
        if not self.bearer_valid(request):
            raise _ODataError(
                401, "Authentication_InvalidCredentials", "The server has rejected the client credentials."
            )

    def _resource(self, request: Request, path: str) -> Response:
        method = request.method
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", r"^/companyInformation$", self._company_information),
            ("GET", r"^/salesInvoices\(([^)]+)\)$", self._get_invoice),
            ("GET", r"^/salesInvoices\(([^)]+)\)/salesInvoiceLines$", self._list_invoice_lines),
            ("GET", r"^/salesCreditMemos$", self._list_memos),
            ("POST", r"^/salesCreditMemos$", self._create_memo),
            ("GET", r"^/salesCreditMemos\(([^)]+)\)$", self._get_memo),
            ("GET", r"^/salesCreditMemos\(([^)]+)\)/salesCreditMemoLines$", self._list_memo_lines),
            ("POST", r"^/salesCreditMemos\(([^)]+)\)/salesCreditMemoLines$", self._create_memo_line),
            ("POST", r"^/salesCreditMemos\(([^)]+)\)/Microsoft\.NAV\.post$", self._post_memo),
            ("GET", r"^/journals$", self._list_journals),
            ("GET", r"^/journals\(([^)]+)\)/journalLines$", self._list_journal_lines),
            ("POST", r"^/journals\(([^)]+)\)/journalLines$", self._create_journal_line),
            ("POST", r"^/journals\(([^)]+)\)/Microsoft\.NAV\.post$", self._post_journal),
            ("GET", r"^/generalLedgerEntries$", self._list_entries),
        ]
        for verb, pattern, handler in routes:
            found = re.match(pattern, path)
            if found and verb == method:
                return handler(request, *found.groups())
        raise _ODataError(
            404,
            "BadRequest_MethodNotFound",
            f"No HTTP resource was found that matches the request URI ({method} {path}).",
        )

    def _company_information(self, request: Request) -> Response:
        return _bc_json(
            {
                "value": [
                    {
                        "id": self.company_id,
                        "displayName": "CRONUS (refundflow local)",
                        "currencyCode": self.local_currency,
                    }
                ]
            }
        )

    # ------------------------------------------------------------ invoices

    def _invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.invoices.get(invoice_id.lower())
        if invoice is None:
            raise _ODataError(
                404,
                "Internal_RecordNotFound",
                f"The Sales Invoice does not exist. Identification fields and values: Id='{invoice_id}'",
            )
        return invoice

    def _get_invoice(self, request: Request, invoice_id: str) -> Response:
        return _bc_json(self._invoice(invoice_id))

    def _list_invoice_lines(self, request: Request, invoice_id: str) -> Response:
        self._invoice(invoice_id)
        return _bc_json({"value": self.invoice_lines[invoice_id.lower()]})

    # ------------------------------------------------------------ credit memos

    def _memo(self, memo_id: str) -> dict[str, Any]:
        memo = self.memos.get(memo_id.lower())
        if memo is None:
            raise _ODataError(
                404,
                "Internal_RecordNotFound",
                f"The Sales Credit Memo does not exist. Identification fields and values: Id='{memo_id}'",
            )
        return memo

    def _render_memo(self, memo: dict[str, Any]) -> dict[str, Any]:
        lines = self.memo_lines[memo["id"]]
        return {
            **memo,
            "totalAmountExcludingTax": sum((line["amountExcludingTax"] for line in lines), Decimal(0)),
            "totalTaxAmount": sum((line["totalTaxAmount"] for line in lines), Decimal(0)),
            "totalAmountIncludingTax": sum((line["amountIncludingTax"] for line in lines), Decimal(0)),
        }

    def _list_memos(self, request: Request) -> Response:
        memos = [self._render_memo(memo) for memo in self.memos.values()]
        return _bc_json({"value": _filtered(memos, request.args.get("$filter"))})

    def _get_memo(self, request: Request, memo_id: str) -> Response:
        return _bc_json(self._render_memo(self._memo(memo_id)))

    def _create_memo(self, request: Request) -> Response:
        raw = _body(request, _MEMO_WRITABLE, "salesCreditMemo")
        customer = self.customers.get(str(raw.get("customerId", "")).lower())
        if customer is None:
            raise _ODataError(
                400,
                "Internal_RecordNotFound",
                "The Customer does not exist. Identification fields and values: Id='"
                + str(raw.get("customerId"))
                + "'",
            )
        external = str(raw.get("externalDocumentNumber", ""))
        if len(external) > 35:
            raise _ODataError(
                400,
                "BadRequest",
                f"The length of the string is {len(external)}, but it must be less than or equal to 35 characters. "
                f"Value: {external}",
            )
        currency = str(raw.get("currencyCode") or self.local_currency)
        if currency not in CURRENCY_EXPONENTS:
            raise _ODataError(
                400,
                "Internal_RecordNotFound",
                f"The Currency does not exist. Identification fields and values: Code='{currency}'",
            )
        invoice_id = str(raw.get("invoiceId") or "").lower()
        if invoice_id:
            invoice = self._invoice(invoice_id)
            if invoice["customerId"] != customer["id"] or invoice["currencyCode"] != currency:
                raise _ODataError(
                    400,
                    "Application_DialogException",
                    f"Invoice {invoice['number']} belongs to another customer or currency.",
                )
        memo_date = _date(raw.get("creditMemoDate", self._today().isoformat()), "creditMemoDate")
        memo_id = str(uuid.uuid4())
        memo = {
            "id": memo_id,
            "number": f"S-CR{self._next('draft')}",
            "externalDocumentNumber": external.upper(),
            "creditMemoDate": memo_date.isoformat(),
            "postingDate": _date(raw.get("postingDate", memo_date.isoformat()), "postingDate").isoformat(),
            "customerId": customer["id"],
            "customerNumber": customer["number"],
            "customerName": customer["displayName"],
            "currencyCode": currency,
            "pricesIncludeTax": customer["pricesIncludeTax"],
            "status": "Draft",
            "invoiceId": invoice_id or "00000000-0000-0000-0000-000000000000",
            "invoiceNumber": self.invoices[invoice_id]["number"] if invoice_id else "",
            "lastModifiedDateTime": self._stamp(),
        }
        self.memos[memo_id] = memo
        self.memo_lines[memo_id] = []
        return _bc_json(self._render_memo(memo), 201)

    def _list_memo_lines(self, request: Request, memo_id: str) -> Response:
        memo = self._memo(memo_id)
        return _bc_json({"value": self.memo_lines[memo["id"]]})

    def _create_memo_line(self, request: Request, memo_id: str) -> Response:
        memo = self._memo(memo_id)
        if memo["status"] != "Draft":
            raise _ODataError(
                400,
                "Application_DialogException",
                f"Status must be equal to 'Open'  in Sales Header: Document Type=Credit Memo, No.={memo['number']}. "
                "Current value is 'Released'.",
            )
        raw = _body(request, _MEMO_LINE_WRITABLE, "salesCreditMemoLine")
        if raw.get("lineType") != "Account":
            raise _ODataError(400, "BadRequest", "This simulator books Account lines only.")
        account = str(raw.get("lineObjectNumber", ""))
        if account not in _ACCOUNTS:
            raise _ODataError(
                400,
                "Internal_RecordNotFound",
                f"The G/L Account does not exist. Identification fields and values: No.='{account}'",
            )
        tax = str(raw.get("taxCode", ""))
        if tax not in _TAX_RATES:
            raise _ODataError(
                400,
                "Internal_RecordNotFound",
                f"The VAT Product Posting Group does not exist. Identification fields and values: Code='{tax}'",
            )
        quantity = _decimal(raw.get("quantity", 0), "quantity")
        unit = _decimal(raw.get("unitPrice", 0), "unitPrice")
        customer = self.customers[memo["customerId"]]
        line = self._line(
            memo["id"],
            len(self.memo_lines[memo["id"]]),
            "Account",
            account,
            str(raw.get("description", "")),
            quantity,
            unit,
            tax,
            memo["currencyCode"],
            customer,
        )
        self.memo_lines[memo["id"]].append(line)
        memo["lastModifiedDateTime"] = self._stamp()
        return _bc_json(line, 201)

    def _line(
        self,
        document_id: str,
        index: int,
        kind: str,
        number: str,
        description: str,
        quantity: Any,
        unit: Decimal,
        tax: str,
        currency: str,
        customer: Mapping[str, Any],
    ) -> dict[str, Any]:
        if len(description) > 100:
            raise _ODataError(
                400,
                "BadRequest",
                f"The length of the string is {len(description)}, but it must be less than or equal to 100 characters.",
            )
        quantity = Decimal(quantity)
        if unit != _round(unit, currency) or unit < 0 or quantity <= 0:
            raise _ODataError(
                400,
                "Application_DialogException",
                f"Unit Price {unit} or Quantity {quantity} cannot be booked in {currency}.",
            )
        rate = _TAX_RATES[tax]
        gross_or_net = _round(quantity * unit, currency)
        if customer["pricesIncludeTax"]:
            gross = gross_or_net
            net = _round(gross / (1 + rate), currency)
        else:
            net = gross_or_net
            gross = net + _round(net * rate, currency)
        return {
            "id": str(uuid.uuid4()),
            "documentId": document_id,
            "sequence": (index + 1) * 10000,
            "lineType": kind,
            "lineObjectNumber": number,
            "description": description,
            "quantity": quantity if quantity != quantity.to_integral_value() else int(quantity),
            "unitPrice": unit,
            "taxCode": tax,
            "taxPercent": rate * 100,
            "amountExcludingTax": net,
            "totalTaxAmount": gross - net,
            "amountIncludingTax": gross,
        }

    def _post_memo(self, request: Request, memo_id: str) -> Response:
        memo = self._memo(memo_id)
        if memo["status"] != "Draft":
            raise _ODataError(
                400,
                "Application_DialogException",
                "The Sales Header does not exist. Identification fields and values: "
                f"Document Type='Credit Memo',No.='{memo['number']}'",
            )
        lines = self.memo_lines[memo["id"]]
        if not lines:
            raise _ODataError(400, "Application_DialogException", "There is nothing to post.")
        posting = date.fromisoformat(memo["postingDate"])
        if self.allowed_posting_from is not None and posting < self.allowed_posting_from:
            raise _ODataError(
                400, "Application_DialogException", "Posting Date is not within your range of allowed posting dates."
            )
        total = self._render_memo(memo)["totalAmountIncludingTax"]
        invoice_id = memo["invoiceId"] if memo["invoiceId"] in self.invoices else None
        if invoice_id is not None:
            invoice = self.invoices[invoice_id]
            if invoice["remainingAmount"] < total:
                raise _ODataError(
                    400,
                    "Application_DialogException",
                    f"The amount to apply is larger than what invoice {invoice['number']} still owes.",
                )
        memo["number"] = f"PS-CR{self._next('memo')}"
        memo["status"] = "Open"
        if invoice_id is not None:
            invoice = self.invoices[invoice_id]
            invoice["remainingAmount"] -= total
            invoice["status"] = "Paid" if invoice["remainingAmount"] == 0 else "Open"
            memo["status"] = "Paid"
        self._entry(memo["postingDate"], memo["number"], "Credit Memo", RECEIVABLES_ACCOUNT, -total)
        self._entry(memo["postingDate"], memo["number"], "Credit Memo", "6110", total)
        memo["lastModifiedDateTime"] = self._stamp()
        return Response(status=204)

    # ------------------------------------------------------------ general journals

    def _journal(self, journal_id: str) -> dict[str, Any]:
        journal = self.journals.get(journal_id.lower())
        if journal is None:
            raise _ODataError(
                404,
                "Internal_RecordNotFound",
                f"The Gen. Journal Batch does not exist. Identification fields and values: Id='{journal_id}'",
            )
        return journal

    def _list_journals(self, request: Request) -> Response:
        return _bc_json({"value": _filtered(list(self.journals.values()), request.args.get("$filter"))})

    def _list_journal_lines(self, request: Request, journal_id: str) -> Response:
        journal = self._journal(journal_id)
        return _bc_json({"value": _filtered(self.journal_lines[journal["id"]], request.args.get("$filter"))})

    def _create_journal_line(self, request: Request, journal_id: str) -> Response:
        journal = self._journal(journal_id)
        raw = _body(request, _JOURNAL_LINE_WRITABLE, "journalLine")
        if raw.get("accountType") != "Customer" or raw.get("balanceAccountType") != "G/L Account":
            raise _ODataError(400, "BadRequest", "This simulator books customer lines balanced by a G/L account only.")
        customer = self.customers.get(str(raw.get("accountId", "")).lower())
        if customer is None:
            raise _ODataError(400, "Internal_RecordNotFound", "The Customer does not exist.")
        balancing = str(raw.get("balancingAccountNumber", ""))
        if balancing not in _ACCOUNTS:
            raise _ODataError(
                400,
                "Internal_RecordNotFound",
                f"The G/L Account does not exist. Identification fields and values: No.='{balancing}'",
            )
        external = str(raw.get("externalDocumentNumber", ""))
        if len(external) > 35 or len(str(raw.get("documentNumber", ""))) > 20:
            raise _ODataError(
                400,
                "BadRequest",
                "The length of the string must be less than or equal to 35 (20 for documentNumber) characters.",
            )
        lines = self.journal_lines[journal["id"]]
        line = {
            "id": str(uuid.uuid4()),
            "journalId": journal["id"],
            "journalDisplayName": journal["code"],
            "lineNumber": (len(lines) + 1) * 10000,
            "accountType": "Customer",
            "accountId": customer["id"],
            "accountNumber": customer["number"],
            "postingDate": _date(raw.get("postingDate", self._today().isoformat()), "postingDate").isoformat(),
            "documentNumber": str(raw.get("documentNumber", "")).upper(),
            "externalDocumentNumber": external.upper(),
            "amount": _decimal(raw.get("amount", 0), "amount"),
            "description": str(raw.get("description", "")),
            "comment": str(raw.get("comment", "")),
            "taxCode": "",
            "balanceAccountType": "G/L Account",
            "balancingAccountNumber": balancing,
            "lastModifiedDateTime": self._stamp(),
        }
        lines.append(line)
        return _bc_json(line, 201)

    def _post_journal(self, request: Request, journal_id: str) -> Response:
        journal = self._journal(journal_id)
        lines = self.journal_lines[journal["id"]]
        if not lines:
            raise _ODataError(400, "Application_DialogException", "There is nothing to post.")
        for line in lines:
            if (
                self.allowed_posting_from is not None
                and date.fromisoformat(line["postingDate"]) < self.allowed_posting_from
            ):
                raise _ODataError(
                    400,
                    "Application_DialogException",
                    "Posting Date is not within your range of allowed posting dates.",
                )
        for line in lines:
            self._entry(line["postingDate"], line["documentNumber"], " ", RECEIVABLES_ACCOUNT, line["amount"])
            self._entry(
                line["postingDate"], line["documentNumber"], " ", line["balancingAccountNumber"], -line["amount"]
            )
        lines.clear()
        return Response(status=204)

    # ------------------------------------------------------------ G/L entries

    def _entry(self, posting_date: str, number: str, kind: str, account: str, amount: Decimal) -> None:
        self.ledger.append(
            {
                "id": str(uuid.uuid4()),
                "entryNumber": self._next("entry"),
                "postingDate": posting_date,
                "documentNumber": number,
                "documentType": kind,
                "accountNumber": account,
                "description": "",
                "debitAmount": amount if amount > 0 else Decimal(0),
                "creditAmount": -amount if amount < 0 else Decimal(0),
                "lastModifiedDateTime": self._stamp(),
            }
        )

    def _list_entries(self, request: Request) -> Response:
        return _bc_json({"value": _filtered(self.ledger, request.args.get("$filter"))})

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # ---------------------------------------------------------------- faults in Business Central's shape

    def fault_response(self, fault: FaultRule) -> Response:
        status = fault.status or 500
        code = {429: "Application_TooManyRequests", 503: "Application_ServiceUnavailable"}.get(
            status, "Internal_ServerError"
        )
        return _odata_error(_ODataError(status, code, "Simulated fault."))


def _odata_error(error: _ODataError) -> Response:
    message = f"{error.message}  CorrelationId:  {uuid.uuid4()}."
    return _bc_json({"error": {"code": error.code, "message": message}}, error.status)


def _body(request: Request, writable: set[str], entity: str) -> dict[str, Any]:
    import json

    if not (request.content_type or "").startswith("application/json"):
        raise _ODataError(415, "BadRequest", "The content type of the request is not supported.")
    try:
        raw = json.loads(request.get_data(), parse_float=Decimal)
    except ValueError as error:
        raise _ODataError(400, "BadRequest", "The request body is not valid JSON.") from error
    if not isinstance(raw, dict):
        raise _ODataError(400, "BadRequest", "The request body must be a JSON object.")
    for key in raw:
        if key not in writable:
            raise _ODataError(
                400, "BadRequest", f"Could not find a property named '{key}' on type 'Microsoft.NAV.{entity}'."
            )
    return raw


def _filtered(items: list[dict[str, Any]], text: str | None) -> list[dict[str, Any]]:
    if not text:
        return [dict(item) for item in items]
    clauses = []
    for part in re.split(r"\s+and\s+", text):
        match = _FILTER_CLAUSE.match(part)
        if match is None:
            raise _ODataError(400, "BadRequest", f"The filter expression '{text}' is not supported.")
        clauses.append((match.group(1), match.group(2).replace("''", "'")))
    return [dict(item) for item in items if all(str(item.get(field)) == value for field, value in clauses)]


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import books_scenarios

        return books_scenarios("dynamics")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
