"""A stateful Square sandbox for the calls refundflow makes, on Square's own paths (API v2: Refunds, Payments).

Mounted by the local stack at ``/_sandbox/square``; the connector's base address is ``{sandbox}/square`` (live
``https://connect.squareup.com``, sandbox ``https://connect.squareupsandbox.com``). What it holds to, as Square
documents it (developer.squareup.com and the official spec ``api.json``, Square-Version 2025-08-20):

- ``Authorization: Bearer <access token>``; a missing or unknown token is a 401 ``UNAUTHORIZED``
  (``AUTHENTICATION_ERROR``); a ``Square-Version`` that is not a date is a 400 ``INVALID_SQUARE_VERSION_FORMAT``;
- ``POST /v2/refunds`` (``RefundPayment``) checked against the spec's ``RefundPaymentRequest``: ``idempotency_key``
  (1 to 45 characters) and ``amount_money`` (``{amount: integer, currency}``) required, ``reason`` at most 192,
  ``payment_id`` (a linked refund); unlinked refunds, gift-card destinations, app fees, cash and external
  details and version tokens are refused (400 ``BAD_REQUEST``, not modelled), and so is any field the spec does
  not define (a simulator strictness: a misspelt field fails loudly);
- ``GET /v2/refunds/{refund_id}`` (``{refund}``) and ``GET /v2/payments/{payment_id}`` (``{payment}`` with
  ``total_money``, ``refunded_money`` (completed refunds), ``refund_ids`` (every refund of the payment));
- errors ``{errors: [{category, code, detail, field?}]}`` with the spec's categories and codes: 400
  ``MISSING_REQUIRED_PARAMETER``, ``VALUE_TOO_SHORT``/``VALUE_TOO_LONG``/``VALUE_TOO_LOW``, ``EXPECTED_INTEGER``,
  ``EXPECTED_JSON_BODY``, ``INVALID_VALUE``, ``IDEMPOTENCY_KEY_REUSED``, ``REFUND_AMOUNT_INVALID``,
  ``REFUND_ERROR_PAYMENT_NEEDS_COMPLETION``, ``PAYMENT_NOT_REFUNDABLE``, ``CURRENCY_MISMATCH``; 401
  ``UNAUTHORIZED``; 404 ``NOT_FOUND``; 409 ``CONFLICT``; 429 ``RATE_LIMITED``; 500 ``INTERNAL_SERVER_ERROR``;
- idempotency (developer.squareup.com "Idempotency"): the same key with the same request answers the first
  refund again, as it is now; the same key with another request is ``IDEMPOTENCY_KEY_REUSED``; keys are per access
  token; a request that failed made nothing and keeps no key; a repeat while the first is still being processed
  is a 409 ``CONFLICT`` (Square documents no answer for that case: the simulator's choice). Square publishes no
  retention period: the simulator keeps keys ``key_ttl_seconds`` (24 h by default);
- what is refundable: the payment's ``total_money`` less its pending and completed refunds (the spec says
  "completed"; pending ones are held too here, a strictness); only ``COMPLETED`` payments are refunded;
- refunds are ``PENDING`` at first and then ``COMPLETED`` or ``FAILED`` (per the payment's test behaviour), and
  Square's webhooks ``refund.created`` and ``refund.updated`` are sent as Square sends them: ``{merchant_id, type,
  event_id, created_at, data: {type: "refund", id, object: {refund}}}``, signed ``x-square-hmacsha256-signature``
  = base64 HMAC-SHA256 (the subscription's signature key) of the notification URL followed by the raw body. The
  base ``/_control/webhook-endpoint`` takes ``{"url", "secret"}`` with ``secret`` the signature key.

Test behaviours, chosen per payment when it is seeded (``/_control/payments`` field ``behaviour``):
``pending_then_complete`` (default; decided ``settle_after_seconds`` later, never when that is None),
``complete`` (COMPLETED at once), ``pending_then_fail`` and ``manual`` (PENDING until
``/_control/refunds/{id}/outcome``).

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/payments`` ``{"amount_minor", "currency", "behaviour"?, "status"?, "tip_minor"?}``: a payment;
- ``POST /_control/refunds/{id}/outcome`` ``{"succeeded": bool}``: decide a PENDING refund now;
- ``GET /_control/objects``: payments and refunds; ``GET /_control/events``: every event emitted.

Not modelled: taking payments (they are seeded), orders, locations, unlinked refunds, app fees, processing fees,
``ListPaymentRefunds``, the webhook subscriptions API and the legacy ``x-square-signature`` (HMAC-SHA1) header.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, control_outcome, json_response, public_fields

DEFAULT_ACCESS_TOKEN = "EAAAlrefundflowSimulatorSandboxAccessToken000000000000000000000000"
DEFAULT_SIGNATURE_KEY = "rfSimulatorSignatureKey0000000000"
DEFAULT_NOTIFICATION_URL = "https://refundflow.example/webhooks/square"
MERCHANT_ID = "MLRFSIMULATOR01"
LOCATION_ID = "LRFSIMULATOR01"
SIGNATURE_HEADER = "x-square-hmacsha256-signature"
KEY_TTL_SECONDS = 24 * 3600

PENDING_THEN_COMPLETE = "pending_then_complete"
COMPLETE = "complete"
PENDING_THEN_FAIL = "pending_then_fail"
MANUAL = "manual"
BEHAVIOURS = (PENDING_THEN_COMPLETE, COMPLETE, PENDING_THEN_FAIL, MANUAL)

# The currencies of the countries Square's sellers are in, and their ISO 4217 minor units (Square's unit too).
CURRENCY_DECIMALS: dict[str, int] = {"AUD": 2, "CAD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "USD": 2}

_REFUND_FIELDS = {"idempotency_key", "amount_money", "payment_id", "reason", "team_member_id"}
_NOT_MODELLED = {
    "app_fee_money",
    "destination_id",
    "unlinked",
    "location_id",
    "customer_id",
    "payment_version_token",
    "cash_details",
    "external_details",
}
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CATEGORIES = {
    "UNAUTHORIZED": "AUTHENTICATION_ERROR",
    "RATE_LIMITED": "RATE_LIMIT_ERROR",
    "INTERNAL_SERVER_ERROR": "API_ERROR",
    "SERVICE_UNAVAILABLE": "API_ERROR",
    "REFUND_AMOUNT_INVALID": "REFUND_ERROR",
    "REFUND_ERROR_PAYMENT_NEEDS_COMPLETION": "REFUND_ERROR",
    "PAYMENT_NOT_REFUNDABLE": "REFUND_ERROR",
    "CURRENCY_MISMATCH": "PAYMENT_METHOD_ERROR",
}
_STATUS_CODES = {
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


def square_id(length: int = 29) -> str:
    """Square's object ids: letters and digits (e.g. ``R2B3Z8WMVt3EAmzYWLZvz7Y69EbZY``)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def sign(notification_url: str, body: bytes, key: str) -> str:
    """Square's ``x-square-hmacsha256-signature`` for ``body`` sent to ``notification_url`` (its own code here: the
    simulator never imports connector code)."""
    digest = hmac.new(key.encode(), notification_url.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class ApiError(Exception):
    """A Square error answer."""

    def __init__(self, status: int, code: str, detail: str | None = None, field: str | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.detail, self.field = status, code, detail, field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"category": _CATEGORIES.get(self.code, "INVALID_REQUEST_ERROR"), "code": self.code}
        if self.detail:
            error["detail"] = self.detail
        if self.field:
            error["field"] = self.field
        return {"errors": [error]}


@dataclass
class _Key:
    fingerprint: str
    refund_id: str
    created_at: float


class SquareSimulator(Simulator):
    """Square's refund surface: payments (seeded), RefundPayment, GetPaymentRefund, GetPayment, signed webhooks."""

    name = "square"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"^/v2/refunds$"),
        "get_refund": ("GET", r"^/v2/refunds/[^/]+$"),
        "get_payment": ("GET", r"^/v2/payments/[^/]+$"),
        "find_refund": ("GET", r"^/v2/payments/[^/]+$"),
    }

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        *,
        webhook_url: str | None = None,
        signature_key: str = DEFAULT_SIGNATURE_KEY,
        settle_after_seconds: float | None = 0.3,
        processing_delay_seconds: float = 0.0,
        key_ttl_seconds: float = KEY_TTL_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``tokens``: access token -> merchant id (default one seller's sandbox token)."""
        self.tokens = dict(tokens or {DEFAULT_ACCESS_TOKEN: MERCHANT_ID})
        self.signature_key = signature_key
        self.settle_after_seconds = settle_after_seconds
        self.processing_delay_seconds = processing_delay_seconds
        self.processing_gate: threading.Event | None = None
        """When set, a refund request waits (at most 10 s) for the event before it answers, its key in flight."""
        self.key_ttl_seconds = key_ttl_seconds
        self._now = now
        self.payments: dict[str, dict[str, Any]] = {}
        self.refund_objects: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._behaviours: dict[str, str] = {}
        self._keys: dict[tuple[str, str], _Key] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._order = itertools.count()
        self._timers: list[threading.Timer] = []
        super().__init__()
        self.webhooks.configure(webhook_url, signature_key)
        self.route("/v2/refunds", self._api(self._refund_payment), methods=["POST"])
        self.route("/v2/refunds/<refund_id>", self._api(self._get_refund), methods=["GET"])
        self.route("/v2/payments/<payment_id>", self._api(self._get_payment), methods=["GET"])
        self.route("/_control/payments", self._control_payments, methods=["POST"])
        self.route("/_control/refunds/<refund_id>/outcome", self._control_outcome, methods=["POST"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])
        self.route("/_control/events", self._control_events, methods=["GET"])
        _ = self.url_map  # bind the routes now: two first requests at once would race on the map

    # ---------------------------------------------------------------- base hooks

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """Square's signature header for ``body`` sent to the configured notification URL, with key ``secret``."""
        return {SIGNATURE_HEADER: sign(self.webhooks.url or DEFAULT_NOTIFICATION_URL, body, secret)}

    def reset_state(self) -> None:
        with self.lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self.payments.clear()
            self.refund_objects.clear()
            self.events.clear()
            self._behaviours.clear()
            self._keys.clear()
            self._in_flight.clear()

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure, in Square's error shape unless the rule brings its own body."""
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        code = _STATUS_CODES.get(status, "INTERNAL_SERVER_ERROR")
        return json_response(ApiError(status, code).body(), status, headers=fault.headers)

    def not_found(self, request: Request) -> Response:
        if request.path.startswith("/_control"):
            return super().not_found(request)
        return json_response(ApiError(404, "NOT_FOUND", f"no route {request.method} {request.path}").body(), 404)

    # ---------------------------------------------------------------- PaymentSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """The function's API secret and intake's verification secret (the signature key and the notification URL
        the webhooks are sent to, which the signature covers)."""
        token = next(iter(self.tokens))
        return {
            "api": {"access_token": token},
            "verification": {
                "signature_keys": [self.webhooks.secret or self.signature_key],
                "notification_urls": [self.webhooks.url or DEFAULT_NOTIFICATION_URL],
            },
        }

    def send_webhooks_to(self, url: str) -> None:
        """Deliver webhooks to ``url`` (the local stack's ``{api}/webhooks/square``), signed for that URL."""
        self.webhooks.configure(url, self.signature_key)

    def seed_payment(
        self,
        amount_minor: int,
        currency: str,
        *,
        settled: bool = True,
        behaviour: str = PENDING_THEN_COMPLETE,
        status: str = "COMPLETED",
        tip_minor: int = 0,
    ) -> dict[str, Any]:
        """A card payment of ``amount_minor`` (plus ``tip_minor``) ISO minor units. Square refunds a COMPLETED payment
        whether or not it has settled to the seller's bank, so ``settled`` changes nothing; ``status`` APPROVED is an
        authorisation not yet completed.

        Returns ``{"provider": "square", "payment_id", "locator": {}}``.

        Raises:
            ValueError: an unknown behaviour or status, a currency Square does not process, a non-positive amount.
        """
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}")
        if status not in {"COMPLETED", "APPROVED", "CANCELED", "FAILED"}:
            raise ValueError("status must be COMPLETED, APPROVED, CANCELED or FAILED")
        if currency not in CURRENCY_DECIMALS:
            raise ValueError(f"{currency} is not a currency Square processes")
        if amount_minor <= 0 or tip_minor < 0:
            raise ValueError("the amount must be positive and the tip not negative")
        now = timestamp(self._now())
        payment_id = square_id()
        with self.lock:
            self.payments[payment_id] = {
                "id": payment_id,
                "created_at": now,
                "updated_at": now,
                "amount_money": {"amount": amount_minor, "currency": currency},
                **({"tip_money": {"amount": tip_minor, "currency": currency}} if tip_minor else {}),
                "total_money": {"amount": amount_minor + tip_minor, "currency": currency},
                "approved_money": {"amount": amount_minor + tip_minor, "currency": currency},
                "status": status,
                "source_type": "CARD",
                "card_details": {
                    "status": "CAPTURED" if status == "COMPLETED" else "AUTHORIZED",
                    "card": {"card_brand": "VISA", "last_4": "1111", "exp_month": 11, "exp_year": 2030},
                    "entry_method": "KEYED",
                },
                "location_id": LOCATION_ID,
                "order_id": square_id(),
                "receipt_number": payment_id[:4],
                "version_token": square_id(45),
            }
            self._behaviours[payment_id] = behaviour
        return {"provider": "square", "payment_id": payment_id, "locator": {}}

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """Decide a PENDING refund now (``refund.updated`` follows; FAILED gives the amount back).

        Raises:
            KeyError: no such refund.
            ValueError: the refund is not PENDING.
        """
        with self.lock:
            refund = self.refund_objects[provider_refund_id]
            if refund["status"] != "PENDING":
                raise ValueError(f"refund {provider_refund_id} is {refund['status']}, not PENDING")
            self._decide(refund, "COMPLETED" if succeeded else "FAILED")
            return public_fields(refund)

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """OutsideRefunds: a refund made in the Square Dashboard or on a Point of Sale (no reason or key of ours),
        completed at once, with its ``refund.created`` / ``refund.updated`` events."""
        with self.lock:
            currency = self.payments[payment_id]["total_money"]["currency"]
            refund = self._new_refund(
                {"payment_id": payment_id, "amount_money": {"amount": amount_minor, "currency": currency}}
            )
        if refund["status"] == "PENDING":
            self.settle_refund(refund["id"], True)
        return str(refund["id"])

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund held, oldest first (copies)."""
        with self.lock:
            return [public_fields(refund) for refund in sorted(self.refund_objects.values(), key=lambda r: r["_order"])]

    def wait_delivered(self, timeout: float = 30.0) -> bool:
        """Wait until every webhook queued so far has been answered (or given up on)."""
        return self.webhooks.wait_idle(timeout)

    # ---------------------------------------------------------------- request plumbing

    def _api(self, handler: Callable[..., tuple[int, Any]]) -> Callable[..., Response]:
        def endpoint(request: Request, **arguments: str) -> Response:
            try:
                merchant = self._authenticate(request)
                status, body = handler(request, merchant, **arguments)
            except ApiError as error:
                status, body = error.status, error.body()
            return json_response(body, status)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _authenticate(self, request: Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        merchant = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if merchant is None:
            raise ApiError(401, "UNAUTHORIZED", "This request could not be authorized.")
        version = request.headers.get("Square-Version")
        if version is not None and not _VERSION.match(version):
            raise ApiError(400, "INVALID_SQUARE_VERSION_FORMAT", f"Invalid Square-Version format: {version}")
        return merchant

    # ---------------------------------------------------------------- the API

    def _get_payment(self, request: Request, merchant: str, payment_id: str) -> tuple[int, Any]:
        with self.lock:
            payment = self.payments.get(payment_id)
            if payment is None:
                raise ApiError(404, "NOT_FOUND", f"Could not find payment with id: {payment_id}")
            return 200, {"payment": copy.deepcopy(payment)}

    def _get_refund(self, request: Request, merchant: str, refund_id: str) -> tuple[int, Any]:
        with self.lock:
            refund = self.refund_objects.get(refund_id)
            if refund is None:
                raise ApiError(404, "NOT_FOUND", f"Could not find refund with id: {refund_id}")
            return 200, {"refund": public_fields(refund)}

    def _refund_payment(self, request: Request, merchant: str) -> tuple[int, Any]:
        body = _json_body(request)
        _validate_refund(body)
        token = request.headers["Authorization"].partition(" ")[2].strip()
        scope = (token, str(body["idempotency_key"]))
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self.lock:
            saved = self._keys.get(scope)
            if saved is not None and self._now() - saved.created_at > self.key_ttl_seconds:
                del self._keys[scope]
                saved = None
            if saved is not None:
                if saved.fingerprint != fingerprint:
                    raise ApiError(400, "IDEMPOTENCY_KEY_REUSED", field="idempotency_key")
                return 200, {"refund": public_fields(self.refund_objects[saved.refund_id])}
            if scope in self._in_flight:
                raise ApiError(409, "CONFLICT", "A request with this idempotency key is being processed.")
            self._in_flight.add(scope)
        try:
            with self.lock:
                refund = self._new_refund(body)
            if self.processing_gate is not None:
                self.processing_gate.wait(timeout=10.0)  # the key stays in flight: a repeat now gets the 409
            elif self.processing_delay_seconds:
                time.sleep(self.processing_delay_seconds)
            with self.lock:
                self._keys[scope] = _Key(fingerprint, refund["id"], self._now())
                return 200, {"refund": public_fields(refund)}
        finally:
            with self.lock:
                self._in_flight.discard(scope)

    def _new_refund(self, body: dict[str, Any]) -> dict[str, Any]:
        payment_id = str(body["payment_id"])
        payment = self.payments.get(payment_id)
        if payment is None:
            raise ApiError(404, "NOT_FOUND", f"Could not find payment with id: {payment_id}")
        if payment["status"] == "APPROVED":
            raise ApiError(400, "REFUND_ERROR_PAYMENT_NEEDS_COMPLETION")
        if payment["status"] != "COMPLETED":
            raise ApiError(400, "PAYMENT_NOT_REFUNDABLE", f"The payment is {payment['status']}.")
        money = body["amount_money"]
        currency = payment["total_money"]["currency"]
        if money["currency"] != currency:
            raise ApiError(400, "CURRENCY_MISMATCH", f"The refund must be in {currency}.", "amount_money.currency")
        left = payment["total_money"]["amount"] - self._held(payment_id)
        if money["amount"] > left:
            raise ApiError(
                400, "REFUND_AMOUNT_INVALID", "The requested refund amount exceeds the amount available to refund."
            )
        now = timestamp(self._now())
        behaviour = self._behaviours.get(payment_id, PENDING_THEN_COMPLETE)
        refund: dict[str, Any] = {
            "id": f"{payment_id}_{square_id(45)}",
            "status": "COMPLETED" if behaviour == COMPLETE else "PENDING",
            "location_id": payment["location_id"],
            "unlinked": False,
            "destination_type": "CARD",
            "amount_money": {"amount": money["amount"], "currency": currency},
            "payment_id": payment_id,
            "order_id": square_id(),
            **({"reason": body["reason"]} if "reason" in body else {}),
            **({"team_member_id": body["team_member_id"]} if "team_member_id" in body else {}),
            "created_at": now,
            "updated_at": now,
            "_order": next(self._order),
        }
        self.refund_objects[refund["id"]] = refund
        payment.setdefault("refund_ids", []).append(refund["id"])
        self._recount(payment)
        self._emit("refund.created", refund)
        if refund["status"] == "PENDING":
            self._schedule(refund["id"], behaviour)
        return refund

    # ---------------------------------------------------------------- state and events

    def _held(self, payment_id: str) -> int:
        return sum(
            refund["amount_money"]["amount"]
            for refund in self.refund_objects.values()
            if refund["payment_id"] == payment_id and refund["status"] in {"PENDING", "COMPLETED"}
        )

    def _recount(self, payment: dict[str, Any]) -> None:
        completed = sum(
            refund["amount_money"]["amount"]
            for refund in self.refund_objects.values()
            if refund["payment_id"] == payment["id"] and refund["status"] == "COMPLETED"
        )
        if completed:
            payment["refunded_money"] = {"amount": completed, "currency": payment["total_money"]["currency"]}
        payment["updated_at"] = timestamp(self._now())
        payment["version_token"] = square_id(45)

    def _decide(self, refund: dict[str, Any], status: str) -> None:
        refund["status"] = status
        refund["updated_at"] = timestamp(self._now())
        self._recount(self.payments[refund["payment_id"]])
        self._emit("refund.updated", refund)

    def _schedule(self, refund_id: str, behaviour: str) -> None:
        if behaviour == MANUAL or self.settle_after_seconds is None:
            return

        def fire() -> None:
            with self.lock:
                refund = self.refund_objects.get(refund_id)
                if refund is not None and refund["status"] == "PENDING":
                    self._decide(refund, "COMPLETED" if behaviour == PENDING_THEN_COMPLETE else "FAILED")

        timer = threading.Timer(self.settle_after_seconds, fire)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _emit(self, kind: str, refund: dict[str, Any]) -> None:
        event: dict[str, Any] = {
            "merchant_id": self.tokens.get(DEFAULT_ACCESS_TOKEN, MERCHANT_ID),
            "type": kind,
            "event_id": str(uuid.uuid4()),
            "created_at": timestamp(self._now()),
            "data": {"type": "refund", "id": refund["id"], "object": {"refund": public_fields(refund)}},
        }
        self.events.append(event)
        self.webhooks.send(str(event["event_id"]), kind, json.dumps(event).encode())

    # ---------------------------------------------------------------- control routes

    def _control_payments(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        allowed = {"amount_minor", "currency", "behaviour", "status", "tip_minor", "settled"}
        if set(payload) - allowed or not isinstance(payload.get("amount_minor"), int):
            return json_response({"error": f"need amount_minor (int) and currency; allowed {sorted(allowed)}"}, 400)
        try:
            seeded = self.seed_payment(
                payload["amount_minor"],
                str(payload.get("currency")),
                behaviour=str(payload.get("behaviour", PENDING_THEN_COMPLETE)),
                status=str(payload.get("status", "COMPLETED")),
                tip_minor=int(payload.get("tip_minor", 0)),
            )
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response(seeded, 201)

    def _control_outcome(self, request: Request, refund_id: str) -> Response:
        return control_outcome(request, refund_id, self.settle_refund)

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response({"payments": copy.deepcopy(list(self.payments.values())), "refunds": self.refunds()})

    def _control_events(self, request: Request) -> Response:
        with self.lock:
            return json_response({"events": copy.deepcopy(self.events)})


# ---------------------------------------------------------------- helpers


def _json_body(request: Request) -> dict[str, Any]:
    raw = request.get_data()
    if not raw.strip() or request.mimetype != "application/json":
        raise ApiError(400, "EXPECTED_JSON_BODY", "The request body must be a JSON object.")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "EXPECTED_JSON_BODY", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "EXPECTED_JSON_BODY", "The request body must be a JSON object.")
    return body


def _validate_refund(body: dict[str, Any]) -> None:
    """The spec's ``RefundPaymentRequest``, for the linked refunds refundflow makes."""
    for field in body:
        if field in _NOT_MODELLED:
            raise ApiError(400, "BAD_REQUEST", f"{field} is not modelled by this simulator", field)
        if field not in _REFUND_FIELDS:
            raise ApiError(400, "BAD_REQUEST", f"{field} is not a field of RefundPaymentRequest", field)
    for field in ("idempotency_key", "amount_money", "payment_id"):
        if body.get(field) is None:
            raise ApiError(400, "MISSING_REQUIRED_PARAMETER", f"Missing required parameter: {field}", field)
    for field, limit in (("idempotency_key", 45), ("payment_id", 192), ("reason", 192), ("team_member_id", 192)):
        if field not in body:
            continue
        value = body[field]
        if not isinstance(value, str):
            raise ApiError(400, "EXPECTED_STRING", f"{field} must be a string", field)
        if not value:
            raise ApiError(400, "VALUE_TOO_SHORT", f"{field} must not be empty", field)
        if len(value) > limit:
            raise ApiError(400, "VALUE_TOO_LONG", f"{field} must be at most {limit} characters", field)
    money = body["amount_money"]
    if not isinstance(money, dict):
        raise ApiError(400, "EXPECTED_OBJECT", "amount_money must be an object", "amount_money")
    if set(money) - {"amount", "currency"}:
        raise ApiError(400, "BAD_REQUEST", "Money has only amount and currency", "amount_money")
    amount, currency = money.get("amount"), money.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ApiError(400, "EXPECTED_INTEGER", "amount_money.amount must be an integer", "amount_money.amount")
    if amount < 1:
        raise ApiError(400, "VALUE_TOO_LOW", "amount_money.amount must be positive", "amount_money.amount")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise ApiError(400, "INVALID_VALUE", "amount_money.currency is not a currency", "amount_money.currency")


