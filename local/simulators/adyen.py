"""A stateful Adyen sandbox for the refund call refundflow makes, on Adyen's own paths (Checkout API v71).

Mounted by the local stack at ``/_sandbox/adyen``; the connector's base address is
``{sandbox}/adyen/checkout/v71`` (live: ``https://checkout-test.adyen.com/v71``). What it holds to, as Adyen
documents it (docs.adyen.com, the official spec ``CheckoutService-v71.json`` and ``Webhooks-v1.json``):

- ``POST /checkout/v71/payments/{paymentPspReference}/refunds`` only; auth by the ``X-API-Key`` header (a
  missing or unknown key is a 401 ``errorCode 000``), the API key is allowed a set of merchant accounts
  (another one is a 403 ``901 Invalid Merchant Account``, Adyen's own example);
- the body is checked against the spec's ``PaymentRefundRequest`` (``additionalProperties: false``;
  ``amount`` and ``merchantAccount`` required; ``amount.value`` int64, ``currency`` three letters;
  ``reference`` at most 80 characters; ``merchantRefundReason`` one of the spec's five values); spec fields
  refundflow never sends (``lineItems``, ``splits``, ``store``, ...) are refused with a message saying so;
- the answer is a 201 ``PaymentRefundResponse`` with ``status: received`` and nothing else: the outcome
  comes later, only by notification; errors are ``ServiceError`` bodies
  ``{status, errorCode, message, errorType, pspReference}``;
- ``Idempotency-Key`` (at most 64 characters, scoped to the company account, kept at least 31 days): the
  same key with the same request replays the first answer (the key echoed in the answer's header); the
  same key with another request, or while the first is still being processed, is a 422 ``704``
  (the code is this simulator's choice: Adyen does not publish the exact answer);
- the payment's own story, as Adyen tells it: ``AUTHORISATION`` when a payment is seeded (with
  ``additionalData.captureDelayHours`` "0" for an immediately captured one, the value Adyen adds when the
  merchant selects it under Additional data) and ``CAPTURE`` (``originalReference`` the payment) when an
  authorised payment is captured later; refundflow learns captured amounts only this way (no API reads a
  payment back);
- notifications: ``REFUND`` (``success`` "true" or "false" with a ``reason``), ``REFUND_FAILED`` (a
  refund that failed after it succeeded) and ``REFUNDED_REVERSED`` (returned by the bank), as
  ``NotificationRequest`` batches of ``NotificationRequestItem`` objects, each signed on its own with
  HMAC-SHA256 under the hex-decoded HMAC key over
  ``pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success``
  (base64 in ``additionalData.hmacSignature``); a batch counts as delivered only when the endpoint answers
  2xx with the body ``[accepted]``, otherwise it is sent again (three quick retries, then a back-off queue);
- money rules at Adyen are applied when the refund is processed, so they come back as ``REFUND``
  ``success=false``, never as an HTTP error: a refund of an authorised payment that was never captured
  (the spec's own example reason "Transaction hasn't been captured, refund not possible"), a refund in
  another currency than the payment's, and a refund above what remains captured ("the total refunded
  value cannot exceed the captured amount"; the reason wording is this simulator's);
- amounts in Adyen's minor units (docs.adyen.com/development-resources/currency-codes): CLP and ISK have
  two decimals, CVE and IDR none, unlike ISO 4217.

Test behaviours, chosen per payment when it is seeded (``/_control/payments``, field ``refundBehaviour``):
``succeed`` (default), ``fail`` (REFUND success=false), ``succeed_then_fail`` (REFUND true, then
REFUND_FAILED), ``succeed_then_reverse`` (REFUND true, then REFUNDED_REVERSED) and ``manual`` (no
notification until ``/_control/refunds/{psp}/outcome``). Automatic outcomes are sent ``settle_after_seconds``
after the refund request (``None``: every refund is manual).

``make demo`` runs ``DEMO_SCENARIOS`` (built on first access, so importing the simulator stays light): the
usual payment scenarios of ``local.scenarios`` with refunds held open until settled, plus a refund Adyen
reports failed (``REFUND_FAILED``) or returned (``REFUNDED_REVERSED``) after it succeeded, and a refund whose
outcome is never reported until a person is asked, then resolved by the late notification.

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/payments`` ``{"value", "currency", "merchantAccount"?, "captured"?, "refundBehaviour"?,
  "merchantReference"?, "paymentMethod"?}``: a payment as ``/payments`` would have left it;
- ``POST /_control/payments/{psp}/capture``: capture an authorised payment (sends CAPTURE);
- ``POST /_control/refunds/{psp}/outcome`` ``{"event": "REFUND"|"REFUND_FAILED"|"REFUNDED_REVERSED",
  "success": bool, "reason"?}``: decide a refund now (sends the notification);
- ``POST /_control/webhook-settings`` ``{"include_arn": bool}``: the webhook's additional setting "Include ARN"
  (Customer Area > Developers > Webhooks > Additional settings): when on, a successful ``REFUND`` of a card
  payment (Visa, Mastercard, JCB, Diners: the brands Adyen makes ARNs for) carries ``additionalData.arn``; off
  (Adyen's default), none does, and no API reads it later;
- ``POST /_control/notifications/hold`` ``{"hold": bool}``: keep notifications back (``false`` sends
  every held item in one batch), to exercise batches;
- ``GET /_control/objects``: payments and refunds; ``GET /_control/notifications``: every item emitted.
The base ``/_control/webhook-endpoint`` takes ``{"url", "secret"}`` with ``secret`` the hex HMAC key.

Not modelled: ``/payments`` itself (payments are seeded), partial captures, cancels, reversals, basic auth (for the
API and on the webhook endpoint), live-endpoint prefixes, ``lineItems`` and split refunds.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
from werkzeug.wrappers import Request, Response

from local.simulators.base import Delivery, FaultRule, Simulator, StoredResponse, json_response
from refundflow.money import exponent

API_PREFIX = "/checkout/v71"
DEFAULT_API_KEY = "AQE_test_refundflow_simulator_key"
DEFAULT_MERCHANT_ACCOUNT = "RefundflowECOM"
# A fixed test key (32 bytes, hex) so the local stack's verification secret and the simulator agree.
DEFAULT_HMAC_KEY = "5F1A6C0E3B2D4F8091A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708"
COMPANY = "RefundflowCompany"
MAX_IDEMPOTENCY_KEY_LENGTH = 64
IDEMPOTENCY_TTL_SECONDS = 31 * 24 * 3600
MAX_REFERENCE_LENGTH = 80
ACCEPTED = b"[accepted]"

SUCCEED = "succeed"
FAIL = "fail"
SUCCEED_THEN_FAIL = "succeed_then_fail"
SUCCEED_THEN_REVERSE = "succeed_then_reverse"
MANUAL = "manual"
BEHAVIOURS = (SUCCEED, FAIL, SUCCEED_THEN_FAIL, SUCCEED_THEN_REVERSE, MANUAL)

REFUND = "REFUND"
# The payment methods (brands) Adyen makes acquirer reference numbers for (help.adyen.com, "Where can I find the
# Acquirer Reference Number (ARN)?": "ARNs are only generated for Mastercard, Visa, JCB, and Diners").
ARN_BRANDS = frozenset({"visa", "mc", "jcb", "diners"})
REFUND_FAILED = "REFUND_FAILED"
REFUNDED_REVERSED = "REFUNDED_REVERSED"
EVENT_CODES = (REFUND, REFUND_FAILED, REFUNDED_REVERSED)

# The request fields of PaymentRefundRequest (CheckoutService-v71.json): modelled, and in the spec but not
# modelled (refused with a message), anything else is unknown (refused as Adyen refuses unknown fields).
_MODELLED_FIELDS = {"amount", "merchantAccount", "reference", "merchantRefundReason"}
_UNMODELLED_FIELDS = {"applicationInfo", "capturePspReference", "enhancedSchemeData", "lineItems", "splits", "store"}
REFUND_REASONS = ("FRAUD", "CUSTOMER REQUEST", "RETURN", "DUPLICATE", "OTHER")
# Adyen's decimals where they differ from ISO 4217 (docs.adyen.com/development-resources/currency-codes).
ADYEN_EXPONENT_EXCEPTIONS = {"CLP": 2, "CVE": 0, "IDR": 0, "ISK": 2}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)
UNCAPTURED_REASON = "Transaction hasn't been captured, refund not possible"
OVER_REFUND_REASON = "Refund amount exceeds the remaining captured amount"
CURRENCY_REASON = "Currency of the refund does not match the currency of the payment"
FAILED_REASON = "Refund declined by the issuer"
LATE_FAILURE_REASON = "Refund Failed"
REVERSED_REASON = "Refund returned by the shopper's bank"


class ServiceError(Exception):
    """An Adyen error answer (``ServiceError`` in the spec)."""

    def __init__(self, status: int, error_code: str, message: str, error_type: str = "validation") -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "status": status,
            "errorCode": error_code,
            "message": message,
            "errorType": error_type,
            "pspReference": new_psp_reference(),
        }


def new_psp_reference() -> str:
    """Adyen's 16-character reference."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def signing_string(item: Mapping[str, Any]) -> str:
    """The colon-joined fields Adyen signs for one notification item (a missing field is empty)."""
    amount = item.get("amount") or {}
    values = {**item, "value": amount.get("value", ""), "currency": amount.get("currency", "")}
    return ":".join(str(values.get(name, "")) for name in _SIGNED_FIELDS)


