"""A stateful Chargebee sandbox for the calls refundflow makes, on Chargebee's own paths (API v2).

Mounted by the local stack at ``/_sandbox/chargebee``; the connector's base address is ``{sandbox}/chargebee/api/v2``
(live: ``https://{site}.chargebee.com/api/v2``, a test site being ``<name>-test``). What it holds to, as
apidocs.chargebee.com documents it (the official OpenAPI spec of API v2 is not in ``../shared/contracts``: every v2
file is over 4 MB, see SOURCES.md, so requests are checked here field by field instead):

- HTTP Basic auth with the API key as the username and an empty password; another key is a 401
  ``api_authentication_failed``; bodies ``application/x-www-form-urlencoded`` (anything else is a 400
  ``invalid_request``);
- ``POST /api/v2/invoices/{invoice-id}/refund`` with ``refund_amount`` (in cents, min 1), ``comment`` (at most 300
  characters), ``customer_notes`` (at most 2,000), ``credit_note[reason_code]`` (the ``CreditNote.ReasonCode``
  values) and ``credit_note[create_reason_code]``; any other field is refused (a simulator strictness: a misspelt
  field fails loudly). It refunds the invoice's online payment, creates a refundable credit note and answers 200
  ``{invoice, transaction, credit_note}`` with the refund transaction (``type: refund``);
- ``GET /api/v2/invoices/{id}`` (``amount_paid``, ``issued_credit_notes``) and ``GET /api/v2/transactions/{id}``;
- ``chargebee-idempotency-key`` (at most 100 characters; apidocs.chargebee.com/docs/api/idempotency): within 30
  minutes the same key and parameters replay the first answer with ``chargebee-idempotency-replayed: true``; after
  the window the key is forgotten and a request under it is processed again (a second refund: what the domain's
  key lifetime guards against). The answers to the same key with other parameters (400 ``invalid_request``) and
  while the first is still processed (409) are this simulator's choices: Chargebee does not publish them;
- errors ``{message, type, api_error_code, param, http_status_code}``: 404 ``resource_not_found``; 400
  ``invalid_state_for_request`` for an invoice with nothing (left) to refund, 400 ``param_wrong_value`` on
  ``refund_amount`` for more than is refundable, 400 ``payment_processing_failed`` (``type: payment``) when the
  gateway refuses; 429 ``api_request_limit_exceeded``; 500 ``internal_error``. The exact messages, and the codes
  of the two money refusals, are this simulator's (Chargebee does not list them per call);
- amounts in cents, whole units for JPY, KRW, XAF and XOF (the only zero-decimal currencies at Chargebee); every
  other currency in hundredths, so a three-decimal amount is held only when it is a whole number of hundredths;
- refund transactions ``success`` at once, or ``in_progress`` until decided (``success`` or ``failure``), and a
  ``success`` may turn ``late_failure``; a failed refund's credit note is voided (this simulator's choice);
- webhooks: events ``{id: ev_..., occurred_at, source, object: "event", api_version: "v2", event_type, content,
  webhook_status}``: ``payment_refunded`` when a refund succeeds, ``refund_initiated`` when one is in progress,
  ``transaction_updated`` when its status changes, each with ``content.transaction``, ``content.invoice`` and
  ``content.credit_note``. Chargebee signs nothing: the delivery carries ``Authorization: Basic`` with the user and
  password set on the webhook (the base ``/_control/webhook-endpoint`` takes ``{"url", "secret": "user:password"}``).

Test behaviours, chosen per invoice when it is seeded (``/_control/invoices`` field ``behaviour``): ``succeed``
(default), ``async`` (``in_progress`` until ``settle_refund`` or ``/_control/transactions/{id}/outcome``) and
``fail`` (the gateway refuses: 400 ``payment_processing_failed``).

Not modelled: subscriptions and customers beyond their ids, ``/transactions/{id}/refund``, credit note refunds,
``record_refund``, multi-decimal pricing, business entities, the EU/AU data centres.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, json_response, new_id
from refundflow.money import exponent

API_PREFIX = "/api/v2"
DEFAULT_API_KEY = "test_refundflow_simulator_key"
DEFAULT_SITE = "refundflow-test"
DEFAULT_WEBHOOK_AUTH = "refundflow:local-webhook-password"
IDEMPOTENCY_WINDOW_SECONDS = 30 * 60
MAX_IDEMPOTENCY_KEY_LENGTH = 100
MAX_COMMENT_LENGTH = 300
MAX_CUSTOMER_NOTES_LENGTH = 2000
ZERO_DECIMAL = frozenset({"JPY", "KRW", "XAF", "XOF"})
REASON_CODES = (
    "write_off",
    "subscription_change",
    "subscription_cancellation",
    "subscription_pause",
    "chargeback",
    "product_unsatisfactory",
    "service_unsatisfactory",
    "order_change",
    "order_cancellation",
    "waiver",
    "other",
    "fraudulent",
)
_FIELDS = {"refund_amount", "comment", "customer_notes", "credit_note[reason_code]", "credit_note[create_reason_code]"}
SUCCEED = "succeed"
ASYNC = "async"
FAIL = "fail"
BEHAVIOURS = (SUCCEED, ASYNC, FAIL)
_INTEGER = re.compile(r"^[0-9]{1,15}$")


class ApiError(Exception):
    """A Chargebee error answer."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        error_type: str | None = "invalid_request",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "api_error_code": code, "http_status_code": status}
        if error_type is not None:
            self.body["type"] = error_type
        if param is not None:
            self.body["param"] = param

    def response(self) -> Response:
        return json_response(self.body, self.status)


