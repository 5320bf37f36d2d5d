"""Zoho Books sandbox simulator: Zoho's accounts server (refresh-token grant) and the Books API v3 endpoints
refundflow calls.

Mounted by the local stack at ``/_sandbox/zoho_books`` with Zoho's own paths below it:

- ``POST /accounts/oauth/v2/token``: refresh-token grant, its parameters in the query string (or the form).
  Refresh tokens do not rotate; access tokens live one hour. A refused grant answers ``{"error": "invalid_code"}``
  with HTTP 200.
- ``/books/v3/``: ``invoices/{id}``, ``creditnotes`` (list with ``reference_number``, create with ``invoice_id``),
  ``creditnotes/{id}``, ``creditnotes/{id}/status/open``, ``creditnotes/{id}/invoices`` (apply credits, list
  invoices credited) and ``creditnotes/{id}/refunds`` (refund, list refunds). Every call needs
  ``Authorization: Zoho-oauthtoken <token>`` (401 otherwise) and the organization's ``organization_id`` query
  parameter. Answers are
  ``{"code": 0, "message": ..., <object>: {...}}``; refusals are ``{"code": <int>, "message": ...}`` with HTTP 400
  (``1002`` "... does not exist." with 404 for an unknown id). There is no idempotency key: a repeated create
  books a second credit note, as Zoho would.

A credit note is created as a draft (the stricter reading: Zoho's pages do not say which status an API-created
credit note takes) and must be marked open (``POST creditnotes/{id}/status/open``) before it is applied or
refunded. An organization with an approval workflow (:meth:`ZohoBooksSimulator.require_approval`) creates credit
notes pending approval instead, opened by :meth:`ZohoBooksSimulator.approve`.

Strict where Zoho is strict and stricter where it is silent: a body field Zoho's create/apply/refund pages do not
list is refused (code 2, "Invalid value passed for ..."), so a misspelt field never passes unnoticed; amounts
with more decimals than the currency has are refused rather than rounded; dates on or before the transaction lock
date (:meth:`ZohoBooksSimulator.lock_transactions`) are refused. Amounts are exact decimals both ways.

State is kept per instance; ``clock`` is injectable so tests can move time (token expiry).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, exact_json
from local.simulators.zoho_accounts import ZohoAccountsSimulator
from refundflow.money import CURRENCY_EXPONENTS

DEFAULT_CLIENT_ID = "1000.REFUNDFLOWLOCALZOHOBOOKS0001"
DEFAULT_CLIENT_SECRET = "refundflow-local-zoho-books-client-secret"
DEFAULT_REFRESH_TOKEN = "1000.refundflow-local-zoho-books-refresh-token"
DEFAULT_ORGANIZATION_ID = "10234695"
API = "/books/v3"

SALES_ACCOUNT_ID = "460000000000100"
CLEARING_ACCOUNT_ID = "460000000000358"
BANK_ACCOUNT_ID = "460000000000359"
EXPENSE_ACCOUNT_ID = "460000000000400"
STANDARD_TAX_ID = "460000000000500"
ZERO_TAX_ID = "460000000000501"

# Accounts a credit note refund may be paid from (Zoho's from_account_id: bank, cash, payment clearing...).
_REFUND_FROM_TYPES = {"bank", "cash", "payment_clearing", "other_current_asset"}
_CREDIT_NOTE_FIELDS = {
    "customer_id",
    "contact_persons",
    "date",
    "reference_number",
    "creditnote_number",
    "is_inclusive_tax",
    "exchange_rate",
    "line_items",
    "notes",
    "terms",
    "template_id",
    "location_id",
    "custom_fields",
    "tax_treatment",
}
_LINE_FIELDS = {"item_id", "account_id", "name", "description", "rate", "quantity", "unit", "tax_id", "location_id"}
_APPLY_FIELDS = {"invoice_id", "amount_applied"}
_REFUND_FIELDS = {
    "date",
    "refund_mode",
    "reference_number",
    "amount",
    "exchange_rate",
    "from_account_id",
    "description",
}
_REFUND_MODES = {"cash", "check", "creditcard", "banktransfer", "bankremittance", "autotransaction", "others"}


class _Refused(Exception):
    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _answer(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(exact_json(dict(body)), status=status, mimetype="application/json")


def _digits(currency: str) -> int:
    return CURRENCY_EXPONENTS.get(currency, 2)


def _amount(value: Any, name: str, currency: str, *, positive: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise _Refused(2, f"Invalid value passed for {name}")
    try:
        number = Decimal(value)
    except InvalidOperation as error:
        raise _Refused(2, f"Invalid value passed for {name}") from error
    if not number.is_finite() or (positive and number <= 0) or number < 0:
        raise _Refused(2, f"Invalid value passed for {name}")
    if number != number.quantize(Decimal(1).scaleb(-_digits(currency))):
        raise _Refused(2, f"{name} has more decimals than {currency} allows")
    return number


def _quantity(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Refused(2, "Invalid value passed for quantity")
    number = Decimal(value)
    if not number.is_finite() or number <= 0 or number != number.quantize(Decimal("0.0001")):
        raise _Refused(2, "Invalid value passed for quantity")
    return number


def _day(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as error:
        raise _Refused(2, f"Invalid value passed for {name}") from error


def _only(body: Any, known: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise _Refused(2, f"Invalid value passed for {where}")
    for key in body:
        if key not in known:
            raise _Refused(2, f"Invalid value passed for {key}")
    return body


@dataclass
class _Invoice:
    invoice_id: str
    invoice_number: str
    customer_id: str
    currency_code: str
    date: date
    total: Decimal
    balance: Decimal
    tax_id: str
    status: str = "sent"


@dataclass
class _CreditNote:
    creditnote_id: str
    creditnote_number: str
    customer_id: str
    currency_code: str
    date: date
    reference_number: str
    invoice_id: str | None
    is_inclusive_tax: bool
    line_items: list[dict[str, Any]]
    total: Decimal
    notes: str = ""
    status: str = "draft"
    applied: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def credits_used(self) -> Decimal:
        return sum((Decimal(row["credited_amount"]) for row in self.applied), Decimal(0))

    @property
    def refunded(self) -> Decimal:
        return sum((Decimal(row["amount"]) for row in self.refunds), Decimal(0))

    @property
    def balance(self) -> Decimal:
        return self.total - self.credits_used - self.refunded


class ZohoBooksSimulator(ZohoAccountsSimulator):
    """One Zoho Books organization behind its accounts server."""

    name = "zoho_books"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {"record_credit": ("POST", r"^/books/v3/creditnotes$")}
    TRANSIENT_STATUS: ClassVar[int] = 429

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        refresh_token: str = DEFAULT_REFRESH_TOKEN,
        organization_id: str = DEFAULT_ORGANIZATION_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.organization_id = organization_id
        self.clock = clock
        self.accounts = {
            SALES_ACCOUNT_ID: "income",
            CLEARING_ACCOUNT_ID: "payment_clearing",
            BANK_ACCOUNT_ID: "bank",
            EXPENSE_ACCOUNT_ID: "expense",
        }
        self.taxes = {STANDARD_TAX_ID: Decimal("0.20"), ZERO_TAX_ID: Decimal(0)}
        self.reset_state()
        self.route(f"{API}/invoices/<invoice_id>", self._api(self._get_invoice), methods=["GET"])
        self.route(f"{API}/creditnotes", self._api(self._list_credit_notes), methods=["GET"])
        self.route(f"{API}/creditnotes", self._api(self._create_credit_note), methods=["POST"])
        self.route(f"{API}/creditnotes/<creditnote_id>", self._api(self._get_credit_note), methods=["GET"])
        self.route(f"{API}/creditnotes/<creditnote_id>/status/open", self._api(self._mark_open), methods=["POST"])
        self.route(f"{API}/creditnotes/<creditnote_id>/invoices", self._api(self._invoices_credited), methods=["GET"])
        self.route(f"{API}/creditnotes/<creditnote_id>/invoices", self._api(self._apply), methods=["POST"])
        self.route(f"{API}/creditnotes/<creditnote_id>/refunds", self._api(self._list_refunds), methods=["GET"])
        self.route(f"{API}/creditnotes/<creditnote_id>/refunds", self._api(self._refund), methods=["POST"])

    def reset_state(self) -> None:
        self.access_tokens: dict[str, float] = {}
        self.token_grants = 0
        self.invoices: dict[str, _Invoice] = {}
        self.credit_notes: dict[str, _CreditNote] = {}
        self.customers: dict[str, str] = {}
        self.lock_date: date | None = None
        self.approval_required = False
        self._serial = 0

    def _next_id(self) -> str:
        self._serial += 1
        return f"4600000{self._serial:08d}"

    def fault_response(self, fault: FaultRule) -> Response:
        if fault.status == 429:
            message = "You have made too many requests continuously. Please try again after some time."
            return _answer({"code": 44, "message": message}, 429)
        return _answer({"code": 1000, "message": "Internal error"}, fault.status or 500)

    def not_found(self, request: Request) -> Response:
        return _answer({"code": 5, "message": "Invalid URL Passed"}, 404)

    # ---------------------------------------------------------------- API plumbing

    def _api(self, handler: Callable[..., Mapping[str, Any]]) -> Callable[..., Response]:
        def serve(request: Request, **arguments: Any) -> Response:
            with self.lock:
                if not self.access_token_valid(request):
                    return _answer({"code": 57, "message": "You are not authorized to perform this operation"}, 401)
                if request.args.get("organization_id") != self.organization_id:
                    return _answer(
                        {"code": 6041, "message": "This user is not associated with this organization."}, 400
                    )
                try:
                    body = None
                    if request.method == "POST" and request.content_length:
                        if request.mimetype != "application/json":
                            raise _Refused(2, "Invalid value passed for JSONString")
                        try:
                            body = json.loads(request.get_data(), parse_float=Decimal)
                        except ValueError as error:
                            raise _Refused(2, "Invalid value passed for JSONString") from error
                    result = handler(request, body, **arguments)
                except _Refused as refusal:
                    return _answer({"code": refusal.code, "message": refusal.message}, refusal.status)
            status = 201 if request.method == "POST" else 200
            return _answer({"code": 0, **result}, status)

        serve.__name__ = handler.__name__
        return serve

    def _invoice(self, invoice_id: str) -> _Invoice:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise _Refused(1002, "Invoice does not exist.", 404)
        return invoice

    def _note(self, creditnote_id: str) -> _CreditNote:
        note = self.credit_notes.get(creditnote_id)
        if note is None:
            raise _Refused(1002, "Credit Note does not exist.", 404)
        return note

    def _check_open_period(self, day: date) -> None:
        if self.lock_date is not None and day <= self.lock_date:
            raise _Refused(
                4083,
                f"Transactions dated on or before {self.lock_date.isoformat()} are locked. "
                "Unlock the period in Settings > Transaction Locking to record it.",
            )

    # ---------------------------------------------------------------- endpoints

    def _get_invoice(self, request: Request, body: Any, invoice_id: str) -> Mapping[str, Any]:
        return {"message": "success", "invoice": self._render_invoice(self._invoice(invoice_id))}

    def _list_credit_notes(self, request: Request, body: Any) -> Mapping[str, Any]:
        reference = request.args.get("reference_number")
        customer = request.args.get("customer_id")
        notes = [
            self._render_credit_note(note, summary=True)
            for note in self.credit_notes.values()
            if (reference is None or note.reference_number == reference)
            and (customer is None or note.customer_id == customer)
        ]
        context = {"page": 1, "per_page": 200, "has_more_page": False}
        return {"message": "success", "creditnotes": notes, "page_context": context}

    def _create_credit_note(self, request: Request, body: Any) -> Mapping[str, Any]:
        payload = _only(body, _CREDIT_NOTE_FIELDS, "creditnote")
        customer_id = payload.get("customer_id")
        if customer_id not in self.customers:
            raise _Refused(1002, "Customer does not exist.", 404)
        currency = self.customers[str(customer_id)]
        invoice_id = request.args.get("invoice_id")
        if invoice_id is not None:
            invoice = self._invoice(invoice_id)
            if invoice.customer_id != customer_id:
                raise _Refused(2, "The invoice does not belong to this customer.")
        day = _day(payload.get("date"), "date")
        self._check_open_period(day)
        inclusive = payload.get("is_inclusive_tax", False)
        if not isinstance(inclusive, bool):
            raise _Refused(2, "Invalid value passed for is_inclusive_tax")
        lines = payload.get("line_items")
        if not isinstance(lines, list) or not lines:
            raise _Refused(2, "Line items cannot be empty.")
        rendered, total = [], Decimal(0)
        for position, raw in enumerate(lines):
            line = _only(raw, _LINE_FIELDS, "line_items")
            rate = _amount(line.get("rate"), "rate", currency, positive=False)
            quantity = _quantity(line.get("quantity", 1))
            account_id = str(line.get("account_id") or SALES_ACCOUNT_ID)
            if self.accounts.get(account_id) != "income":
                raise _Refused(2, "Invalid value passed for account_id")
            tax_id = line.get("tax_id")
            if tax_id is not None and tax_id not in self.taxes:
                raise _Refused(2, "Invalid value passed for tax_id")
            exponent = Decimal(1).scaleb(-_digits(currency))
            item_total = (rate * quantity).quantize(exponent, rounding=ROUND_HALF_UP)
            tax_rate = self.taxes.get(str(tax_id), Decimal(0)) if tax_id else Decimal(0)
            if inclusive:
                tax = (item_total - item_total / (1 + tax_rate)).quantize(exponent, rounding=ROUND_HALF_UP)
                total += item_total
            else:
                tax = (item_total * tax_rate).quantize(exponent, rounding=ROUND_HALF_UP)
                total += item_total + tax
            rendered.append(
                {
                    "line_item_id": self._next_id(),
                    "item_order": position + 1,
                    "description": str(line.get("description") or ""),
                    "rate": rate,
                    "quantity": quantity,
                    "account_id": account_id,
                    "tax_id": tax_id or "",
                    "tax_amount": tax,
                    "item_total": item_total,
                }
            )
        reference = payload.get("reference_number", "")
        if not isinstance(reference, str) or len(reference) > 100:
            raise _Refused(2, "Invalid value passed for reference_number")
        note = _CreditNote(
            creditnote_id=self._next_id(),
            creditnote_number=f"CN-{len(self.credit_notes) + 1:05d}",
            customer_id=str(customer_id),
            currency_code=currency,
            date=day,
            reference_number=reference,
            invoice_id=invoice_id,
            is_inclusive_tax=inclusive,
            line_items=rendered,
            total=total,
            notes=str(payload.get("notes") or ""),
            status="pending_approval" if self.approval_required else "draft",
        )
        self.credit_notes[note.creditnote_id] = note
        return {"message": "Credit Note has been created.", "creditnote": self._render_credit_note(note)}

    def _get_credit_note(self, request: Request, body: Any, creditnote_id: str) -> Mapping[str, Any]:
        return {"message": "success", "creditnote": self._render_credit_note(self._note(creditnote_id))}

    def _mark_open(self, request: Request, body: Any, creditnote_id: str) -> Mapping[str, Any]:
        note = self._note(creditnote_id)
        if body not in (None, {}):
            raise _Refused(2, "Invalid value passed for JSONString")
        if note.status not in {"draft", "void"}:
            raise _Refused(2, f"The credit note is already {note.status}.")
        note.status = "open"
        return {"message": "The credit note has been marked as open."}

    def _usable(self, note: _CreditNote) -> None:
        if note.status != "open":
            raise _Refused(2, f"Credits cannot be used from a {note.status} credit note.")

    def _invoices_credited(self, request: Request, body: Any, creditnote_id: str) -> Mapping[str, Any]:
        return {"message": "success", "invoices_credited": [dict(row) for row in self._note(creditnote_id).applied]}

    def _apply(self, request: Request, body: Any, creditnote_id: str) -> Mapping[str, Any]:
        note = self._note(creditnote_id)
        self._usable(note)
        rows = _only(body, {"invoices"}, "invoices").get("invoices")
        if not isinstance(rows, list) or not rows:
            raise _Refused(2, "Invalid value passed for invoices")
        applications = []
        for raw in rows:
            row = _only(raw, _APPLY_FIELDS, "invoices")
            invoice = self._invoice(str(row.get("invoice_id")))
            amount = _amount(row.get("amount_applied"), "amount_applied", note.currency_code)
            if invoice.customer_id != note.customer_id or invoice.currency_code != note.currency_code:
                raise _Refused(2, "Credits can be applied only to the same customer's invoices in the same currency.")
            if invoice.status in {"draft", "void"}:
                raise _Refused(2, f"Credits cannot be applied to a {invoice.status} invoice.")
            if amount > invoice.balance:
                raise _Refused(2, "The amount applied exceeds the invoice balance.")
            if amount > note.balance:
                raise _Refused(2, "The amount applied exceeds the available credits.")
            self._check_open_period(date.fromtimestamp(self.clock()))
            invoice.balance -= amount
            invoice.status = "paid" if invoice.balance == 0 else "partially_paid"
            note.applied.append(
                {
                    "creditnote_invoice_id": self._next_id(),
                    "creditnote_id": note.creditnote_id,
                    "creditnote_number": note.creditnote_number,
                    "invoice_id": invoice.invoice_id,
                    "invoice_number": invoice.invoice_number,
                    "date": date.fromtimestamp(self.clock()).isoformat(),
                    "credited_amount": amount,
                }
            )
            applications.append({"invoice_id": invoice.invoice_id, "amount_applied": amount})
        return {
            "message": "Credits have been applied to the invoice(s).",
            "apply_to_invoices": {"invoices": applications},
        }

    def _list_refunds(self, request: Request, body: Any, creditnote_id: str) -> Mapping[str, Any]:
        return {"message": "success", "creditnote_refunds": [dict(row) for row in self._note(creditnote_id).refunds]}

    def _refund(self, request: Request, body: Any, creditnote_id: str) -> Mapping[str, Any]:
        note = self._note(creditnote_id)
        self._usable(note)
        payload = _only(body, _REFUND_FIELDS, "creditnote_refund")
        day = _day(payload.get("date"), "date")
        self._check_open_period(day)
        if day < note.date:
            raise _Refused(2, "The refund date cannot be earlier than the credit note date.")
        amount = _amount(payload.get("amount"), "amount", note.currency_code)
        if amount > note.balance:
            raise _Refused(2, "The refund amount exceeds the credit note balance.")
        account_id = payload.get("from_account_id")
        if self.accounts.get(str(account_id)) not in _REFUND_FROM_TYPES:
            raise _Refused(2, "Invalid value passed for from_account_id")
        if payload.get("refund_mode", "cash") not in _REFUND_MODES:
            raise _Refused(2, "Invalid value passed for refund_mode")
        refund = {
            "creditnote_refund_id": self._next_id(),
            "creditnote_id": note.creditnote_id,
            "creditnote_number": note.creditnote_number,
            "date": day.isoformat(),
            "refund_mode": payload.get("refund_mode", "cash"),
            "reference_number": str(payload.get("reference_number") or ""),
            "description": str(payload.get("description") or ""),
            "from_account_id": str(account_id),
            "amount": amount,
            "amount_bcy": amount,
            "amount_fcy": amount,
        }
        note.refunds.append(refund)
        return {"message": "The refund information for this Credit Note has been saved.", "creditnote_refund": refund}

    # ---------------------------------------------------------------- rendering

    def _render_invoice(self, invoice: _Invoice) -> dict[str, Any]:
        return {
            "invoice_id": invoice.invoice_id,
            "invoice_number": invoice.invoice_number,
            "status": invoice.status,
            "date": invoice.date.isoformat(),
            "customer_id": invoice.customer_id,
            "currency_code": invoice.currency_code,
            "line_items": [
                {
                    "line_item_id": f"{invoice.invoice_id}1",
                    "rate": invoice.total,
                    "quantity": 1,
                    "tax_id": invoice.tax_id,
                    "item_total": invoice.total,
                }
            ],
            "is_inclusive_tax": True,
            "total": invoice.total,
            "balance": invoice.balance,
        }

    def _render_credit_note(self, note: _CreditNote, *, summary: bool = False) -> dict[str, Any]:
        balance = note.balance
        rendered: dict[str, Any] = {
            "creditnote_id": note.creditnote_id,
            "creditnote_number": note.creditnote_number,
            "status": ("closed" if balance == 0 else "open") if note.status == "open" else note.status,
            "reference_number": note.reference_number,
            "date": note.date.isoformat(),
            "customer_id": note.customer_id,
            "currency_code": note.currency_code,
            "total": note.total,
            "balance": balance,
        }
        if summary:
            return rendered
        return {
            **rendered,
            "invoice_id": note.invoice_id or "",
            "is_inclusive_tax": note.is_inclusive_tax,
            "line_items": [dict(line) for line in note.line_items],
            "total_credits_used": note.credits_used,
            "total_refunded_amount": note.refunded,
            "notes": note.notes,
        }

    # ---------------------------------------------------------------- BooksSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's API secret (Zoho Books sends refundflow no webhooks)."""
        return {
            "api": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "refresh_token": self.refresh_token,
                "organization_id": self.organization_id,
            },
            "verification": {},
        }

    def seed_invoice(self, amount_minor: int, currency: str, *, paid: bool = False) -> str:
        """A sent invoice of one tax-inclusive line for a new customer in ``currency``, paid in full when ``paid``."""
        total = Decimal(amount_minor).scaleb(-_digits(currency))
        with self.lock:
            customer_id = self._next_id()
            self.customers[customer_id] = currency
            invoice = _Invoice(
                invoice_id=self._next_id(),
                invoice_number=f"INV-{len(self.invoices) + 1:06d}",
                customer_id=customer_id,
                currency_code=currency,
                date=date.fromtimestamp(self.clock()),
                total=total,
                balance=Decimal(0).scaleb(-_digits(currency)) if paid else total,
                tax_id=STANDARD_TAX_ID,
                status="paid" if paid else "sent",
            )
            self.invoices[invoice.invoice_id] = invoice
            return invoice.invoice_id

    def documents(self) -> list[dict[str, Any]]:
        """Every credit note held, with the invoices it credited and its refunds."""
        with self.lock:
            return [
                {
                    **self._render_credit_note(note),
                    "invoices_credited": [dict(row) for row in note.applied],
                    "creditnote_refunds": [dict(row) for row in note.refunds],
                }
                for note in self.credit_notes.values()
            ]

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            return self._render_invoice(self.invoices[invoice_id])

    def require_approval(self, required: bool) -> None:
        """Credit notes wait for an approver once created (the organization's approval workflow)."""
        with self.lock:
            self.approval_required = required

    def approve(self, creditnote_id: str) -> None:
        """An approver approves a credit note waiting for approval: it is open."""
        with self.lock:
            note = self.credit_notes[creditnote_id]
            assert note.status == "pending_approval", note.status
            note.status = "open"

    def lock_transactions(self, until: date | None) -> None:
        """Lock every transaction dated on or before ``until`` (Settings > Transaction Locking); None unlocks."""
        with self.lock:
            self.lock_date = until


# ---------------------------------------------------------------- demo scenarios (make demo)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client, not the simulator's users)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import books_scenarios

        return books_scenarios("zoho_books")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