def sign_item(item: Mapping[str, Any], hex_key: str) -> str:
    """``hmacSignature`` of one item: base64 HMAC-SHA256 of :func:`signing_string` under the hex-decoded key."""
    digest = hmac.new(binascii.unhexlify(hex_key), signing_string(item).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def to_adyen_value(amount_minor: int, currency: str) -> int:
    """ISO 4217 minor units as Adyen's ``value`` (ISK 2790 -> 279000, IDR 150000 -> 1500).

    Raises:
        ValueError: not exactly representable in Adyen's unit.
    """
    iso = exponent(currency)
    shift = ADYEN_EXPONENT_EXCEPTIONS.get(currency, iso) - iso
    scale: int = 10 ** abs(shift)
    if shift >= 0:
        return amount_minor * scale
    if amount_minor % scale:
        raise ValueError(f"{amount_minor} minor units of {currency} are not a whole number of Adyen's unit")
    return amount_minor // scale


@dataclass
class _Batch:
    items: list[dict[str, Any]]
    delivery: Delivery


@dataclass
class _Notifier:
    """Adyen's delivery loop: batches, ``[accepted]`` or retry, in order, one endpoint."""

    retries_now: int = 3
    backoff_seconds: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
    max_attempts: int = 12
    queue: list[_Batch] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    hold: bool = False
    condition: threading.Condition = field(default_factory=threading.Condition)
    thread: threading.Thread | None = None
    busy: bool = False
    generation: int = 0


class AdyenSimulator(Simulator):
    """Adyen's refund surface: accepts refunds as ``received``, tells the outcome by signed notification."""

    name = "adyen"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"^/checkout/v71/payments/[^/]+/refunds$"),
    }

    def __init__(
        self,
        api_keys: Mapping[str, Iterable[str]] | None = None,
        *,
        webhook_url: str | None = None,
        hmac_key: str = DEFAULT_HMAC_KEY,
        settle_after_seconds: float | None = 0.2,
        late_outcome_after_seconds: float | None = 0.5,
        idempotency_ttl_seconds: float = IDEMPOTENCY_TTL_SECONDS,
        notify_payments: bool = True,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``api_keys``: API key -> merchant accounts it may use (default: one key, one account)."""
        self.api_keys: dict[str, frozenset[str]] = {
            key: frozenset(accounts)
            for key, accounts in (api_keys or {DEFAULT_API_KEY: [DEFAULT_MERCHANT_ACCOUNT]}).items()
        }
        self.settle_after_seconds = settle_after_seconds
        self.late_outcome_after_seconds = late_outcome_after_seconds
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        self.notify_payments = notify_payments
        # The webhook's additional setting "Include ARN" (off, as Adyen ships it).
        self.include_arn = False
        self._now = now
        self.payments: dict[str, dict[str, Any]] = {}
        self.refund_objects: dict[str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self._key_requests: dict[str, str] = {}
        self._timers: list[threading.Timer] = []
        self._notifier = _Notifier()
        super().__init__()
        self.webhooks.configure(webhook_url, hmac_key)
        self.route(f"{API_PREFIX}/payments/<psp_reference>/refunds", self._refund_endpoint, methods=["POST"])
        self.route("/_control/payments", self._control_seed_payment, methods=["POST"])
        self.route("/_control/payments/<psp_reference>/capture", self._control_capture, methods=["POST"])
        self.route("/_control/refunds/<psp_reference>/outcome", self._control_outcome, methods=["POST"])
        self.route("/_control/notifications/hold", self._control_hold, methods=["POST"])
        self.route("/_control/webhook-settings", self._control_webhook_settings, methods=["POST"])
        self.route("/_control/notifications", self._control_notifications, methods=["GET"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])

    # ---------------------------------------------------------------- base hooks

    def reset_state(self) -> None:
        with self.lock:
            self.include_arn = False
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self.payments.clear()
            self.refund_objects.clear()
            self.notifications.clear()
            self._key_requests.clear()
        with self._notifier.condition:
            self._notifier.queue.clear()
            self._notifier.held.clear()
            self._notifier.hold = False
            self._notifier.generation += 1
            self._notifier.condition.notify_all()

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure, in Adyen's ``ServiceError`` shape unless the rule brings its own body."""
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        if status == 429:
            error = ServiceError(429, "000", "Too many requests", "internal")
        elif status >= 500:
            error = ServiceError(status, "000", "Internal error (simulated fault)", "internal")
        else:
            error = ServiceError(status, "000", "Simulated fault")
        return json_response(error.body, status, headers=fault.headers)

    def not_found(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX):
            return super().not_found(request)
        return json_response(ServiceError(404, "000", "Not Found").body, 404)

    # ---------------------------------------------------------------- PaymentSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """What the local stack seeds: the function's API secret and intake's verification secret."""
        api_key = next(iter(self.api_keys))
        merchant = sorted(self.api_keys[api_key])[0]
        return {
            "api": {"api_key": api_key, "merchant_account": merchant},
            "verification": {"hmac_keys": [self.webhooks.secret or DEFAULT_HMAC_KEY]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where notifications go (the stack's ``{api}/webhooks/adyen``), signed with the current HMAC key."""
        self.webhooks.configure(url, self.webhooks.secret or DEFAULT_HMAC_KEY)

    def seed_payment(
        self,
        amount_minor: int,
        currency: str,
        *,
        settled: bool = True,
        behaviour: str = SUCCEED,
        merchant_account: str | None = None,
    ) -> dict[str, Any]:
        """A payment of ``amount_minor`` ISO 4217 minor units (held in Adyen's unit); ``settled``: captured.

        Returns ``{"provider": "adyen", "payment_id": <pspReference>, "locator": {}}``.

        Raises:
            ValueError: an amount Adyen's unit cannot hold (e.g. IDR with cents), an unknown behaviour.
        """
        payment = self.create_payment(
            value=to_adyen_value(amount_minor, currency),
            currency=currency,
            captured=settled,
            behaviour=behaviour,
            merchant_account=merchant_account,
        )
        return {"provider": "adyen", "payment_id": payment["pspReference"], "locator": {}}

    def settle_refund(self, provider_refund_id: str, succeeded: bool, reason: str | None = None) -> dict[str, Any]:
        """Decide a received refund now (REFUND success true/false) and notify."""
        return self.decide(provider_refund_id, REFUND, succeeded, reason)

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """OutsideRefunds: a refund made in Adyen's Customer Area (no reference of ours), decided at once, with
        its REFUND notification."""
        with self.lock:
            payment = self.payments[payment_id]
            request = {
                "merchantAccount": payment["merchantAccount"],
                "amount": {"value": amount_minor, "currency": payment["amount"]["currency"]},
            }
        refund_psp = str(self._create_refund(payment_id, request)["pspReference"])
        self.decide(refund_psp, REFUND, True)
        return refund_psp

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund held, oldest first (copies)."""
        with self.lock:
            return copy.deepcopy(list(self.refund_objects.values()))

    # ---------------------------------------------------------------- test helpers

    def create_payment(
        self,
        *,
        value: int,
        currency: str,
        captured: bool = True,
        behaviour: str = SUCCEED,
        merchant_account: str | None = None,
        merchant_reference: str | None = None,
        payment_method: str = "visa",
    ) -> dict[str, Any]:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"refundBehaviour must be one of {', '.join(BEHAVIOURS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError("value must be a positive integer (minor units)")
        if not _CURRENCY.match(currency):
            raise ValueError("currency must be three upper-case letters")
        account = merchant_account or sorted(next(iter(self.api_keys.values())))[0]
        with self.lock:
            psp = new_psp_reference()
            payment = {
                "pspReference": psp,
                "merchantAccount": account,
                "merchantReference": merchant_reference or f"order-{psp[-6:]}",
                "amount": {"currency": currency, "value": value},
                "captured": captured,
                "paymentMethod": payment_method,
                "refundBehaviour": behaviour,
            }
            self.payments[psp] = payment
            snapshot = copy.deepcopy(payment)
            item: dict[str, Any] | None = None
            if self.notify_payments:
                item = self._payment_item(payment, "AUTHORISATION", psp, None)
                item["operations"] = ["CANCEL", "CAPTURE", "REFUND"]
                if captured:
                    # Sent when the merchant selects it under Additional data; "0" is an immediate capture.
                    item["additionalData"] = {"captureDelayHours": "0"}
                self.notifications.append(copy.deepcopy(item))
        if item is not None:
            self._enqueue(item)
        return snapshot

    def capture_payment(self, psp_reference: str) -> dict[str, Any]:
        """Capture an authorised payment in full (a manual capture) and send the CAPTURE notification.

        Raises:
            KeyError: no such payment.
            ValueError: already captured.
        """
        with self.lock:
            payment = self.payments[psp_reference]
            if payment["captured"]:
                raise ValueError(f"payment {psp_reference} is already captured")
            payment["captured"] = True
            snapshot = copy.deepcopy(payment)
            item: dict[str, Any] | None = None
            if self.notify_payments:
                item = self._payment_item(payment, "CAPTURE", new_psp_reference(), psp_reference)
                self.notifications.append(copy.deepcopy(item))
        if item is not None:
            self._enqueue(item)
        return snapshot

    def _payment_item(self, payment: dict[str, Any], event: str, psp: str, original: str | None) -> dict[str, Any]:
        item: dict[str, Any] = {
            "amount": dict(payment["amount"]),
            "eventCode": event,
            "eventDate": datetime.fromtimestamp(self._now(), UTC).isoformat(timespec="seconds"),
            "merchantAccountCode": payment["merchantAccount"],
            "merchantReference": payment["merchantReference"],
            "paymentMethod": payment["paymentMethod"],
            "pspReference": psp,
            "reason": "",
            "success": "true",
        }
        if original is not None:
            item["originalReference"] = original
        return item

    def decide(self, refund_psp: str, event: str, success: bool, reason: str | None = None) -> dict[str, Any]:
        """Move a refund as Adyen would and send the notification.

        Raises:
            KeyError: no such refund.
            ValueError: a move Adyen does not make (decide twice, fail a refund that did not succeed,
                succeed a refund Adyen must refuse).
        """
        with self.lock:
            refund = self.refund_objects[refund_psp]
            status = refund["status"]
            if event == REFUND:
                if status != "received":
                    raise ValueError(f"refund {refund_psp} is already {status}")
                refusal = refund.get("refusal")
                if success and refusal:
                    raise ValueError(f"refund {refund_psp} cannot succeed: {refusal}")
                refund["status"] = "succeeded" if success else "failed"
                refund["reason"] = "" if success else (reason or refusal or FAILED_REASON)
            elif event in (REFUND_FAILED, REFUNDED_REVERSED):
                if status != "succeeded":
                    raise ValueError(f"only a succeeded refund can get {event} (this one is {status})")
                refund["status"] = "failed_after_success" if event == REFUND_FAILED else "reversed"
                refund["reason"] = reason or (LATE_FAILURE_REASON if event == REFUND_FAILED else REVERSED_REASON)
                success = True  # both events report that the failure or reversal itself happened
            else:
                raise ValueError(f"event must be one of {', '.join(EVENT_CODES)}")
            item = self._item(refund, event, success, refund["reason"])
            self.notifications.append(copy.deepcopy(item))
            snapshot = copy.deepcopy(refund)
        self._enqueue(item)
        return snapshot

    def wait_delivered(self, timeout: float = 30.0) -> bool:
        """True once no automatic outcome is still to come and every notification emitted was accepted (or
        given up); a bound on the wait, not a pace."""
        deadline = time.monotonic() + timeout
        while True:  # an outcome's timer may start the next one (REFUND, then REFUND_FAILED)
            with self.lock:
                alive = [timer for timer in self._timers if timer.is_alive()]
            if not alive:
                break
            alive[0].join(max(0.0, deadline - time.monotonic()))
            if alive[0].is_alive():
                return False
        with self._notifier.condition:
            while self._notifier.queue or self._notifier.busy or (self._notifier.held and not self._notifier.hold):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._notifier.condition.wait(remaining)
        return True

    # ---------------------------------------------------------------- the refund endpoint

    def _refund_endpoint(self, request: Request, psp_reference: str) -> Response:
        key = request.headers.get("Idempotency-Key")
        echo = {"Idempotency-Key": key} if key is not None else {}
        try:
            allowed = self._authenticate(request)
            body = _parse_json(request)
        except ServiceError as refused:
            return json_response(refused.body, refused.status)
        if key is None:
            status, answer = self._answer(allowed, psp_reference, body)
            return json_response(answer, status)
        if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            too_long = ServiceError(
                422, "702", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters long"
            )
            return json_response(too_long.body, 422, echo)
        fingerprint = self.idempotency.fingerprint(request.path, body)
        self.idempotency.expire_older_than(self.idempotency_ttl_seconds)
        state = self.idempotency.begin(COMPANY, key)
        in_use = ServiceError(422, "704", "request already processed or in progress")
        if state is False:
            return json_response(in_use.body, 422, echo)
        if isinstance(state, StoredResponse):
            if state.fingerprint != fingerprint:
                return json_response(in_use.body, 422, echo)
            return json_response(state.body, state.status, echo)
        stored: StoredResponse | None = None
        try:
            status, answer = self._answer(allowed, psp_reference, body)
            stored = StoredResponse(fingerprint, status, answer, {}, time.time())
        finally:
            self.idempotency.finish(COMPANY, key, stored)
        return json_response(answer, status, echo)

    def _authenticate(self, request: Request) -> frozenset[str]:
        key = request.headers.get("X-API-Key", "")
        if key not in self.api_keys:
            raise ServiceError(401, "000", "HTTP Status Response - Unauthorized", "security")
        return self.api_keys[key]

    def _answer(self, allowed: frozenset[str], psp_reference: str, body: Any) -> tuple[int, dict[str, Any]]:
        try:
            request = _validate_refund_request(body)
            if request["merchantAccount"] not in allowed:
                raise ServiceError(403, "901", "Invalid Merchant Account", "security")
            return 201, self._create_refund(psp_reference, request)
        except ServiceError as error:
            return error.status, error.body

    def _create_refund(self, psp_reference: str, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            payment = self.payments.get(psp_reference)
            if payment is None or payment["merchantAccount"] != request["merchantAccount"]:
                raise ServiceError(422, "167", "Original pspReference is invalid for this environment!")
            amount = request["amount"]
            refund_psp = new_psp_reference()
            refund: dict[str, Any] = {
                "pspReference": refund_psp,
                "paymentPspReference": psp_reference,
                "merchantAccount": request["merchantAccount"],
                "amount": dict(amount),
                "reference": request.get("reference"),
                "merchantRefundReason": request.get("merchantRefundReason"),
                "status": "received",
                "reason": "",
                "refusal": self._refusal(payment, amount),
                "createdAt": self._now(),
            }
            self.refund_objects[refund_psp] = refund
            answer: dict[str, Any] = {
                "merchantAccount": request["merchantAccount"],
                "paymentPspReference": psp_reference,
                "pspReference": refund_psp,
                "status": "received",
                "amount": dict(amount),
            }
            for name in ("reference", "merchantRefundReason"):
                if request.get(name) is not None:
                    answer[name] = request[name]
            self._schedule(refund_psp, payment["refundBehaviour"])
            return answer

    def _refusal(self, payment: dict[str, Any], amount: dict[str, Any]) -> str | None:
        """Why Adyen will refuse this refund when it processes it (checked now, told later)."""
        if not payment["captured"]:
            return UNCAPTURED_REASON
        if amount["currency"] != payment["amount"]["currency"]:
            return CURRENCY_REASON
        holding = sum(
            refund["amount"]["value"]
            for refund in self.refund_objects.values()
            if refund["paymentPspReference"] == payment["pspReference"]
            and refund["status"] in ("received", "succeeded")
            and not refund.get("refusal")
        )
        if holding + amount["value"] > payment["amount"]["value"]:
            return OVER_REFUND_REASON
        return None

    def _schedule(self, refund_psp: str, behaviour: str) -> None:
        if self.settle_after_seconds is None or behaviour == MANUAL:
            return

        def first() -> None:
            with self.lock:
                refund = self.refund_objects.get(refund_psp)
                if refund is None or refund["status"] != "received":
                    return
                success = behaviour != FAIL and not refund.get("refusal")
            self.decide(refund_psp, REFUND, success)
            if success and behaviour in (SUCCEED_THEN_FAIL, SUCCEED_THEN_REVERSE):
                self._later(self.late_outcome_after_seconds, second)

        def second() -> None:
            with self.lock:
                refund = self.refund_objects.get(refund_psp)
                if refund is None or refund["status"] != "succeeded":
                    return
            self.decide(refund_psp, REFUND_FAILED if behaviour == SUCCEED_THEN_FAIL else REFUNDED_REVERSED, True)

        self._later(self.settle_after_seconds, first)

    def _later(self, delay: float | None, action: Callable[[], None]) -> None:
        if delay is None:
            return
        timer = threading.Timer(delay, action)
        timer.daemon = True
        with self.lock:
            self._timers = [*(known for known in self._timers if known.is_alive()), timer]
        timer.start()

    # ---------------------------------------------------------------- notifications

    def _item(self, refund: dict[str, Any], event: str, success: bool, reason: str) -> dict[str, Any]:
        payment = self.payments[refund["paymentPspReference"]]
        item: dict[str, Any] = {
            "amount": dict(refund["amount"]),
            "eventCode": event,
            "eventDate": datetime.fromtimestamp(self._now(), UTC).isoformat(timespec="seconds"),
            "merchantAccountCode": refund["merchantAccount"],
            "merchantReference": refund["reference"] or payment["merchantReference"],
            "originalReference": refund["paymentPspReference"],
            "paymentMethod": payment["paymentMethod"],
            "pspReference": refund["pspReference"],
            "reason": reason,
            "success": "true" if success else "false",
        }
        if self.include_arn and event == REFUND and success and payment["paymentMethod"] in ARN_BRANDS:
            # docs.adyen.com/development-resources/webhooks/additional-settings: "Include ARN", "only returned in
            # CAPTURE and REFUND webhook events"; ARNs exist for Mastercard, Visa, JCB and Diners only.
            item["additionalData"] = {"arn": "74" + "".join(str(secrets.randbelow(10)) for _ in range(21))}
        return item

    def _enqueue(self, item: dict[str, Any]) -> None:
        notifier = self._notifier
        with notifier.condition:
            notifier.held.append(item)
            if not notifier.hold:
                self._flush_locked()

    def _flush_locked(self) -> None:
        notifier = self._notifier
        if not notifier.held or not self.webhooks.url:
            notifier.held.clear()
            return
        items, notifier.held = notifier.held, []
        codes = ",".join(item["eventCode"] for item in items)
        delivery = Delivery(url=self.webhooks.url, event_id=new_psp_reference(), event_type=codes)
        self.webhooks.deliveries.append(delivery)
        notifier.queue.append(_Batch(items=items, delivery=delivery))
        if notifier.thread is None or not notifier.thread.is_alive():
            notifier.thread = threading.Thread(target=self._deliver_loop, name="adyen-notifications", daemon=True)
            notifier.thread.start()
        notifier.condition.notify_all()

    def batch_body(self, items: list[dict[str, Any]], hex_key: str) -> bytes:
        """The ``NotificationRequest`` for these items, each signed with ``hex_key``."""
        signed = []
        for item in items:
            copy_ = copy.deepcopy(item)
            copy_["additionalData"] = {**item.get("additionalData", {}), "hmacSignature": sign_item(item, hex_key)}
            signed.append({"NotificationRequestItem": copy_})
        return json.dumps({"live": "false", "notificationItems": signed}).encode()

    def _deliver_loop(self) -> None:
        notifier = self._notifier
        while True:
            with notifier.condition:
                while not notifier.queue:
                    notifier.busy = False
                    notifier.condition.notify_all()
                    notifier.condition.wait()
                batch = notifier.queue[0]
                notifier.busy = True
                generation = notifier.generation
            try:
                self._deliver(batch)
            except Exception:  # a simulator bug must not stop every later delivery
                batch.delivery.last_status = None
            with notifier.condition:
                if notifier.generation == generation and notifier.queue and notifier.queue[0] is batch:
                    notifier.queue.pop(0)
                notifier.busy = bool(notifier.queue)
                notifier.condition.notify_all()

    def _deliver(self, batch: _Batch) -> None:
        """Send until ``[accepted]``: three retries at once, then the back-off queue (scaled down)."""
        notifier = self._notifier
        waits = [0.0] * notifier.retries_now + list(notifier.backoff_seconds)
        for attempt in range(notifier.max_attempts):
            batch.delivery.attempts = attempt + 1
            body = self.batch_body(batch.items, self.webhooks.secret or DEFAULT_HMAC_KEY)
            try:
                answer = requests.post(
                    batch.delivery.url, data=body, headers={"Content-Type": "application/json"}, timeout=10
                )
                batch.delivery.last_status = answer.status_code
                if 200 <= answer.status_code < 300 and answer.content.strip() == ACCEPTED:
                    batch.delivery.delivered = True
                    return
            except requests.RequestException:
                batch.delivery.last_status = None
            with notifier.condition:
                if batch not in notifier.queue:
                    return  # reset while delivering
            time.sleep(waits[min(attempt, len(waits) - 1)])

    # ---------------------------------------------------------------- control routes

    def _control_seed_payment(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        unknown = set(payload) - {
            "value",
            "currency",
            "merchantAccount",
            "captured",
            "refundBehaviour",
            "merchantReference",
            "paymentMethod",
        }
        if unknown:
            return json_response({"error": f"unknown fields {sorted(unknown)}"}, 400)
        try:
            payment = self.create_payment(
                value=payload.get("value"),  # type: ignore[arg-type]
                currency=str(payload.get("currency", "")),
                captured=bool(payload.get("captured", True)),
                behaviour=str(payload.get("refundBehaviour", SUCCEED)),
                merchant_account=payload.get("merchantAccount"),
                merchant_reference=payload.get("merchantReference"),
                payment_method=str(payload.get("paymentMethod", "visa")),
            )
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response(payment, 201)

    def _control_capture(self, request: Request, psp_reference: str) -> Response:
        try:
            payment = self.capture_payment(psp_reference)
        except KeyError:
            return json_response({"error": f"no payment {psp_reference}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 409)
        return json_response(payment)

    def _control_outcome(self, request: Request, psp_reference: str) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        success = payload.get("success", True)
        if not isinstance(success, bool):
            return json_response({"error": "success must be true or false"}, 400)
        try:
            refund = self.decide(psp_reference, str(payload.get("event", REFUND)), success, payload.get("reason"))
        except KeyError:
            return json_response({"error": f"no refund {psp_reference}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 409)
        return json_response(refund)

    def _control_webhook_settings(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        include = payload.get("include_arn")
        if not isinstance(include, bool):
            return json_response({"error": "include_arn must be true or false"}, 400)
        self.include_arn = include
        return json_response({"include_arn": include})

    def _control_hold(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        hold = payload.get("hold")
        if not isinstance(hold, bool):
            return json_response({"error": "hold must be true or false"}, 400)
        self.hold_notifications(hold)
        return json_response({"hold": hold})

    def hold_notifications(self, hold: bool) -> None:
        """Keep notifications back; releasing sends every held item in one batch."""
        with self._notifier.condition:
            self._notifier.hold = hold
            if not hold:
                self._flush_locked()

    def _control_notifications(self, request: Request) -> Response:
        with self.lock:
            return json_response({"notifications": copy.deepcopy(self.notifications)})

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {"payments": list(self.payments.values()), "refunds": list(self.refund_objects.values())}
            )


# ---------------------------------------------------------------- request checks


def _parse_json(request: Request) -> Any:
    if request.mimetype != "application/json":
        raise ServiceError(400, "702", f"Unsupported content type: {request.mimetype or 'none'}")
    try:
        return json.loads(request.get_data() or b"null")
    except ValueError as error:
        raise ServiceError(400, "702", f"Unexpected input: {error}") from error


def _validate_refund_request(body: Any) -> dict[str, Any]:
    """``PaymentRefundRequest`` as the spec defines it (and what the simulator models of it)."""
    if not isinstance(body, dict):
        raise ServiceError(400, "702", "Unexpected input: the request body must be a JSON object")
    unknown = sorted(set(body) - _MODELLED_FIELDS - _UNMODELLED_FIELDS)
    if unknown:
        raise ServiceError(
            400, "702", f"Structure PaymentRefundRequest contains the following unknown fields: {unknown}"
        )
    unmodelled = sorted(set(body) & _UNMODELLED_FIELDS)
    if unmodelled:
        raise ServiceError(422, "702", f"The Adyen simulator does not model {unmodelled[0]}")
    amount = body.get("amount")
    if amount is None:
        raise ServiceError(422, "100", "Required object 'amount' is not provided.")
    if not isinstance(amount, dict) or set(amount) - {"currency", "value"}:
        raise ServiceError(400, "702", "Structure Amount contains unexpected fields")
    value, currency = amount.get("value"), amount.get("currency")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise ServiceError(422, "137", "Invalid amount specified")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise ServiceError(422, "138", "Invalid currency specified")
    account = body.get("merchantAccount")
    if not isinstance(account, str) or not account:
        raise ServiceError(403, "901", "Invalid Merchant Account", "security")
    reference = body.get("reference")
    if reference is not None and (not isinstance(reference, str) or len(reference) > MAX_REFERENCE_LENGTH):
        raise ServiceError(422, "702", f"reference must be a string of at most {MAX_REFERENCE_LENGTH} characters")
    reason = body.get("merchantRefundReason")
    if reason is not None and reason not in REFUND_REASONS:
        raise ServiceError(422, "702", f"merchantRefundReason must be one of {', '.join(REFUND_REASONS)}")
    return body


# ---------------------------------------------------------------- demo scenarios (make demo)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client, not the simulator's users)."""
    if name == "DEMO_SCENARIOS":
        return _demo_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _demo_scenarios() -> list[Any]:
    from local.client import TERMINAL
    from local.scenarios import Outcome, Scenario, ScenarioContext, payment_scenarios

    def late(event: str) -> Any:
        # Decided by hand in order (the REFUND, then once the refund is COMPLETED the late event), never by timers
        # that a busy machine could make race the workflow.
        def run(context: ScenarioContext, outcome: Outcome) -> None:
            payment = context.simulator.seed_payment(4_500, "EUR", behaviour=MANUAL)
            refund_id = context.submit(outcome, context.request(event.lower().replace("_", "-"), payment))
            psp_reference = context.wait_for_provider_refund(refund_id)
            if psp_reference is None:
                outcome.check(False, f"{refund_id} ended without an Adyen refund")
                return
            context.simulator.decide(psp_reference, REFUND, True)
            done = context.client.wait_for(refund_id, TERMINAL | {"NEEDS_ATTENTION"})
            outcome.check(done["status"] == "COMPLETED", f"ended {done['status']} before {event}")
            context.simulator.decide(psp_reference, event, True)
            after = context.client.wait_for(refund_id, {"NEEDS_ATTENTION"})
            outcome.check(
                after.get("attention_reason") == "provider_reversed_refund", f"reason {after.get('attention_reason')}"
            )

        return run

    def never_reported(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(4_500, "EUR", behaviour=MANUAL)
        refund_id = context.submit(outcome, context.request("not-reported", payment))
        waiting = context.client.wait_for(refund_id, {"NEEDS_ATTENTION", *TERMINAL})
        outcome.check(waiting.get("attention_reason") == "outcome_not_reported", f"{waiting['status']}")
        if waiting.get("provider_refund_id"):
            context.simulator.settle_refund(waiting["provider_refund_id"], True)
        done = context.client.wait_for(refund_id, TERMINAL)
        outcome.check(done["status"] == "COMPLETED", f"ended {done['status']} after the late REFUND")

    return [
        *payment_scenarios("adyen", async_seed={"behaviour": MANUAL}, unknown_outcome="COMPLETED"),
        Scenario(
            "refund failed after it succeeded (REFUND_FAILED)",
            "COMPLETED, then NEEDS_ATTENTION provider_reversed_refund",
            late(REFUND_FAILED),
        ),
        Scenario(
            "refund returned by the bank (REFUNDED_REVERSED)",
            "COMPLETED, then NEEDS_ATTENTION provider_reversed_refund",
            late(REFUNDED_REVERSED),
        ),
        Scenario(
            "outcome never reported",
            "NEEDS_ATTENTION outcome_not_reported after the wait, COMPLETED when the REFUND comes late",
            never_reported,
        ),
    ]