def to_chargebee_amount(amount_minor: int, currency: str) -> int:
    """ISO 4217 minor units as Chargebee's cents (whole units for its four zero-decimal currencies).

    Raises:
        ValueError: an amount Chargebee's unit cannot hold exactly (three decimals not ending in 0).
    """
    code = currency.upper()
    shift = (0 if code in ZERO_DECIMAL else 2) - exponent(code)
    if shift >= 0:
        return amount_minor * int(10**shift)
    units, rest = divmod(amount_minor, int(10**-shift))
    if rest:
        raise ValueError(f"{amount_minor} minor units of {code} are not a whole number of Chargebee's unit")
    return int(units)


class ChargebeeSimulator(Simulator):
    """Chargebee's invoice refunds: refund transactions read back by id, news by Basic-authenticated webhooks."""

    name = "chargebee"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"^/api/v2/invoices/[^/]+/refund$"),
        "get_refund": ("GET", r"^/api/v2/transactions/[^/]+$"),
        "get_payment": ("GET", r"^/api/v2/invoices/[^/]+$"),
    }
    TRANSIENT_STATUS: ClassVar[int] = 429

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        webhook_url: str | None = None,
        webhook_auth: str = DEFAULT_WEBHOOK_AUTH,
        idempotency_window_seconds: float = IDEMPOTENCY_WINDOW_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``now``: the clock of the idempotency window (tests move it)."""
        self.api_key = api_key
        self.idempotency_window_seconds = idempotency_window_seconds
        self._now = now
        self.invoices: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.credit_notes: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._behaviours: dict[str, str] = {}
        self._keys: dict[str, tuple[str, float, dict[str, Any]]] = {}
        self._in_flight: set[str] = set()
        self._numbers = itertools.count(1)
        self._key_lock = threading.Lock()
        super().__init__()
        self.webhooks.configure(webhook_url, webhook_auth)
        self.route(f"{API_PREFIX}/invoices/<invoice_id>/refund", self._refund_endpoint, methods=["POST"])
        self.route(f"{API_PREFIX}/invoices/<invoice_id>", self._get_invoice, methods=["GET"])
        self.route(f"{API_PREFIX}/transactions/<transaction_id>", self._get_transaction, methods=["GET"])
        self.route("/_control/invoices", self._control_seed_invoice, methods=["POST"])
        self.route("/_control/transactions/<transaction_id>/outcome", self._control_outcome, methods=["POST"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])

    # ---------------------------------------------------------------- base hooks

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """Chargebee signs nothing: the webhook's Basic credentials go with every delivery."""
        return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}

    def reset_state(self) -> None:
        with self.lock:
            self.invoices.clear()
            self.transactions.clear()
            self.credit_notes.clear()
            self.events.clear()
            self._behaviours.clear()
        with self._key_lock:
            self._keys.clear()
            self._in_flight.clear()

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure in Chargebee's error shape unless the rule brings its own body."""
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        if status == 429:
            error = ApiError(429, "api_request_limit_exceeded", "Sorry, access has been blocked temporarily")
        elif status >= 500:
            error = ApiError(status, "internal_error", "Sorry, something went wrong (simulated fault)", error_type=None)
        else:
            error = ApiError(status, "invalid_request", "Simulated fault")
        return json_response(error.body, status, headers=fault.headers)

    def not_found(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX):
            return super().not_found(request)
        return ApiError(404, "resource_not_found", f"No route {request.method} {request.path}").response()

    # ---------------------------------------------------------------- PaymentSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        return {
            "api": {"api_key": self.api_key, "site": DEFAULT_SITE},
            "verification": {"basic_auth": [self.webhooks.secret or DEFAULT_WEBHOOK_AUTH]},
        }

    def send_webhooks_to(self, url: str) -> None:
        self.webhooks.configure(url, self.webhooks.secret or DEFAULT_WEBHOOK_AUTH)

    def seed_payment(
        self, amount_minor: int, currency: str, *, settled: bool = True, behaviour: str = SUCCEED
    ) -> dict[str, Any]:
        """A paid invoice of ``amount_minor`` ISO 4217 minor units (``settled`` false: issued, not paid yet).

        Returns ``{"provider": "chargebee", "payment_id": <invoice id>, "locator": {"kind": "invoice"}}``.

        Raises:
            ValueError: an amount Chargebee's unit cannot hold, an unknown behaviour.
        """
        invoice = self.create_invoice(
            to_chargebee_amount(amount_minor, currency), currency, paid=settled, behaviour=behaviour
        )
        return {"provider": "chargebee", "payment_id": invoice["id"], "locator": {"kind": "invoice"}}

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """Decide a refund transaction: ``in_progress`` -> ``success``/``failure``; a ``success`` told to fail
        becomes ``late_failure``. Sends ``transaction_updated`` (and ``payment_refunded`` on success)."""
        with self.lock:
            transaction = self.transactions[provider_refund_id]
            if transaction["status"] == "in_progress":
                status = "success" if succeeded else "failure"
            elif transaction["status"] == "success" and not succeeded:
                status = "late_failure"
            else:
                raise ValueError(f"transaction {provider_refund_id} is {transaction['status']}")
            self._set_status(transaction, status)
            answer = copy.deepcopy(transaction)
        self._emit("transaction_updated", provider_refund_id)
        if status == "success":
            self._emit("payment_refunded", provider_refund_id)
        return answer

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund transaction, oldest first (copies)."""
        with self.lock:
            return copy.deepcopy(list(self.transactions.values()))

    # ---------------------------------------------------------------- objects

    def create_invoice(
        self, amount: int, currency: str, *, paid: bool = True, behaviour: str = SUCCEED
    ) -> dict[str, Any]:
        """An invoice for a subscription, paid in full by card (``amount`` in Chargebee's unit)."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        if amount <= 0:
            raise ValueError("an invoice amount must be positive")
        with self.lock:
            number = next(self._numbers)
            now = int(self._now())
            invoice_id = f"INV-{number:06d}"
            payment = {
                "txn_id": new_id("txn_", 16),
                "applied_amount": amount if paid else 0,
                "applied_at": now,
                "txn_status": "success",
                "txn_date": now,
                "txn_amount": amount,
            }
            invoice = {
                "id": invoice_id,
                "object": "invoice",
                "customer_id": f"cust_{number:06d}",
                "subscription_id": f"sub_{number:06d}",
                "status": "paid" if paid else "payment_due",
                "price_type": "tax_exclusive",
                "date": now,
                "currency_code": currency.upper(),
                "total": amount,
                "amount_paid": amount if paid else 0,
                "amount_adjusted": 0,
                "credits_applied": 0,
                "amount_due": 0 if paid else amount,
                "linked_payments": [payment] if paid else [],
                "issued_credit_notes": [],
                "deleted": False,
                "resource_version": now * 1000,
                "updated_at": now,
            }
            self.invoices[invoice_id] = invoice
            self._behaviours[invoice_id] = behaviour
            return copy.deepcopy(invoice)

    def _refundable(self, invoice: dict[str, Any]) -> int:
        credited: int = sum(
            note["cn_total"]
            for note in invoice["issued_credit_notes"]
            if note["cn_status"] in {"refunded", "refund_due"}
        )
        return int(invoice["amount_paid"]) - credited

    def _set_status(self, transaction: dict[str, Any], status: str) -> None:
        """Move a refund transaction and its credit note (caller holds the lock)."""
        now = int(self._now())
        transaction["status"] = status
        transaction["updated_at"] = now
        transaction["resource_version"] = int(self._now() * 1000)
        if status in {"failure", "late_failure"}:
            transaction["error_text"] = "Refund declined by the gateway (simulated)"
        note_status = {"success": "refunded", "in_progress": "refund_due"}.get(status, "voided")
        for link in transaction["linked_credit_notes"]:
            note = self.credit_notes[link["cn_id"]]
            note["status"] = note_status
            note["amount_refunded"] = note["total"] if note_status == "refunded" else 0
            note["linked_refunds"][0]["txn_status"] = status
            if note_status == "voided":
                note["voided_at"] = now
            link["cn_status"] = note_status
            invoice = self.invoices[note["reference_invoice_id"]]
            for issued in invoice["issued_credit_notes"]:
                if issued["cn_id"] == note["id"]:
                    issued["cn_status"] = note_status

    # ---------------------------------------------------------------- the API

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        try:
            user, _, _password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user = ""
        if not header.startswith("Basic ") or user != self.api_key:
            raise ApiError(
                401, "api_authentication_failed", "Sorry, authentication failed. Invalid api key", error_type=None
            )

    def _get_invoice(self, request: Request, invoice_id: str) -> Response:
        try:
            self._authenticate(request)
            with self.lock:
                invoice = self.invoices.get(invoice_id)
                if invoice is None:
                    raise ApiError(404, "resource_not_found", f"Sorry, we couldn't find that resource {invoice_id}")
                return json_response({"invoice": copy.deepcopy(invoice)})
        except ApiError as error:
            return error.response()

    def _get_transaction(self, request: Request, transaction_id: str) -> Response:
        try:
            self._authenticate(request)
            with self.lock:
                transaction = self.transactions.get(transaction_id)
                if transaction is None:
                    raise ApiError(404, "resource_not_found", f"Sorry, we couldn't find that resource {transaction_id}")
                return json_response({"transaction": copy.deepcopy(transaction)})
        except ApiError as error:
            return error.response()

    def _refund_endpoint(self, request: Request, invoice_id: str) -> Response:
        try:
            self._authenticate(request)
            form = _refund_form(request)
        except ApiError as error:
            return error.response()
        key = request.headers.get("chargebee-idempotency-key")
        if key is None:
            return self._refund_answer(invoice_id, form)[0]
        if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            return ApiError(400, "param_wrong_value", "chargebee-idempotency-key : invalid value").response()
        fingerprint = json.dumps([invoice_id, sorted(form.items())])
        with self._key_lock:
            stored = self._keys.get(key)
            if stored is not None and self._now() - stored[1] >= self.idempotency_window_seconds:
                del self._keys[key]
                stored = None
            if stored is not None:
                if stored[0] != fingerprint:
                    return ApiError(
                        400, "invalid_request", "The idempotency key was used with other parameters (simulated)"
                    ).response()
                return json_response(
                    stored[2]["body"], stored[2]["status"], headers={"chargebee-idempotency-replayed": "true"}
                )
            if key in self._in_flight:
                return ApiError(
                    409, "invalid_request", "A request with this idempotency key is in progress (simulated)"
                ).response()
            self._in_flight.add(key)
        response, saved = None, None
        try:
            response, saved = self._refund_answer(invoice_id, form)
        finally:
            with self._key_lock:
                self._in_flight.discard(key)
                if saved is not None:
                    self._keys[key] = (fingerprint, self._now(), saved)
        return response

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """OutsideRefunds: an invoice refunded in Chargebee's web app (no comment or reference of ours), with its
        ``credit_note_created`` / ``payment_refunded`` events; returns the refund transaction's id."""
        body, event = self._refund(payment_id, {"refund_amount": str(amount_minor)})
        transaction_id = str(body["transaction"]["id"])
        self._emit(event, transaction_id)
        return transaction_id

    def _refund_answer(self, invoice_id: str, form: dict[str, str]) -> tuple[Response, dict[str, Any] | None]:
        """The refund, and what a replay answers (Chargebee keeps answers made after the work began)."""
        try:
            body, event = self._refund(invoice_id, form)
        except ApiError as error:
            return error.response(), ({"status": error.status, "body": error.body} if error.status != 404 else None)
        self._emit(event, body["transaction"]["id"])
        return json_response(body), {"status": 200, "body": body}

    def _refund(self, invoice_id: str, form: dict[str, str]) -> tuple[dict[str, Any], str]:
        with self.lock:
            invoice = self.invoices.get(invoice_id)
            if invoice is None:
                raise ApiError(404, "resource_not_found", f"Sorry, we couldn't find that resource {invoice_id}")
            refundable = self._refundable(invoice)
            if invoice["amount_paid"] <= 0 or refundable <= 0:
                raise ApiError(400, "invalid_state_for_request", "The invoice has no refundable amount (simulated)")
            amount = int(form.get("refund_amount", refundable))
            if amount > refundable:
                raise ApiError(
                    400,
                    "param_wrong_value",
                    f"refund_amount : cannot be more than the refundable amount {refundable} (simulated)",
                    param="refund_amount",
                )
            behaviour = self._behaviours.get(invoice_id, SUCCEED)
            if behaviour == FAIL:
                raise ApiError(
                    400,
                    "payment_processing_failed",
                    "The refund could not be processed by the gateway (simulated)",
                    error_type="payment",
                )
            now = int(self._now())
            status = "in_progress" if behaviour == ASYNC else "success"
            note_status = "refund_due" if status == "in_progress" else "refunded"
            note_id = f"CN-{next(self._numbers):06d}"
            transaction_id = new_id("txn_", 16)
            reason = form.get("credit_note[reason_code]", "other")
            link = {
                "cn_id": note_id,
                "applied_amount": amount,
                "applied_at": now,
                "cn_reason_code": reason,
                "cn_date": now,
                "cn_total": amount,
                "cn_status": note_status,
                "cn_reference_invoice_id": invoice_id,
            }
            transaction = {
                "id": transaction_id,
                "object": "transaction",
                "customer_id": invoice["customer_id"],
                "subscription_id": invoice["subscription_id"],
                "gateway": "chargebee",
                "gateway_account_id": "gw_refundflow_test",
                "payment_method": "card",
                "type": "refund",
                "date": now,
                "currency_code": invoice["currency_code"],
                "amount": amount,
                "id_at_gateway": new_id("re_", 20),
                "status": status,
                "reference_transaction_id": invoice["linked_payments"][0]["txn_id"],
                "linked_credit_notes": [link],
                "deleted": False,
                "resource_version": int(self._now() * 1000),
                "updated_at": now,
            }
            note = {
                "id": note_id,
                "object": "credit_note",
                "customer_id": invoice["customer_id"],
                "subscription_id": invoice["subscription_id"],
                "reference_invoice_id": invoice_id,
                "type": "refundable",
                "reason_code": reason,
                "create_reason_code": form.get("credit_note[create_reason_code]"),
                "status": note_status,
                "date": now,
                "price_type": "tax_exclusive",
                "currency_code": invoice["currency_code"],
                "total": amount,
                "amount_allocated": 0,
                "amount_refunded": amount if note_status == "refunded" else 0,
                "amount_available": 0,
                "customer_notes_seen": form.get("customer_notes"),
                "linked_refunds": [
                    {
                        "txn_id": transaction_id,
                        "applied_amount": amount,
                        "applied_at": now,
                        "txn_status": status,
                        "txn_date": now,
                        "txn_amount": amount,
                    }
                ],
                "comment_seen": form.get("comment"),
                "deleted": False,
            }
            self.transactions[transaction_id] = transaction
            self.credit_notes[note_id] = note
            invoice["issued_credit_notes"].append(
                {
                    "cn_id": note_id,
                    "cn_reason_code": reason,
                    "cn_date": now,
                    "cn_total": amount,
                    "cn_status": note_status,
                }
            )
            invoice["updated_at"] = now
            body = {
                "invoice": copy.deepcopy(invoice),
                "transaction": copy.deepcopy(transaction),
                "credit_note": _public_note(note),
            }
            return body, ("refund_initiated" if status == "in_progress" else "payment_refunded")

    # ---------------------------------------------------------------- webhooks

    def _emit(self, event_type: str, transaction_id: str) -> None:
        with self.lock:
            transaction = self.transactions[transaction_id]
            note = self.credit_notes[transaction["linked_credit_notes"][0]["cn_id"]]
            invoice = self.invoices[note["reference_invoice_id"]]
            event: dict[str, Any] = {
                "id": new_id("ev_", 20),
                "occurred_at": int(self._now()),
                "source": "api",
                "object": "event",
                "api_version": "v2",
                "event_type": event_type,
                "webhook_status": "scheduled",
                "content": {
                    "transaction": copy.deepcopy(transaction),
                    "invoice": copy.deepcopy(invoice),
                    "credit_note": _public_note(note),
                },
            }
            self.events.append(event)
        self.webhooks.send(event["id"], event_type, json.dumps(event).encode())

    # ---------------------------------------------------------------- control routes

    def _control_seed_invoice(self, request: Request) -> Response:
        payload = request.get_json(force=True) or {}
        try:
            invoice = self.create_invoice(
                int(payload["amount"]),
                str(payload["currency"]),
                paid=bool(payload.get("paid", True)),
                behaviour=str(payload.get("behaviour", SUCCEED)),
            )
        except (KeyError, ValueError, TypeError) as error:
            return json_response({"error": str(error)}, 400)
        return json_response(invoice, 201)

    def _control_outcome(self, request: Request, transaction_id: str) -> Response:
        payload = request.get_json(force=True) or {}
        try:
            return json_response(self.settle_refund(transaction_id, bool(payload.get("succeeded", True))))
        except (KeyError, ValueError) as error:
            return json_response({"error": str(error)}, 404 if isinstance(error, KeyError) else 409)

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {
                    "invoices": list(self.invoices.values()),
                    "transactions": list(self.transactions.values()),
                    "credit_notes": list(self.credit_notes.values()),
                }
            )


