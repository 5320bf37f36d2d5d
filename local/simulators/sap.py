"""SAP S/4HANA sandbox simulator: the two OData v2 services refundflow's SAP books call, on SAP Gateway's paths.

Mounted by the local stack at ``/_sandbox/sap`` with the system's paths below it (``/sap/opu/odata/sap/<service>``):

- ``API_BILLING_DOCUMENT_SRV``: ``A_BillingDocument('<id>')`` and ``A_BillingDocumentItem`` filtered by
  ``SalesDocument`` (invoices seeded by the tests and the demo; credit memos billed from credit memo requests).
- ``API_CREDIT_MEMO_REQUEST_SRV``: ``A_CreditMemoRequest`` read with ``$filter=PurchaseOrderByCustomer eq '...'``
  (and ``$expand=to_Item``), created by a deep insert with its items and their price condition.
- ``API_CUSTOMER_RETURN_SRV``: ``A_CustomerReturn`` read with ``$filter=<property> eq '...'`` (and
  ``$expand=to_Item``) or by key, created by a deep insert with its items and their price condition (the
  ``customer_return`` variant: a return of our refund, billed into its credit memo like a request); or created by
  ``/_control/customer-returns`` for a refund id (the merchant's returns process; with an ``invoice`` and
  ``amount_minor`` it has an item, and SAP bills its credit memo once the goods receipt is posted);
  ``/_control/customer-returns/<id>/goods-receipt`` posts the returns delivery's goods receipt,
  ``.../complete`` completes its processing). Each change raises the business event
  ``sap.s4.beh.customerreturn.v1.CustomerReturn.Changed.v1`` (CloudEvents JSON), pushed like an Event Mesh webhook
  subscription to the configured endpoint with Basic authentication (user ``EVENT_MESH_WEBHOOK``, the webhook
  secret as password), retried on failure.

Sign-in: HTTP basic authentication of the communication user, or a bearer access token from the OAuth 2.0 token
endpoint ``/sap/bc/sec/oauth2/token`` (client credentials: the communication user's OAuth client id and password,
HTTP basic on the token request; tokens expire after ``token_lifetime_seconds``, and ``expire_tokens`` ends them at
once; refusals in RFC 6749's ``{"error", "error_description"}``).

Strict like SAP Gateway: no valid credentials or token is a 401; a write needs the
CSRF token fetched by ``GET <service>/`` with ``x-csrf-token: Fetch`` and the session cookie of that fetch (403 with
``x-csrf-token: Required`` otherwise); properties the entity type does not have, or does not let a create set
(``ReferenceSDDocumentCategory``, an item's ``NetAmount``), are refused (400); every error in the
OData v2 shape ``{"error": {"code", "message": {"lang", "value"}, "innererror": {"errordetails": [...]}}}``; amounts
are ``Edm.Decimal`` strings with the currency's decimals, dates ``/Date(ms)/``. There is no idempotency key: the
same request posted twice makes two credit memo requests.

Billing: a request without a billing block is billed at once into a credit memo (category ``O``), as if SAP's
billing run had come; its tax is computed per item from the net price at the invoice's rate, rounded half up. With
``billing_block`` set, new requests carry it in ``HeaderBillingBlockReason`` and wait until ``release_billing_block``
(a person in SAP). With ``closed_period`` set, a billed credit memo cannot be posted to accounting
(``AccountingPostingStatus`` ``B``).
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, exact_json, json_response

ROOT = "/sap/opu/odata/sap"
BILLING = f"{ROOT}/API_BILLING_DOCUMENT_SRV"
REQUESTS = f"{ROOT}/API_CREDIT_MEMO_REQUEST_SRV"
RETURNS = f"{ROOT}/API_CUSTOMER_RETURN_SRV"
SERVICES = ("API_BILLING_DOCUMENT_SRV", "API_CREDIT_MEMO_REQUEST_SRV", "API_CUSTOMER_RETURN_SRV")
WEBHOOK_USER = "EVENT_MESH_WEBHOOK"
DEFAULT_WEBHOOK_PASSWORD = "local-sap-event-mesh-password"
RETURN_CHANGED = "sap.s4.beh.customerreturn.v1.CustomerReturn.Changed.v1"
DEFAULT_USERNAME = "REFUNDFLOW_COMM_USER"
DEFAULT_PASSWORD = "local-sap-password"
TOKEN_PATH = "/sap/bc/sec/oauth2/token"
SESSION_COOKIE = "SAP_SESSIONID_S4H_100"
DIGITS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3}
TAX_PERCENT = Decimal(19)

_HEADER_FIELDS = {
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
    "HeaderBillingBlockReason",
    "to_Item",
}
_ITEM_FIELDS = {
    "CreditMemoRequestItem",
    "Material",
    "CreditMemoRequestItemText",
    "RequestedQuantity",
    "RequestedQuantityUnit",
    "to_PricingElement",
}
_PRICING_FIELDS = {"ConditionType", "ConditionRateValue", "ConditionCurrency"}
# A_CustomerReturnType / A_CustomerReturnItemType: the properties a create may set (SAP Cloud SDK CustomerReturn,
# CustomerReturnItem; ReferenceSDDocumentCategory and an item's NetAmount are computed by SAP).
_RETURN_HEADER_FIELDS = (_HEADER_FIELDS - {"CreditMemoRequestType"}) | {"CustomerReturnType"}
_RETURN_ITEM_FIELDS = (_ITEM_FIELDS - {"CreditMemoRequestItem", "CreditMemoRequestItemText"}) | {
    "CustomerReturnItem",
    "CustomerReturnItemText",
}
_FILTER = re.compile(r"^([A-Z][A-Za-z0-9_]{1,39}) eq '([^']{1,35})'$")
# The A_CustomerReturn properties a $filter may name (custom fields: YY1_...).
_RETURN_FILTERABLE = {"PurchaseOrderByCustomer", "SDDocumentReason", "CustomerReturnType", "SoldToParty"}


class _ODataError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


def _odata_error(status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> Response:
    body = {
        "error": {
            "code": code,
            "message": {"lang": "en", "value": message},
            "innererror": {
                "transactionid": uuid.uuid4().hex.upper(),
                "errordetails": details or [{"code": code, "message": message, "severity": "error"}],
            },
        }
    }
    return Response(exact_json(body), status=status, mimetype="application/json")


def _ok(entity: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(exact_json({"d": entity}), status=status, mimetype="application/json", headers=headers)


def _date(day: date) -> str:
    return f"/Date({int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000})/"


def _parse_date(value: Any, field: str) -> date:
    match = re.fullmatch(r"/Date\((-?\d+)\)/", value) if isinstance(value, str) else None
    if match is None:
        raise _ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Invalid value for property '{field}'")
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()


def _datetime_offset(seconds: float) -> str:
    """``Edm.DateTimeOffset`` in OData v2 JSON."""
    return f"/Date({int(seconds * 1000)}+0000)/"


def _round(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-DIGITS.get(currency, 2)), ROUND_HALF_UP)


def _amount(value: Decimal, currency: str) -> str:
    return format(_round(value, currency), "f")


class SapSimulator(Simulator):
    """A stateful S/4HANA system with one communication user, invoices, credit memo requests and credit memos."""

    name = "sap"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        # The credit's write in either variant: the credit memo request, or the customer return.
        "record_credit": (
            "POST",
            r"^/sap/opu/odata/sap/(API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest|API_CUSTOMER_RETURN_SRV/A_CustomerReturn)$",
        ),
    }
    TRANSIENT_STATUS: ClassVar[int] = 503

    def __init__(
        self,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        webhook_password: str = DEFAULT_WEBHOOK_PASSWORD,
        token_lifetime_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.username, self.password = username, password
        self.webhook_password = webhook_password
        self.token_lifetime_seconds = token_lifetime_seconds
        self.clock = clock
        self._lock = threading.RLock()
        self.reset_state()
        self.route(TOKEN_PATH, self._token, methods=["POST"])
        for service in SERVICES:
            self.route(f"{ROOT}/{service}/", self._service_document, methods=["GET"])
        self.route(f"{BILLING}/A_BillingDocument('<number>')", self._odata(self._get_billing), methods=["GET"])
        self.route(f"{BILLING}/A_BillingDocumentItem", self._odata(self._list_billing_items), methods=["GET"])
        self.route(f"{REQUESTS}/A_CreditMemoRequest", self._odata(self._list_requests), methods=["GET"])
        self.route(f"{REQUESTS}/A_CreditMemoRequest", self._odata(self._create_request, write=True), methods=["POST"])
        self.route(f"{RETURNS}/A_CustomerReturn('<number>')", self._odata(self._get_return), methods=["GET"])
        self.route(f"{RETURNS}/A_CustomerReturn", self._odata(self._list_returns), methods=["GET"])
        self.route(f"{RETURNS}/A_CustomerReturn", self._odata(self._create_return, write=True), methods=["POST"])
        self.route("/_control/customer-returns", self._control_create_return, methods=["POST"])
        self.route("/_control/customer-returns/<number>/goods-receipt", self._control_receive, methods=["POST"])
        self.route("/_control/customer-returns/<number>/complete", self._control_complete, methods=["POST"])

    # ---------------------------------------------------------------- state

    def reset_state(self) -> None:
        self.billing_documents: dict[str, dict[str, Any]] = {}
        self.billing_items: list[dict[str, Any]] = []
        self.credit_memo_requests: dict[str, dict[str, Any]] = {}
        self.customer_returns: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, str] = {}
        self.access_tokens: dict[str, float] = {}
        self.token_requests = 0
        self.billing_block: str = ""
        self.closed_period = False
        self._numbers = {
            "invoice": 90000000,
            "request": 60000000,
            "memo": 90100000,
            "accounting": 1400000000,
            "return": 60100000,
        }

    def _next(self, kind: str) -> str:
        self._numbers[kind] += 1
        return str(self._numbers[kind])

    # ---------------------------------------------------------------- BooksSandbox

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The communication user the function signs in with, and the Basic credentials the Event Mesh webhook
        subscription sends to the stack's ``/webhooks/sap``."""
        return {
            "api": {
                "username": self.username,
                "password": self.password,
                # SAP_AUTH=oauth2_client_credentials: the arrangement's OAuth 2.0 client is the communication user.
                "client_id": self.username,
                "client_secret": self.password,
            },
            "verification": {"username": WEBHOOK_USER, "passwords": [self.webhook_password]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where the webhook subscription pushes the customer returns' business events (Basic authentication)."""
        self.webhooks.configure(url, self.webhook_password)

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """Event Mesh's webhook target authentication: Basic, with the subscription's user and password."""
        pair = f"{WEBHOOK_USER}:{secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    # ---------------------------------------------------------------- customer returns

    def create_customer_return(
        self,
        refund_id: str,
        *,
        field: str = "PurchaseOrderByCustomer",
        invoice: str | None = None,
        amount_minor: int | None = None,
    ) -> str:
        """A customer return (type CBAR) whose ``field`` carries ``refund_id``, as the merchant's returns process
        creates it; returns its number (no event: the goods are not back yet). With ``invoice`` and
        ``amount_minor`` it returns goods of that gross from that invoice (one item, net at the invoice's tax rate),
        and is billed into its credit memo once its goods receipt is posted."""
        with self._lock:
            number = self._next("return")
            now = self.clock()
            items: list[dict[str, Any]] = []
            extra: dict[str, Any] = {}
            if invoice is not None and amount_minor is not None:
                billed = self.billing_documents[invoice]
                currency = billed["TransactionCurrency"]
                gross = Decimal(amount_minor).scaleb(-DIGITS.get(currency, 2))
                net = self._net_for_gross(gross, billed)
                items = [self._return_item(number, "10", "TG11", "Returned goods", net, currency)]
                extra = {
                    "SoldToParty": billed["SoldToParty"],
                    "TransactionCurrency": currency,
                    "TotalNetAmount": _amount(net, currency),
                    "ReferenceSDDocument": invoice,
                    "ReferenceSDDocumentCategory": "M",
                }
            self.customer_returns[number] = {
                "CustomerReturn": number,
                "CustomerReturnType": "CBAR",
                "SalesOrganization": "1010",
                "DistributionChannel": "10",
                "OrganizationDivision": "00",
                "SoldToParty": "17100001",
                "PurchaseOrderByCustomer": "",
                "SDDocumentReason": "",
                "CustomerReturnDate": _date(datetime.fromtimestamp(now, tz=UTC).date()),
                "CreationDate": _date(datetime.fromtimestamp(now, tz=UTC).date()),
                "LastChangeDateTime": _datetime_offset(now),
                "OverallSDProcessStatus": "A",
                "OverallDeliveryStatus": "A",
                "OverallSDDocumentRejectionSts": "A",
                "HeaderBillingBlockReason": self.billing_block,
                "TransactionCurrency": "EUR",
                "ReferenceSDDocument": "",
                "ReferenceSDDocumentCategory": "",
                **extra,
                field: refund_id,
                "_items": items,
                "_billed": False,
                "_bill_on_receipt": True,
            }
            return number

    def _net_for_gross(self, gross: Decimal, invoice: Mapping[str, Any]) -> Decimal:
        currency = invoice["TransactionCurrency"]
        if not Decimal(invoice["TaxAmount"]):
            return gross
        unit = Decimal(1).scaleb(-DIGITS.get(currency, 2))
        start = (gross / (1 + TAX_PERCENT / 100)).quantize(unit, ROUND_HALF_UP)
        for candidate in (start, start + unit, start - unit):
            if candidate + _round(candidate * TAX_PERCENT / 100, currency) == gross:
                return candidate
        return start

    @staticmethod
    def _return_item(
        number: str, position: str, material: str, text: str, net: Decimal, currency: str
    ) -> dict[str, Any]:
        return {
            "CustomerReturn": number,
            "CustomerReturnItem": position,
            "Material": material,
            "CustomerReturnItemText": text[:40],
            "RequestedQuantity": "1",
            "RequestedQuantityUnit": "EA",
            "TransactionCurrency": currency,
            "NetAmount": _amount(net, currency),
        }

    def post_goods_receipt(self, number: str) -> dict[str, Any]:
        """The warehouse posts the goods receipt of the return's returns delivery: delivery status C, and the
        business event goes to the webhook."""
        with self._lock:
            found = self.customer_returns[number]
            found["OverallDeliveryStatus"] = "C"
            if found["_items"]:
                self._bill(found)
        return self._change_return(number, OverallDeliveryStatus="C", OverallSDProcessStatus="B")

    def complete_return(self, number: str) -> dict[str, Any]:
        """The return is processed completely (credit memo request created from it, inspection done)."""
        return self._change_return(number, OverallSDProcessStatus="C")

    def _change_return(self, number: str, **changes: str) -> dict[str, Any]:
        with self._lock:
            found = self.customer_returns[number]
            found.update(changes, LastChangeDateTime=_datetime_offset(self.clock()))
            rendered = self._render_request(found, items=False)
            event_id = str(uuid.uuid4())
            event = {
                "specversion": "1.0",
                "type": RETURN_CHANGED,
                "source": "/default/sap.s4.beh/0M4N8N0",
                "id": event_id,
                "time": datetime.fromtimestamp(self.clock(), tz=UTC).isoformat().replace("+00:00", "Z"),
                "datacontenttype": "application/json",
                "data": {"CustomerReturn": number},
            }
            self.webhooks.send(event_id, RETURN_CHANGED, exact_json(event).encode())
            return rendered

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (as an hour passing would)."""
        with self._lock:
            self.access_tokens.clear()

    def seed_invoice(self, amount_minor: int, currency: str, *, paid: bool = False) -> str:
        """A posted invoice (F2) of one item whose gross is ``amount_minor`` ISO minor units, taxed at 19 % where a
        net amount gives exactly that gross (tax-exempt otherwise), cleared when ``paid``; returns its number."""
        unit = Decimal(1).scaleb(-DIGITS.get(currency, 2))
        gross = Decimal(amount_minor) * unit
        net, tax = gross, Decimal(0)
        start = (gross / (1 + TAX_PERCENT / 100)).quantize(unit, ROUND_HALF_UP)
        for candidate in (start, start + unit, start - unit):
            if candidate + _round(candidate * TAX_PERCENT / 100, currency) == gross:
                net, tax = candidate, gross - candidate
                break
        with self._lock:
            number = self._next("invoice")
            customer = str(17100000 + len(self.billing_documents) + 1)
            self.billing_documents[number] = self._billing_document(
                number, "F2", "M", customer, currency, net, tax, cleared=paid, reference=f"SO-{number}"
            )
            self.billing_items.append({"BillingDocument": number, "BillingDocumentItem": "10", "SalesDocument": ""})
            return number

    def documents(self) -> list[dict[str, Any]]:
        """Every credit memo request and every customer return with billable items, with the credit memos billed
        from it (our refund id is its PurchaseOrderByCustomer)."""
        with self._lock:
            found = [self._render_request(request, memos=True) for request in self.credit_memo_requests.values()]
            # A return without items (the merchant's return of goods that SAP does not bill) credits nothing.
            returns = [item for item in self.customer_returns.values() if item["_items"]]
            return found + [self._render_request(item, memos=True) for item in returns]

    def release_billing_block(self, request_number: str) -> dict[str, Any]:
        """A person removes the billing block of a request or a customer return in SAP; the billing run then bills
        it (a return whose goods receipt is still to come waits for it)."""
        with self._lock:
            request = self.credit_memo_requests.get(request_number) or self.customer_returns[request_number]
            request["HeaderBillingBlockReason"] = ""
            if request.get("_bill_on_receipt") and request.get("OverallDeliveryStatus") != "C":
                return self._render_request(request, memos=True)
            return self._bill(request)

    def credit_memos(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(doc) for doc in self.billing_documents.values() if doc["SDDocumentCategory"] == "O"]

    # ---------------------------------------------------------------- documents

    def _billing_document(
        self,
        number: str,
        kind: str,
        category: str,
        customer: str,
        currency: str,
        net: Decimal,
        tax: Decimal,
        *,
        cleared: bool,
        reference: str,
        posted: bool = True,
    ) -> dict[str, Any]:
        today = datetime.fromtimestamp(self.clock(), tz=UTC).date()
        return {
            "BillingDocument": number,
            "BillingDocumentType": kind,
            "SDDocumentCategory": category,
            "BillingDocumentCategory": "L",
            "BillingDocumentDate": _date(today),
            "SalesOrganization": "1010",
            "DistributionChannel": "10",
            "Division": "00",
            "SoldToParty": customer,
            "PayerParty": customer,
            "CompanyCode": "1010",
            "TransactionCurrency": currency,
            "TotalNetAmount": _amount(net, currency),
            "TaxAmount": _amount(tax, currency),
            "TotalGrossAmount": _amount(net + tax, currency),
            "BillingDocumentIsCancelled": False,
            "AccountingPostingStatus": "C" if posted else "B",
            "AccountingDocument": self._next("accounting") if posted else "",
            "InvoiceClearingStatus": "C" if cleared else "A",
            "PurchaseOrderByCustomer": reference,
        }

    def _bill(self, request: dict[str, Any]) -> dict[str, Any]:
        """The billing run: the credit memo of an unblocked request (once)."""
        if request["HeaderBillingBlockReason"] or request["_billed"] or not request["_items"]:
            return self._render_request(request, memos=True)
        sales_document = _sales_document(request)
        currency = request["TransactionCurrency"]
        invoice = self.billing_documents[request["ReferenceSDDocument"]]
        net_invoice, tax_invoice = Decimal(invoice["TotalNetAmount"]), Decimal(invoice["TaxAmount"])
        rate = tax_invoice / net_invoice if net_invoice else Decimal(0)
        percent = TAX_PERCENT if tax_invoice and abs(rate - TAX_PERCENT / 100) < Decimal("0.01") else Decimal(0)
        net = sum((Decimal(item["NetAmount"]) for item in request["_items"]), Decimal(0))
        tax = sum(
            (_round(Decimal(item["NetAmount"]) * percent / 100, currency) for item in request["_items"]), Decimal(0)
        )
        number = self._next("memo")
        memo = self._billing_document(
            number,
            "G2",
            "O",
            request["SoldToParty"],
            currency,
            net,
            tax,
            cleared=False,
            reference=request["PurchaseOrderByCustomer"],
            posted=not self.closed_period,
        )
        memo["PaymentMethod"] = request.get("PaymentMethod", "")
        self.billing_documents[number] = memo
        for item in request["_items"]:
            self.billing_items.append(
                {
                    "BillingDocument": number,
                    "BillingDocumentItem": item.get("CreditMemoRequestItem") or item["CustomerReturnItem"],
                    "SalesDocument": sales_document,
                }
            )
        request["_billed"] = True
        request["OverallOrdReltdBillgStatus"] = "C"
        return self._render_request(request, memos=True)

    def _render_request(self, request: dict[str, Any], *, memos: bool = False, items: bool = True) -> dict[str, Any]:
        rendered = {key: value for key, value in request.items() if not key.startswith("_")}
        if items:
            rendered["to_Item"] = {"results": [dict(item) for item in request["_items"]]}
        if memos:
            numbers = {
                row["BillingDocument"] for row in self.billing_items if row["SalesDocument"] == _sales_document(request)
            }
            rendered["CreditMemos"] = [dict(self.billing_documents[number]) for number in sorted(numbers)]
        return rendered

    # ---------------------------------------------------------------- gateway: auth, CSRF, errors

    def fault_response(self, fault: FaultRule) -> Response:
        if fault.body is not None:
            return super().fault_response(fault)
        status = fault.status or 500
        response = _odata_error(status, "/IWFND/CM_BEC/026", f"Simulated fault: HTTP {status}")
        response.headers.update(fault.headers)
        return response

    def _basic_user(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, self.username) and secrets.compare_digest(password, self.password)

    def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            with self._lock:
                expires_at = self.access_tokens.get(header[7:])
            return expires_at is not None and self.clock() < expires_at
        return self._basic_user(header)

    def _token(self, request: Request) -> Response:
        """OAuth 2.0 client credentials: the client authenticates with HTTP basic (or the form's client_id and
        client_secret); the answer is a bearer token for ``token_lifetime_seconds``."""
        header = request.headers.get("Authorization", "")
        if not header and "client_id" in request.form:
            pair = f"{request.form.get('client_id', '')}:{request.form.get('client_secret', '')}"
            header = "Basic " + base64.b64encode(pair.encode()).decode()
        with self._lock:
            self.token_requests += 1
        if not self._basic_user(header):
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                401,
                {"WWW-Authenticate": 'Basic realm="SAP NetWeaver Application Server [S4H/100]"'},
            )
        if request.form.get("grant_type") != "client_credentials":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "Grant type is not supported"}, 400
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.access_tokens[token] = self.clock() + self.token_lifetime_seconds
        scope = request.form.get("scope") or "API_CREDIT_MEMO_REQUEST_SRV_0001 API_BILLING_DOCUMENT_SRV_0001"
        return json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": str(self.token_lifetime_seconds),
                "scope": scope,
            }
        )

    @staticmethod
    def _unauthorized() -> Response:
        return Response(
            "<html><body>Logon failed</body></html>",
            status=401,
            mimetype="text/html",
            headers={"WWW-Authenticate": 'Basic realm="SAP NetWeaver Application Server [S4H/100]"'},
        )

    def _service_document(self, request: Request) -> Response:
        if not self._authenticated(request):
            return self._unauthorized()
        headers: dict[str, str] = {}
        response = _ok(
            {"EntitySets": ["A_BillingDocument", "A_BillingDocumentItem", "A_CreditMemoRequest", "A_CustomerReturn"]}
        )
        if request.headers.get("x-csrf-token", "").lower() == "fetch":
            session = request.cookies.get(SESSION_COOKIE) or secrets.token_hex(16)
            token = base64.b64encode(secrets.token_bytes(18)).decode()
            with self._lock:
                self.sessions[session] = token
            headers["x-csrf-token"] = token
            response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True)
        response.headers.update(headers)
        return response

    def _odata(self, handler: Callable[..., Response], *, write: bool = False) -> Callable[..., Response]:
        def endpoint(request: Request, **arguments: Any) -> Response:
            if not self._authenticated(request):
                return self._unauthorized()
            if write:
                session = request.cookies.get(SESSION_COOKIE, "")
                token = request.headers.get("x-csrf-token", "")
                with self._lock:
                    expected = self.sessions.get(session)
                if not token or expected is None or not secrets.compare_digest(token, expected):
                    return Response(
                        "CSRF token validation failed",
                        status=403,
                        mimetype="text/plain",
                        headers={"x-csrf-token": "Required"},
                    )
            try:
                with self._lock:
                    return handler(request, **arguments)
            except _ODataError as error:
                details = error.details or None
                return _odata_error(error.status, error.code, error.message, details)

        endpoint.__name__ = handler.__name__
        return endpoint

    @staticmethod
    def _filter(request: Request, field: str) -> str:
        text = request.args.get("$filter", "")
        match = _FILTER.fullmatch(text)
        if match is None or match.group(1) != field:
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Invalid filter expression: '{text}'")
        return match.group(2)

    # ---------------------------------------------------------------- API_BILLING_DOCUMENT_SRV

    def _get_billing(self, request: Request, number: str) -> Response:
        document = self.billing_documents.get(number)
        if document is None:
            raise _ODataError(404, "/IWBEP/CM_MGW_RT/020", "Resource not found for the segment 'A_BillingDocument'")
        return _ok(dict(document))

    def _list_billing_items(self, request: Request) -> Response:
        sales_document = self._filter(request, "SalesDocument")
        rows = [dict(row) for row in self.billing_items if row["SalesDocument"] == sales_document]
        return _ok({"results": rows})

    # ---------------------------------------------------------------- API_CUSTOMER_RETURN_SRV

    def _get_return(self, request: Request, number: str) -> Response:
        found = self.customer_returns.get(number)
        if found is None:
            raise _ODataError(404, "/IWBEP/CM_MGW_RT/020", "Resource not found for the segment 'A_CustomerReturn'")
        return _ok(self._render_request(found, items=False))

    def _list_returns(self, request: Request) -> Response:
        text = request.args.get("$filter", "")
        match = _FILTER.fullmatch(text)
        if match is None:
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Invalid filter expression: '{text}'")
        field, value = match.groups()
        if field not in _RETURN_FILTERABLE and not field.startswith("YY1_"):
            raise _ODataError(
                400, "/IWBEP/CM_MGW_RT/004", f"Property '{field}' not found in type 'A_CustomerReturnType'"
            )
        expand = request.args.get("$expand", "")
        if expand not in {"", "to_Item"}:
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/005", f"Navigation property '{expand}' not found")
        found = [
            self._render_request(item, items=expand == "to_Item")
            for item in self.customer_returns.values()
            if item.get(field) == value
        ]
        return _ok({"results": found})

    def _create_return(self, request: Request) -> Response:
        """The deep insert of a customer return with reference to an invoice (our ``customer_return`` variant)."""
        raw = self._entity_body(request)
        self._known(raw, _RETURN_HEADER_FIELDS, "A_CustomerReturnType")
        required = ("CustomerReturnType", "SalesOrganization", "DistributionChannel", "OrganizationDivision")
        invoice, currency, reference = self._check_header(raw, required)
        items = raw.get("to_Item")
        if not isinstance(items, list) or not items:
            raise _ODataError(400, "V1/766", "Sales document contains no items: it is not saved")
        number = self._next("return")
        parsed = [self._return_item_from(number, item, currency) for item in items]
        net = sum((Decimal(item["NetAmount"]) for item in parsed), Decimal(0))
        now = self.clock()
        created = {
            "CustomerReturn": number,
            "CustomerReturnType": raw["CustomerReturnType"],
            "SalesOrganization": raw["SalesOrganization"],
            "DistributionChannel": raw["DistributionChannel"],
            "OrganizationDivision": raw["OrganizationDivision"],
            "SoldToParty": raw["SoldToParty"],
            "PurchaseOrderByCustomer": reference,
            "CustomerPurchaseOrderDate": raw.get("CustomerPurchaseOrderDate"),
            "CustomerReturnDate": _date(datetime.fromtimestamp(now, tz=UTC).date()),
            "CreationDate": _date(datetime.fromtimestamp(now, tz=UTC).date()),
            "LastChangeDateTime": _datetime_offset(now),
            "TransactionCurrency": currency,
            "TotalNetAmount": _amount(net, currency),
            "SDDocumentReason": raw.get("SDDocumentReason", ""),
            "ReferenceSDDocument": invoice["BillingDocument"],
            "ReferenceSDDocumentCategory": "M",
            "PaymentMethod": raw.get("PaymentMethod", ""),
            "HeaderBillingBlockReason": raw.get("HeaderBillingBlockReason") or self.billing_block,
            "OverallSDProcessStatus": "A",
            "OverallDeliveryStatus": "A",
            "OverallSDDocumentRejectionSts": "A",
            "OverallOrdReltdBillgStatus": "A",
            "_items": parsed,
            "_billed": False,
            "_bill_on_receipt": False,
        }
        self.customer_returns[number] = created
        self._bill(created)
        return _ok(self._render_request(created), status=201)

    def _return_item_from(self, number: str, raw: Any, currency: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/021", "An item must be an entity")
        self._known(raw, _RETURN_ITEM_FIELDS, "A_CustomerReturnItemType")
        net, quantity, condition = self._priced(raw, currency, "A_CustomerReturnItemPrcgElmntType")
        item = self._return_item(
            number,
            str(raw.get("CustomerReturnItem") or "10"),
            str(raw["Material"]),
            str(raw.get("CustomerReturnItemText") or ""),
            net,
            currency,
        )
        item.update(RequestedQuantity=format(quantity, "f"), ConditionType=condition.get("ConditionType"))
        return item

    def _control_create_return(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        refund_id, field = payload.get("refund_id"), payload.get("field", "PurchaseOrderByCustomer")
        invoice, amount = payload.get("invoice"), payload.get("amount_minor")
        usage = "body: {refund_id, field?, invoice?, amount_minor?}"
        if (
            not isinstance(refund_id, str)
            or not refund_id
            or set(payload) - {"refund_id", "field", "invoice", "amount_minor"}
        ):
            return json_response({"error": usage}, 400)
        if (invoice is None) != (amount is None) or (invoice is not None and invoice not in self.billing_documents):
            return json_response({"error": f"{usage}: invoice (an existing one) and amount_minor go together"}, 400)
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
            return json_response({"error": f"{usage}: amount_minor is a positive integer"}, 400)
        number = self.create_customer_return(refund_id, field=str(field), invoice=invoice, amount_minor=amount)
        return json_response({"CustomerReturn": number}, 201)

    def _control_receive(self, request: Request, number: str) -> Response:
        if number not in self.customer_returns:
            return json_response({"error": f"no customer return {number}"}, 404)
        return json_response(self.post_goods_receipt(number))

    def _control_complete(self, request: Request, number: str) -> Response:
        if number not in self.customer_returns:
            return json_response({"error": f"no customer return {number}"}, 404)
        return json_response(self.complete_return(number))

    # ---------------------------------------------------------------- API_CREDIT_MEMO_REQUEST_SRV

    def _list_requests(self, request: Request) -> Response:
        reference = self._filter(request, "PurchaseOrderByCustomer")
        expand = request.args.get("$expand", "")
        if expand not in {"", "to_Item"}:
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/005", f"Navigation property '{expand}' not found")
        found = [
            self._render_request(item, items=expand == "to_Item")
            for item in self.credit_memo_requests.values()
            if item["PurchaseOrderByCustomer"] == reference
        ]
        return _ok({"results": found})

    @staticmethod
    def _entity_body(request: Request) -> dict[str, Any]:
        try:
            raw = request.get_json(force=True)
        except Exception as error:
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/021", "Malformed JSON in the request body") from error
        if not isinstance(raw, dict):
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/021", "The request body must be an entity")
        return raw

    def _check_header(self, raw: Mapping[str, Any], required: tuple[str, ...]) -> tuple[dict[str, Any], str, str]:
        """A sales document header with reference to an invoice: its required fields, the invoice it refers to,
        the invoice's sold-to party and currency; returns the invoice, the currency and PurchaseOrderByCustomer."""
        for field in (*required, "SoldToParty"):
            if not isinstance(raw.get(field), str) or not raw[field]:
                raise _ODataError(400, "V1/212", f"Enter a value for field '{field}'")
        reference = raw.get("PurchaseOrderByCustomer", "")
        if not isinstance(reference, str) or len(reference) > 35:
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/022", "Invalid value for property 'PurchaseOrderByCustomer'")
        invoice = self.billing_documents.get(str(raw.get("ReferenceSDDocument") or ""))
        if invoice is None or invoice["SDDocumentCategory"] != "M":
            raise _ODataError(400, "V1/045", f"Reference document {raw.get('ReferenceSDDocument')} does not exist")
        if raw.get("SoldToParty") != invoice["SoldToParty"]:
            raise _ODataError(400, "V1/531", f"Sold-to party {raw.get('SoldToParty')} differs from the reference's")
        currency = raw.get("TransactionCurrency")
        if currency != invoice["TransactionCurrency"]:
            raise _ODataError(400, "V1/513", f"Currency {currency} differs from the reference document's")
        if raw.get("CustomerPurchaseOrderDate") is not None:
            _parse_date(raw["CustomerPurchaseOrderDate"], "CustomerPurchaseOrderDate")
        return invoice, str(currency), reference

    def _create_request(self, request: Request) -> Response:
        raw = self._entity_body(request)
        self._known(raw, _HEADER_FIELDS, "A_CreditMemoRequestType")
        required = ("CreditMemoRequestType", "SalesOrganization", "DistributionChannel", "OrganizationDivision")
        invoice, currency, reference = self._check_header(raw, required)
        items = raw.get("to_Item")
        if not isinstance(items, list) or not items:
            raise _ODataError(400, "V1/766", "Sales document contains no items: it is not saved")
        number = self._next("request")
        parsed = [self._item(number, item, str(currency)) for item in items]
        net = sum((Decimal(item["NetAmount"]) for item in parsed), Decimal(0))
        created = {
            "CreditMemoRequest": number,
            "CreditMemoRequestType": raw["CreditMemoRequestType"],
            "SalesOrganization": raw["SalesOrganization"],
            "DistributionChannel": raw["DistributionChannel"],
            "OrganizationDivision": raw["OrganizationDivision"],
            "SoldToParty": raw["SoldToParty"],
            "PurchaseOrderByCustomer": reference,
            "CustomerPurchaseOrderDate": raw.get("CustomerPurchaseOrderDate"),
            "CreditMemoRequestDate": _date(datetime.fromtimestamp(self.clock(), tz=UTC).date()),
            "TransactionCurrency": currency,
            "TotalNetAmount": _amount(net, str(currency)),
            "SDDocumentReason": raw.get("SDDocumentReason", ""),
            "ReferenceSDDocument": invoice["BillingDocument"],
            "ReferenceSDDocumentCategory": "M",
            "PaymentMethod": raw.get("PaymentMethod", ""),
            "HeaderBillingBlockReason": raw.get("HeaderBillingBlockReason") or self.billing_block,
            "OverallSDDocumentRejectionSts": "A",
            "OverallOrdReltdBillgStatus": "A",
            "_items": parsed,
            "_billed": False,
        }
        self.credit_memo_requests[number] = created
        self._bill(created)
        return _ok(self._render_request(created), status=201)

    def _item(self, number: str, raw: Any, currency: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/021", "An item must be an entity")
        self._known(raw, _ITEM_FIELDS, "A_CreditMemoRequestItemType")
        net, quantity, condition = self._priced(raw, currency, "A_CreditMemoReqItemPrcgElmntType")
        return {
            "CreditMemoRequest": number,
            "CreditMemoRequestItem": str(raw.get("CreditMemoRequestItem") or "10"),
            "Material": raw["Material"],
            "CreditMemoRequestItemText": str(raw.get("CreditMemoRequestItemText") or "")[:40],
            "RequestedQuantity": format(quantity, "f"),
            "RequestedQuantityUnit": raw.get("RequestedQuantityUnit", "EA"),
            "TransactionCurrency": currency,
            "NetAmount": _amount(net, currency),
            "ConditionType": condition.get("ConditionType"),
        }

    def _priced(self, raw: Mapping[str, Any], currency: str, pricing_entity: str) -> tuple[Decimal, Decimal, Any]:
        """An item's material, quantity and its one manual price condition: (net amount, quantity, condition)."""
        if not raw.get("Material"):
            raise _ODataError(400, "V1/212", "Enter a value for field 'Material'")
        try:
            quantity = Decimal(str(raw.get("RequestedQuantity")))
        except InvalidOperation as error:
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/022", "Invalid value for property 'RequestedQuantity'") from error
        conditions = raw.get("to_PricingElement") or []
        if not isinstance(conditions, list) or len(conditions) != 1 or not isinstance(conditions[0], dict):
            raise _ODataError(400, "V1/801", "Pricing error: the item has no price (one manual price condition)")
        condition = conditions[0]
        self._known(condition, _PRICING_FIELDS, pricing_entity)
        value = condition.get("ConditionRateValue")
        try:
            rate = Decimal(value) if isinstance(value, str) else None
        except InvalidOperation:
            rate = None
        if (
            rate is None
            or rate <= 0
            or rate != _round(rate, currency)
            or condition.get("ConditionCurrency") != currency
        ):
            raise _ODataError(400, "/IWBEP/CM_MGW_RT/022", "Invalid value for property 'ConditionRateValue'")
        return rate * quantity, quantity, condition

    @staticmethod
    def _known(raw: Mapping[str, Any], known: set[str], entity: str) -> None:
        for key in raw:
            if key not in known:
                raise _ODataError(
                    400, "/IWBEP/CM_MGW_RT/017", f"Property '{key}' is invalid for entity type '{entity}'"
                )


def _sales_document(document: Mapping[str, Any]) -> str:
    """The number billing items name as their SalesDocument: a credit memo request's or a customer return's."""
    return str(document.get("CustomerReturn") or document.get("CreditMemoRequest"))


def _return_scenario() -> Any:
    """SAP's own demo: a refund waits for its goods, the merchant's returns process has the customer return in
    SAP, the warehouse posts its goods receipt (the business event reaches /webhooks/sap), and the refund is paid
    and credited once. With ``SAP_CREDIT_DOCUMENT=customer_return`` the credit is that very return (SAP bills its
    credit memo after the goods receipt), never a second return; otherwise a credit memo request (the return then
    carries no billable item)."""
    import json
    import os

    from local.client import TERMINAL
    from local.scenarios import Outcome, Scenario, ScenarioContext

    amount = 3_600

    def run(context: ScenarioContext, outcome: Outcome) -> None:
        by_return = os.environ.get("SAP_CREDIT_DOCUMENT") == "customer_return"
        simulator: SapSimulator = context.simulator
        payment_id = context.client.create_payment(amount, "EUR")
        invoice_id = simulator.seed_invoice(amount, "EUR")
        body = context.request("sap-return", {"provider": "stripe", "payment_id": payment_id}, amount=amount)
        body["payment"]["provider"] = "stripe"
        body["reason"] = "wrong_item"
        body["invoice"] = {"system": "sap", "invoice_id": invoice_id}
        refund_id = context.submit(outcome, body)
        waiting = context.client.wait_for(refund_id, TERMINAL | {"AWAITING_RETURN", "NEEDS_ATTENTION"}, timeout=60)
        outcome.check(waiting["status"] == "AWAITING_RETURN", f"did not wait for its goods: {waiting['status']}")
        goods = {"invoice": invoice_id, "amount_minor": amount} if by_return else {}
        number = simulator.create_customer_return(refund_id, **goods)  # type: ignore[arg-type]
        simulator.post_goods_receipt(number)
        refund = context.client.wait_for(refund_id, TERMINAL | {"NEEDS_ATTENTION"}, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']} ({refund.get('attention_reason')})")
        credits = [doc for doc in simulator.documents() if refund_id in json.dumps(doc, default=str)]
        outcome.check(len(credits) == 1, f"{len(credits)} credit documents at SAP name {refund_id}")
        if by_return and credits:
            outcome.check(credits[0].get("CustomerReturn") == number, "the credit is not the triggering return")
        outcome.notes.append(f"credited by {'customer return ' + number if by_return else 'a credit memo request'}")

    return Scenario(
        "customer return received in SAP",
        "AWAITING_RETURN, then COMPLETED after SAP's goods receipt event, one credit document at SAP",
        run,
    )


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import books_scenarios

        return [*books_scenarios("sap"), _return_scenario()]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
