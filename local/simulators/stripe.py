"""A stateful Stripe sandbox for the calls refundflow makes, served on Stripe's own paths (``/v1/...``).

Mounted by the local stack at ``/_sandbox/stripe``; the ``stripe`` SDK works against it when its
``api`` base address points there. What it holds to, as Stripe documents it:
- auth: ``Authorization: Bearer <key>`` or Basic with the key as user name; else 401;
- form-encoded parameters with bracket syntax (``metadata[refund_id]=…``, ``expand[0]=…``), unknown
  parameters refused, Stripe's JSON objects and error shape (``{"error": {type, code, message, param}}``);
- idempotency (docs.stripe.com/api/idempotent_requests): per API key, the first response saved once
  the endpoint began (errors and 500s included; parameter validation failures are not saved) and
  replayed with ``Idempotent-Replayed: true``; other parameters or another endpoint under the same
  key are a 400 ``idempotency_error``; a key still in flight is a 409; keys expire after 24 h;
- ``Stripe-Should-Retry`` (which the SDKs obey before their own rules: docs.stripe.com/error-low-level,
  stripe-python ``_should_retry``): ``true`` on the 409 of a key still in flight (the first request will
  finish; the retry then gets its answer); ``false`` on a 500 saved under an idempotency key, first and
  replayed (a retry would only replay the same 500); nothing elsewhere, where the SDK's own rules apply.
  A fault rule sends it when its ``headers`` say so (``{"Stripe-Should-Retry": "false"}`` on a 503);
- refunds: partial and repeated until the captured amount is used up, 400 ``charge_already_refunded``
  once it is, the over-refund 400 (``param=amount``, no code, Stripe's message), ``amount_refunded``
  and ``refunded`` on the charge kept right, failed and canceled refunds give their amount back;
- webhooks: ``refund.created`` and ``charge.refunded`` on creation, ``refund.updated`` on every status
  change and ``refund.failed`` on failure, as Stripe event objects signed with ``Stripe-Signature``; the endpoint
  receives only its ``enabled_events`` (docs.stripe.com/api/webhook_endpoints/object: ``["*"]`` is every event,
  the default of a simulator built alone; the local stack registers the types refundflow's setup names,
  ``refundflow.platforms.stripe.payloads.WEBHOOK_EVENTS``), while ``GET /_control/events`` lists every event.

Test payment methods (docs.stripe.com/testing, "Refunds"): ``pm_card_pendingRefund`` makes refunds
start ``pending`` and succeed later; ``pm_card_refundFail`` makes them start ``succeeded`` and fail
later; ``pm_card_chargeDeclined`` declines the payment; ``pm_card_visa``, ``pm_card_mastercard``,
``pm_card_amex``, ``pm_card_visa_debit`` and ``pm_card_bypassPending`` pay normally.

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/refunds/{id}/status`` ``{"status": "succeeded"|"failed"|"requires_action"|"canceled",
  "failure_reason": …}``: move a refund (pending or requires_action; a succeeded one may still fail);
- ``POST /_control/dashboard-refunds`` ``{"payment_intent": "pi_…", "amount": …}`` (amount in Stripe's unit,
  optional: the rest): a refund made in the Stripe Dashboard, as Stripe records one: no metadata, no idempotency
  key, the same ``refund.created`` and ``charge.refunded`` events (a refund refundflow did not issue);
- ``POST /_control/processing-delay`` ``{"seconds": …}``: hold every POST that long after its work is
  done (the key stays in flight: client read timeouts after the effect, concurrent 409s);
- ``GET /_control/events``: every event emitted; ``GET /_control/objects``: every object held;
- ``POST /_control/payouts`` ``{"currency": "eur", "outcome": "paid"|"failed", "failure_code": …}``: pay the
  balance out, as an automatic payout would: every balance transaction of that currency not paid out yet goes
  into a new payout of their nets' sum; ``paid`` sends ``payout.created``, ``payout.paid`` and
  ``payout.reconciliation_completed``, ``failed`` sends ``payout.created`` and ``payout.failed`` (409 when the
  balance has nothing to pay out).

Balance and payouts (docs.stripe.com/api/balance_transactions, docs.stripe.com/api/payouts): a captured charge,
a refund (when created) and a refund's failure each make a balance transaction (``charge``: the amount less the
simulator's fee of 1.4 % + 25 units; ``refund``: minus the refund; ``refund_failure``: the refund back), and a
payout its own (``payout``, minus its amount). ``GET /v1/payouts/{id}``, ``GET /v1/balance_transactions`` (newest
first, ``payout``, ``type``, ``source``, ``currency`` filters, cursors, ``expand[]=data.source``) and
``GET /v1/balance_transactions/{id}`` answer as Stripe does; an unknown payout is a 404 ``resource_missing``.

Not modelled: uncaptured-charge refunds, Connect, ``instructions_email`` and the other refund
parameters refundflow never sends (refused with a 400 that says so), manual payouts, pending balances
(everything is available at once), disputes and other balance transaction types.
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, StoredResponse, json_response, new_id
from refundflow.platforms.stripe.payloads import WEBHOOK_EVENTS

try:  # the API version the installed SDK speaks; any string works for the simulator
    import stripe as _stripe_sdk

    SDK_API_VERSION: str = _stripe_sdk.api_version
except ImportError:  # pragma: no cover - the simulator does not need the SDK
    SDK_API_VERSION = "2026-10-28.endive"

DEFAULT_API_KEY = "sk_test_refundflow_simulator"
DEFAULT_WEBHOOK_SECRET = "whsec_refundflow_simulator"
SHOULD_RETRY = "Stripe-Should-Retry"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MAX_IDEMPOTENCY_KEY_LENGTH = 255

SUCCEED = "succeed"
PENDING_THEN_SUCCEED = "pending_then_succeed"
SUCCEED_THEN_FAIL = "succeed_then_fail"
PENDING_THEN_FAIL = "pending_then_fail"
DECLINE = "decline"

TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": SUCCEED,
    "pm_card_visa_debit": SUCCEED,
    "pm_card_mastercard": SUCCEED,
    "pm_card_amex": SUCCEED,
    "pm_card_bypassPending": SUCCEED,
    "pm_card_pendingRefund": PENDING_THEN_SUCCEED,
    "pm_card_refundFail": SUCCEED_THEN_FAIL,
    # Simulator only: Stripe has no test card whose refund goes pending, then fails (in Stripe's own
    # sandbox, drive that case from the Dashboard); here the refund fails after the settle delay.
    "pm_card_pendingRefundFail": PENDING_THEN_FAIL,
    "pm_card_chargeDeclined": DECLINE,
}

# Refund statuses that hold money back from the charge (a failed or canceled refund returns it).
_ACTIVE = {"pending", "requires_action", "succeeded"}
_TRANSITIONS = {
    "pending": {"succeeded", "failed", "requires_action", "canceled"},
    "requires_action": {"pending", "succeeded", "failed", "canceled"},
    "succeeded": {"failed"},  # Stripe: a refund can fail after it looked successful
}
_REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_FAILURE_REASONS = (
    "lost_or_stolen_card",
    "expired_or_canceled_card",
    "charge_for_pending_refund_disputed",
    "insufficient_funds",
    "declined",
    "merchant_request",
    "unknown",
)
# Stripe's units, for the rules its docs state and for messages (docs.stripe.com/currencies).
_ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}
_THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}
_UNSUPPORTED_REFUND_PARAMS = {
    "instructions_email",
    "refund_application_fee",
    "reverse_transfer",
    "origin",
    "currency",
    "customer",
}
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_INTEGER = re.compile(r"^-?[0-9]+$")


class ApiError(Exception):
    """A Stripe error answer. ``save``: False for parameter validation (never saved by idempotency)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        save: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.save = save
        error: dict[str, Any] = {"message": message, "type": type_}
        if code is not None:
            error["code"] = code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            error["param"] = param
        error.update(extra or {})
        self.body = {"error": error}


