"""Oracle NetSuite sandbox simulator: the OAuth 2.0 token endpoint and the SuiteTalk REST records refundflow uses.

Mounted by the local stack at ``/_sandbox/netsuite`` with NetSuite's own paths below it:

- ``POST /services/rest/auth/oauth2/v1/token``: the client-credentials grant with a JWT client assertion
  (``client_assertion_type`` jwt-bearer). The JWT's ``kid`` must name a mapped certificate, its signature verify with
  that certificate's public key (PS256, or ES256 with an EC key), ``iss`` be the integration's client id, ``scope``
  include ``rest_webservices``, ``aud`` be the token endpoint, and ``exp`` lie in the future and less than 60 minutes
  after ``iat``; otherwise 400 ``{"error": "invalid_request" | "invalid_client" | "invalid_grant"}``. Access tokens
  last 60 minutes (``expires_in`` is a string, as NetSuite writes it).
- ``/services/rest/record/v1``: ``GET invoice|creditMemo|customerRefund|currency/{id}`` (``eid:<externalId>`` where an
  internal id goes; sublists only with ``expandSubResources=true``, otherwise links), ``POST
  invoice/{id}/!transform/creditMemo`` and ``POST customerRefund``, both answering ``204`` with ``Location``. A bearer
  token is required (401 ``INVALID_LOGIN``). Errors come in NetSuite's shape: ``{"type", "title", "status",
  "o:errorDetails": [{"detail", "o:errorCode"}]}``.

Strict where NetSuite refuses, and stricter where NetSuite's exact behaviour was not checked (said in each place): an
unknown body field, an amount with more decimals than the currency's precision, a line whose amount is not quantity x
rate, an unknown item, tax code or bank account, an application above what a document owes, a second record of a type
with the same ``externalId``, a date in a closed period (``closed_before``). ``X-NetSuite-Idempotency-Key`` is ignored
(NetSuite honours it only for asynchronous requests). Tax codes carry a rate: a taxed line adds its tax on top of the
line, as SuiteTax does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, exact_json

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
RECORDS = "/services/rest/record/v1"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCESS_TOKEN_SECONDS = 3600
MAX_ASSERTION_SECONDS = 3600

# The local stack's integration (nothing here is a real credential).
DEFAULT_ACCOUNT_ID = "1234567_SB1"
DEFAULT_CLIENT_ID = "refundflow-local-netsuite-client-id-000000000000000000000000000000"
DEFAULT_CERTIFICATE_ID = "refundflow-local-certificate-0001"
REFUND_ITEM = "501"
GOODS_ITEM = "502"
BANK_ACCOUNT = "1"
CLEARING_ACCOUNT = "118"
# The local key is derived, not stored: an EC P-256 scalar from a fixed label, the same in every process.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_KEY_LABEL = b"refundflow local NetSuite certificate key"

_CURRENCIES = {
    # id: (ISO code in ``symbol``, name, currencyPrecision) - a NetSuite currency keeps 0, 1 or 2 decimals.
    "1": ("USD", "US Dollar", 2),
    "2": ("EUR", "Euro", 2),
    "3": ("GBP", "British pound", 2),
    "4": ("JPY", "Japanese yen", 0),
    "5": ("KWD", "Kuwaiti dinar", 2),
    "6": ("TWD", "New Taiwan dollar", 1),
}
_ITEMS = {REFUND_ITEM: "Refunds and returns (other charge)", GOODS_ITEM: "Goods (non-inventory for sale)"}
_ACCOUNTS = {
    BANK_ACCOUNT: ("Checking", "Bank"),
    CLEARING_ACCOUNT: ("Stripe clearing", "Bank"),
    "4000": ("Sales", "Income"),
}
_TAX_CODES = {"-7": ("Not taxable", Decimal(0)), "12": ("VAT 20%", Decimal("0.20"))}
_TRANSFORM_FIELDS = {
    "externalId",
    "tranDate",
    "memo",
    "item",
    "apply",
    "autoApply",
    "toBeEmailed",
    "otherRefNum",
    "location",
}
_LINE_FIELDS = {"item", "description", "quantity", "rate", "amount", "taxCode"}
_APPLY_FIELDS = {"doc", "apply", "amount", "line"}
_REFUND_FIELDS = {"externalId", "customer", "account", "currency", "tranDate", "memo", "apply", "paymentMethod"}


class _Refused(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _problem(status: int, code: str, detail: str) -> Response:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}
    body = {
        "type": f"https://www.rfc-editor.org/rfc/rfc9110.html#status.{status}",
        "title": titles.get(status, "Internal Server Error"),
        "status": status,
        "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
    }
    return Response(json.dumps(body), status=status, mimetype="application/vnd.oracle.resource+json")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def local_private_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    scalar = int.from_bytes(hashlib.sha256(_KEY_LABEL).digest(), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _pem(private_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii")


class NetSuiteSimulator(Simulator):
    """A stateful NetSuite account with one integration (client credentials, one mapped certificate)."""

    name = "netsuite"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "record_credit": ("POST", r"/invoice/\d+/!transform/creditMemo$"),
        "pay_out": ("POST", r"/customerRefund$"),
        "token": ("POST", r"/oauth2/v1/token$"),
    }
    TRANSIENT_STATUS: ClassVar[int] = 429

    def __init__(
        self,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        certificate_id: str = DEFAULT_CERTIFICATE_ID,
        clock: Callable[[], float] = time.time,
        closed_before: date | None = None,
    ) -> None:
        super().__init__()
        self.account_id = account_id
        self.client_id = client_id
        self.certificate_id = certificate_id
        self.clock = clock
        self.closed_before = closed_before
        self._private_key = local_private_key()
        self.certificates: dict[str, Any] = {certificate_id: self._private_key.public_key()}
        self.reset_state()
        self.route(TOKEN_PATH, self._token, methods=["POST"])
        self.route(f"{RECORDS}/currency/<record_id>", self._api(self._get_currency), methods=["GET"])
        for record in ("invoice", "creditMemo", "customerRefund"):
            self.route(f"{RECORDS}/{record}/<record_id>", self._api(self._getter(record)), methods=["GET"])
        self.route(f"{RECORDS}/invoice/<record_id>/!transform/creditMemo", self._api(self._transform), methods=["POST"])
        self.route(f"{RECORDS}/customerRefund", self._api(self._create_refund), methods=["POST"])

    # ---------------------------------------------------------------- state

    def reset_state(self) -> None:
        self.access_tokens: dict[str, float] = {}
        self.assertions: list[dict[str, Any]] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_memos: dict[str, dict[str, Any]] = {}
        self.customer_refunds: dict[str, dict[str, Any]] = {}
        self._next_id = 100
        self._numbers = {"INV": 1000, "CM": 2000, "RFND": 3000}

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _number(self, prefix: str) -> str:
        self._numbers[prefix] += 1
        return f"{prefix}{self._numbers[prefix]}"

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), tz=UTC).date()

    # ---------------------------------------------------------------- seeding (tests, demo) and BooksSandbox

    def register_certificate(self, certificate_id: str, public_key: Any) -> None:
        """Map another certificate to the integration (its public key verifies assertions with that kid)."""
        with self.lock:
            self.certificates[certificate_id] = public_key

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's API secret (NetSuite sends refundflow no webhooks)."""
        return {
            "api": {
                "account_id": self.account_id,
                "client_id": self.client_id,
                "certificate_id": self.certificate_id,
                "private_key": _pem(self._private_key),
            },
            "verification": {},
        }

    def add_customer(self, name: str, currency: str) -> str:
        with self.lock:
            customer_id = self._new_id()
            self.customers[customer_id] = {
                "id": customer_id,
                "companyName": name,
                "currency": self._currency_id(currency),
            }
            return customer_id

    def add_invoice(
        self,
        customer_id: str,
        lines: list[tuple[str, int, Decimal] | tuple[str, int, Decimal, str]],
        *,
        currency: str,
        paid: bool = False,
    ) -> str:
        """An open invoice of ``(description, quantity, rate[, tax code])`` lines on the goods item, paid in full when
        ``paid``; returns its internal id."""
        with self.lock:
            currency_id = self._currency_id(currency)
            items = [
                self._line(
                    {
                        "item": {"id": GOODS_ITEM},
                        "description": line[0],
                        "quantity": line[1],
                        "rate": line[2],
                        "amount": line[2] * line[1],
                        **({"taxCode": {"id": line[3]}} if len(line) > 3 else {}),
                    },
                    currency_id,
                )
                for line in lines
            ]
            invoice_id = self._new_id()
            total = sum((item["amount"] + item["taxAmount"] for item in items), Decimal(0))
            self.invoices[invoice_id] = {
                "id": invoice_id,
                "tranId": self._number("INV"),
                "entity": customer_id,
                "currency": currency_id,
                "tranDate": self._today().isoformat(),
                "voided": False,
                "item": items,
                "total": total,
                "amountPaid": total if paid else Decimal(0),
                "credited": Decimal(0),
            }
            return invoice_id

    def seed_invoice(self, amount_minor: int, currency: str, *, paid: bool = False) -> str:
        """An invoice of one untaxed line of ``amount_minor`` ISO minor units for a new customer, paid in full when
        ``paid``; returns its internal id.

        Raises:
            ValueError: a currency the account lacks, or more decimals than its precision.
        """
        iso_digits = {"JPY": 0, "KWD": 3}.get(currency, 2)
        value = Decimal(amount_minor).scaleb(-iso_digits)
        currency_id = self._currency_id(currency)
        precision = _CURRENCIES[currency_id][2]
        if value != value.quantize(Decimal(1).scaleb(-precision)):
            raise ValueError(f"{value} {currency} has more decimals than NetSuite keeps")
        customer_id = self.add_customer(f"Customer {len(self.customers) + 1}", currency)
        return self.add_invoice(customer_id, [("Goods", 1, value, "-7")], currency=currency, paid=paid)

    def documents(self) -> list[dict[str, Any]]:
        """Every credit memo, as the API shows it (sublists expanded), with the customer refunds that paid it out."""
        with self.lock:
            documents = []
            for memo in self.credit_memos.values():
                rendered = self._render("creditMemo", memo, expand=True)
                rendered["customerRefunds"] = [
                    self._render("customerRefund", refund, expand=True)
                    for refund in self.customer_refunds.values()
                    if any(line["doc"] == memo["id"] for line in refund["apply"])
                ]
                documents.append(rendered)
            return documents

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            return self._render("invoice", self.invoices[invoice_id], expand=True)

    def revoke_access_tokens(self) -> None:
        """Every issued access token answers 401 from now on (as after a role change or a revoked mapping)."""
        with self.lock:
            self.access_tokens.clear()

    def _currency_id(self, code: str) -> str:
        for currency_id, (symbol, _, _) in _CURRENCIES.items():
            if symbol == code.upper():
                return currency_id
        raise ValueError(f"the account has no currency {code}")

    # ---------------------------------------------------------------- OAuth 2.0 client credentials

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials" or form.get("client_assertion_type") != ASSERTION_TYPE:
            return self._oauth_error("invalid_request")
        try:
            claims = self._verified_claims(str(form.get("client_assertion") or ""), request)
        except ValueError as error:
            return self._oauth_error(str(error))
        with self.lock:
            self.assertions.append(claims)
            token = base64.urlsafe_b64encode(
                hashlib.sha256(f"{claims}{self.clock()}{len(self.assertions)}".encode()).digest()
            )
            value = token.decode("ascii").rstrip("=")
            self.access_tokens[value] = self.clock() + ACCESS_TOKEN_SECONDS
        body = {"access_token": value, "token_type": "Bearer", "expires_in": str(ACCESS_TOKEN_SECONDS)}
        return Response(json.dumps(body), status=200, mimetype="application/json")

    def _verified_claims(self, assertion: str, request: Request) -> dict[str, Any]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        parts = assertion.split(".")
        if len(parts) != 3:
            raise ValueError("invalid_request")
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except ValueError as error:
            raise ValueError("invalid_request") from error
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("typ") != "JWT":
            raise ValueError("invalid_request")
        key = self.certificates.get(str(header.get("kid")))
        if key is None:
            raise ValueError("invalid_client")
        signed = f"{parts[0]}.{parts[1]}".encode("ascii")
        try:
            if header.get("alg") == "PS256" and isinstance(key, rsa.RSAPublicKey):
                key.verify(
                    signature, signed, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
                )
            elif header.get("alg") == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(signature) == 64:
                der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
                key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            else:
                raise ValueError("invalid_request")
        except InvalidSignature as error:
            raise ValueError("invalid_client") from error
        now = self.clock()
        issued, expires = claims.get("iat"), claims.get("exp")
        scopes = {part.strip() for part in str(claims.get("scope") or "").split(",")}
        if claims.get("iss") != self.client_id:
            raise ValueError("invalid_client")
        if "rest_webservices" not in scopes or not str(claims.get("aud") or "").endswith(TOKEN_PATH):
            raise ValueError("invalid_request")
        if not isinstance(issued, int) or not isinstance(expires, int) or expires - issued >= MAX_ASSERTION_SECONDS:
            raise ValueError("invalid_request")
        if expires <= now or issued > now + 300:
            raise ValueError("invalid_grant")
        return claims

    @staticmethod
    def _oauth_error(error: str) -> Response:
        return Response(json.dumps({"error": error}), status=400, mimetype="application/json")

    # ---------------------------------------------------------------- record plumbing

    def _api(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        def endpoint(request: Request, **arguments: Any) -> Response:
            with self.lock:
                header = request.headers.get("Authorization", "")
                expires = self.access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
                if expires is None or self.clock() >= expires:
                    return _problem(
                        401,
                        "INVALID_LOGIN",
                        "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at "
                        "Setup > Users/Roles > User Management > View Login Audit Trail.",
                    )
                try:
                    return handler(request, **arguments)
                except _Refused as refused:
                    return _problem(refused.status, refused.code, refused.detail)

        endpoint.__name__ = handler.__name__
        return endpoint

    def fault_response(self, fault: FaultRule) -> Response:
        if fault.status == 429:
            return _problem(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded. Request blocked.")
        return _problem(fault.status or 500, "UNEXPECTED_ERROR", "An unexpected error occurred.")

    def _find(self, records: dict[str, dict[str, Any]], record_id: str) -> dict[str, Any]:
        if record_id.startswith("eid:"):
            found = next((item for item in records.values() if item.get("externalId") == record_id[4:]), None)
        else:
            found = records.get(record_id)
        if found is None:
            raise _Refused(
                404,
                "NONEXISTENT_ID",
                f"The record instance does not exist. Provide a valid record instance ID: {record_id}.",
            )
        return found

    def _getter(self, record: str) -> Callable[..., Response]:
        attribute = {"invoice": "invoices", "creditMemo": "credit_memos", "customerRefund": "customer_refunds"}[record]

        def get(request: Request, record_id: str) -> Response:
            found = self._find(getattr(self, attribute), record_id)
            expand = request.args.get("expandSubResources", "false").lower() == "true"
            return self._json(self._render(record, found, expand=expand, base=self._base(request)))

        get.__name__ = f"get_{record}"
        return get

    def _get_currency(self, request: Request, record_id: str) -> Response:
        if record_id not in _CURRENCIES:
            raise _Refused(404, "NONEXISTENT_ID", f"The record instance does not exist: {record_id}.")
        symbol, name, precision = _CURRENCIES[record_id]
        return self._json({"id": record_id, "name": name, "symbol": symbol, "currencyPrecision": precision})

    @staticmethod
    def _json(body: Any) -> Response:
        return Response(exact_json(body), status=200, mimetype="application/vnd.oracle.resource+json")

    @staticmethod
    def _base(request: Request) -> str:
        return f"{request.host_url.rstrip('/')}{request.script_root}{RECORDS}"

    def _created(self, request: Request, record: str, record_id: str) -> Response:
        return Response(status=204, headers={"Location": f"{self._base(request)}/{record}/{record_id}"})

    def _ref(self, record_id: str, name: str) -> dict[str, Any]:
        return {"id": record_id, "refName": name}

    def _render(self, record: str, item: Mapping[str, Any], *, expand: bool, base: str = "") -> dict[str, Any]:
        currency = _CURRENCIES[item["currency"]]
        customer = self.customers[item["entity"]]
        body: dict[str, Any] = {
            "links": [{"rel": "self", "href": f"{base}/{record}/{item['id']}"}],
            "id": item["id"],
            "tranId": item["tranId"],
            "tranDate": item["tranDate"],
            "currency": self._ref(item["currency"], currency[1]),
            "entity" if record != "customerRefund" else "customer": self._ref(item["entity"], customer["companyName"]),
            "total": item["total"],
        }
        if item.get("externalId"):
            body["externalId"] = item["externalId"]
        if item.get("memo"):
            body["memo"] = item["memo"]
        if record == "invoice":
            remaining = item["total"] - item["amountPaid"] - item["credited"]
            status = "Voided" if item["voided"] else ("Paid In Full" if remaining == 0 else "Open")
            body |= {
                "status": self._ref(status[0], status),
                "amountPaid": item["amountPaid"],
                "amountRemaining": remaining,
            }
        if record == "creditMemo":
            remaining = item["total"] - item["applied"]
            body |= {"createdFrom": self._ref(item["createdFrom"], "Invoice"), "applied": item["applied"]}
            body |= {"amountRemaining": remaining, "autoApply": item["autoApply"]}
            body["status"] = self._ref("B" if remaining == 0 else "A", "Fully Applied" if remaining == 0 else "Open")
        if record == "customerRefund":
            body["account"] = self._ref(item["account"], _ACCOUNTS[item["account"]][0])
        sublists = {"item": item.get("item"), "apply": item.get("apply")}
        for sublist, lines in sublists.items():
            if lines is None:
                continue
            if expand:
                body[sublist] = {"items": [self._render_line(line) for line in lines]}
            else:
                body[sublist] = {"links": [{"rel": "self", "href": f"{base}/{record}/{item['id']}/{sublist}"}]}
        return body

    def _render_line(self, line: Mapping[str, Any]) -> dict[str, Any]:
        rendered = dict(line)
        for key, names in (("item", _ITEMS), ("taxCode", {k: v[0] for k, v in _TAX_CODES.items()})):
            if key in rendered and rendered[key] is not None:
                rendered[key] = self._ref(rendered[key], names[rendered[key]])
        if "doc" in rendered:
            rendered["doc"] = {"id": rendered["doc"]}
        return rendered

    # ---------------------------------------------------------------- validation helpers

    @staticmethod
    def _body(request: Request, known: set[str]) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data(), parse_float=Decimal)
        except ValueError as error:
            raise _Refused(400, "INVALID_CONTENT", "The request body is not valid JSON.") from error
        if not isinstance(body, dict):
            raise _Refused(400, "INVALID_CONTENT", "The request body must be a JSON object.")
        unknown = sorted(set(body) - known)
        if unknown:
            # Stricter than NetSuite is known to be (X-NetSuite-PropertyNameValidation decides there): a typo is
            # never silently dropped here.
            raise _Refused(400, "INVALID_CONTENT", f"Invalid field name: {unknown[0]}.")
        return body

    @staticmethod
    def _amount(value: Any, field: str, currency_id: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise _Refused(400, "INVALID_CONTENT", f"Invalid value for the field {field}: a number is expected.")
        number = Decimal(value)
        precision = _CURRENCIES[currency_id][2]
        if not number.is_finite() or number != number.quantize(Decimal(1).scaleb(-precision)):
            raise _Refused(
                400,
                "INVALID_CONTENT",
                f"Invalid value for the field {field}: {value} has more than {precision} decimals.",
            )
        return number

    @staticmethod
    def _reference(value: Any, field: str, known: Mapping[str, Any]) -> str:
        record_id = str(value.get("id")) if isinstance(value, Mapping) and value.get("id") is not None else None
        if record_id is None or record_id not in known:
            raise _Refused(400, "INVALID_KEY_OR_REF", f"Invalid {field} reference key {record_id}.")
        return record_id

    def _date(self, value: Any) -> str:
        try:
            day = date.fromisoformat(str(value)) if value is not None else self._today()
        except ValueError as error:
            raise _Refused(400, "INVALID_CONTENT", f"Invalid value for the field tranDate: {value}.") from error
        if self.closed_before is not None and day < self.closed_before:
            raise _Refused(
                400,
                "USER_ERROR",
                f"The transaction date {day.isoformat()} falls in a closed period. You cannot post to a closed period.",
            )
        return day.isoformat()

    def _external_id(self, value: Any, records: Mapping[str, Mapping[str, Any]], label: str) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not text or not all(char.isalnum() or char in "_-" for char in text):
            raise _Refused(400, "INVALID_CONTENT", f"Invalid value for the field externalId: {text}.")
        if any(item.get("externalId") == text for item in records.values()):
            raise _Refused(400, "DUP_RCRD", f"A {label} with the external ID {text} already exists.")
        return text

    def _line(self, raw: Any, currency_id: str) -> dict[str, Any]:
        if not isinstance(raw, dict) or set(raw) - _LINE_FIELDS:
            raise _Refused(400, "INVALID_CONTENT", f"Invalid item line fields: {sorted(set(raw) - _LINE_FIELDS)}.")
        item = self._reference(raw.get("item"), "item", _ITEMS)
        quantity = raw.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise _Refused(400, "INVALID_CONTENT", "Invalid value for the field quantity.")
        rate = self._amount(raw.get("rate"), "rate", currency_id)
        amount = self._amount(raw.get("amount", rate * quantity), "amount", currency_id)
        if amount != rate * quantity or amount <= 0:
            raise _Refused(400, "USER_ERROR", f"The line amount {amount} is not quantity {quantity} x rate {rate}.")
        tax_code = self._reference(raw["taxCode"], "taxCode", _TAX_CODES) if "taxCode" in raw else "-7"
        precision = Decimal(1).scaleb(-_CURRENCIES[currency_id][2])
        tax = (amount * _TAX_CODES[tax_code][1]).quantize(precision)
        return {
            "item": item,
            "description": str(raw.get("description") or _ITEMS[item])[:4000],
            "quantity": quantity,
            "rate": rate,
            "amount": amount,
            "taxCode": tax_code,
            "taxAmount": tax,
        }

    # ---------------------------------------------------------------- transform invoice -> credit memo

    def _transform(self, request: Request, record_id: str) -> Response:
        invoice = self._find(self.invoices, record_id)
        body = self._body(request, _TRANSFORM_FIELDS)
        if invoice["voided"]:
            raise _Refused(400, "USER_ERROR", f"Invoice {invoice['tranId']} is voided and cannot be credited.")
        currency_id = invoice["currency"]
        external_id = self._external_id(body.get("externalId"), self.credit_memos, "credit memo")
        tran_date = self._date(body.get("tranDate"))
        replace = {part.strip() for part in request.args.get("replace", "").split(",") if part.strip()}
        if "item" in body:
            raw_lines = body["item"].get("items") if isinstance(body["item"], dict) else None
            if not isinstance(raw_lines, list) or not raw_lines:
                raise _Refused(400, "INVALID_CONTENT", "Invalid value for the sublist item.")
            lines = [self._line(raw, currency_id) for raw in raw_lines]
            if "item" not in replace:
                lines = [dict(line) for line in invoice["item"]] + lines
        else:
            lines = [dict(line) for line in invoice["item"]]
        total = sum((line["amount"] + line["taxAmount"] for line in lines), Decimal(0))
        applications = self._applications(body.get("apply"), invoice, total)
        if body.get("autoApply", False) is True and not applications:
            # Auto Apply: the credit goes to the customer's oldest open receivable, whichever invoice that is.
            applications = self._auto_applied(invoice, total)
        memo = {
            "id": self._new_id(),
            "tranId": self._number("CM"),
            "externalId": external_id,
            "entity": invoice["entity"],
            "currency": currency_id,
            "tranDate": tran_date,
            "memo": str(body.get("memo") or "")[:999],
            "createdFrom": invoice["id"],
            "autoApply": body.get("autoApply", False) is True,
            "item": lines,
            "total": total,
            "apply": applications,
            "applied": sum((line["amount"] for line in applications), Decimal(0)),
        }
        for line in applications:
            self.invoices[line["doc"]]["credited"] += line["amount"]
        self.credit_memos[memo["id"]] = memo
        return self._created(request, "creditMemo", memo["id"])

    def _auto_applied(self, invoice: Mapping[str, Any], total: Decimal) -> list[dict[str, Any]]:
        left, applications = total, []
        for target in sorted(self.invoices.values(), key=lambda item: (item["tranDate"], int(item["id"]))):
            remaining = target["total"] - target["amountPaid"] - target["credited"]
            if target["entity"] != invoice["entity"] or target["currency"] != invoice["currency"] or remaining <= 0:
                continue
            amount = min(left, remaining)
            applications.append({"doc": target["id"], "apply": True, "amount": amount})
            left -= amount
            if left == 0:
                break
        return applications

    def _applications(self, raw: Any, invoice: Mapping[str, Any], total: Decimal) -> list[dict[str, Any]]:
        if raw is None:
            return []
        items = raw.get("items") if isinstance(raw, dict) else None
        if not isinstance(items, list):
            raise _Refused(400, "INVALID_CONTENT", "Invalid value for the sublist apply.")
        applications: list[dict[str, Any]] = []
        for line in items:
            if not isinstance(line, dict) or set(line) - _APPLY_FIELDS:
                raise _Refused(400, "INVALID_CONTENT", "Invalid apply line.")
            if not line.get("apply", False):
                continue
            doc = self._reference(line.get("doc"), "doc", self.invoices)
            target = self.invoices[doc]
            if target["entity"] != invoice["entity"] or target["currency"] != invoice["currency"]:
                raise _Refused(
                    400, "USER_ERROR", f"Invoice {target['tranId']} is not open for this customer and currency."
                )
            amount = self._amount(line.get("amount"), "apply.amount", invoice["currency"])
            remaining = target["total"] - target["amountPaid"] - target["credited"]
            if amount <= 0 or amount > remaining:
                raise _Refused(
                    400, "USER_ERROR", f"You cannot apply {amount} to invoice {target['tranId']}: it owes {remaining}."
                )
            applications.append({"doc": doc, "apply": True, "amount": amount})
        if sum((line["amount"] for line in applications), Decimal(0)) > total:
            raise _Refused(400, "USER_ERROR", "The amount applied is more than the credit memo total.")
        return applications

    # ---------------------------------------------------------------- customer refund

    def _create_refund(self, request: Request) -> Response:
        body = self._body(request, _REFUND_FIELDS)
        customer = self._reference(body.get("customer"), "customer", self.customers)
        account = self._reference(body.get("account"), "account", _ACCOUNTS)
        if _ACCOUNTS[account][1] != "Bank":
            raise _Refused(400, "USER_ERROR", f"Account {_ACCOUNTS[account][0]} is not a bank account.")
        currency_id = self._reference(body.get("currency"), "currency", _CURRENCIES) if "currency" in body else None
        currency_id = currency_id or self.customers[customer]["currency"]
        external_id = self._external_id(body.get("externalId"), self.customer_refunds, "customer refund")
        tran_date = self._date(body.get("tranDate"))
        items = body.get("apply", {}).get("items") if isinstance(body.get("apply"), dict) else None
        if not isinstance(items, list) or not items:
            raise _Refused(400, "USER_ERROR", "You must apply the refund to at least one credit memo or payment.")
        applications: list[dict[str, Any]] = []
        for line in items:
            if not isinstance(line, dict) or set(line) - _APPLY_FIELDS or not line.get("apply"):
                raise _Refused(400, "INVALID_CONTENT", "Invalid apply line.")
            doc = self._reference(line.get("doc"), "doc", self.credit_memos)
            memo = self.credit_memos[doc]
            if memo["entity"] != customer or memo["currency"] != currency_id:
                raise _Refused(
                    400, "USER_ERROR", f"Credit memo {memo['tranId']} is not this customer's in this currency."
                )
            amount = self._amount(line.get("amount"), "apply.amount", currency_id)
            if amount <= 0 or amount > memo["total"] - memo["applied"]:
                raise _Refused(400, "USER_ERROR", f"You cannot refund {amount} of credit memo {memo['tranId']}.")
            applications.append({"doc": doc, "apply": True, "amount": amount})
        refund: dict[str, Any] = {
            "id": self._new_id(),
            "tranId": self._number("RFND"),
            "externalId": external_id,
            "entity": customer,
            "account": account,
            "currency": currency_id,
            "tranDate": tran_date,
            "memo": str(body.get("memo") or "")[:999],
            "apply": applications,
            "total": sum((line["amount"] for line in applications), Decimal(0)),
        }
        for line in applications:
            self.credit_memos[line["doc"]]["applied"] += line["amount"]
        self.customer_refunds[refund["id"]] = refund
        return self._created(request, "customerRefund", refund["id"])


# ---------------------------------------------------------------- demo scenarios (make demo)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks: the two books scenarios (a paid invoice refunded in full, an
    unpaid one credited in part), each checking that one credit memo names the refund."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import books_scenarios

        return books_scenarios("netsuite")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