def _public_note(note: dict[str, Any]) -> dict[str, Any]:
    """A credit note as the API shows it (without what the simulator keeps of the request)."""
    return {key: copy.deepcopy(value) for key, value in note.items() if not key.endswith("_seen")}


def _refund_form(request: Request) -> dict[str, str]:
    """The refund's form fields, checked as Chargebee documents them.

    Raises:
        ApiError: not a form, an unknown or repeated field, a value out of its range.
    """
    if request.mimetype != "application/x-www-form-urlencoded":
        raise ApiError(400, "invalid_request", f"Unsupported content type {request.mimetype or 'none'}")
    form: dict[str, str] = {}
    for name, values in request.form.lists():
        if name not in _FIELDS:
            raise ApiError(400, "param_wrong_value", f"{name} : is not a parameter of this operation", param=name)
        if len(values) != 1:
            raise ApiError(400, "param_wrong_value", f"{name} : given more than once", param=name)
        form[name] = values[0]
    amount = form.get("refund_amount")
    if amount is not None and (not _INTEGER.match(amount) or int(amount) < 1):
        raise ApiError(
            400, "param_wrong_value", "refund_amount : should be an integer of at least 1", param="refund_amount"
        )
    for name, limit in (("comment", MAX_COMMENT_LENGTH), ("customer_notes", MAX_CUSTOMER_NOTES_LENGTH)):
        if len(form.get(name, "")) > limit:
            raise ApiError(400, "param_wrong_value", f"{name} : cannot be more than {limit} characters", param=name)
    reason = form.get("credit_note[reason_code]")
    if reason is not None and reason not in REASON_CODES:
        raise ApiError(
            400, "param_wrong_value", "credit_note[reason_code] : invalid enum value", param="credit_note[reason_code]"
        )
    return form


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client, not the simulator's users)."""
    if name == "DEMO_SCENARIOS":
        from local.scenarios import payment_scenarios

        # Four, none waiting on a timeout: full, partial, then an in-progress refund that succeeds or fails later.
        return payment_scenarios("chargebee", async_seed={"behaviour": ASYNC}, unknown_outcome=None)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