@dataclass(frozen=True)
class Call:
    """One authenticated API request."""

    api_key: str
    request_id: str
    idempotency_key: str | None
    params: dict[str, Any]
    write: bool = False


Handler = Callable[..., tuple[int, dict[str, Any]]]


def parse_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding: ``a[b]=v`` nests, ``a[]=v`` and ``a[0]=v`` build lists (for ``expand``)."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if match is None:
            raise ApiError(400, f"Invalid parameter name: {raw_key}", param=raw_key, save=False)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if isinstance(node, list):
                if not last:
                    raise ApiError(400, f"Invalid array parameter: {raw_key}", param=parts[0], save=False)
                node.append(value)
                break
            if last:
                node[part] = value
            else:
                child_is_list = parts[index + 1] == "" or (parts[index + 1].isdigit() and part == "expand")
                default: Any = [] if child_is_list else {}
                child = node.setdefault(part, default)
                if isinstance(child, str):
                    raise ApiError(
                        400, f"Invalid parameter: {raw_key} mixes a value and a hash", param=part, save=False
                    )
                node = child
    return root


class StripeSimulator(Simulator):
    """Stripe's refund surface with state, idempotency, async outcomes and signed webhooks."""

    name = "stripe"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"^/v1/refunds$"),
        "get_refund": ("GET", r"^/v1/refunds/[^/]+$"),
        "find_refund": ("GET", r"^/v1/refunds$"),
        "get_payment": ("GET", r"^/v1/(payment_intents|charges)/[^/]+$"),
        "get_payout": ("GET", r"^/v1/payouts/[^/]+$"),
        "list_balance_transactions": ("GET", r"^/v1/balance_transactions$"),
    }

    def __init__(
        self,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        enabled_events: Iterable[str] = ("*",),
        api_version: str = SDK_API_VERSION,
        pending_refund_settle_seconds: float | None = 2.0,
        refund_fail_after_seconds: float | None = 2.0,
        processing_delay_seconds: float = 0.0,
        idempotency_ttl_seconds: float = IDEMPOTENCY_TTL_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``*_seconds`` set when ``pm_card_pendingRefund`` refunds succeed and ``pm_card_refundFail``
        refunds fail on their own; ``None`` leaves them to ``/_control/refunds/{id}/status``."""
        self.api_keys = frozenset(api_keys)
        self.enabled_events = frozenset(enabled_events)
        self.api_version = api_version
        self.pending_refund_settle_seconds = pending_refund_settle_seconds
        self.refund_fail_after_seconds = refund_fail_after_seconds
        self.processing_delay_seconds = processing_delay_seconds
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        self._now = now
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refund_objects: dict[str, dict[str, Any]] = {}
        self.balance_transactions: dict[str, dict[str, Any]] = {}
        self.payouts: dict[str, dict[str, Any]] = {}
        # The payout each balance transaction was paid out in (Stripe keeps this link; the object does not show it).
        self._paid_out_in: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []
        self._order: dict[str, int] = {}
        self._sequence = itertools.count()
        self._key_endpoints: dict[tuple[str, str], str] = {}
        self._timers: list[threading.Timer] = []
        super().__init__()
        self.webhooks.configure(webhook_url, webhook_secret)
        self.route("/v1/payment_intents", self._api(self._create_payment_intent, write=True), methods=["POST"])
        self.route("/v1/payment_intents/<intent_id>", self._api(self._get_payment_intent), methods=["GET"])
        self.route("/v1/charges/<charge_id>", self._api(self._get_charge), methods=["GET"])
        self.route("/v1/refunds", self._api(self._create_refund, write=True), methods=["POST"])
        self.route("/v1/refunds", self._api(self._list_refunds), methods=["GET"])
        self.route("/v1/refunds/<refund_id>", self._api(self._get_refund), methods=["GET"])
        self.route("/v1/refunds/<refund_id>/cancel", self._api(self._cancel_refund, write=True), methods=["POST"])
        self.route("/_control/refunds/<refund_id>/status", self._control_refund_status, methods=["POST"])
        self.route(
            "/_control/refunds/<refund_id>/acquirer-reference", self._control_acquirer_reference, methods=["POST"]
        )
        self.route("/_control/dashboard-refunds", self._control_dashboard_refund, methods=["POST"])
        self.route("/_control/processing-delay", self._control_processing_delay, methods=["POST"])
        self.route("/_control/events", self._control_events, methods=["GET"])
        self.route("/_control/objects", self._control_objects, methods=["GET"])
        self.route("/v1/payouts/<payout_id>", self._api(self._get_payout), methods=["GET"])
        self.route("/v1/balance_transactions", self._api(self._list_balance_transactions), methods=["GET"])
        self.route(
            "/v1/balance_transactions/<transaction_id>", self._api(self._get_balance_transaction), methods=["GET"]
        )
        self.route("/_control/payouts", self._control_payouts, methods=["POST"])

    # ---------------------------------------------------------------- base hooks

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
        timestamp = int(self._now())
        digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={timestamp},v1={digest}"}

    def reset_state(self) -> None:
        with self.lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self.payment_intents.clear()
            self.charges.clear()
            self.refund_objects.clear()
            self.balance_transactions.clear()
            self.payouts.clear()
            self._paid_out_in.clear()
            self.events.clear()
            self._order.clear()
            self._key_endpoints.clear()

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure, in Stripe's error shape unless the rule brings its own body."""
        if fault.body is not None:
            return json_response(fault.body, fault.status or 500, headers=fault.headers)
        status = fault.status or 500
        if status == 429:
            error = ApiError(429, "Too many requests hit the API too quickly.", code="rate_limit")
        elif status >= 500:
            error = ApiError(status, "An unknown error occurred (simulated fault).", type_="api_error")
        else:
            error = ApiError(status, "Simulated fault.")
        return json_response(error.body, status, headers={"Request-Id": new_id("req_", 14), **fault.headers})

    def not_found(self, request: Request) -> Response:
        if not request.path.startswith("/v1"):
            return super().not_found(request)
        message = (
            f"Unrecognized request URL ({request.method}: {request.path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/."
        )
        return json_response({"error": {"message": message, "type": "invalid_request_error"}}, 404)

    # ---------------------------------------------------------------- PaymentSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """What the local stack seeds: the function's API secret and intake's verification secret."""
        return {
            "api": {"api_key": sorted(self.api_keys)[0]},
            "verification": {"webhook_secrets": [self.webhooks.secret or DEFAULT_WEBHOOK_SECRET]},
        }

    def send_webhooks_to(self, url: str) -> None:
        """Where events go (the stack's ``{api}/webhooks/stripe``), signed with the current endpoint secret, for the
        event types refundflow's setup enables (README "Deploying it", step 4)."""
        self.webhooks.configure(url, self.local_secrets()["verification"]["webhook_secrets"][0])
        self.enabled_events = frozenset(WEBHOOK_EVENTS)

    def _set_webhook_endpoint(self, request: Request) -> Response:
        """``{"url", "secret", "enabled_events"}`` (``enabled_events`` optional: the endpoint's are kept)."""
        payload = request.get_json(force=True) or {}
        enabled = payload.get("enabled_events")
        if enabled is not None:
            if not isinstance(enabled, list) or not enabled or not all(isinstance(name, str) for name in enabled):
                return json_response({"error": "enabled_events must be a non-empty list of event types"}, 400)
            self.enabled_events = frozenset(enabled)
        self.webhooks.configure(payload.get("url"), payload.get("secret"))
        return json_response({"url": self.webhooks.url, "enabled_events": sorted(self.enabled_events)})

    def sends(self, event_type: str) -> bool:
        """Whether the endpoint receives ``event_type`` (``*``: every event)."""
        return "*" in self.enabled_events or event_type in self.enabled_events

    def seed_payment(
        self, amount_minor: int, currency: str, *, settled: bool = True, behaviour: str = SUCCEED
    ) -> dict[str, Any]:
        """A succeeded PaymentIntent of ``amount_minor`` ISO 4217 minor units (held in Stripe's unit). Stripe
        has no unsettled-payment void, so ``settled`` changes nothing. ``behaviour``: how its refunds go
        (``succeed``, ``pending_then_succeed``, ``succeed_then_fail``, ``pending_then_fail``).

        Returns ``{"provider": "stripe", "payment_id": <pi_...>, "locator": {}}``.

        Raises:
            ValueError: an amount Stripe's unit cannot hold, an unknown behaviour.
        """
        methods = {value: key for key, value in reversed(TEST_PAYMENT_METHODS.items())}
        if behaviour not in methods or behaviour == DECLINE:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        params = {
            "amount": str(_to_stripe_units(amount_minor, currency)),
            "currency": currency.lower(),
            "payment_method": methods[behaviour],
            "confirm": "true",
        }
        try:
            _, intent = self._create_payment_intent(Call("seed", new_id("req_", 14), None, params, write=True))
        except ApiError as error:
            raise ValueError(error.body["error"]["message"]) from error
        return {"provider": "stripe", "payment_id": intent["id"], "locator": {}}

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """Decide a pending refund now (or fail a succeeded one, as a card network may): its events follow.

        Raises:
            KeyError: no such refund.
            ValueError: a transition Stripe refunds do not make.
        """
        return self.set_refund_status(provider_refund_id, "succeeded" if succeeded else "failed", None)

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund held, oldest first (copies)."""
        with self.lock:
            return copy.deepcopy(sorted(self.refund_objects.values(), key=lambda refund: self._order[refund["id"]]))

    # ---------------------------------------------------------------- test helpers

    def refunds_of(self, payment_id: str) -> list[dict[str, Any]]:
        """The refunds of a PaymentIntent or Charge, oldest first (copies)."""
        with self.lock:
            found = [
                refund
                for refund in self.refund_objects.values()
                if payment_id in (refund["payment_intent"], refund["charge"])
            ]
            return copy.deepcopy(sorted(found, key=lambda refund: self._order[refund["id"]]))

    def set_refund_status(self, refund_id: str, status: str, failure_reason: str | None = None) -> dict[str, Any]:
        """Move a refund as its payment network would (what ``/_control/refunds/{id}/status`` does).

        Raises:
            KeyError: no such refund.
            ValueError: a transition Stripe refunds do not make.
        """
        with self.lock:
            refund = self.refund_objects[refund_id]
            if status not in _TRANSITIONS.get(refund["status"], set()):
                raise ValueError(f"refund {refund_id} cannot go from {refund['status']} to {status}")
            if status == "failed" and (failure_reason or "unknown") not in _FAILURE_REASONS:
                raise ValueError(f"failure_reason must be one of {', '.join(_FAILURE_REASONS)}")
            self._transition(refund, status, failure_reason or "unknown", None)
            return copy.deepcopy(refund)

    def assign_acquirer_reference(self, refund_id: str) -> dict[str, Any]:
        """The card network assigns the succeeded refund its acquirer reference number (ARN, 23 digits), days after
        the money moved at Stripe: ``destination_details.card`` becomes ``available`` and ``refund.updated`` goes out.

        Raises:
            KeyError: no such refund.
            ValueError: the refund has not succeeded, or has its reference already.
        """
        with self.lock:
            refund = self.refund_objects[refund_id]
            card = refund["destination_details"]["card"]
            if refund["status"] != "succeeded" or card["reference_status"] != "pending":
                raise ValueError(f"refund {refund_id} is {refund['status']}, its reference {card['reference_status']}")
            previous = {"destination_details": copy.deepcopy(refund["destination_details"])}
            card.update(
                reference="74" + "".join(str(secrets.randbelow(10)) for _ in range(21)), reference_status="available"
            )
            self._emit("refund.updated", refund, previous, None)
            return copy.deepcopy(refund)

    # ---------------------------------------------------------------- request plumbing

    def _api(self, handler: Handler, *, write: bool = False) -> Callable[..., Response]:
        """Auth, parameter parsing and idempotency around one Stripe endpoint (``write``: it changes state)."""

        def endpoint(request: Request, **arguments: str) -> Response:
            request_id = new_id("req_", 14)
            headers = {
                "Request-Id": request_id,
                "Stripe-Version": request.headers.get("Stripe-Version", self.api_version),
            }
            try:
                api_key = self._authenticate(request)
                pairs = request.form.items(multi=True) if request.method == "POST" else request.args.items(multi=True)
                params = parse_params(pairs)
            except ApiError as error:
                extra = {"WWW-Authenticate": 'Basic realm="Stripe"'} if error.status == 401 else {}
                return json_response(error.body, error.status, {**headers, **extra})
            key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
            call = Call(api_key=api_key, request_id=request_id, idempotency_key=key, params=params, write=write)
            if key is None:
                status, body = self._run(handler, call, arguments)[:2]
                return json_response(body, status, headers)
            return self._idempotent(request, handler, call, arguments, headers)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credential.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credential.strip(), validate=True).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise ApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#"
                "authentication for details, or we can help at https://support.stripe.com/.",
                save=False,
            )
        if key not in self.api_keys:
            masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "*" * len(key)
            raise ApiError(401, f"Invalid API Key provided: {masked}", save=False)
        return key

    def _run(self, handler: Handler, call: Call, arguments: dict[str, str]) -> tuple[int, dict[str, Any], bool]:
        """The endpoint's answer and whether idempotency saves it."""
        try:
            status, body = handler(call, **arguments)
            saved = True
        except ApiError as error:
            status, body, saved = error.status, error.body, error.save
        except Exception as error:  # a simulator bug still answers like Stripe's 500, and is saved like one
            status, body, saved = 500, ApiError(500, f"simulator error: {error}", type_="api_error").body, True
        if call.write and self.processing_delay_seconds:
            # The work is done and the key still in flight: a client timing out now sees no answer
            # for an effect that happened, and a second request with the key gets the 409.
            time.sleep(self.processing_delay_seconds)
        return status, body, saved

    def _idempotent(
        self,
        request: Request,
        handler: Handler,
        call: Call,
        arguments: dict[str, str],
        headers: dict[str, str],
    ) -> Response:
        key = call.idempotency_key or ""
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            error = ApiError(
                400, f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters long", save=False
            )
            return json_response(error.body, 400, headers)
        endpoint = f"{request.method} {request.path}"
        fingerprint = self.idempotency.fingerprint(endpoint, call.params)
        self.idempotency.expire_older_than(self.idempotency_ttl_seconds)
        state = self.idempotency.begin(call.api_key, key)
        if state is False:
            error = ApiError(
                409,
                "There is currently another in-progress request using this Idempotency-Key. "
                "Try again once it has finished.",
                code="idempotency_key_in_use",
            )
            return json_response(error.body, 409, {**headers, SHOULD_RETRY: "true"})
        if isinstance(state, StoredResponse):
            return self._replay(state, call.api_key, key, endpoint, fingerprint, headers)
        stored: StoredResponse | None = None
        try:
            status, body, saved = self._run(handler, call, arguments)
            if saved:
                stored = StoredResponse(fingerprint, status, body, {}, time.time())
                with self.lock:
                    self._key_endpoints[(call.api_key, key)] = endpoint
        finally:
            self.idempotency.finish(call.api_key, key, stored)
        return json_response(body, status, {**headers, **_saved_answer_advice(status)})

    def _replay(
        self, stored: StoredResponse, api_key: str, key: str, endpoint: str, fingerprint: str, headers: dict[str, str]
    ) -> Response:
        with self.lock:
            first_endpoint = self._key_endpoints.get((api_key, key), endpoint)
        if stored.fingerprint != fingerprint:
            if first_endpoint != endpoint:
                message = (
                    "Keys for idempotent requests can only be used for the same endpoint they were first used for "
                    f"('{first_endpoint}' vs '{endpoint}'). Try using a key other than '{key}' if you meant to execute "
                    "a different request."
                )
            else:
                message = (
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                    f"Try using a key other than '{key}' if you meant to execute a different request."
                )
            error = ApiError(400, message, type_="idempotency_error")
            return json_response(error.body, 400, headers)
        return json_response(
            stored.body,
            stored.status,
            {**headers, "Idempotent-Replayed": "true", **_saved_answer_advice(stored.status)},
        )

    # ---------------------------------------------------------------- payment intents and charges

    def _create_payment_intent(self, call: Call) -> tuple[int, dict[str, Any]]:
        params = call.params
        _only(
            params,
            {"amount", "currency", "payment_method", "confirm", "capture_method", "metadata", "description", "expand"},
        )
        amount = _integer(params, "amount", required=True)
        currency = _currency(params)
        _granularity(amount, currency)
        method = params.get("payment_method")
        if method is not None and method not in TEST_PAYMENT_METHODS:
            raise ApiError(400, f"No such PaymentMethod: '{method}'", code="resource_missing", param="payment_method")
        confirm = _boolean(params, "confirm")
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise ApiError(400, f"Invalid capture_method: {capture_method}", param="capture_method", save=False)
        if confirm and method is None:
            raise ApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        now = int(self._now())
        with self.lock:
            intent_id = new_id("pi_")
            intent: dict[str, Any] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_received": 0,
                "capture_method": capture_method,
                "client_secret": f"{intent_id}_secret_{new_id('', 25)}",
                "confirmation_method": "automatic",
                "created": now,
                "currency": currency,
                "description": params.get("description"),
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": _metadata(params),
                "payment_method": method,
                "payment_method_types": ["card"],
                "status": "requires_confirmation" if method else "requires_payment_method",
            }
            self.payment_intents[intent_id] = intent
            if not confirm:
                return 200, copy.deepcopy(intent)
            if TEST_PAYMENT_METHODS[str(method)] == DECLINE:
                intent["status"] = "requires_payment_method"
                raise ApiError(
                    402,
                    "Your card was declined.",
                    type_="card_error",
                    code="card_declined",
                    extra={"decline_code": "generic_decline", "payment_intent": copy.deepcopy(intent)},
                )
            captured = capture_method != "manual"
            charge = self._new_charge(intent, captured=captured, now=now)
            intent["latest_charge"] = charge["id"]
            intent["status"] = "succeeded" if captured else "requires_capture"
            intent["amount_received"] = amount if captured else 0
            intent["amount_capturable"] = 0 if captured else amount
            return 200, copy.deepcopy(intent)

    def _new_charge(self, intent: dict[str, Any], *, captured: bool, now: int) -> dict[str, Any]:
        charge = {
            "id": new_id("ch_"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if captured else 0,
            "amount_refunded": 0,
            "balance_transaction": new_id("txn_") if captured else None,
            "captured": captured,
            "created": now,
            "currency": intent["currency"],
            "disputed": False,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "paid": True,
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "refunded": False,
            "status": "succeeded",
        }
        self.charges[charge["id"]] = charge
        if captured:
            amount = charge["amount"]
            self._balance_transaction(
                charge["balance_transaction"], "charge", amount, _fee(amount), charge["id"], "Payment", now
            )
        return charge

    def _get_payment_intent(self, call: Call, intent_id: str) -> tuple[int, dict[str, Any]]:
        _only(call.params, {"expand", "client_secret"})
        expand = _expand(call.params, {"latest_charge"})
        with self.lock:
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                raise ApiError(404, f"No such payment_intent: '{intent_id}'", code="resource_missing", param="intent")
            body = copy.deepcopy(intent)
            if "latest_charge" in expand and intent["latest_charge"]:
                body["latest_charge"] = copy.deepcopy(self.charges[intent["latest_charge"]])
            return 200, body

    def _get_charge(self, call: Call, charge_id: str) -> tuple[int, dict[str, Any]]:
        return self._get_one(call, self.charges, charge_id, "charge")

    def _get_one(
        self, call: Call, objects: dict[str, dict[str, Any]], object_id: str, noun: str
    ) -> tuple[int, dict[str, Any]]:
        """GET of one object by id, as Stripe answers it (404 resource_missing when unknown)."""
        _only(call.params, {"expand"})
        _expand(call.params, set())
        with self.lock:
            found = objects.get(object_id)
            if found is None:
                raise ApiError(404, f"No such {noun}: '{object_id}'", code="resource_missing", param="id")
            return 200, copy.deepcopy(found)

    # ---------------------------------------------------------------- refunds

    def _create_refund(self, call: Call) -> tuple[int, dict[str, Any]]:
        params = call.params
        unsupported = sorted(set(params) & _UNSUPPORTED_REFUND_PARAMS)
        if unsupported:
            raise ApiError(
                400, f"The Stripe simulator does not model {unsupported[0]}", param=unsupported[0], save=False
            )
        _only(params, {"amount", "charge", "payment_intent", "reason", "metadata", "expand"})
        _expand(params, set())
        amount = _integer(params, "amount") if "amount" in params else None
        reason = params.get("reason")
        if reason is not None and reason not in _REFUND_REASONS:
            raise ApiError(
                400, f"Invalid reason: must be one of {', '.join(_REFUND_REASONS)}", param="reason", save=False
            )
        metadata = _metadata(params)
        with self.lock:
            charge = self._charge_to_refund(params)
            remaining = charge["amount_captured"] - charge["amount_refunded"]
            if remaining <= 0:
                raise ApiError(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
            amount = remaining if amount is None else amount
            if amount > remaining:
                # Stripe sends no `code` for this one; integrations match on param and message.
                raise ApiError(
                    400,
                    f"Refund amount ({_format(amount, charge['currency'])}) is greater than unrefunded amount "
                    f"on charge ({_format(remaining, charge['currency'])})",
                    param="amount",
                )
            _granularity(amount, charge["currency"])
            behaviour = TEST_PAYMENT_METHODS.get(str(charge["payment_method"]), SUCCEED)
            status = "pending" if behaviour in (PENDING_THEN_SUCCEED, PENDING_THEN_FAIL) else "succeeded"
            refund = {
                "id": new_id("re_"),
                "object": "refund",
                "amount": amount,
                "balance_transaction": new_id("txn_"),
                "charge": charge["id"],
                "created": int(self._now()),
                "currency": charge["currency"],
                # The network's reference comes later (assign_acquirer_reference): pending until then.
                "destination_details": {
                    "card": {
                        "reference": None,
                        "reference_status": "pending",
                        "reference_type": "acquirer_reference_number",
                        "type": "refund",
                    },
                    "type": "card",
                },
                "failure_balance_transaction": None,
                "failure_reason": None,
                "metadata": metadata,
                "payment_intent": charge["payment_intent"],
                "pending_reason": "processing" if status == "pending" else None,
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": status,
                "transfer_reversal": None,
            }
            self.refund_objects[refund["id"]] = refund
            self._order[refund["id"]] = next(self._sequence)
            self._balance_transaction(
                refund["balance_transaction"],
                "refund",
                -amount,
                0,
                refund["id"],
                "REFUND FOR CHARGE",
                refund["created"],
            )
            self._recount(charge)
            self._emit("refund.created", refund, None, call)
            self._emit("charge.refunded", charge, None, call)
            if behaviour == PENDING_THEN_SUCCEED and self.pending_refund_settle_seconds is not None:
                self._later(self.pending_refund_settle_seconds, refund["id"], "pending", "succeeded")
            if behaviour == PENDING_THEN_FAIL and self.pending_refund_settle_seconds is not None:
                self._later(self.pending_refund_settle_seconds, refund["id"], "pending", "failed")
            if behaviour == SUCCEED_THEN_FAIL and self.refund_fail_after_seconds is not None:
                self._later(self.refund_fail_after_seconds, refund["id"], "succeeded", "failed")
            return 200, copy.deepcopy(refund)

    def _charge_to_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent_id, charge_id = params.get("payment_intent"), params.get("charge")
        if intent_id is None and charge_id is None:
            raise ApiError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                save=False,
            )
        if intent_id is not None:
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                raise ApiError(
                    404, f"No such payment_intent: '{intent_id}'", code="resource_missing", param="payment_intent"
                )
            if intent["latest_charge"] is None or intent["status"] != "succeeded":
                raise ApiError(
                    400,
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                )
            if charge_id is not None and charge_id != intent["latest_charge"]:
                raise ApiError(400, f"Charge {charge_id} does not belong to PaymentIntent {intent_id}.", param="charge")
            charge_id = intent["latest_charge"]
        charge = self.charges.get(str(charge_id))
        if charge is None:
            raise ApiError(404, f"No such charge: '{charge_id}'", code="resource_missing", param="charge")
        if not charge["captured"]:
            raise ApiError(
                400, f"Charge {charge['id']} has not been captured; the simulator does not refund it.", param="charge"
            )
        return charge

    def _get_refund(self, call: Call, refund_id: str) -> tuple[int, dict[str, Any]]:
        return self._get_one(call, self.refund_objects, refund_id, "refund")

    def _list_refunds(self, call: Call) -> tuple[int, dict[str, Any]]:
        params = call.params
        _only(params, {"charge", "payment_intent", "limit", "starting_after", "ending_before", "expand"})
        _expand(params, set())
        with self.lock:
            found = [
                refund
                for refund in self.refund_objects.values()
                if params.get("charge") in (None, refund["charge"])
                and params.get("payment_intent") in (None, refund["payment_intent"])
            ]
            return 200, self._page(found, params, "refund", "/v1/refunds")

    def _cancel_refund(self, call: Call, refund_id: str) -> tuple[int, dict[str, Any]]:
        _only(call.params, {"expand"})
        with self.lock:
            refund = self.refund_objects.get(refund_id)
            if refund is None:
                raise ApiError(404, f"No such refund: '{refund_id}'", code="resource_missing", param="refund")
            if refund["status"] != "requires_action":
                raise ApiError(
                    400,
                    f"Refund {refund_id} cannot be canceled because it has a status of {refund['status']}. "
                    "Only refunds with a status of requires_action can be canceled.",
                )
            self._transition(refund, "canceled", None, call)
            return 200, copy.deepcopy(refund)

    # ---------------------------------------------------------------- state changes and events

    def _recount(self, charge: dict[str, Any]) -> None:
        refunded = sum(
            refund["amount"]
            for refund in self.refund_objects.values()
            if refund["charge"] == charge["id"] and refund["status"] in _ACTIVE
        )
        charge["amount_refunded"] = refunded
        charge["refunded"] = refunded >= charge["amount_captured"] > 0

    def _transition(self, refund: dict[str, Any], status: str, failure_reason: str | None, call: Call | None) -> None:
        previous: dict[str, Any] = {"status": refund["status"]}
        refund["status"] = status
        if refund.get("pending_reason") is not None and status != "pending":
            previous["pending_reason"] = refund["pending_reason"]
            refund["pending_reason"] = None
        if status == "failed":
            previous.update(failure_reason=None, failure_balance_transaction=None)
            refund["failure_reason"] = failure_reason or "unknown"
            refund["failure_balance_transaction"] = new_id("txn_")
            self._balance_transaction(
                refund["failure_balance_transaction"],
                "refund_failure",
                refund["amount"],
                0,
                refund["id"],
                "REFUND FAILURE",
                int(self._now()),
            )
        self._recount(self.charges[refund["charge"]])
        self._emit("refund.updated", refund, previous, call)
        if status == "failed":
            self._emit("refund.failed", refund, None, call)

    def _later(self, delay: float, refund_id: str, expected: str, status: str) -> None:
        def fire() -> None:
            with self.lock:
                refund = self.refund_objects.get(refund_id)
                if refund is not None and refund["status"] == expected:
                    self._transition(refund, status, "unknown" if status == "failed" else None, None)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _emit(self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None, call: Call | None) -> None:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event_id = new_id("evt_")
        event: dict[str, Any] = {
            "id": event_id,
            "object": "event",
            "api_version": self.api_version,
            "created": int(self._now()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.webhooks.url and self.sends(event_type) else 0,
            "request": {
                "id": call.request_id if call else None,
                "idempotency_key": call.idempotency_key if call else None,
            },
            "type": event_type,
        }
        self.events.append(event)
        if self.sends(event_type):
            self.webhooks.send(event_id, event_type, json.dumps(event).encode())

    # ---------------------------------------------------------------- balance and payouts

    def _balance_transaction(
        self, txn_id: str, category: str, amount: int, fee: int, source: str, description: str, created: int
    ) -> dict[str, Any]:
        """A balance transaction (docs.stripe.com/api/balance_transactions/object), available at once."""
        source_object = self.charges.get(source) or self.refund_objects.get(source) or self.payouts.get(source)
        currency = source_object["currency"] if source_object else "usd"
        transaction = {
            "id": txn_id,
            "object": "balance_transaction",
            "amount": amount,
            "available_on": created,
            "created": created,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": [
                {"amount": fee, "currency": currency, "description": "Stripe processing fees", "type": "stripe_fee"}
            ]
            if fee
            else [],
            "net": amount - fee,
            "reporting_category": category,
            "source": source,
            "status": "available",
            "type": category,
        }
        self.balance_transactions[txn_id] = transaction
        self._order[txn_id] = next(self._sequence)
        return transaction

    def pay_out(self, currency: str, *, outcome: str = "paid", failure_code: str | None = None) -> dict[str, Any]:
        """Pay out every balance transaction of ``currency`` not paid out yet, as one automatic payout (what
        ``/_control/payouts`` does); its events follow.

        Raises:
            ValueError: an unknown outcome, or nothing (or a negative sum) to pay out.
        """
        code = currency.lower()
        if outcome not in ("paid", "failed"):
            raise ValueError("outcome must be paid or failed")
        with self.lock:
            pending = [
                txn
                for txn in self.balance_transactions.values()
                if txn["currency"] == code
                and txn["id"] not in self._paid_out_in
                and txn["reporting_category"] != "payout"
            ]
            total = sum(txn["net"] for txn in pending)
            if not pending or total <= 0:
                raise ValueError(f"the {code} balance has nothing to pay out ({total})")
            now = int(self._now())
            payout = {
                "id": new_id("po_"),
                "object": "payout",
                "amount": total,
                "arrival_date": now,
                "automatic": True,
                "balance_transaction": new_id("txn_"),
                "created": now,
                "currency": code,
                "description": "STRIPE PAYOUT",
                "destination": "ba_" + secrets.token_hex(12),
                "failure_balance_transaction": None,
                "failure_code": None,
                "failure_message": None,
                "livemode": False,
                "metadata": {},
                "method": "standard",
                "reconciliation_status": "in_progress",
                "source_type": "card",
                "statement_descriptor": None,
                "status": "in_transit",
                "type": "bank_account",
            }
            self.payouts[payout["id"]] = payout
            self._order[payout["id"]] = next(self._sequence)
            own = self._balance_transaction(
                payout["balance_transaction"], "payout", -total, 0, payout["id"], "STRIPE PAYOUT", now
            )
            for txn in [*pending, own]:
                self._paid_out_in[txn["id"]] = payout["id"]
            self._emit("payout.created", payout, None, None)
            if outcome == "paid":
                payout.update(status="paid", reconciliation_status="completed")
                self._emit("payout.paid", payout, {"status": "in_transit"}, None)
                self._emit("payout.reconciliation_completed", payout, {"reconciliation_status": "in_progress"}, None)
            else:
                code_ = failure_code or "account_closed"
                payout.update(
                    status="failed",
                    failure_code=code_,
                    failure_message="The bank account has been closed.",
                    failure_balance_transaction=new_id("txn_"),
                )
                # The failed amount comes back to the balance (paid out again later).
                self._balance_transaction(
                    payout["failure_balance_transaction"],
                    "payout_failure",
                    total,
                    0,
                    payout["id"],
                    "PAYOUT FAILURE",
                    now,
                )
                self.balance_transactions[payout["failure_balance_transaction"]]["reporting_category"] = (
                    "payout_reversal"
                )
                self._emit("payout.failed", payout, {"status": "in_transit"}, None)
            return copy.deepcopy(payout)

    def _get_payout(self, call: Call, payout_id: str) -> tuple[int, dict[str, Any]]:
        return self._get_one(call, self.payouts, payout_id, "payout")

    def _get_balance_transaction(self, call: Call, transaction_id: str) -> tuple[int, dict[str, Any]]:
        return self._get_one(call, self.balance_transactions, transaction_id, "balance transaction")

    def _list_balance_transactions(self, call: Call) -> tuple[int, dict[str, Any]]:
        params = call.params
        _only(params, {"payout", "type", "source", "currency", "limit", "starting_after", "ending_before", "expand"})
        expand = _expand(params, {"data.source"})
        with self.lock:
            payout_id = params.get("payout")
            if payout_id is not None and payout_id not in self.payouts:
                raise ApiError(404, f"No such payout: '{payout_id}'", code="resource_missing", param="payout")
            found = [
                txn
                for txn in self.balance_transactions.values()
                if payout_id in (None, self._paid_out_in.get(txn["id"]))
                and params.get("type") in (None, txn["type"])
                and params.get("source") in (None, txn["source"])
                and params.get("currency") in (None, txn["currency"])
            ]
            page = self._page(found, params, "balance_transaction", "/v1/balance_transactions")
            if "data.source" in expand:
                for txn in page["data"]:
                    source = txn["source"]
                    obj = self.charges.get(source) or self.refund_objects.get(source) or self.payouts.get(source)
                    txn["source"] = copy.deepcopy(obj) if obj else source
            return 200, page

    def _page(self, found: list[dict[str, Any]], params: dict[str, Any], noun: str, url: str) -> dict[str, Any]:
        """One page of a list, newest first, with Stripe's ``limit`` (1..100, default 10) and cursors."""
        limit = _integer(params, "limit") if "limit" in params else 10
        if not 1 <= limit <= 100:
            raise ApiError(
                400,
                "This value must be between 1 and 100.",
                code="parameter_invalid_integer",
                param="limit",
                save=False,
            )
        if "starting_after" in params and "ending_before" in params:
            raise ApiError(
                400, "You may only specify one of these parameters: ending_before, starting_after.", save=False
            )
        found = sorted(found, key=lambda item: self._order[item["id"]], reverse=True)
        ids = [item["id"] for item in found]
        cursor = params.get("starting_after") or params.get("ending_before")
        if cursor is not None and cursor not in ids:
            param = "starting_after" if "starting_after" in params else "ending_before"
            raise ApiError(400, f"No such {noun}: '{cursor}'", code="resource_missing", param=param)
        if "starting_after" in params:
            rest = found[ids.index(cursor) + 1 :]
            page, has_more = rest[:limit], len(rest) > limit
        elif "ending_before" in params:
            before = found[: ids.index(cursor)]
            page, has_more = before[-limit:], len(before) > limit
        else:
            page, has_more = found[:limit], len(found) > limit
        return {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": url}

    # ---------------------------------------------------------------- control routes

    def _control_payouts(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        try:
            payout = self.pay_out(
                str(payload.get("currency", "")),
                outcome=str(payload.get("outcome", "paid")),
                failure_code=payload.get("failure_code"),
            )
        except ValueError as error:
            return json_response({"error": str(error)}, 409)
        return json_response(payout)

    def _control_refund_status(self, request: Request, refund_id: str) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        try:
            refund = self.set_refund_status(refund_id, str(payload.get("status")), payload.get("failure_reason"))
        except KeyError:
            return json_response({"error": f"no refund {refund_id}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 409)
        return json_response(refund)

    def dashboard_refund(self, payment_intent: str, amount: int | None = None) -> dict[str, Any]:
        """A refund made by a person in the Stripe Dashboard (what ``/_control/dashboard-refunds`` does): Stripe's own
        rules and events, no metadata and no idempotency key.

        Raises:
            ApiError: what Stripe answers (unknown PaymentIntent, nothing left to refund, an amount over the rest).
        """
        params = {"payment_intent": payment_intent, **({"amount": str(amount)} if amount is not None else {})}
        _, refund = self._create_refund(Call("dashboard", new_id("req_", 14), None, params, write=True))
        return refund

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """OutsideRefunds: a Dashboard refund of ``amount_minor`` ISO minor units of the PaymentIntent."""
        with self.lock:
            currency = str(self.payment_intents[payment_id]["currency"]).upper()
        return str(self.dashboard_refund(payment_id, _to_stripe_units(amount_minor, currency))["id"])

    def _control_dashboard_refund(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        amount = payload.get("amount")
        if not isinstance(payload.get("payment_intent"), str) or not (amount is None or isinstance(amount, int)):
            return json_response({"error": "payment_intent (a string) and amount (an integer, optional)"}, 400)
        try:
            return json_response(self.dashboard_refund(payload["payment_intent"], amount))
        except ApiError as error:
            return json_response(error.body, error.status)

    def _control_acquirer_reference(self, request: Request, refund_id: str) -> Response:
        try:
            return json_response(self.assign_acquirer_reference(refund_id))
        except KeyError:
            return json_response({"error": f"no refund {refund_id}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 409)

    def _control_processing_delay(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        seconds = payload.get("seconds")
        if not isinstance(seconds, int | float) or seconds < 0:
            return json_response({"error": "seconds must be a non-negative number"}, 400)
        self.processing_delay_seconds = float(seconds)
        return json_response({"seconds": self.processing_delay_seconds})

    def _control_events(self, request: Request) -> Response:
        with self.lock:
            return json_response({"events": copy.deepcopy(self.events)})

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {
                    "payment_intents": list(self.payment_intents.values()),
                    "charges": list(self.charges.values()),
                    "refunds": list(self.refund_objects.values()),
                    "balance_transactions": list(self.balance_transactions.values()),
                    "payouts": list(self.payouts.values()),
                }
            )


def _fee(amount: int) -> int:
    """The simulator's card fee on a charge: 1.4 % (rounded half up) + 25 units (Stripe's European card price)."""
    return (amount * 14 + 500) // 1000 + 25


def _saved_answer_advice(status: int) -> dict[str, str]:
    """A 5xx saved under an idempotency key is all a retry with that key would get back: Stripe says
    ``Stripe-Should-Retry: false`` (stripe-python expects "the stripe-should-retry header to be false in most
    cases when a 500 is returned, since our idempotency framework would typically replay it anyway")."""
    return {SHOULD_RETRY: "false"} if status >= 500 else {}


# ---------------------------------------------------------------- parameter checks


def _only(params: dict[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise ApiError(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name, save=False)


def _integer(params: dict[str, Any], name: str, *, required: bool = False) -> int:
    value = params.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name, save=False)
        raise ApiError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name, save=False)
    if not isinstance(value, str) or not _INTEGER.match(value):
        raise ApiError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name, save=False)
    number = int(value)
    if number <= 0:
        raise ApiError(400, "Invalid positive integer", code="parameter_invalid_integer", param=name, save=False)
    return number


def _boolean(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, "false")
    if value not in ("true", "false"):
        raise ApiError(400, f"Invalid boolean: {value}", param=name, save=False)
    return bool(value == "true")


def _currency(params: dict[str, Any]) -> str:
    value = params.get("currency")
    if value is None:
        raise ApiError(400, "Missing required param: currency.", code="parameter_missing", param="currency", save=False)
    if not isinstance(value, str) or not re.fullmatch(r"[a-z]{3}", value):
        raise ApiError(
            400, f"Invalid currency: {value}. Use a lowercase three-letter ISO code.", param="currency", save=False
        )
    return value


def _metadata(params: dict[str, Any]) -> dict[str, str]:
    value = params.get("metadata", {})
    if value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise ApiError(400, "Invalid hash", param="metadata", save=False)
    if len(value) > 50:
        raise ApiError(400, "Metadata can have at most 50 keys.", param="metadata", save=False)
    for key, item in value.items():
        if len(key) > 40:
            raise ApiError(
                400, f"Metadata keys can be at most 40 characters ({key}).", param=f"metadata[{key}]", save=False
            )
        if len(item) > 500:
            raise ApiError(
                400, f"Metadata values can be at most 500 characters ({key}).", param=f"metadata[{key}]", save=False
            )
    return {key: item for key, item in value.items() if item != ""}


def _expand(params: dict[str, Any], allowed: set[str]) -> set[str]:
    value = params.get("expand", [])
    items = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise ApiError(400, "Invalid array", param="expand", save=False)
    for item in items:
        if item not in allowed:
            raise ApiError(400, f"This property cannot be expanded ({item}).", param="expand", save=False)
    return set(items)


def _to_stripe_units(amount_minor: int, currency: str) -> int:
    """ISO 4217 minor units as Stripe's unit, by Stripe's currency page (MGA whole ariary, ISK hundredths).

    Raises:
        ValueError: an amount Stripe's unit cannot hold (a fraction of an ariary).
    """
    code = currency.lower()
    if code == "mga":
        if amount_minor % 100:
            raise ValueError(f"{amount_minor} MGA minor units are not whole ariary, Stripe's MGA unit")
        return amount_minor // 100
    if code == "isk":
        return amount_minor * 100
    return amount_minor


def _granularity(amount: int, currency: str) -> None:
    if currency == "isk" and amount % 100:
        raise ApiError(
            400,
            "Invalid amount. Currency ISK has become effectively zero-decimal and charged amounts must be evenly "
            "divisible by 100. See https://stripe.com/docs/currencies#special-cases for more information.",
            code="invalid_charge_amount_no_decimal_compatible",
            param="amount",
        )
    if currency in _THREE_DECIMAL and amount % 10:
        raise ApiError(400, f"Amounts in {currency.upper()} must end in 0 (multiples of 10).", param="amount")


def _format(amount: int, currency: str) -> str:
    """Major units as Stripe's over-refund message shows them ("$25.00"); other currencies by code."""
    digits = 0 if currency in _ZERO_DECIMAL else 3 if currency in _THREE_DECIMAL else 2
    value = f"{Decimal(amount).scaleb(-digits):,.{digits}f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


# ---------------------------------------------------------------- demo scenarios (make demo)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client)."""
    if name == "DEMO_SCENARIOS":
        return _demo_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The id that names each hop of a trace, printed by the demo.
_TRACE_IDS = {
    "request": ("source_reference", "ticket_id"),
    "policy": ("rule_id", "policy_version"),
    "provider_refund": ("provider_refund_id", "acquirer_reference"),
    "credit_document": ("document_id", "number"),
    "settlement_line": ("file", "line_no"),
    "payout": ("payout_id", "settled_on"),
    "bank_line": ("file", "line_no"),
}


def _trace_note(hop: dict[str, Any]) -> str:
    """One line of a trace hop: its ids, when and who, or why it is missing."""
    missing = hop.get("missing")
    if missing and not hop["present"]:
        return f"missing, {missing['code']}: {missing['reason']}"
    facts = hop.get("facts") or {}
    ids = " ".join(str(facts[name]) for name in _TRACE_IDS.get(hop["hop"], ()) if facts.get(name) is not None)
    problem = f" ({missing['code']} {missing.get('match_class') or ''})" if missing else ""
    return f"{ids} at {hop.get('at')} by {hop.get('actor')}{problem}"


def _demo_scenarios() -> list[Any]:
    from local.client import TERMINAL
    from local.scenarios import Outcome, Scenario, ScenarioContext, camt053_crediting

    def payout_settles(context: ScenarioContext, outcome: Outcome) -> None:
        # A refund of its own (a large payment, so the balance has something to pay out), then every refund the
        # demo completed through Stripe: the payout pays them all, its report settles each of them.
        payment = context.simulator.seed_payment(100_000, "EUR")
        own = context.client.wait_for(
            context.submit(outcome, context.request("payout", payment, amount=3_000)), TERMINAL
        )
        outcome.check(own["status"] == "COMPLETED", f"its own refund ended {own['status']}")
        ours = {
            str(refund["metadata"]["refund_id"])
            for refund in context.simulator.refunds()
            if refund["currency"] == "eur" and (refund.get("metadata") or {}).get("refund_id")
        }
        completed = [
            refund_id for refund_id in sorted(ours) if context.client.refund(refund_id)["status"] == "COMPLETED"
        ]
        payout = context.simulator.pay_out("eur")
        outcome.notes.append(
            f"payout {payout['id']} of {Decimal(payout['amount']) / 100:.2f} EUR settles {len(completed)} refunds"
        )
        for refund_id in completed:
            if refund_id != own["refund_id"]:
                outcome.refund_ids.append(refund_id)
            refund = context.client.wait_for(refund_id, {"SETTLED"}, timeout=90)
            outcome.check(refund["status"] == "SETTLED", f"{refund_id} ended {refund['status']}")
        # Its own refund's trace, from the ticket to the payout, once the report's run has announced the payout (its
        # summary step, after the refunds settled); then the bank's camt.053 statement crediting the payout is
        # reconciled, and the trace reaches the bank line.
        deadline = time.monotonic() + 60
        while True:
            trace = context.client.trace(own["refund_id"])
            hops = {hop["hop"]: hop for hop in trace["hops"]}
            if hops["payout"]["present"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if context.reconcile is not None and hops["payout"]["present"]:
            statement = f"settlement/bank/camt053/demo-{context.run_id}.xml"
            ran = context.reconcile(statement, camt053_crediting(payout["id"], int(payout["amount"])))
            outcome.check(ran.get("status") == "SUCCEEDED", f"bank statement reconciliation {ran.get('status')}")
            trace = context.client.trace(own["refund_id"])
            hops = {hop["hop"]: hop for hop in trace["hops"]}
            outcome.check(hops["bank_line"]["present"], f"trace: {hops['bank_line']}")
        outcome.check(hops["payout"]["facts"].get("payout_id") == payout["id"], f"trace: {hops['payout']}")
        outcome.check(trace["audit"]["intact"], f"trace: audit {trace['audit']}")
        for hop in trace["hops"]:
            outcome.notes.append(f"trace {hop['hop']}: {_trace_note(hop)}")

    return [
        Scenario(
            "a payout settles the demo's refunds",
            "every refund COMPLETED through Stripe becomes SETTLED once Stripe pays its balance out (payout.paid); "
            "its own refund's trace (GET /refunds/{id}/trace) follows it from the ticket to the payout and, once the "
            "bank's camt.053 statement is reconciled, to the bank line that credited it",
            payout_settles,
            exclusive=True,
        )
    ]
