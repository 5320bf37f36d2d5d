"""Xero sandbox simulator: the identity service, ``/connections`` and the accounting endpoints refundflow calls.

Mounted by the local stack at ``/_sandbox/xero`` with Xero's own paths below it:

- ``POST /identity/connect/token``: refresh-token grant (HTTP Basic or form client credentials). Refresh
  tokens rotate on every use; the previous one keeps working for a 30-minute grace period and then answers
  ``invalid_grant``; unused tokens expire after 60 days; access tokens after 30 minutes.
- ``GET /connections``: the one connected organisation.
- ``/api.xro/2.0/``: ``Contacts``, ``Invoices``, ``CreditNotes`` (+ ``/{id}/Allocations``), ``Payments``,
  ``Accounts``. Bearer token and a matching ``xero-tenant-id`` are required (401 / 403 in Xero's problem
  shape); ``Idempotency-Key`` (at most 128 characters) replays the first answer for six minutes and refuses
  reuse with another request; validation failures answer 400 ``ValidationException`` with
  ``Elements[].ValidationErrors``; unknown ids answer 404 with Xero's plain-text body. Amounts are exact
  decimals (two decimals, as Xero stores them), dates come back as ``/Date(ms+0000)/``.

Where Xero does not refuse but books something other than the client meant, the simulator does the same:
a credit note or invoice without ``Date`` is dated today, without ``Status`` is a DRAFT, without ``CurrencyCode``
is in the base currency, without ``LineAmountTypes`` is tax-exclusive; a line without ``TaxType`` takes its
account's; a payment without ``Date`` is dated today and without ``Reference`` has none; and properties Xero does
not know are dropped without a word (a misspelt ``Date`` is simply absent). Every document records what was
booked, which fields Xero filled in (``defaulted``) and which properties it dropped (``ignored``):
``GET /_control/booked`` (and :meth:`XeroSimulator.booked`) lists them, so tests can assert the books, not only
the HTTP status. Allocations need ``Date`` (Xero refuses them without one).

State is kept per instance. ``clock`` is injectable so tests can move time (token expiry, grace periods,
idempotency windows). Helpers seed contacts, invoices and payments for tests and the demo.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import IdempotencyStore, Simulator, StoredResponse, exact_json
from refundflow.money import CURRENCY_EXPONENTS

# Defaults the local stack puts in its Xero secret (nothing here is a real credential).
DEFAULT_CLIENT_ID = "REFUNDFLOWLOCALXEROCLIENTID00001"
DEFAULT_CLIENT_SECRET = "refundflow-local-xero-client-secret"
DEFAULT_REFRESH_TOKEN = "refundflow-local-xero-refresh-token-0"
DEFAULT_TENANT_ID = "7c1e3f0a-5b2d-4e6f-8a9b-0c1d2e3f4a5b"
DEFAULT_TENANT_NAME = "Demo Company (refundflow local)"

ACCESS_TOKEN_SECONDS = 30 * 60
REFRESH_TOKEN_GRACE_SECONDS = 30 * 60
REFRESH_TOKEN_UNUSED_SECONDS = 60 * 24 * 3600
IDEMPOTENCY_WINDOW_SECONDS = 6 * 60
IDEMPOTENCY_KEY_MAX_LENGTH = 128
API = "/api.xro/2.0"
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
SCOPES = "offline_access accounting.transactions accounting.contacts accounting.settings"

_CENT = Decimal("0.01")
_TAX_RATES = {
    "OUTPUT2": Decimal("0.15"),
    "INPUT2": Decimal("0.15"),
    "OUTPUT": Decimal("0.15"),
    "NONE": Decimal(0),
    "EXEMPTOUTPUT": Decimal(0),
    "ZERORATEDOUTPUT": Decimal(0),
}
_ACCOUNTS = [
    # code, name, type, tax type, enable payments, class, system account
    ("090", "Business Bank Account", "BANK", "NONE", False, "ASSET", ""),
    ("091", "Business Savings Account", "BANK", "NONE", False, "ASSET", ""),
    ("200", "Sales", "REVENUE", "OUTPUT2", False, "REVENUE", ""),
    ("260", "Other Revenue", "REVENUE", "OUTPUT2", False, "REVENUE", ""),
    ("400", "Advertising", "EXPENSE", "INPUT2", False, "EXPENSE", ""),
    ("610", "Accounts Receivable", "CURRENT", "NONE", False, "ASSET", "DEBTORS"),
    ("820", "GST", "CURRLIAB", "NONE", False, "LIABILITY", "GST"),
    ("855", "Payment Provider Clearing", "CURRLIAB", "NONE", True, "LIABILITY", ""),
]


# The properties Xero reads when it creates each object (developer.xero.com/documentation/api/accounting/...):
# anything else in a request is dropped silently, and recorded here as ``ignored``.
_DOCUMENT_FIELDS = {
    "Type",
    "Contact",
    "Date",
    "DueDate",
    "Status",
    "LineAmountTypes",
    "LineItems",
    "CurrencyCode",
    "CurrencyRate",
    "Reference",
    "BrandingThemeID",
    "SentToContact",
}
_INVOICE_FIELDS = _DOCUMENT_FIELDS | {"InvoiceID", "InvoiceNumber", "Url", "ExpectedPaymentDate", "PlannedPaymentDate"}
_CREDIT_NOTE_FIELDS = _DOCUMENT_FIELDS | {"CreditNoteID", "CreditNoteNumber", "Allocations", "Payments"}
_LINE_FIELDS = {
    "LineItemID",
    "Description",
    "Quantity",
    "UnitAmount",
    "ItemCode",
    "AccountCode",
    "AccountID",
    "TaxType",
    "TaxAmount",
    "LineAmount",
    "Tracking",
    "DiscountRate",
    "DiscountAmount",
}
_PAYMENT_FIELDS = {
    "PaymentID",
    "Invoice",
    "CreditNote",
    "Prepayment",
    "Overpayment",
    "InvoiceNumber",
    "CreditNoteNumber",
    "Account",
    "Code",
    "Date",
    "CurrencyRate",
    "Amount",
    "BankAmount",
    "Reference",
    "IsReconciled",
}
_ALLOCATION_FIELDS = {"AllocationID", "Invoice", "CreditNote", "Prepayment", "Overpayment", "Amount", "Date"}


def _ignored(raw: Mapping[str, Any], known: set[str], prefix: str = "") -> list[str]:
    return [f"{prefix}{key}" for key in raw if key not in known]


def _defaulted(raw: Mapping[str, Any], fields: Iterable[str], prefix: str = "") -> list[str]:
    return [f"{prefix}{field}" for field in fields if raw.get(field) in (None, "")]


class _RefusedError(Exception):
    """Validation messages for one element: answered as a 400 ValidationException."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass
class _RefreshToken:
    value: str
    issued_at: float
    superseded_at: float | None = None
    successor: str | None = None


@dataclass
class _AccessToken:
    value: str
    expires_at: float


def _xero_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(exact_json(body), status=status, mimetype="application/json", headers=headers)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _date_json(day: date) -> str:
    return f"/Date({_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))}+0000)/"


_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def _parse_date(value: Any, field: str) -> date:
    if isinstance(value, str):
        text = value.strip()
        match = _MS_DATE.match(text)
        try:
            if match:
                return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()
            return date.fromisoformat(text[:10])
        except ValueError:
            pass
    raise _RefusedError([f"{field} is not a valid date (use YYYY-MM-DD)"])