# ---------------------------------------------------------------- demo scenarios (make demo)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client, not the simulator's users)."""
    if name == "DEMO_SCENARIOS":
        return _demo_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _demo_scenarios() -> list[Any]:
    """A full refund (PENDING, then COMPLETED by Square's signed ``refund.updated``), a partial one, a late failure,
    and an answer lost after Square made the refund (a 500 after the work): the workflow finds the refund by our
    reference among the payment's refunds and never sends a second one."""
    from local.client import TERMINAL
    from local.scenarios import Outcome, Scenario, ScenarioContext, payment_scenarios

    usual = payment_scenarios("square", async_seed={"behaviour": MANUAL}, unknown_outcome=None)
    chosen = [scenario for scenario in usual if scenario.name in {"partial refund", "late failure"}]

    def full(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(4_500, "EUR")
        refund = context.client.wait_for(context.submit(outcome, context.request("full", payment)), TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        held = context.platform_refunds(refund.get("provider_refund_id"))
        outcome.check(len(held) == 1, f"{len(held)} refunds at Square for {refund.get('provider_refund_id')}")
        # Square's refund.created and refund.updated reached intake and verified there (a 2xx, not a 401)
        context.simulator.wait_delivered()
        about = {
            event["event_id"]
            for event in context.simulator.events
            if event["data"]["id"] == refund.get("provider_refund_id")
        }
        answered = [delivery for delivery in context.simulator.webhooks.deliveries if delivery.event_id in about]
        outcome.check(len(answered) == 2, f"{len(answered)} webhooks sent for the refund, not created and updated")
        outcome.check(
            all(delivery.delivered for delivery in answered),
            f"webhooks refused by intake: {[(d.event_type, d.last_status) for d in answered]}",
        )

    def answer_lost(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(4_500, "EUR")
        context.simulator.add_fault(FaultRule(method="POST", path=r"^/v2/refunds$", status=500, when="after"))
        refund_id = context.submit(outcome, context.request("answer-lost", payment, amount=4_500, currency="EUR"))
        refund = context.client.wait_for(refund_id, TERMINAL | {"NEEDS_ATTENTION"}, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        ours = [item for item in context.simulator.refunds() if str(item.get("reason", "")).endswith(f"[{refund_id}]")]
        outcome.check(len(ours) == 1, f"{len(ours)} Square refunds carry {refund_id}: paid more than once?")

    return [
        Scenario(
            "full refund", "COMPLETED by Square's signed refund.updated, verified at intake; one refund at Square", full
        ),
        *chosen,
        Scenario(
            "answer lost after Square refunded (500 after the work)",
            "COMPLETED by finding the refund among the payment's refunds; one refund at Square",
            answer_lost,
            exclusive=True,
        ),
    ]
