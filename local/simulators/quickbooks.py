"""A stateful QuickBooks Online company for tests and the local stack (mounted under ``/_sandbox/quickbooks``).

What it speaks, as the Accounting API v3 does: Intuit's OAuth2 refresh-token grant at
``/oauth2/v1/tokens/bearer`` (HTTP Basic client credentials, the refresh token rotated on every refresh and the old
one refused with ``invalid_grant``, one-hour access tokens); ``/v3/company/{realmId}/...`` with a Bearer token:
``GET invoice/{id}``, ``GET creditmemo/{id}``, ``GET query?query=select * from <Entity> [where <Field> = '<v>']``,
``POST creditmemo``, ``POST refundreceipt``, ``POST payment`` (a zero-amount payment linking an invoice and a credit
memo applies the credit). Every write honours ``requestid`` (the first answer is replayed for the same id, as Intuit
documents) and every error is a ``Fault`` body (``{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}``):
610 object not found, 2500 invalid reference, 2010 unsupported property, 6000 business validation, 6140 duplicate
document number, 6200 account period closed (a ``closing_date`` is set on the company), 3200 authentication.

Amounts are exact JSON numbers (``Decimal`` both ways) with two decimals at most (none in JPY).
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, exact_json

DEFAULT_CLIENT_ID = "ABqbo-local-client"
DEFAULT_CLIENT_SECRET = "qbo-local-secret"
DEFAULT_REFRESH_TOKEN = "AB11qbo-local-refresh-0"
DEFAULT_REALM_ID = "9130350000000001"
ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 8_726_400  # 101 days, as Intuit answers in x_refresh_token_expires_in
API = "/v3/company/<realm_id>"
_DOCUMENT_FIELDS = {
    "CustomerRef",
    "CurrencyRef",
    "TxnDate",
    "DocNumber",
    "PrivateNote",
    "CustomerMemo",
    "Line",
    "GlobalTaxCalculation",
    "BillEmail",
    "PaymentMethodRef",
}
_PAYMENT_FIELDS = {"CustomerRef", "CurrencyRef", "TotalAmt", "TxnDate", "PrivateNote", "Line"}
_QUERY = re.compile(
    r"^\s*select \* from (?P<entity>\w+)(?: where (?P<field>\w+) = '(?P<value>[^']*)')?"
    r"(?: maxresults (?P<max>\d+))?\s*$",
    re.IGNORECASE,
)
_QUERYABLE = {"Invoice", "CreditMemo", "RefundReceipt", "Payment", "Customer", "Item", "Account"}
_FILTERABLE = {"Id", "DocNumber", "CustomerRef"}


class _Fault(Exception):
    def __init__(self, code: str, message: str, detail: str, *, status: int = 400, kind: str = "ValidationFault"):
        super().__init__(message)
        self.code, self.message, self.detail, self.status, self.kind = code, message, detail, status, kind


def _fault_body(code: str, message: str, detail: str, kind: str) -> dict[str, Any]:
    return {
        "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}], "type": kind},
        "time": datetime.now(UTC).isoformat(),
    }


def _json(body: Any, status: int = 200) -> Response:
    return Response(exact_json(body), status=status, mimetype="application/json")


def _digits(currency: str) -> int:
    return 0 if currency == "JPY" else 2


def _amount(value: Any, field: str, currency: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Fault("2020", "Required param missing, need to supply the required value for the API", field)
    amount = Decimal(value)
    if amount != amount.quantize(Decimal(1).scaleb(-_digits(currency))):
        raise _Fault(
            "6000",
            "A business validation error has occurred while processing your request",
            f"{field}: {currency} amounts take {_digits(currency)} decimals",
        )
    return amount


def _ref(value: Any, field: str) -> str:
    if not isinstance(value, Mapping) or not isinstance(value.get("value"), str) or not value["value"]:
        raise _Fault("2020", "Required param missing, need to supply the required value for the API", field)
    return str(value["value"])


class QuickBooksSimulator(Simulator):
    """One QuickBooks Online company (multicurrency, home currency USD) with one connected OAuth2 app."""

    name = "quickbooks"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "record_credit": ("POST", r"^/v3/company/[^/]+/(creditmemo|refundreceipt)$"),
    }
    TRANSIENT_STATUS: ClassVar[int] = 429

    def __init__(
        self,
        *,
        realm_id: str = DEFAULT_REALM_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.realm_id = realm_id
        self.clock = clock
        self._ids_lock = threading.Lock()
        self.reset_state()
        self.route("/oauth2/v1/tokens/bearer", self._token, methods=["POST"])
        self.route(f"{API}/invoice/<entity_id>", self._api(self._get_invoice), methods=["GET"])
        self.route(f"{API}/creditmemo/<entity_id>", self._api(self._get_credit_memo), methods=["GET"])
        self.route(f"{API}/refundreceipt/<entity_id>", self._api(self._get_refund_receipt), methods=["GET"])
        self.route(f"{API}/query", self._api(self._query), methods=["GET"])
        self.route(f"{API}/creditmemo", self._api(self._create_credit_memo, write=True), methods=["POST"])
        self.route(f"{API}/refundreceipt", self._api(self._create_refund_receipt, write=True), methods=["POST"])
        self.route(f"{API}/payment", self._api(self._create_payment, write=True), methods=["POST"])
        self.route("/_control/seed", self._seed_control, methods=["POST"])

    # ---------------------------------------------------------------- state

    def reset_state(self) -> None:
        self.refresh_tokens: dict[str, bool] = {DEFAULT_REFRESH_TOKEN: True}  # token -> still valid
        self.access_tokens: dict[str, float] = {}  # token -> expires at
        self.token_grants = 0
        self.closing_date: date | None = None
        # Account and Settings > Sales > Custom transaction numbers: off, QuickBooks numbers documents itself.
        self.custom_txn_numbers = True
        self.request_ids: dict[str, tuple[int, Any]] = {}
        self._next_id = 100
        self.customers: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {
            "1": {"Id": "1", "Name": "Goods", "Active": True},
            "2": {"Id": "2", "Name": "Shipping", "Active": True},
        }
        self.tax_codes = {"2": "20.0% S", "6": "Exempt"}
        self.accounts = {
            "35": {"Id": "35", "Name": "Checking", "AccountType": "Bank"},
            "92": {"Id": "92", "Name": "Stripe clearing", "AccountType": "Other Current Asset"},
            "79": {"Id": "79", "Name": "Sales of Product Income", "AccountType": "Income"},
        }
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_memos: dict[str, dict[str, Any]] = {}
        self.refund_receipts: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}

    def _id(self) -> str:
        with self._ids_lock:
            self._next_id += 1
            return str(self._next_id)

    def _meta(self) -> dict[str, Any]:
        now = datetime.fromtimestamp(self.clock(), tz=UTC).isoformat()
        return {"CreateTime": now, "LastUpdatedTime": now}

    # ---------------------------------------------------------------- seeding (tests, demo)

    def add_customer(self, name: str, currency: str = "USD") -> dict[str, Any]:
        with self.lock:
            customer: dict[str, Any] = {
                "Id": self._id(),
                "DisplayName": name,
                "CurrencyRef": {"value": currency},
                "Active": True,
            }
            self.customers[customer["Id"]] = customer
            return dict(customer)

    def add_invoice(
        self, customer_id: str, lines: list[tuple[str, int, Decimal]], *, item: str = "1", tax_code: str = "2"
    ) -> dict[str, Any]:
        """An invoice of ``(description, quantity, unit price)`` lines, gross (TaxInclusive), nothing paid."""
        with self.lock:
            customer = self.customers[customer_id]
            currency = customer["CurrencyRef"]["value"]
            rendered: list[dict[str, Any]] = []
            for number, (description, quantity, unit) in enumerate(lines, start=1):
                rendered.append(
                    {
                        "Id": str(number),
                        "LineNum": number,
                        "Description": description,
                        "Amount": Decimal(unit) * quantity,
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {
                            "ItemRef": {"value": item, "name": self.items[item]["Name"]},
                            "Qty": quantity,
                            "UnitPrice": Decimal(unit),
                            "TaxCodeRef": {"value": tax_code},
                        },
                    }
                )
            total = sum((line["Amount"] for line in rendered), Decimal(0))
            invoice_id = self._id()
            invoice = {
                "Id": invoice_id,
                "SyncToken": "0",
                "DocNumber": f"INV-{invoice_id}",
                "TxnDate": date.fromtimestamp(self.clock()).isoformat(),
                "CustomerRef": {"value": customer_id, "name": customer["DisplayName"]},
                "CurrencyRef": {"value": currency},
                "GlobalTaxCalculation": "TaxInclusive",
                "Line": rendered,
                "TotalAmt": total,
                "Balance": total,
                "LinkedTxn": [],
                "MetaData": self._meta(),
            }
            self.invoices[invoice_id] = invoice
            return dict(invoice)

    def pay_invoice(self, invoice_id: str) -> None:
        with self.lock:
            invoice = self.invoices[invoice_id]
            payment_id = self._id()
            self.payments[payment_id] = {
                "Id": payment_id,
                "TotalAmt": invoice["Balance"],
                "CustomerRef": invoice["CustomerRef"],
                "Line": [{"Amount": invoice["Balance"], "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
            }
            invoice["LinkedTxn"].append({"TxnId": payment_id, "TxnType": "Payment"})
            invoice["Balance"] = Decimal(0)

    def seed_demo(self) -> dict[str, str]:
        customer = self.add_customer("Ada Lovelace", "EUR")
        paid = self.add_invoice(customer["Id"], [("Walnut desk", 1, Decimal("249.00"))])
        self.pay_invoice(paid["Id"])
        unpaid = self.add_invoice(customer["Id"], [("Desk lamp", 2, Decimal("39.50"))])
        return {"customer_id": customer["Id"], "paid_invoice_id": paid["Id"], "unpaid_invoice_id": unpaid["Id"]}

    def _seed_control(self, request: Request) -> Response:
        return _json(self.seed_demo(), 201)

    # ---------------------------------------------------------------- BooksSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's API secret (QuickBooks sends no webhooks refundflow reads)."""
        return {
            "api": {
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "refresh_token": DEFAULT_REFRESH_TOKEN,
                "realm_id": self.realm_id,
            },
            "verification": {},
        }

    def seed_invoice(self, amount_minor: int, currency: str, *, paid: bool = False) -> str:
        """An invoice of one line for a new customer in ``currency``, paid in full when ``paid``; its Id.

        Raises:
            ValueError: an amount with more decimals than QuickBooks keeps in that currency.
        """
        iso = {"JPY": 0, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3}.get(currency, 2)
        value = Decimal(amount_minor).scaleb(-iso)
        if value != value.quantize(Decimal(1).scaleb(-_digits(currency))):
            raise ValueError(f"{value} {currency} has more decimals than QuickBooks keeps")
        customer = self.add_customer(f"Customer {secrets.token_hex(4)}", currency)
        invoice = self.add_invoice(customer["Id"], [("Goods", 1, value)])
        if paid:
            self.pay_invoice(invoice["Id"])
        return str(invoice["Id"])

    def documents(self) -> list[dict[str, Any]]:
        """Every credit memo and refund receipt, as the API shows them (with ``_type``), oldest first."""
        with self.lock:
            held = [{"_type": "CreditMemo", **memo} for memo in self.credit_memos.values()]
            held += [{"_type": "RefundReceipt", **receipt} for receipt in self.refund_receipts.values()]
            return sorted(held, key=lambda item: int(item["Id"]))

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.invoices[invoice_id])

    def fault_response(self, fault: FaultRule) -> Response:
        if fault.body is not None:
            return super().fault_response(fault)
        status = fault.status or 500
        if status == 429:
            body = _fault_body("003001", "ThrottleExceeded", "Throttle exceeded, try again later", "SERVICE")
        else:
            body = _fault_body(
                "10000",
                "An application error has occurred while processing your request",
                "System Failure Error",
                "SystemFault",
            )
        return _json(body, status)

    # ---------------------------------------------------------------- OAuth2

    def _token(self, request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()
        if not secrets.compare_digest(header, f"Basic {expected}"):
            return _json({"error": "invalid_client"}, 401)
        if request.mimetype != "application/x-www-form-urlencoded":
            return _json({"error": "invalid_request"}, 400)
        if request.form.get("grant_type") != "refresh_token":
            return _json({"error": "unsupported_grant_type"}, 400)
        with self.lock:
            token = request.form.get("refresh_token", "")
            if not self.refresh_tokens.get(token):
                return _json({"error": "invalid_grant"}, 400)
            self.refresh_tokens[token] = False
            rotated = f"AB11qbo-{secrets.token_hex(16)}"
            self.refresh_tokens[rotated] = True
            access = f"eyJqbo.{secrets.token_hex(24)}"
            self.access_tokens[access] = self.clock() + ACCESS_TOKEN_SECONDS
            self.token_grants += 1
        return _json(
            {
                "token_type": "bearer",
                "access_token": access,
                "expires_in": ACCESS_TOKEN_SECONDS,
                "refresh_token": rotated,
                "x_refresh_token_expires_in": REFRESH_TOKEN_SECONDS,
            }
        )

    def revoke_access_tokens(self) -> None:
        """Make every issued access token answer 401 (as after an early expiry)."""
        with self.lock:
            self.access_tokens.clear()

    @property
    def current_refresh_token(self) -> str:
        with self.lock:
            return next(token for token, valid in self.refresh_tokens.items() if valid)

    # ---------------------------------------------------------------- API plumbing

    def _api(self, handler: Callable[..., Any], *, write: bool = False) -> Callable[..., Response]:
        def endpoint(request: Request, realm_id: str, **arguments: Any) -> Response:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            with self.lock:
                expires = self.access_tokens.get(token)
            if expires is None or expires <= self.clock():
                body = _fault_body(
                    "3200",
                    "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "Token expired or invalid",
                    "AUTHENTICATION",
                )
                return _json(body, 401)
            if realm_id != self.realm_id:
                body = _fault_body(
                    "003100",
                    "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                    "the token is not for this company",
                    "AUTHORIZATION",
                )
                return _json(body, 403)
            request_id = request.args.get("requestid")
            if write and request_id is not None:
                if len(request_id) > 50:
                    return _json(
                        _fault_body(
                            "2050",
                            "String length is either shorter or longer than supported by specification",
                            "requestid is longer than 50",
                            "ValidationFault",
                        ),
                        400,
                    )
                with self.lock:
                    stored = self.request_ids.get(request_id)
                if stored is not None:
                    return _json(stored[1], stored[0])
            try:
                with self.lock:
                    status, body = handler(request, **arguments)
            except _Fault as fault:
                status, body = fault.status, _fault_body(fault.code, fault.message, fault.detail, fault.kind)
            if write and request_id is not None:
                # Intuit answers a repeated requestid with the answer the first request got, refusals included.
                with self.lock:
                    self.request_ids[request_id] = (status, body)
            return _json(body, status)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _body(self, request: Request, known: set[str]) -> dict[str, Any]:
        if request.mimetype != "application/json":
            raise _Fault("2010", "Request has invalid or unsupported property", "Content-Type must be JSON")
        import json

        try:
            raw = json.loads(request.get_data(), parse_float=Decimal)
        except ValueError as error:
            raise _Fault("2010", "Request has invalid or unsupported property", f"not JSON: {error}") from error
        if not isinstance(raw, dict):
            raise _Fault("2010", "Request has invalid or unsupported property", "not an object")
        unknown = sorted(set(raw) - known)
        if unknown:
            raise _Fault("2010", "Request has invalid or unsupported property", f"Property Name:{unknown[0]}")
        return raw

    def _wrap(self, entity: str, item: dict[str, Any]) -> dict[str, Any]:
        return {entity: dict(item), "time": datetime.now(UTC).isoformat()}

    # ---------------------------------------------------------------- reads

    def _get(self, store: dict[str, dict[str, Any]], entity: str, entity_id: str) -> tuple[int, Any]:
        found = store.get(entity_id)
        if found is None:
            raise _Fault(
                "610",
                "Object Not Found",
                f"Object Not Found : Something you're trying to use has been "
                f"made inactive or deleted ({entity} {entity_id})",
            )
        return 200, self._wrap(entity, found)

    def _get_invoice(self, request: Request, entity_id: str) -> tuple[int, Any]:
        return self._get(self.invoices, "Invoice", entity_id)

    def _get_credit_memo(self, request: Request, entity_id: str) -> tuple[int, Any]:
        return self._get(self.credit_memos, "CreditMemo", entity_id)

    def _get_refund_receipt(self, request: Request, entity_id: str) -> tuple[int, Any]:
        return self._get(self.refund_receipts, "RefundReceipt", entity_id)

    def _query(self, request: Request) -> tuple[int, Any]:
        text = request.args.get("query", "")
        match = _QUERY.match(text)
        if match is None or match["entity"] not in _QUERYABLE:
            raise _Fault("4000", "Error parsing query", f"QueryParserError: Encountered an unsupported query {text!r}")
        field, value = match["field"], match["value"]
        if field is not None and field not in _FILTERABLE:
            raise _Fault("4001", "Invalid query", f"QueryValidationError: property '{field}' is not queryable")
        entity = match["entity"]
        stores: dict[str, dict[str, dict[str, Any]]] = {
            "Invoice": self.invoices,
            "CreditMemo": self.credit_memos,
            "RefundReceipt": self.refund_receipts,
            "Payment": self.payments,
            "Customer": self.customers,
            "Item": self.items,
            "Account": self.accounts,
        }
        store = stores[entity]

        def selected(item: Mapping[str, Any]) -> bool:
            if field is None:
                return True
            actual = item.get(field)
            if isinstance(actual, Mapping):
                actual = actual.get("value")
            return actual == value

        found = [dict(item) for item in store.values() if selected(item)][: int(match["max"] or 100)]
        response: dict[str, Any] = {"startPosition": 1, "maxResults": len(found)} if found else {}
        if found:
            response[entity] = found
        return 200, {"QueryResponse": response, "time": datetime.now(UTC).isoformat()}

    # ---------------------------------------------------------------- writes

    def _document(self, raw: dict[str, Any], entity: str) -> dict[str, Any]:
        customer = self.customers.get(_ref(raw.get("CustomerRef"), "CustomerRef"))
        if customer is None or not customer.get("Active"):
            raise _Fault(
                "2500",
                "Invalid Reference Id",
                "Invalid Reference Id : Customer assigned to this transaction has been deleted or is inactive",
            )
        currency = _ref(raw["CurrencyRef"], "CurrencyRef") if "CurrencyRef" in raw else "USD"
        if currency != customer["CurrencyRef"]["value"]:
            raise _Fault(
                "6000",
                "A business validation error has occurred while processing your request",
                f"Business Validation Error: the customer's currency is {customer['CurrencyRef']['value']}, "
                f"not {currency}",
            )
        try:
            txn_date = date.fromisoformat(str(raw.get("TxnDate") or date.fromtimestamp(self.clock()).isoformat()))
        except ValueError as error:
            raise _Fault("2080", "Invalid Date", f"TxnDate {raw.get('TxnDate')!r}") from error
        if self.closing_date is not None and txn_date <= self.closing_date:
            raise _Fault(
                "6200",
                "Account Period Closed, Cannot Update Through Services API",
                f"The account period has closed and the account books cannot be updated through the QBO "
                f"Services API ({txn_date} is on or before the closing date {self.closing_date})",
            )
        number = raw.get("DocNumber")
        if not self.custom_txn_numbers:
            number = None
        if number is not None:
            if not isinstance(number, str) or len(number) > 21:
                raise _Fault(
                    "2050",
                    "String length is either shorter or longer than supported by specification",
                    "DocNumber: at most 21 characters",
                )
            store = self.credit_memos if entity == "CreditMemo" else self.refund_receipts
            if any(item.get("DocNumber") == number for item in store.values()):
                raise _Fault(
                    "6140",
                    "Duplicate Document Number Error",
                    f"Duplicate Document Number Error : You must specify a different number. This number "
                    f"has already been used. DocNumber={number}",
                )
        note = raw.get("PrivateNote")
        if note is not None and (not isinstance(note, str) or len(note) > 4000):
            raise _Fault(
                "2050",
                "String length is either shorter or longer than supported by specification",
                "PrivateNote: at most 4000 characters",
            )
        tax = raw.get("GlobalTaxCalculation")
        if tax not in (None, "TaxInclusive", "TaxExcluded", "NotApplicable"):
            raise _Fault("2170", "Invalid Enumeration", f"GlobalTaxCalculation {tax!r}")
        lines = raw.get("Line")
        if not isinstance(lines, list) or not lines:
            raise _Fault(
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: You must add at least one line item.",
            )
        rendered, total = [], Decimal(0)
        for number_in_list, line in enumerate(lines, start=1):
            rendered.append(self._line(line, number_in_list, currency))
            total += rendered[-1]["Amount"]
        return {
            "Id": self._id(),
            "SyncToken": "0",
            "DocNumber": number or str(self._next_id),
            "TxnDate": txn_date.isoformat(),
            "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
            "CurrencyRef": {"value": currency},
            "GlobalTaxCalculation": tax or "TaxExcluded",
            "PrivateNote": note or "",
            "Line": rendered,
            "TotalAmt": total,
            "MetaData": self._meta(),
        }

    def _line(self, line: Any, number: int, currency: str) -> dict[str, Any]:
        if not isinstance(line, Mapping) or line.get("DetailType") != "SalesItemLineDetail":
            raise _Fault("2170", "Invalid Enumeration", "Line.DetailType: SalesItemLineDetail expected")
        unknown = sorted(set(line) - {"DetailType", "Amount", "Description", "SalesItemLineDetail", "LineNum"})
        if unknown:
            raise _Fault("2010", "Request has invalid or unsupported property", f"Property Name:{unknown[0]}")
        detail = line.get("SalesItemLineDetail")
        if not isinstance(detail, Mapping):
            raise _Fault(
                "2020", "Required param missing, need to supply the required value for the API", "SalesItemLineDetail"
            )
        item = _ref(detail.get("ItemRef"), "ItemRef")
        if item not in self.items:
            raise _Fault("2500", "Invalid Reference Id", f"Invalid Reference Id : Item {item} does not exist")
        tax_code = _ref(detail["TaxCodeRef"], "TaxCodeRef") if "TaxCodeRef" in detail else None
        if tax_code is not None and tax_code not in self.tax_codes:
            raise _Fault("2500", "Invalid Reference Id", f"Invalid Reference Id : TaxCode {tax_code} does not exist")
        amount = _amount(line.get("Amount"), "Line.Amount", currency)
        if amount <= 0:
            raise _Fault(
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: You must set a transaction amount.",
            )
        quantity, unit = detail.get("Qty"), detail.get("UnitPrice")
        if quantity is not None or unit is not None:
            if not isinstance(quantity, int | Decimal) or not isinstance(unit, int | Decimal):
                raise _Fault("2020", "Required param missing, need to supply the required value for the API", "Qty")
            if Decimal(quantity) * Decimal(unit) != amount:
                raise _Fault(
                    "6070",
                    "Amount calculation incorrect in the request",
                    f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}",
                )
        return {
            "Id": str(number),
            "LineNum": number,
            "Description": str(line.get("Description") or ""),
            "Amount": amount,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": dict(detail),
        }

    def _create_credit_memo(self, request: Request) -> tuple[int, Any]:
        memo = self._document(self._body(request, _DOCUMENT_FIELDS), "CreditMemo")
        memo["RemainingCredit"] = memo["TotalAmt"]
        memo["Balance"] = memo["TotalAmt"]
        self.credit_memos[memo["Id"]] = memo
        return 200, self._wrap("CreditMemo", memo)

    def _create_refund_receipt(self, request: Request) -> tuple[int, Any]:
        raw = self._body(request, _DOCUMENT_FIELDS | {"DepositToAccountRef"})
        account_id = _ref(raw.get("DepositToAccountRef"), "DepositToAccountRef")
        account = self.accounts.get(account_id)
        if account is None or account["AccountType"] not in {"Bank", "Other Current Asset"}:
            raise _Fault(
                "2500", "Invalid Reference Id", f"Invalid Reference Id : Account {account_id} cannot pay out a refund"
            )
        receipt = self._document(raw, "RefundReceipt")
        receipt["DepositToAccountRef"] = {"value": account_id, "name": account["Name"]}
        receipt["Balance"] = Decimal(0)
        self.refund_receipts[receipt["Id"]] = receipt
        return 200, self._wrap("RefundReceipt", receipt)

    def _create_payment(self, request: Request) -> tuple[int, Any]:
        raw = self._body(request, _PAYMENT_FIELDS)
        customer_id = _ref(raw.get("CustomerRef"), "CustomerRef")
        currency = _ref(raw["CurrencyRef"], "CurrencyRef") if "CurrencyRef" in raw else "USD"
        total = _amount(raw.get("TotalAmt"), "TotalAmt", currency)
        links: dict[str, list[tuple[dict[str, Any], Decimal]]] = {"Invoice": [], "CreditMemo": []}
        for line in raw.get("Line") or []:
            amount = _amount(line.get("Amount") if isinstance(line, Mapping) else None, "Line.Amount", currency)
            for link in line.get("LinkedTxn") or []:
                kind = link.get("TxnType") if isinstance(link, Mapping) else None
                store = {"Invoice": self.invoices, "CreditMemo": self.credit_memos}.get(str(kind))
                target = store.get(str(link.get("TxnId"))) if store is not None else None
                if target is None or target["CustomerRef"]["value"] != customer_id:
                    raise _Fault("2500", "Invalid Reference Id", f"Invalid Reference Id : {kind} {link}")
                balance = target["RemainingCredit"] if kind == "CreditMemo" else target["Balance"]
                if amount > balance:
                    raise _Fault(
                        "6000",
                        "A business validation error has occurred while processing your request",
                        f"Business Validation Error: {amount} is more than {kind} {target['Id']} has ({balance})",
                    )
                links[str(kind)].append((target, amount))
        applied = sum((amount for _, amount in links["Invoice"]), Decimal(0))
        credited = sum((amount for _, amount in links["CreditMemo"]), Decimal(0))
        if applied != total + credited:
            raise _Fault(
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: the amounts applied do not add up to the payment",
            )
        payment: dict[str, Any] = {
            "Id": self._id(),
            "SyncToken": "0",
            "CustomerRef": {"value": customer_id},
            "CurrencyRef": {"value": currency},
            "TotalAmt": total,
            "UnappliedAmt": Decimal(0),
            "TxnDate": str(raw.get("TxnDate") or date.fromtimestamp(self.clock()).isoformat()),
            "PrivateNote": str(raw.get("PrivateNote") or ""),
            "Line": raw.get("Line"),
            "MetaData": self._meta(),
        }
        for invoice, amount in links["Invoice"]:
            invoice["Balance"] -= amount
            invoice["LinkedTxn"].append({"TxnId": payment["Id"], "TxnType": "Payment"})
        for memo, amount in links["CreditMemo"]:
            memo["RemainingCredit"] -= amount
            memo["Balance"] = memo["RemainingCredit"]
        self.payments[payment["Id"]] = payment
        return 200, self._wrap("Payment", payment)


# ---------------------------------------------------------------- demo scenarios (make demo)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import books_scenarios

        return books_scenarios("quickbooks")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