def _round(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _number(value: Any, field: str, decimals: int = 2) -> Decimal:
    """A JSON number from the request, with at most ``decimals`` decimals (Xero keeps two by default)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise _RefusedError([f"{field} must be a number"])
    number = Decimal(value)
    if not number.is_finite():
        raise _RefusedError([f"{field} must be a number"])
    if number != number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):
        raise _RefusedError([f"{field} cannot have more than {decimals} decimal places"])
    return number


class _Where:
    """Xero's ``where`` filter, the subset refundflow and its tests use: ``==``/``!=`` on text, numbers,
    null and ``Guid("…")``, ``.StartsWith/.EndsWith/.Contains("…")``, joined by ``AND``/``&&``."""

    _CONDITION = re.compile(
        r"""^(?P<field>[A-Za-z][A-Za-z.]*?)\s*(?:
              (?P<op>==|!=|=)\s*(?P<value>"[^"]*"|null|true|false|-?\d+(?:\.\d+)?|Guid\("[^"]*"\))
            | \.(?P<method>StartsWith|EndsWith|Contains)\("(?P<arg>[^"]*)"\)
            )$""",
        re.VERBOSE | re.IGNORECASE,
    )
    _AND = re.compile(r"\s+AND\s+|\s*&&\s*", re.IGNORECASE)

    def __init__(self, text: str) -> None:
        self.conditions: list[re.Match[str]] = []
        for part in self._AND.split(text.strip()):
            match = self._CONDITION.match(part.strip())
            if match is None:
                raise ValueError(part)
            self.conditions.append(match)

    def matches(self, record: Mapping[str, Any]) -> bool:
        return all(self._test(condition, record) for condition in self.conditions)

    @staticmethod
    def _lookup(record: Mapping[str, Any], field: str) -> Any:
        value: Any = record
        for part in field.split("."):
            if not isinstance(value, Mapping):
                return None
            value = next((item for key, item in value.items() if key.lower() == part.lower()), None)
        return value

    def _test(self, condition: re.Match[str], record: Mapping[str, Any]) -> bool:
        actual = self._lookup(record, condition["field"])
        if condition["method"]:
            if not isinstance(actual, str):
                return False
            method, arg = condition["method"].lower(), condition["arg"]
            if method == "startswith":
                return actual.startswith(arg)
            if method == "endswith":
                return actual.endswith(arg)
            return arg in actual
        raw = condition["value"]
        expected: Any
        if raw.lower() == "null":
            expected = None
        elif raw.lower() in {"true", "false"}:
            expected = raw.lower() == "true"
        elif raw.startswith('"'):
            expected = raw[1:-1]
        elif raw.lower().startswith("guid"):
            expected = raw[6:-2].lower()
            actual = actual.lower() if isinstance(actual, str) else actual
        else:
            expected = Decimal(raw)
            actual = Decimal(actual) if isinstance(actual, Decimal | int) and not isinstance(actual, bool) else actual
        equal = actual == expected
        return not equal if condition["op"] == "!=" else equal


class XeroSimulator(Simulator):
    """A stateful Xero organisation with one OAuth2 app connected to it."""

    name = "xero"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "record_credit": ("PUT", r"^/api\.xro/2\.0/CreditNotes$"),
    }
    TRANSIENT_STATUS: ClassVar[int] = 503

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        refresh_token: str = DEFAULT_REFRESH_TOKEN,
        tenant_id: str = DEFAULT_TENANT_ID,
        tenant_name: str = DEFAULT_TENANT_NAME,
        base_currency: str = "USD",
        currencies: Iterable[str] = ("USD", "EUR", "GBP", "NZD", "AUD", "JPY", "KWD"),
        clock: Callable[[], float] = time.time,
        access_token_seconds: int = ACCESS_TOKEN_SECONDS,
        refresh_grace_seconds: int = REFRESH_TOKEN_GRACE_SECONDS,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.initial_refresh_token = refresh_token
        self.tenant_id = tenant_id
        self.tenant_name = tenant_name
        self.base_currency = base_currency
        self.currencies = {base_currency, *currencies}
        self.clock = clock
        self.access_token_seconds = access_token_seconds
        self.refresh_grace_seconds = refresh_grace_seconds
        self.connection_id = str(uuid.uuid4())
        self.auth_event_id = str(uuid.uuid4())
        self.reset_state()

        self.route("/identity/connect/token", self._token, methods=["POST"])
        for path in ("/connections", "/Connections"):
            self.route(path, self._connections, methods=["GET"])
        self.route(f"{API}/Accounts", self._api(self._list_accounts), methods=["GET"])
        self.route(f"{API}/Contacts", self._api(self._list_contacts), methods=["GET"])
        self.route(f"{API}/Contacts", self._api(self._create_contacts), methods=["PUT", "POST"])
        self.route(f"{API}/Contacts/<contact_id>", self._api(self._get_contact), methods=["GET"])
        self.route(f"{API}/Invoices", self._api(self._list_invoices), methods=["GET"])
        self.route(f"{API}/Invoices", self._api(self._create_invoices), methods=["PUT", "POST"])
        self.route(f"{API}/Invoices/<invoice_id>", self._api(self._get_invoice), methods=["GET"])
        self.route(f"{API}/CreditNotes", self._api(self._list_credit_notes), methods=["GET"])
        self.route(f"{API}/CreditNotes", self._api(self._create_credit_notes), methods=["PUT", "POST"])
        self.route(f"{API}/CreditNotes/<credit_note_id>", self._api(self._get_credit_note), methods=["GET"])
        self.route(
            f"{API}/CreditNotes/<credit_note_id>/Allocations", self._api(self._create_allocations), methods=["PUT"]
        )
        self.route(f"{API}/Payments", self._api(self._list_payments), methods=["GET"])
        self.route(f"{API}/Payments", self._api(self._create_payments), methods=["PUT", "POST"])
        self.route(f"{API}/Payments/<payment_id>", self._api(self._get_payment), methods=["GET"])
        self.route("/_control/seed", self._seed_control, methods=["POST"])
        self.route("/_control/booked", self._booked_control, methods=["GET"])

    # ---------------------------------------------------------------- state

    def reset_state(self) -> None:
        self.refresh_tokens: dict[str, _RefreshToken] = {}
        self.access_tokens: dict[str, _AccessToken] = {}
        self.token_grants: list[dict[str, Any]] = []
        self.accounts: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_notes: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self._numbers = {"ACCREC": 0, "ACCRECCREDIT": 0, "ACCPAY": 0, "ACCPAYCREDIT": 0}
        self.refresh_tokens[self.initial_refresh_token] = _RefreshToken(self.initial_refresh_token, self.clock())
        for code, name, kind, tax_type, enable_payments, klass, system in _ACCOUNTS:
            account_id = str(uuid.uuid4())
            self.accounts[account_id] = {
                "AccountID": account_id,
                "Code": code,
                "Name": name,
                "Type": kind,
                "Status": "ACTIVE",
                "TaxType": tax_type,
                "EnablePaymentsToAccount": enable_payments,
                "Class": klass,
                "SystemAccount": system,
                "CurrencyCode": self.base_currency,
                **({"BankAccountType": "BANK", "BankAccountNumber": "0201234567"} if kind == "BANK" else {}),
            }

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def _today(self) -> date:
        return self._now().date()

    # ---------------------------------------------------------------- seeding helpers (tests, demo)

    def add_contact(self, name: str, email: str | None = None) -> dict[str, Any]:
        """Create a customer contact; returns it as the API shows it."""
        with self.lock:
            contact = self._new_contact({"Name": name, "EmailAddress": email})
            return self._render_contact(contact)

    def add_invoice(
        self,
        contact_id: str,
        lines: Iterable[tuple[str, Any, Any] | tuple[str, Any, Any, str] | tuple[str, Any, Any, str, str]],
        *,
        currency: str | None = None,
        status: str = "AUTHORISED",
        line_amount_types: str = "Inclusive",
        invoice_number: str | None = None,
        day: date | None = None,
    ) -> dict[str, Any]:
        """Create a sales invoice from ``(description, quantity, unit amount[, account code[, tax type]])``
        lines (amounts as ``Decimal``, ``int`` or decimal strings); returns it as the API shows it."""
        items = []
        for line in lines:
            description, quantity, unit = line[0], line[1], line[2]
            item: dict[str, Any] = {
                "Description": description,
                "Quantity": Decimal(str(quantity)),
                "UnitAmount": Decimal(str(unit)),
                "AccountCode": line[3] if len(line) > 3 else "200",
            }
            if len(line) > 4:
                item["TaxType"] = line[4]
            items.append(item)
        raw = {
            "Type": "ACCREC",
            "Contact": {"ContactID": contact_id},
            "LineItems": items,
            "Status": status,
            "LineAmountTypes": line_amount_types,
            "CurrencyCode": currency or self.base_currency,
            "Date": (day or self._today()).isoformat(),
            "DueDate": ((day or self._today()) + timedelta(days=30)).isoformat(),
        }
        if invoice_number:
            raw["InvoiceNumber"] = invoice_number
        with self.lock:
            return self._render_invoice(self._new_invoice(raw, unitdp=4))

    def pay_invoice(self, invoice_id: str, amount: Any = None, account_code: str = "090") -> dict[str, Any]:
        """Record a customer payment on an invoice (all that is due unless ``amount``); returns the payment."""
        with self.lock:
            invoice = self.invoices[invoice_id]
            raw = {
                "Invoice": {"InvoiceID": invoice_id},
                "Account": {"Code": account_code},
                "Amount": Decimal(str(amount)) if amount is not None else invoice["AmountDue"],
                "Date": self._today().isoformat(),
                "Reference": "customer payment",
            }
            return self._render_payment(self._new_payment(raw))

    def seed_demo(self) -> dict[str, str]:
        """A customer with a paid and an unpaid invoice, for the local demo; returns their ids."""
        contact = self.add_contact("Ada Lovelace", "ada@example.com")
        paid = self.add_invoice(contact["ContactID"], [("Walnut desk", 1, "249.00", "200", "OUTPUT2")])
        self.pay_invoice(paid["InvoiceID"])
        unpaid = self.add_invoice(contact["ContactID"], [("Desk lamp", 2, "39.50", "200", "OUTPUT2")])
        return {
            "contact_id": contact["ContactID"],
            "paid_invoice_id": paid["InvoiceID"],
            "unpaid_invoice_id": unpaid["InvoiceID"],
        }

    # ---------------------------------------------------------------- BooksSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """What the local stack seeds: the function's API secret (Xero sends no webhooks refundflow reads)."""
        return {"api": dict(self.initial_secret()), "verification": {}}

    def seed_invoice(self, amount_minor: int, currency: str, *, paid: bool = False) -> str:
        """An AUTHORISED sales invoice of one line of ``amount_minor`` ISO minor units (Xero keeps two decimals:
        the amount must fit them), paid in full when ``paid``; returns its InvoiceID.

        Raises:
            ValueError: an amount with a digit beyond Xero's two decimals, a currency the organisation lacks.
        """
        digits = {"JPY": 0, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3}.get(currency, 2)
        value = Decimal(amount_minor).scaleb(-digits)
        if value != value.quantize(Decimal("0.01")):
            raise ValueError(f"{value} {currency} has more than Xero's two decimals")
        if currency not in self.currencies:
            raise ValueError(f"the organisation has no {currency}")
        contact = self.add_contact(f"Customer {uuid.uuid4().hex[:8]}", "customer@example.com")
        invoice = self.add_invoice(contact["ContactID"], [("Goods", 1, value, "200", "OUTPUT2")], currency=currency)
        if paid:
            self.pay_invoice(invoice["InvoiceID"])
        return str(invoice["InvoiceID"])

    def documents(self) -> list[dict[str, Any]]:
        """Every credit note held, as the API shows it."""
        return self.all_credit_notes()

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            return self._render_invoice(self.invoices[invoice_id])

    def credit_note(self, credit_note_id: str) -> dict[str, Any]:
        with self.lock:
            return self._render_credit_note(self.credit_notes[credit_note_id])

    def all_credit_notes(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._render_credit_note(note) for note in self.credit_notes.values()]

    def all_payments(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._render_payment(payment) for payment in self.payments.values()]

    def initial_secret(self) -> dict[str, str]:
        """The Xero secret JSON the connector needs to talk to this simulator (what the local stack stores)."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.initial_refresh_token,
            "tenant_id": self.tenant_id,
        }

    def revoke_access_tokens(self) -> None:
        """Make every issued access token answer 401 (as after a revocation or an early expiry)."""
        with self.lock:
            self.access_tokens.clear()

    @property
    def current_refresh_token(self) -> str:
        """The newest refresh token of the app (the one that rotates on the next refresh)."""
        with self.lock:
            return next(token.value for token in self.refresh_tokens.values() if token.superseded_at is None)

    def _seed_control(self, request: Request) -> Response:
        return _xero_json(self.seed_demo(), 201)

    def booked(self) -> list[dict[str, Any]]:
        """Every credit note as booked: its fields, its lines, the allocations and payments made against it, and
        for each what Xero filled in because it was not sent (``defaulted``) and what it dropped (``ignored``)."""
        with self.lock:
            return [self._booking(note) for note in self.credit_notes.values()]

    def _booking(self, note: dict[str, Any]) -> dict[str, Any]:
        payments = [self.payments[pid] for pid in note["Payments"]]
        return {
            "CreditNoteID": note["CreditNoteID"],
            "CreditNoteNumber": note["CreditNoteNumber"],
            "Type": note["Type"],
            "Status": note["Status"],
            "Contact": note["Contact"],
            "Date": note["Date"].isoformat(),
            "CurrencyCode": note["CurrencyCode"],
            "LineAmountTypes": note["LineAmountTypes"],
            "Reference": note["Reference"],
            "Total": note["Total"],
            "LineItems": [
                {key: line[key] for key in ("Description", "Quantity", "UnitAmount", "AccountCode", "TaxType")}
                | {"LineAmount": line["LineAmount"], "TaxAmount": line["TaxAmount"]}
                for line in note["LineItems"]
            ],
            "Allocations": [dict(item) for item in note["Booked"]["allocations"]],
            "Payments": [
                {
                    "PaymentID": payment["PaymentID"],
                    "Account": self.accounts[payment["Account"]]["Code"],
                    "Date": payment["Date"].isoformat(),
                    "Amount": payment["Amount"],
                    "Reference": payment["Reference"],
                    "defaulted": list(payment["Booked"]["defaulted"]),
                    "ignored": list(payment["Booked"]["ignored"]),
                }
                for payment in payments
            ],
            "defaulted": list(note["Booked"]["defaulted"]),
            "ignored": list(note["Booked"]["ignored"]),
        }

    def _booked_control(self, request: Request) -> Response:
        return _xero_json({"CreditNotes": self.booked()})

    # ---------------------------------------------------------------- identity

    def _token(self, request: Request) -> Response:
        if request.mimetype != "application/x-www-form-urlencoded":
            return self._oauth_error("invalid_request")
        form = request.form
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return self._oauth_error("invalid_client")
        if client_id != self.client_id or client_secret != self.client_secret:
            return self._oauth_error("invalid_client")
        if form.get("grant_type") != "refresh_token":
            return self._oauth_error("unsupported_grant_type")
        presented = form.get("refresh_token", "")
        now = self.clock()
        with self.lock:
            token = self.refresh_tokens.get(presented)
            if token is None:
                return self._oauth_error("invalid_grant")
            if token.superseded_at is None:
                if now - token.issued_at > REFRESH_TOKEN_UNUSED_SECONDS:
                    return self._oauth_error("invalid_grant")
                successor = _RefreshToken(f"xrt_{uuid.uuid4().hex}", now)
                self.refresh_tokens[successor.value] = successor
                token.superseded_at, token.successor = now, successor.value
                returned = successor.value
            elif now - token.superseded_at <= self.refresh_grace_seconds:
                # Inside the grace period the old token still works and hands back the newest one.
                returned = self._newest(token).value
            else:
                return self._oauth_error("invalid_grant")
            access = _AccessToken(f"xat_{uuid.uuid4().hex}", now + self.access_token_seconds)
            self.access_tokens[access.value] = access
            self.token_grants.append({"presented": presented, "refresh_token": returned, "at": now})
        return _xero_json(
            {
                "access_token": access.value,
                "expires_in": self.access_token_seconds,
                "token_type": "Bearer",
                "refresh_token": returned,
                "scope": SCOPES,
            }
        )

    def _newest(self, token: _RefreshToken) -> _RefreshToken:
        while token.successor is not None:
            token = self.refresh_tokens[token.successor]
        return token

    @staticmethod
    def _oauth_error(error: str) -> Response:
        return _xero_json({"error": error}, 400)

    def _connections(self, request: Request) -> Response:
        problem = self._authenticate(request)
        if problem is not None:
            return problem
        stamp = self._now().strftime("%Y-%m-%dT%H:%M:%S.%f0")
        return _xero_json(
            [
                {
                    "id": self.connection_id,
                    "authEventId": self.auth_event_id,
                    "tenantId": self.tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": self.tenant_name,
                    "createdDateUtc": stamp,
                    "updatedDateUtc": stamp,
                }
            ]
        )

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        token = self.access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if token is None:
            return self._problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        if self.clock() >= token.expires_at:
            expired = datetime.fromtimestamp(token.expires_at, tz=UTC).strftime("%m/%d/%Y %H:%M:%S")
            return self._problem(401, "Unauthorized", f"TokenExpired: token expired at {expired}")
        return None

    @staticmethod
    def _problem(status: int, title: str, detail: str) -> Response:
        body: dict[str, Any] = {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": detail,
            "Instance": str(uuid.uuid4()),
            "Extensions": {},
        }
        return _xero_json(body, status)

    # ---------------------------------------------------------------- accounting plumbing

    def _api(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        """Authenticate, check the tenant, replay idempotent writes, then run ``handler`` under the lock."""

        def endpoint(request: Request, **arguments: Any) -> Response:
            with self.lock:
                problem = self._authenticate(request)
                if problem is not None:
                    return problem
                tenant = request.headers.get("xero-tenant-id", "")
                if tenant.lower() != self.tenant_id.lower():
                    return self._problem(403, "Forbidden", "AuthenticationUnsuccessful")
                key = request.headers.get("Idempotency-Key")
                if key is None or request.method not in {"POST", "PUT", "PATCH"}:
                    return self._run(handler, request, arguments)
                return self._idempotent(key, handler, request, arguments)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _idempotent(
        self, key: str, handler: Callable[..., Response], request: Request, arguments: dict[str, Any]
    ) -> Response:
        if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            return self._bad_request(
                f"Idempotency Key: {key} is {len(key)} characters long, the maximum is {IDEMPOTENCY_KEY_MAX_LENGTH}."
            )
        scope = self.client_id
        fingerprint = IdempotencyStore.fingerprint(
            request.method, request.path, request.query_string.decode(), request.get_data(as_text=True)
        )
        stored = self.idempotency.begin(scope, key)
        if isinstance(stored, StoredResponse) and self.clock() - stored.created_at < IDEMPOTENCY_WINDOW_SECONDS:
            if stored.fingerprint != fingerprint:
                return self._bad_request(f"Idempotency Key: {key} is used with a different request.")
            return Response(stored.body, status=stored.status, mimetype="application/json", headers=stored.headers)
        try:
            response = self._run(handler, request, arguments)
        except BaseException:
            self.idempotency.finish(scope, key, None)
            raise
        self.idempotency.finish(
            scope, key, StoredResponse(fingerprint, response.status_code, response.get_data(), {}, self.clock())
        )
        return response

    def _run(self, handler: Callable[..., Response], request: Request, arguments: dict[str, Any]) -> Response:
        try:
            return handler(request, **arguments)
        except _RefusedError as invalid:
            return self._validation_error([{"ValidationErrors": [{"Message": m} for m in invalid.messages]}])

    def _bad_request(self, message: str) -> Response:
        return _xero_json({"ErrorNumber": 10, "Type": "ValidationException", "Message": message, "Elements": []}, 400)

    @staticmethod
    def _validation_error(elements: list[dict[str, Any]]) -> Response:
        body = {
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": elements,
        }
        return _xero_json(body, 400)

    @staticmethod
    def _not_found() -> Response:
        return Response(NOT_FOUND_TEXT, status=404, mimetype="text/plain")

    def _body(self, request: Request, collection: str) -> list[dict[str, Any]]:
        try:
            payload = json.loads(request.get_data() or b"null", parse_float=Decimal)
        except ValueError as error:
            raise _RefusedError([f"The request body is not valid JSON: {error}"]) from error
        if isinstance(payload, Mapping) and collection in payload:
            items = payload[collection]
        elif isinstance(payload, Mapping):
            items = [payload]
        else:
            items = payload
        if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
            raise _RefusedError([f"The request must contain one or more {collection}"])
        return items

    def _envelope(self, collection: str, items: list[dict[str, Any]]) -> Response:
        return _xero_json(
            {
                "Id": str(uuid.uuid4()),
                "Status": "OK",
                "ProviderName": "refundflow local",
                "DateTimeUTC": f"/Date({_ms(self._now())})/",
                collection: items,
            }
        )

    def _filtered(
        self, request: Request, records: Iterable[dict[str, Any]], render: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        rendered = [render(record) for record in records]
        where = request.args.get("where")
        if not where:
            return rendered
        try:
            condition = _Where(where)
        except ValueError as error:
            raise _RefusedError([f"The where clause could not be understood near: {error}"]) from error
        return [item for item in rendered if condition.matches(item)]

    def _create_each(
        self,
        request: Request,
        collection: str,
        create: Callable[[dict[str, Any]], dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Response:
        """Validate every element first (Xero's summarizeErrors=true refuses the whole batch), then create."""
        raw_items = self._body(request, collection)
        failures = []
        for raw in raw_items:
            try:
                self._validate(collection, raw)
            except _RefusedError as invalid:
                failures.append({**_echo(raw), "ValidationErrors": [{"Message": m} for m in invalid.messages]})
        if failures:
            return self._validation_error(failures)
        created = [render(create(raw)) for raw in raw_items]
        return self._envelope(collection, created)

    def _validate(self, collection: str, raw: dict[str, Any]) -> None:
        # Creation validates fully before mutating anything; run it on a throwaway copy of the state.
        snapshot = (
            dict(self.contacts),
            dict(self.invoices),
            dict(self.credit_notes),
            dict(self.payments),
            dict(self._numbers),
        )
        creators = {
            "Contacts": self._check_contact,
            "Invoices": self._check_invoice,
            "CreditNotes": self._check_credit_note,
            "Payments": self._check_payment,
        }
        try:
            creators[collection](raw)
        finally:
            self.contacts, self.invoices, self.credit_notes, self.payments, self._numbers = snapshot

    # ---------------------------------------------------------------- accounts and contacts

    def _list_accounts(self, request: Request) -> Response:
        return self._envelope("Accounts", self._filtered(request, self.accounts.values(), dict))

    def _account_by(self, reference: Mapping[str, Any] | None) -> dict[str, Any]:
        if not isinstance(reference, Mapping):
            raise _RefusedError(["Account is required"])
        for account in self.accounts.values():
            if (reference.get("AccountID") and str(reference["AccountID"]).lower() == account["AccountID"]) or (
                reference.get("Code") and reference["Code"] == account["Code"]
            ):
                return account
        raise _RefusedError(
            [
                f"Account code '{reference.get('Code') or reference.get('AccountID')}' is not a valid code "
                "for this document."
            ]
        )

    def _account_code(self, code: Any) -> dict[str, Any]:
        account = next((a for a in self.accounts.values() if a["Code"] == code and a["Status"] == "ACTIVE"), None)
        if account is None:
            raise _RefusedError([f"Account code '{code}' is not a valid code for this document."])
        return account

    def _list_contacts(self, request: Request) -> Response:
        return self._envelope("Contacts", self._filtered(request, self.contacts.values(), self._render_contact))

    def _get_contact(self, request: Request, contact_id: str) -> Response:
        contact = self.contacts.get(contact_id.lower())
        return self._envelope("Contacts", [self._render_contact(contact)]) if contact else self._not_found()

    def _create_contacts(self, request: Request) -> Response:
        return self._create_each(request, "Contacts", self._new_contact, self._render_contact)

    def _check_contact(self, raw: dict[str, Any]) -> None:
        self._new_contact(raw)

    def _new_contact(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        name = str(raw.get("Name") or "").strip()
        if not name:
            raise _RefusedError(["The contact name must be specified."])
        if any(contact["Name"].lower() == name.lower() for contact in self.contacts.values()):
            raise _RefusedError(
                [
                    f"The contact name {name} is already assigned to another contact. The contact name must "
                    "be unique across all active contacts."
                ]
            )
        contact_id = str(uuid.uuid4())
        contact = {
            "ContactID": contact_id,
            "ContactStatus": "ACTIVE",
            "Name": name,
            "EmailAddress": raw.get("EmailAddress") or "",
            "IsCustomer": True,
            "IsSupplier": False,
            "UpdatedDateUTC": self._now(),
        }
        self.contacts[contact_id] = contact
        return contact

    def _contact_for(self, reference: Any) -> dict[str, Any]:
        if not isinstance(reference, Mapping):
            raise _RefusedError(["A Contact must be specified for this type of transaction"])
        if reference.get("ContactID"):
            contact = self.contacts.get(str(reference["ContactID"]).lower())
            if contact is None:
                raise _RefusedError(["The contact with the specified ContactID could not be found"])
            return contact
        name = str(reference.get("Name") or "").strip()
        if not name:
            raise _RefusedError(["A Contact must be specified for this type of transaction"])
        existing = next((c for c in self.contacts.values() if c["Name"].lower() == name.lower()), None)
        return existing or self._new_contact({"Name": name})

    @staticmethod
    def _render_contact(contact: dict[str, Any]) -> dict[str, Any]:
        return {
            **{key: value for key, value in contact.items() if key != "UpdatedDateUTC"},
            "UpdatedDateUTC": f"/Date({_ms(contact['UpdatedDateUTC'])}+0000)/",
            "Addresses": [],
            "Phones": [],
            "ContactGroups": [],
            "ContactPersons": [],
            "HasValidationErrors": False,
        }

    # ---------------------------------------------------------------- invoices and credit notes (documents)

    def _document_common(self, raw: Mapping[str, Any], kinds: set[str], unitdp: int, known: set[str]) -> dict[str, Any]:
        """Fields invoices and credit notes share, validated as Xero does; raises ``_RefusedError``."""
        errors: list[str] = []
        defaulted = _defaulted(raw, ("Date", "Status", "CurrencyCode", "LineAmountTypes", "Reference"))
        ignored = _ignored(raw, known)
        kind = raw.get("Type")
        if kind not in kinds:
            errors.append(f"Type must be one of {', '.join(sorted(kinds))}")
        status = raw.get("Status", "DRAFT")
        if status not in {"DRAFT", "SUBMITTED", "AUTHORISED"}:
            errors.append(f"A document cannot be created with status {status}")
        currency = raw.get("CurrencyCode", self.base_currency)
        if currency not in CURRENCY_EXPONENTS or currency not in self.currencies:
            errors.append(f"The currency code {currency} is not valid for this organisation")
        line_amount_types = raw.get("LineAmountTypes", "Exclusive")
        if line_amount_types not in {"Exclusive", "Inclusive", "NoTax"}:
            errors.append(f"LineAmountTypes {line_amount_types} is not valid")
        contact: dict[str, Any] | None = None
        try:
            contact = self._contact_for(raw.get("Contact"))
        except _RefusedError as invalid:
            errors.extend(invalid.messages)
        try:
            issued = _parse_date(raw["Date"], "Date") if raw.get("Date") else self._today()
        except _RefusedError as invalid:
            errors.extend(invalid.messages)
            issued = self._today()
        lines: list[dict[str, Any]] = []
        try:
            lines = self._lines(raw.get("LineItems"), str(line_amount_types), unitdp)
        except _RefusedError as invalid:
            errors.extend(invalid.messages)
        for index, line in enumerate(raw.get("LineItems") or []):
            if isinstance(line, Mapping):
                prefix = f"LineItems[{index}]."
                defaulted += _defaulted(line, ("Quantity", "AccountCode", "TaxType"), prefix)
                ignored += _ignored(line, _LINE_FIELDS, prefix)
        if status == "AUTHORISED" and not lines:
            errors.append("A document must have at least one line item to be approved")
        if errors:
            raise _RefusedError(errors)
        assert contact is not None
        sub_total, total_tax, total = _totals(lines, str(line_amount_types))
        if total < 0:
            raise _RefusedError(["The document total cannot be negative"])
        return {
            "Type": kind,
            "Status": status,
            "Contact": contact["ContactID"],
            "Date": issued,
            "CurrencyCode": currency,
            "LineAmountTypes": line_amount_types,
            "LineItems": lines,
            "SubTotal": sub_total,
            "TotalTax": total_tax,
            "Total": total,
            "Reference": raw.get("Reference") or "",
            "UpdatedDateUTC": self._now(),
            "Booked": {"defaulted": defaulted, "ignored": ignored, "allocations": []},
        }

    def _lines(self, raw_lines: Any, line_amount_types: str, unitdp: int) -> list[dict[str, Any]]:
        if raw_lines is None:
            return []
        if not isinstance(raw_lines, list):
            raise _RefusedError(["LineItems must be a list"])
        errors: list[str] = []
        lines = []
        for index, raw in enumerate(raw_lines, start=1):
            try:
                lines.append(self._line(raw, line_amount_types, unitdp))
            except _RefusedError as invalid:
                errors.extend(f"Line {index}: {message}" for message in invalid.messages)
        if errors:
            raise _RefusedError(errors)
        return lines

    def _line(self, raw: Any, line_amount_types: str, unitdp: int) -> dict[str, Any]:
        if not isinstance(raw, Mapping) or not str(raw.get("Description") or "").strip():
            raise _RefusedError(["Description needs to be at least 1 char long"])
        quantity = _number(raw.get("Quantity", 1), "Quantity", 4)
        if "UnitAmount" in raw:
            unit = _number(raw["UnitAmount"], "UnitAmount", unitdp)
        elif "LineAmount" in raw and quantity:
            unit = _number(raw["LineAmount"], "LineAmount") / quantity
        else:
            raise _RefusedError(["UnitAmount is required"])
        account = self._account_code(raw.get("AccountCode"))
        tax_type = raw.get("TaxType") or account["TaxType"]
        if line_amount_types == "NoTax":
            tax_type = "NONE"
        if tax_type not in _TAX_RATES:
            raise _RefusedError(
                [f"The TaxType code '{tax_type}' does not exist or cannot be used for this type of transaction."]
            )
        line_amount = _round(quantity * unit)
        rate = _TAX_RATES[tax_type]
        if line_amount_types == "Exclusive":
            tax = _round(line_amount * rate)
        elif line_amount_types == "Inclusive":
            tax = _round(line_amount * rate / (1 + rate))
        else:
            tax = Decimal("0.00")
        return {
            "LineItemID": str(uuid.uuid4()),
            "Description": str(raw["Description"]),
            "Quantity": quantity,
            "UnitAmount": unit,
            "AccountCode": account["Code"],
            "TaxType": tax_type,
            "TaxAmount": tax,
            "LineAmount": line_amount,
        }

    def _next_number(self, kind: str) -> str:
        self._numbers[kind] += 1
        prefix = {"ACCREC": "INV", "ACCRECCREDIT": "CN", "ACCPAY": "BILL", "ACCPAYCREDIT": "BCN"}[kind]
        return f"{prefix}-{self._numbers[kind]:04d}"

    # invoices

    def _list_invoices(self, request: Request) -> Response:
        return self._envelope("Invoices", self._filtered(request, self.invoices.values(), self._render_invoice))

    def _get_invoice(self, request: Request, invoice_id: str) -> Response:
        invoice = self.invoices.get(invoice_id.lower())
        return self._envelope("Invoices", [self._render_invoice(invoice)]) if invoice else self._not_found()

    def _create_invoices(self, request: Request) -> Response:
        unitdp = 4 if request.args.get("unitdp") == "4" else 2
        return self._create_each(request, "Invoices", lambda raw: self._new_invoice(raw, unitdp), self._render_invoice)

    def _check_invoice(self, raw: dict[str, Any]) -> None:
        self._new_invoice(raw, unitdp=4)

    def _new_invoice(self, raw: Mapping[str, Any], unitdp: int) -> dict[str, Any]:
        document = self._document_common(raw, {"ACCREC", "ACCPAY"}, unitdp, _INVOICE_FIELDS)
        number = raw.get("InvoiceNumber")
        if number and any(
            i["InvoiceNumber"] == number and i["Type"] == document["Type"] for i in self.invoices.values()
        ):
            raise _RefusedError(["Invoice # must be unique."])
        invoice_id = str(uuid.uuid4())
        due_date = _parse_date(raw["DueDate"], "DueDate") if raw.get("DueDate") else document["Date"]
        invoice = {
            **document,
            "InvoiceID": invoice_id,
            "InvoiceNumber": number or self._next_number(str(document["Type"])),
            "DueDate": due_date,
            "AmountDue": document["Total"],
            "AmountPaid": Decimal("0.00"),
            "AmountCredited": Decimal("0.00"),
            "Payments": [],
            "CreditNotes": [],
            "FullyPaidOnDate": None,
        }
        self.invoices[invoice_id] = invoice
        return invoice

    def _render_invoice(self, invoice: dict[str, Any]) -> dict[str, Any]:
        contact = self.contacts[invoice["Contact"]]
        rendered = {
            "Type": invoice["Type"],
            "InvoiceID": invoice["InvoiceID"],
            "InvoiceNumber": invoice["InvoiceNumber"],
            "Reference": invoice["Reference"],
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": _date_json(invoice["Date"]),
            "DateString": f"{invoice['Date'].isoformat()}T00:00:00",
            "DueDate": _date_json(invoice["DueDate"]),
            "DueDateString": f"{invoice['DueDate'].isoformat()}T00:00:00",
            "Status": invoice["Status"],
            "LineAmountTypes": invoice["LineAmountTypes"],
            "LineItems": [_render_line(line) for line in invoice["LineItems"]],
            "SubTotal": invoice["SubTotal"],
            "TotalTax": invoice["TotalTax"],
            "Total": invoice["Total"],
            "CurrencyCode": invoice["CurrencyCode"],
            "CurrencyRate": Decimal("1.000000"),
            "AmountDue": invoice["AmountDue"],
            "AmountPaid": invoice["AmountPaid"],
            "AmountCredited": invoice["AmountCredited"],
            "Payments": [self._payment_summary(self.payments[pid]) for pid in invoice["Payments"]],
            "CreditNotes": [dict(item) for item in invoice["CreditNotes"]],
            "Prepayments": [],
            "Overpayments": [],
            "IsDiscounted": False,
            "HasAttachments": False,
            "HasErrors": False,
            "UpdatedDateUTC": f"/Date({_ms(invoice['UpdatedDateUTC'])}+0000)/",
        }
        if invoice["FullyPaidOnDate"] is not None:
            rendered["FullyPaidOnDate"] = _date_json(invoice["FullyPaidOnDate"])
        return rendered

    # credit notes

    def _list_credit_notes(self, request: Request) -> Response:
        notes = self._filtered(request, self.credit_notes.values(), self._render_credit_note)
        return self._envelope("CreditNotes", notes)

    def _get_credit_note(self, request: Request, credit_note_id: str) -> Response:
        note = self.credit_notes.get(credit_note_id.lower())
        return self._envelope("CreditNotes", [self._render_credit_note(note)]) if note else self._not_found()

    def _create_credit_notes(self, request: Request) -> Response:
        unitdp = 4 if request.args.get("unitdp") == "4" else 2
        return self._create_each(
            request,
            "CreditNotes",
            lambda raw: self._new_credit_note(raw, unitdp),
            self._render_credit_note,
        )

    def _check_credit_note(self, raw: dict[str, Any]) -> None:
        self._new_credit_note(raw, unitdp=4)

    def _new_credit_note(self, raw: Mapping[str, Any], unitdp: int) -> dict[str, Any]:
        document = self._document_common(raw, {"ACCRECCREDIT", "ACCPAYCREDIT"}, unitdp, _CREDIT_NOTE_FIELDS)
        if raw.get("Allocations") or raw.get("Payments"):
            raise _RefusedError(
                ["Allocations and payments cannot be created with the credit note: add them afterwards"]
            )
        number = raw.get("CreditNoteNumber")
        if number and any(n["CreditNoteNumber"] == number for n in self.credit_notes.values()):
            raise _RefusedError(["Credit Note # must be unique."])
        credit_note_id = str(uuid.uuid4())
        note = {
            **document,
            "CreditNoteID": credit_note_id,
            "CreditNoteNumber": number or self._next_number(str(document["Type"])),
            "RemainingCredit": document["Total"],
            "Allocations": [],
            "Payments": [],
            "FullyPaidOnDate": None,
        }
        self.credit_notes[credit_note_id] = note
        return note

    def _render_credit_note(self, note: dict[str, Any]) -> dict[str, Any]:
        contact = self.contacts[note["Contact"]]
        rendered = {
            "CreditNoteID": note["CreditNoteID"],
            "ID": note["CreditNoteID"],
            "CreditNoteNumber": note["CreditNoteNumber"],
            "Type": note["Type"],
            "Reference": note["Reference"],
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": _date_json(note["Date"]),
            "DateString": f"{note['Date'].isoformat()}T00:00:00",
            "Status": note["Status"],
            "LineAmountTypes": note["LineAmountTypes"],
            "LineItems": [_render_line(line) for line in note["LineItems"]],
            "SubTotal": note["SubTotal"],
            "TotalTax": note["TotalTax"],
            "Total": note["Total"],
            "CurrencyCode": note["CurrencyCode"],
            "CurrencyRate": Decimal("1.000000"),
            "RemainingCredit": note["RemainingCredit"],
            "Allocations": [dict(item) for item in note["Allocations"]],
            "Payments": [self._payment_summary(self.payments[pid]) for pid in note["Payments"]],
            "HasAttachments": False,
            "HasErrors": False,
            "UpdatedDateUTC": f"/Date({_ms(note['UpdatedDateUTC'])}+0000)/",
        }
        if note["FullyPaidOnDate"] is not None:
            rendered["FullyPaidOnDate"] = _date_json(note["FullyPaidOnDate"])
        return rendered

    # allocations

    def _create_allocations(self, request: Request, credit_note_id: str) -> Response:
        note = self.credit_notes.get(credit_note_id.lower())
        if note is None:
            return self._not_found()
        raw_items = self._body(request, "Allocations")
        # Validate all, then apply all: a refused batch changes nothing.
        plans: list[tuple[dict[str, Any], Decimal, date, list[str]]] = []
        remaining = note["RemainingCredit"]
        failures = []
        pending_due: dict[str, Decimal] = {}
        for raw in raw_items:
            try:
                invoice, amount, day = self._check_allocation(note, raw, remaining, pending_due)
            except _RefusedError as invalid:
                failures.append({**_echo(raw), "ValidationErrors": [{"Message": m} for m in invalid.messages]})
                continue
            remaining -= amount
            pending_due[invoice["InvoiceID"]] = pending_due.get(invoice["InvoiceID"], invoice["AmountDue"]) - amount
            plans.append((invoice, amount, day, _ignored(raw, _ALLOCATION_FIELDS)))
        if failures:
            return self._validation_error(failures)
        created = [
            self._apply_allocation(note, invoice, amount, day, ignored) for invoice, amount, day, ignored in plans
        ]
        return self._envelope("Allocations", created)

    def _check_allocation(
        self, note: dict[str, Any], raw: Mapping[str, Any], remaining: Decimal, pending_due: Mapping[str, Decimal]
    ) -> tuple[dict[str, Any], Decimal, date]:
        errors: list[str] = []
        if note["Status"] != "AUTHORISED":
            errors.append("Only AUTHORISED credit notes with remaining credit can be allocated")
        reference = raw.get("Invoice")
        invoice = None
        if isinstance(reference, Mapping) and reference.get("InvoiceID"):
            invoice = self.invoices.get(str(reference["InvoiceID"]).lower())
        if invoice is None:
            raise _RefusedError([*errors, "Invoice could not be found"])
        if "Date" not in raw:
            errors.append("Date is required")
        day = _parse_date(raw.get("Date"), "Date") if raw.get("Date") else self._today()
        try:
            amount = _number(raw.get("Amount"), "Amount")
        except _RefusedError as invalid:
            raise _RefusedError([*errors, *invalid.messages]) from invalid
        expected_type = {"ACCRECCREDIT": "ACCREC", "ACCPAYCREDIT": "ACCPAY"}[note["Type"]]
        if invoice["Type"] != expected_type:
            errors.append("Credit Note cannot be allocated to an incorrect invoice type")
        if invoice["Status"] == "PAID":
            errors.append("The invoice you are trying to allocate to has already been paid off")
        elif invoice["Status"] != "AUTHORISED":
            errors.append("Credit notes can only be allocated to AUTHORISED invoices")
        if invoice["Contact"] != note["Contact"]:
            errors.append("The credit note and the invoice must belong to the same contact")
        if invoice["CurrencyCode"] != note["CurrencyCode"]:
            errors.append("The credit note and the invoice must be in the same currency")
        if amount <= 0:
            errors.append("Amount must be greater than zero")
        due = pending_due.get(invoice["InvoiceID"], invoice["AmountDue"])
        if amount > due:
            errors.append("Credit Note cannot be allocated as amount is greater than amount outstanding")
        if amount > remaining:
            errors.append("The amount allocated exceeds the remaining credit on the credit note")
        if errors:
            raise _RefusedError(errors)
        return invoice, amount, day

    def _apply_allocation(
        self, note: dict[str, Any], invoice: dict[str, Any], amount: Decimal, day: date, ignored: list[str]
    ) -> dict[str, Any]:
        allocation_id = str(uuid.uuid4())
        note["Booked"]["allocations"].append(
            {
                "AllocationID": allocation_id,
                "Invoice": invoice["InvoiceID"],
                "Amount": amount,
                "Date": day.isoformat(),
                "defaulted": [],
                "ignored": ignored,
            }
        )
        now = self._now()
        note["RemainingCredit"] -= amount
        note["UpdatedDateUTC"] = now
        if note["RemainingCredit"] == 0:
            note["Status"], note["FullyPaidOnDate"] = "PAID", day
        invoice["AmountDue"] -= amount
        invoice["AmountCredited"] += amount
        invoice["UpdatedDateUTC"] = now
        if invoice["AmountDue"] == 0:
            invoice["Status"], invoice["FullyPaidOnDate"] = "PAID", day
        note["Allocations"].append(
            {
                "AllocationID": allocation_id,
                "Amount": amount,
                "Date": _date_json(day),
                "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"]},
            }
        )
        invoice["CreditNotes"].append(
            {
                "CreditNoteID": note["CreditNoteID"],
                "CreditNoteNumber": note["CreditNoteNumber"],
                "AppliedAmount": amount,
                "Date": _date_json(day),
                "Total": note["Total"],
            }
        )
        return {
            "AllocationID": allocation_id,
            "Amount": amount,
            "Date": _date_json(day),
            "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"]},
            "CreditNote": {"CreditNoteID": note["CreditNoteID"], "CreditNoteNumber": note["CreditNoteNumber"]},
            "ValidationErrors": [],
        }

    # ---------------------------------------------------------------- payments

    def _list_payments(self, request: Request) -> Response:
        return self._envelope("Payments", self._filtered(request, self.payments.values(), self._render_payment))

    def _get_payment(self, request: Request, payment_id: str) -> Response:
        payment = self.payments.get(payment_id.lower())
        return self._envelope("Payments", [self._render_payment(payment)]) if payment else self._not_found()

    def _create_payments(self, request: Request) -> Response:
        return self._create_each(request, "Payments", self._new_payment, self._render_payment)

    def _check_payment(self, raw: dict[str, Any]) -> None:
        # Check only: applying a payment mutates documents, which the snapshot in _validate does not copy.
        self._payment_plan(raw)

    def _payment_plan(self, raw: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any], Decimal, date]:
        errors: list[str] = []
        target: tuple[str, dict[str, Any]] | None = None
        invoice_ref, note_ref = raw.get("Invoice"), raw.get("CreditNote")
        if isinstance(invoice_ref, Mapping) and isinstance(note_ref, Mapping):
            errors.append("A payment can be applied to an invoice or a credit note, not both")
        elif isinstance(invoice_ref, Mapping):
            invoice = self._find_document(self.invoices, invoice_ref, "InvoiceID", "InvoiceNumber")
            target = ("invoice", invoice) if invoice else None
            if invoice is None:
                errors.append("Invoice could not be found")
        elif isinstance(note_ref, Mapping):
            note = self._find_document(self.credit_notes, note_ref, "CreditNoteID", "CreditNoteNumber")
            target = ("credit_note", note) if note else None
            if note is None:
                errors.append("Credit note could not be found")
        else:
            errors.append("A payment must be applied to an Invoice or a CreditNote")
        account = None
        try:
            account = self._account_by(raw.get("Account") or ({"Code": raw["Code"]} if raw.get("Code") else None))
        except _RefusedError as invalid:
            errors.extend(invalid.messages)
        if account is not None and account["Type"] != "BANK" and not account["EnablePaymentsToAccount"]:
            errors.append("Payments can only be made to BANK accounts or accounts with EnablePaymentsToAccount set")
        amount = Decimal(0)
        try:
            amount = _number(raw.get("Amount"), "Amount")
        except _RefusedError as invalid:
            errors.extend(invalid.messages)
        day = self._today()
        try:
            day = _parse_date(raw["Date"], "Date") if raw.get("Date") else day
        except _RefusedError as invalid:
            errors.extend(invalid.messages)
        if target is not None:
            kind, document = target
            outstanding = document["AmountDue"] if kind == "invoice" else document["RemainingCredit"]
            if document["Status"] != "AUTHORISED":
                errors.append(
                    f"Payments can only be made against AUTHORISED documents (this one is {document['Status']})"
                )
            if amount <= 0:
                errors.append("Payment amount must be greater than zero")
            elif amount > outstanding:
                errors.append("Payment amount exceeds the amount outstanding on this document")
        if errors or target is None or account is None:
            raise _RefusedError(errors)
        return target[0], target[1], account, amount, day

    @staticmethod
    def _find_document(
        records: Mapping[str, dict[str, Any]], reference: Mapping[str, Any], id_field: str, number_field: str
    ) -> dict[str, Any] | None:
        if reference.get(id_field):
            return records.get(str(reference[id_field]).lower())
        number = reference.get(number_field)
        return next((record for record in records.values() if number and record[number_field] == number), None)

    def _new_payment(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        kind, document, account, amount, day = self._payment_plan(raw)
        payment_id = str(uuid.uuid4())
        now = self._now()
        if kind == "invoice":
            document["AmountDue"] -= amount
            document["AmountPaid"] += amount
            if document["AmountDue"] == 0:
                document["Status"], document["FullyPaidOnDate"] = "PAID", day
            payment_type = "ACCRECPAYMENT" if document["Type"] == "ACCREC" else "ACCPAYPAYMENT"
        else:
            document["RemainingCredit"] -= amount
            if document["RemainingCredit"] == 0:
                document["Status"], document["FullyPaidOnDate"] = "PAID", day
            payment_type = "ARCREDITPAYMENT" if document["Type"] == "ACCRECCREDIT" else "APCREDITPAYMENT"
        document["Payments"].append(payment_id)
        document["UpdatedDateUTC"] = now
        payment = {
            "PaymentID": payment_id,
            "Kind": kind,
            "Document": document["InvoiceID"] if kind == "invoice" else document["CreditNoteID"],
            "Account": account["AccountID"],
            "Amount": amount,
            "Date": day,
            "Reference": str(raw.get("Reference") or ""),
            "PaymentType": payment_type,
            "Status": "AUTHORISED",
            "IsReconciled": bool(raw.get("IsReconciled", False)),
            "UpdatedDateUTC": now,
            "Booked": {"defaulted": _defaulted(raw, ("Date", "Reference")), "ignored": _ignored(raw, _PAYMENT_FIELDS)},
        }
        self.payments[payment_id] = payment
        return payment

    def _payment_summary(self, payment: dict[str, Any]) -> dict[str, Any]:
        return {
            "PaymentID": payment["PaymentID"],
            "Date": _date_json(payment["Date"]),
            "Amount": payment["Amount"],
            "Reference": payment["Reference"],
            "CurrencyRate": Decimal("1.000000"),
            "HasAccount": False,
            "HasValidationErrors": False,
        }

    def _render_payment(self, payment: dict[str, Any]) -> dict[str, Any]:
        account = self.accounts[payment["Account"]]
        rendered: dict[str, Any] = {
            "PaymentID": payment["PaymentID"],
            "Date": _date_json(payment["Date"]),
            "Amount": payment["Amount"],
            "BankAmount": payment["Amount"],
            "Reference": payment["Reference"],
            "CurrencyRate": Decimal("1.000000"),
            "PaymentType": payment["PaymentType"],
            "Status": payment["Status"],
            "IsReconciled": payment["IsReconciled"],
            "HasAccount": True,
            "HasValidationErrors": False,
            "Account": {"AccountID": account["AccountID"], "Code": account["Code"]},
            "UpdatedDateUTC": f"/Date({_ms(payment['UpdatedDateUTC'])}+0000)/",
        }
        if payment["Kind"] == "invoice":
            invoice = self.invoices[payment["Document"]]
            rendered["Invoice"] = {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice["InvoiceNumber"],
                "Type": invoice["Type"],
                "CurrencyCode": invoice["CurrencyCode"],
            }
        else:
            note = self.credit_notes[payment["Document"]]
            rendered["CreditNote"] = {
                "CreditNoteID": note["CreditNoteID"],
                "CreditNoteNumber": note["CreditNoteNumber"],
                "Type": note["Type"],
                "CurrencyCode": note["CurrencyCode"],
            }
        return rendered


def _totals(lines: list[dict[str, Any]], line_amount_types: str) -> tuple[Decimal, Decimal, Decimal]:
    amounts = sum((line["LineAmount"] for line in lines), Decimal("0.00"))
    tax = sum((line["TaxAmount"] for line in lines), Decimal("0.00"))
    if line_amount_types == "Inclusive":
        return amounts - tax, tax, amounts
    return amounts, tax, amounts + tax


def _render_line(line: dict[str, Any]) -> dict[str, Any]:
    return {**line, "Tracking": [], "ValidationErrors": []}


def _echo(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar fields of a refused element, echoed back beside its validation errors (as Xero does)."""
    echoed: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
            echoed[key] = value
    return echoed
