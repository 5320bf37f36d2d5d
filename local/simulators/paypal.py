"""A stateful PayPal sandbox for the calls refundflow makes, on PayPal's own paths (Payments v2, legacy v1 sales).

Mounted by the local stack at ``/_sandbox/paypal``; the connector's base address is ``{sandbox}/paypal``
(live: ``https://api-m.paypal.com``, sandbox ``https://api-m.sandbox.paypal.com``). What it holds to, as PayPal
documents it (developer.paypal.com and the official spec ``payments_payment_v2.json`` version 2.5):

- OAuth 2.0 client credentials: ``POST /v1/oauth2/token`` with the client id and secret as HTTP Basic and the
  form ``grant_type=client_credentials``; the answer ``{scope, access_token, token_type: "Bearer", app_id,
  expires_in, nonce}``; bad credentials are a 401 ``{"error": "invalid_client"}``; API calls need
  ``Authorization: Bearer <token>``, an unknown token is a 401 ``invalid_token`` ("Token signature verification
  failed"), an expired one a 401 ``invalid_token`` ("Access Token not found in cache");
- ``POST /v2/payments/captures/{capture_id}/refund`` (``captures.refund``), ``GET /v2/payments/refunds/{id}``,
  ``GET /v2/payments/captures/{id}``; the body is checked against the spec's ``refund_request``
  (``amount`` = ``money`` ``{currency_code, value}`` both required, ``value`` a decimal string matching the spec's
  pattern and at most 32 characters; ``invoice_id`` and ``custom_id`` 1 to 127 characters, ``note_to_payer`` 1 to
  255); fields the spec does not define are refused (a simulator strictness: a misspelt field fails loudly);
  ``payment_instruction`` is answered as an account without platform fees would be (422
  ``PLATFORM_FEE_NOT_ENABLED``); ``Prefer: return=minimal`` (the default: ``id``, ``status``, ``links``) or
  ``return=representation`` (the whole refund);
- errors in PayPal's shape ``{name, message, debug_id, details: [{field, value, location, issue, description}],
  links}`` with the spec's names, messages and issues: 400 ``INVALID_REQUEST`` (``MISSING_REQUIRED_PARAMETER``,
  ``INVALID_PARAMETER_SYNTAX``, ``INVALID_STRING_LENGTH``, ``MALFORMED_REQUEST_JSON``), 404 ``RESOURCE_NOT_FOUND``
  (``INVALID_RESOURCE_ID``), 409 ``RESOURCE_CONFLICT`` (``PREVIOUS_REQUEST_IN_PROGRESS``), 415, 422
  ``UNPROCESSABLE_ENTITY`` (``CANNOT_BE_ZERO_OR_NEGATIVE``, ``DECIMAL_PRECISION``, ``DECIMALS_NOT_SUPPORTED``,
  ``INVALID_CURRENCY_CODE``, ``REFUND_CAPTURE_CURRENCY_MISMATCH``, ``CAPTURE_FULLY_REFUNDED``,
  ``REFUND_AMOUNT_EXCEEDED``, ``PENDING_CAPTURE``, ``REFUND_FAILED_INSUFFICIENT_FUNDS``, ``DUPLICATE_INVOICE_ID``),
  500 ``INTERNAL_SERVER_ERROR``, 503 ``SERVICE_UNAVAILABLE``; every answer carries ``Paypal-Debug-Id``;
- ``PayPal-Request-Id`` (developer.paypal.com/reference/guidelines/idempotency): "PayPal returns the latest status
  of the previous request that used that same header", so a repeat answers the refund it made, as it is now
  (201, the spec's only success status for the call); the spec keeps v2 keys 45 days and v1 keys 30 days; a
  repeat while the first is still being processed is the spec's 409 ``PREVIOUS_REQUEST_IN_PROGRESS``; a request
  that failed made nothing and keeps no key; keys are scoped to the REST app (client id);
- a capture's refunds are listed by its order (``GET /v2/checkout/orders/{id}``, ``purchase_units[].payments.
  refunds``; the capture names the order in ``supplementary_data.related_ids.order_id`` and its ``up`` link), a
  sale's by its payment (``GET /v1/payments/payment/{id}``, ``transactions[].related_resources``): neither a
  capture nor a sale carries the amount refunded so far;
- money rules (developer.paypal.com/api/rest/reference/currency-codes): the supported currencies only; HUF, JPY and
  TWD take no decimals; others at most two; the refund in the capture's currency; refunds up to the captured
  amount less what pending and completed refunds hold (failed and cancelled ones give theirs back);
- refunds go ``COMPLETED`` at once or ``PENDING`` (``status_details.reason: ECHECK``) and then ``COMPLETED`` or
  ``FAILED``, per the capture's test behaviour;
- the legacy v1 calls for merchants whose orders carry sale ids: ``POST /v1/payments/sale/{sale_id}/refund``
  (``{amount: {total, currency}, invoice_number, description, reason}``, states ``pending``, ``completed``,
  ``failed``), ``GET /v1/payments/refund/{id}``, ``GET /v1/payments/sale/{id}``; v1 errors
  ``{name, message, information_link, debug_id, details}`` with 400 ``TRANSACTION_ALREADY_REFUNDED``,
  ``REFUND_EXCEEDED_TRANSACTION_AMOUNT``, ``VALIDATION_ERROR``; 404 ``INVALID_RESOURCE_ID``;
- webhooks (developer.paypal.com/api/rest/webhooks/event-names): ``PAYMENT.CAPTURE.REFUNDED`` when a v2 refund
  completes and ``PAYMENT.SALE.REFUNDED`` when a v1 one does, each an event ``{id, event_version, create_time,
  resource_type: "refund", resource_version, event_type, summary, resource, links}`` (PayPal documents no event
  for a failed refund: that outcome is read by polling), signed as PayPal signs them: headers
  ``PAYPAL-TRANSMISSION-ID``, ``PAYPAL-TRANSMISSION-TIME``, ``PAYPAL-TRANSMISSION-SIG`` (base64 SHA256withRSA over
  ``<transmission id>|<transmission time>|<webhook id>|<CRC32 of the raw body, unsigned decimal>``, the string
  PayPal's own SDK builds), ``PAYPAL-CERT-URL`` (this simulator's certificate, a self-signed X.509 made at start
  and served at ``/v1/notifications/certs/<CERT-id>``) and ``PAYPAL-AUTH-ALGO: SHA256withRSA``. The base
  ``/_control/webhook-endpoint`` takes ``{"url", "secret"}`` with ``secret`` the webhook id.

Test behaviours, chosen per capture or sale when it is seeded (``/_control/payments`` field ``behaviour``):
``succeed`` (default: COMPLETED at once), ``pending_then_succeed``, ``pending_then_fail`` (PENDING, decided
``settle_after_seconds`` later), ``manual`` (PENDING until ``/_control/refunds/{id}/outcome``) and
``insufficient_funds`` (422 ``REFUND_FAILED_INSUFFICIENT_FUNDS``).

Control routes, besides the base ones (see :mod:`local.simulators.base`):
- ``POST /_control/payments`` ``{"amount_minor", "currency", "kind"?: "capture"|"sale", "settled"?,
  "behaviour"?, "invoice_id"?, "custom_id"?}``: a completed (or, ``settled: false``, pending) capture or sale;
- ``POST /_control/refunds/{id}/outcome`` ``{"succeeded": bool}``: decide a PENDING refund now;
- ``POST /_control/refunds/{id}/acquirer-reference``: the network assigns a COMPLETED v2 refund its ARN, which
  ``GET /v2/payments/refunds/{id}`` lists from then on as ``acquirer_reference_number`` (no webhook, as at PayPal);
- ``GET /_control/objects``: captures, sales and refunds; ``GET /_control/events``: every event emitted;
- ``GET /_control/certificate``: the signing certificate (PEM) and its URL.

Not modelled: orders, authorizations and captures themselves (payments are seeded), ``PayPal-Auth-Assertion``
(accepted, not checked), platform fees, currency conversion, refund time limits, the webhooks management API.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import secrets
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from werkzeug.wrappers import Request, Response

from local.simulators.base import FaultRule, Simulator, control_outcome, json_response, public_fields, self_signed_pem

DEFAULT_CLIENT_ID = "AZrefundflowSimulatorClientId0000000000000000000000000000000000000000000000000000"
DEFAULT_CLIENT_SECRET = "EKrefundflowSimulatorSecret000000000000000000000000000000000000000000000000000000"
DEFAULT_WEBHOOK_ID = "8PT597110X687430LKGECATA"
APP_ID = "APP-80W284485P519543T"
AUTH_ALGO = "SHA256withRSA"
TOKEN_TTL_SECONDS = 32_400
V2_KEY_TTL_SECONDS = 45 * 24 * 3600
V1_KEY_TTL_SECONDS = 30 * 24 * 3600
CERTS_PATH = "/v1/notifications/certs/"
SCOPES = (
    "https://uri.paypal.com/services/payments/refund https://uri.paypal.com/services/payments/payment/authcapture "
    "https://api.paypal.com/v1/payments/.*"
)

SUCCEED = "succeed"
PENDING_THEN_SUCCEED = "pending_then_succeed"
PENDING_THEN_FAIL = "pending_then_fail"
MANUAL = "manual"
INSUFFICIENT_FUNDS = "insufficient_funds"
BEHAVIOURS = (SUCCEED, PENDING_THEN_SUCCEED, PENDING_THEN_FAIL, MANUAL, INSUFFICIENT_FUNDS)

# PayPal's REST currencies (developer.paypal.com/api/rest/reference/currency-codes) and their decimals at PayPal.
_TWO_DECIMALS = ("AUD", "BRL", "CAD", "CNY", "CZK", "DKK", "EUR", "HKD", "ILS", "INR", "MYR", "MXN", "NZD", "NOK")
_TWO_DECIMALS_TOO = ("PHP", "PLN", "GBP", "SGD", "SEK", "CHF", "THB", "USD")
CURRENCY_DECIMALS: dict[str, int] = dict.fromkeys(_TWO_DECIMALS + _TWO_DECIMALS_TOO, 2) | {"HUF": 0, "JPY": 0, "TWD": 0}
# ISO 4217 minor units of those currencies (seed amounts are given in them, as refundflow's Money holds them).
ISO_DECIMALS: dict[str, int] = {code: 0 if code == "JPY" else 2 for code in CURRENCY_DECIMALS}

_VALUE = re.compile(r"^((-?[0-9]+)|(-?([0-9]+)?[.][0-9]+))$")
_V2_REFUND_FIELDS = {"amount", "custom_id", "invoice_id", "note_to_payer", "payment_instruction"}
_V1_REFUND_FIELDS = {"amount", "invoice_number", "description", "reason"}
_STRING_LIMITS = {"custom_id": 127, "invoice_id": 127, "note_to_payer": 255}

_MESSAGES = {
    "INVALID_REQUEST": "Request is not well-formed, syntactically incorrect, or violates schema.",
    "AUTHENTICATION_FAILURE": (
        "Authentication failed due to missing authorization header, or invalid authentication credentials."
    ),
    "RESOURCE_NOT_FOUND": "The specified resource does not exist.",
    "RESOURCE_CONFLICT": "The server has detected a conflict while processing this request.",
    "UNSUPPORTED_MEDIA_TYPE": "The server does not support the request payload's media type.",
    "UNPROCESSABLE_ENTITY": (
        "The requested action could not be performed, semantically incorrect, or failed business validation."
    ),
    "INTERNAL_SERVER_ERROR": "An internal server error occurred.",
    "SERVICE_UNAVAILABLE": "Service Unavailable.",
    "RATE_LIMIT_REACHED": "Too many requests. Blocked due to rate limiting.",
}
_NAMES = {
    400: "INVALID_REQUEST",
    401: "AUTHENTICATION_FAILURE",
    404: "RESOURCE_NOT_FOUND",
    409: "RESOURCE_CONFLICT",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE_ENTITY",
    429: "RATE_LIMIT_REACHED",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
# The spec's descriptions for the 422 issues of captures.refund (and the shared 404/409 ones).
_ISSUES = {
    "CAPTURE_FULLY_REFUNDED": "The capture has already been fully refunded",
    "REFUND_CAPTURE_CURRENCY_MISMATCH": "Refund must be in the same currency as the capture",
    "REFUND_AMOUNT_EXCEEDED": (
        "The refund amount must be less than or equal to the capture amount that has not yet been refunded."
    ),
    "REFUND_FAILED_INSUFFICIENT_FUNDS": (
        "Capture could not be refunded due to insufficient funds. Please check to see if you have sufficient funds "
        "in your PayPal account or if the bank account linked to your PayPal account is verified and has sufficient "
        "funds."
    ),
    "PENDING_CAPTURE": (
        "Cannot initiate a refund as the capture is pending. Capture is typically pending when the payer has funded "
        "the transaction using e-check/bank funded."
    ),
    "DUPLICATE_INVOICE_ID": "Invoice ID was previously used to refund a capture.",
    "PLATFORM_FEE_NOT_ENABLED": (
        "The API Caller account is not setup to be able to process refunds with 'platform_fees'. Please contact your "
        "Account Manager. This feature is useful when you want to contribute a portion of the 'platform_fees' you had "
        "capture as part of the refund being processed."
    ),
    "CANNOT_BE_ZERO_OR_NEGATIVE": (
        "Must be greater than zero. If the currency supports decimals, only two decimal place precision is supported."
    ),
    "DECIMAL_PRECISION": "If the currency supports decimals, only two decimal place precision is supported.",
    "DECIMALS_NOT_SUPPORTED": (
        "Currency does not support decimals. Please refer to https://developer.paypal.com/docs/api/reference/"
        "currency-codes/ for more information."
    ),
    "INVALID_CURRENCY_CODE": (
        "Currency code is invalid or is not currently supported. Please refer https://developer.paypal.com/docs/api/"
        "reference/currency-codes/ for list of supported currency codes."
    ),
    "INVALID_RESOURCE_ID": "Specified resource ID does not exist. Please check the resource ID and try again.",
    "PREVIOUS_REQUEST_IN_PROGRESS": (
        "A previous request on this resource is currently in progress. Please wait for sometime and try again. It is "
        "best to space out the initial and the subsequent request(s) to avoid receiving this error."
    ),
}
_V1_ERRORS = {
    "TRANSACTION_ALREADY_REFUNDED": "Refund transaction refused - this transaction has already been refunded.",
    "REFUND_EXCEEDED_TRANSACTION_AMOUNT": (
        "Refund refused - the requested refund amount would exceed the amount of transaction being refunded."
    ),
    "VALIDATION_ERROR": "Invalid request - see details",
    "INVALID_RESOURCE_ID": "Requested resource ID was not found.",
    "TRANSACTION_REFUSED": "The request was refused",
    "INSUFFICIENT_FUNDS": "Buyer cannot pay - insufficient funds.",
    "MALFORMED_REQUEST": "Incoming JSON request does not map to API request",
}


def debug_id() -> str:
    return secrets.token_hex(7)[:13]


def paypal_id(length: int = 17) -> str:
    """PayPal's transaction ids: upper-case letters and digits (e.g. ``2GG279541U471931P``)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def signing_string(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> str:
    """What PayPal signs for a webhook: ``id|time|webhook id|CRC32(body) as an unsigned decimal``."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}"


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_value(amount_minor: int, currency: str) -> str:
    """ISO minor units as PayPal's decimal string for ``currency``.

    Raises:
        ValueError: not a PayPal currency, or the amount has decimals PayPal does not take (HUF, TWD).
    """
    if currency not in CURRENCY_DECIMALS:
        raise ValueError(f"{currency} is not a PayPal currency")
    major = Decimal(amount_minor).scaleb(-ISO_DECIMALS[currency])
    places = CURRENCY_DECIMALS[currency]
    if major != major.quantize(Decimal(1).scaleb(-places)):
        raise ValueError(f"{amount_minor} {currency} minor units have decimals PayPal does not take")
    return f"{major:.{places}f}"


_CERT_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refundflow PayPal simulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.sandbox.paypal.example"),
    ]
)
"""The subject of the certificate the simulator signs webhooks with."""


class ApiError(Exception):
    """A PayPal error answer (v2 shape unless ``v1``)."""

    def __init__(
        self,
        status: int,
        issue: str | None = None,
        *,
        field: str | None = None,
        value: str | None = None,
        description: str | None = None,
        name: str | None = None,
        v1: bool = False,
    ) -> None:
        super().__init__(issue or name or str(status))
        self.status = status
        self.issue = issue
        self.field = field
        self.value = value
        self.description = description
        self.name = name
        self.v1 = v1

    def body(self) -> dict[str, Any]:
        if self.v1:
            name = self.name or self.issue or "INTERNAL_SERVICE_ERROR"
            body: dict[str, Any] = {
                "name": name,
                "message": _V1_ERRORS.get(name, self.description or name),
                "information_link": f"https://developer.paypal.com/docs/api/payments/v1/#error-{name}",
                "debug_id": debug_id(),
            }
            if self.field is not None:
                body["details"] = [{"field": self.field, "issue": self.description or self.issue or name}]
            return body
        name = self.name or _NAMES.get(self.status, "INTERNAL_SERVER_ERROR")
        body = {"name": name, "message": _MESSAGES.get(name, name), "debug_id": debug_id()}
        if self.issue is not None:
            detail: dict[str, Any] = {"issue": self.issue}
            if self.field is not None:
                detail.update(field=self.field, location="body" if self.field.startswith("/") else "path")
            if self.value is not None:
                detail["value"] = self.value
            detail["description"] = self.description or _ISSUES.get(self.issue, self.issue)
            body["details"] = [detail]
            body["links"] = [
                {
                    "href": f"https://developer.paypal.com/docs/api/payments/v2/#error-{self.issue}",
                    "rel": "information_link",
                    "method": "GET",
                }
            ]
        return body


@dataclass
class _Key:
    refund_id: str | None
    created_at: float


class PayPalSimulator(Simulator):
    """PayPal's refund surface: OAuth tokens, v2 capture refunds, v1 sale refunds, RSA-signed webhooks."""

    name = "paypal"
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_refund": ("POST", r"^/v(2/payments/captures|1/payments/sale)/[^/]+/refund$"),
        "get_refund": ("GET", r"^/v(2/payments/refunds|1/payments/refund)/[^/]+$"),
        "get_payment": ("GET", r"^/v(2/payments/captures|1/payments/sale)/[^/]+$"),
        "token": ("POST", r"^/v1/oauth2/token$"),
    }

    def __init__(
        self,
        clients: Mapping[str, str] | None = None,
        *,
        webhook_url: str | None = None,
        webhook_id: str = DEFAULT_WEBHOOK_ID,
        public_url: str | None = None,
        settle_after_seconds: float | None = 0.2,
        token_ttl_seconds: float = TOKEN_TTL_SECONDS,
        processing_delay_seconds: float = 0.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``clients``: REST app client id -> secret. ``public_url``: where the simulator is reachable (for the
        certificate URL in webhooks); learnt from the first request when not given."""
        self.clients = dict(clients or {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET})
        self.public_url = public_url.rstrip("/") if public_url else None
        self.settle_after_seconds = settle_after_seconds
        self.token_ttl_seconds = token_ttl_seconds
        self.processing_delay_seconds = processing_delay_seconds
        self._now = now
        self.tokens: dict[str, tuple[str, float]] = {}
        self.captures: dict[str, dict[str, Any]] = {}
        self.sales: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, str] = {}
        self.refund_objects: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._behaviours: dict[str, str] = {}
        self._keys: dict[tuple[str, str, str], _Key] = {}
        self._in_flight: set[tuple[str, str, str]] = set()
        self._order = itertools.count()
        self._timers: list[threading.Timer] = []
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert_id = f"CERT-{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
        self.certificate_pem = self_signed_pem(self._private_key, now(), _CERT_SUBJECT)
        super().__init__()
        self.webhooks.configure(webhook_url, webhook_id)
        self.route("/v1/oauth2/token", self._token, methods=["POST"])
        self.route("/v2/payments/captures/<capture_id>", self._api(self._get_capture), methods=["GET"])
        self.route("/v2/payments/captures/<capture_id>/refund", self._api(self._refund_capture), methods=["POST"])
        self.route("/v2/payments/refunds/<refund_id>", self._api(self._get_refund_v2), methods=["GET"])
        self.route("/v1/payments/sale/<sale_id>", self._api(self._get_sale, v1=True), methods=["GET"])
        self.route("/v1/payments/sale/<sale_id>/refund", self._api(self._refund_sale, v1=True), methods=["POST"])
        self.route("/v1/payments/refund/<refund_id>", self._api(self._get_refund_v1, v1=True), methods=["GET"])
        self.route("/v1/payments/payment/<payment_id>", self._api(self._get_payment_v1, v1=True), methods=["GET"])
        self.route("/v2/checkout/orders/<order_id>", self._api(self._get_order), methods=["GET"])
        self.route(f"{CERTS_PATH}<cert_id>", self._certificate, methods=["GET"])
        self.route("/_control/payments", self._control_payments, methods=["POST"])
        self.route("/_control/refunds/<refund_id>/outcome", self._control_outcome, methods=["POST"])
        self.route(
            "/_control/refunds/<refund_id>/acquirer-reference", self._control_acquirer_reference, methods=["POST"]
        )
        self.route("/_control/objects", self._control_objects, methods=["GET"])
        self.route("/_control/events", self._control_events, methods=["GET"])
        self.route("/_control/certificate", self._control_certificate, methods=["GET"])
        # Bind the routes now: the base builds its Map on first use, and two first requests at once race on it.
        _ = self.url_map

    # ---------------------------------------------------------------- base hooks

    @property
    def webhook_id(self) -> str:
        return self.webhooks.secret or DEFAULT_WEBHOOK_ID

    @property
    def cert_url(self) -> str:
        return f"{self.public_url or ''}{CERTS_PATH}{self.cert_id}"

    def sign_webhook(self, body: bytes, secret: str, at: float | None = None) -> dict[str, str]:
        """PayPal's transmission headers, signed with the simulator's key for webhook id ``secret`` (sent now, or
        at epoch ``at``)."""
        transmission_id = str(uuid.uuid1())
        transmission_time = timestamp(self._now() if at is None else at)
        message = signing_string(transmission_id, transmission_time, secret, body).encode()
        signature = self._private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": AUTH_ALGO,
        }

    def reset_state(self) -> None:
        with self.lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self.tokens.clear()
            self.captures.clear()
            self.sales.clear()
            self.orders.clear()
            self.refund_objects.clear()
            self.events.clear()
            self._behaviours.clear()
            self._keys.clear()
            self._in_flight.clear()

    def dispatch(self, request: Request) -> Response:
        if self.public_url is None:
            self.public_url = (request.host_url.rstrip("/") + request.script_root).rstrip("/")
        response = super().dispatch(request)
        response.headers.setdefault("Paypal-Debug-Id", debug_id())
        return response

    def fault_response(self, fault: FaultRule) -> Response:
        """An injected failure, in PayPal's error shape unless the rule brings its own body."""
        status = fault.status or 500
        if fault.body is not None:
            return json_response(fault.body, status, headers=fault.headers)
        return json_response(ApiError(status).body(), status, headers=fault.headers)

    def not_found(self, request: Request) -> Response:
        if request.path.startswith("/_control"):
            return super().not_found(request)
        return json_response(ApiError(404).body(), 404)

    # ---------------------------------------------------------------- PaymentSandbox (conformance control)

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """What the local stack seeds: the function's API secret and intake's verification secret (the webhook
        id and, since the simulator's certificate is not served by PayPal, its certificate URL prefix)."""
        client_id = next(iter(self.clients))
        verification: dict[str, Any] = {"webhook_ids": [self.webhook_id]}
        if self.public_url is not None:
            verification["cert_url_prefixes"] = [f"{self.public_url}{CERTS_PATH}"]
        return {"api": {"client_id": client_id, "client_secret": self.clients[client_id]}, "verification": verification}

    def send_webhooks_to(self, url: str) -> None:
        """Deliver webhooks to ``url`` (the local stack's ``{api}/webhooks/paypal``), signed for this simulator's
        webhook id. Unless the simulator was given its public URL, it is taken from the stack's layout
        (``{api}/_sandbox/<name>``), since the certificate URL in each webhook must point at it."""
        self.webhooks.configure(url, self.webhook_id)
        if self.public_url is None and "/webhooks/" in url:
            self.public_url = f"{url.split('/webhooks/')[0]}/_sandbox/{self.name}"

    def seed_payment(
        self,
        amount_minor: int,
        currency: str,
        *,
        settled: bool = True,
        behaviour: str = SUCCEED,
        kind: str = "capture",
        invoice_id: str | None = None,
        custom_id: str | None = None,
    ) -> dict[str, Any]:
        """A capture (or a v1 sale) of ``amount_minor`` ISO minor units; ``settled``: COMPLETED, else PENDING.

        Returns ``{"provider": "paypal", "payment_id", "locator"}`` (``locator`` ``{"kind": "sale"}`` for a sale).

        Raises:
            ValueError: an unknown kind or behaviour, or an amount PayPal cannot hold.
        """
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}")
        value = to_value(amount_minor, currency)
        now = timestamp(self._now())
        with self.lock:
            if kind == "capture":
                capture_id = paypal_id()
                order_id = paypal_id()
                self.orders[order_id] = capture_id
                self.captures[capture_id] = {
                    "id": capture_id,
                    "status": "COMPLETED" if settled else "PENDING",
                    **({} if settled else {"status_details": {"reason": "ECHECK"}}),
                    "amount": {"currency_code": currency, "value": value},
                    "final_capture": True,
                    "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED"]},
                    "seller_receivable_breakdown": {
                        "gross_amount": {"currency_code": currency, "value": value},
                        "net_amount": {"currency_code": currency, "value": value},
                    },
                    **({"invoice_id": invoice_id} if invoice_id else {}),
                    **({"custom_id": custom_id} if custom_id else {}),
                    "supplementary_data": {"related_ids": {"order_id": order_id}},
                    "links": self._capture_links(capture_id, order_id),
                    "create_time": now,
                    "update_time": now,
                }
                self._behaviours[capture_id] = behaviour
                return {"provider": "paypal", "payment_id": capture_id, "locator": {}}
            if kind == "sale":
                sale_id = paypal_id()
                self.sales[sale_id] = {
                    "id": sale_id,
                    "state": "completed" if settled else "pending",
                    "amount": {"total": value, "currency": currency},
                    "payment_mode": "INSTANT_TRANSFER",
                    "parent_payment": f"PAYID-{paypal_id(24)}",
                    **({"invoice_number": invoice_id} if invoice_id else {}),
                    **({"custom": custom_id} if custom_id else {}),
                    "create_time": now,
                    "update_time": now,
                    "links": self._sale_links(sale_id),
                }
                self._behaviours[sale_id] = behaviour
                return {"provider": "paypal", "payment_id": sale_id, "locator": {"kind": "sale"}}
        raise ValueError("kind must be capture or sale")

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """Decide a PENDING refund now (COMPLETED sends its webhook; FAILED gives the amount back).

        Raises:
            KeyError: no such refund.
            ValueError: the refund is not PENDING.
        """
        with self.lock:
            refund = self.refund_objects[provider_refund_id]
            if _status(refund) != "PENDING":
                raise ValueError(f"refund {provider_refund_id} is {_status(refund)}, not PENDING")
            self._decide(refund, succeeded)
            return copy.deepcopy(refund)

    def assign_acquirer_reference(self, provider_refund_id: str) -> dict[str, Any]:
        """The card network assigns the completed v2 refund its acquirer reference number, days after the refund
        ("After you capture a payment or refund a transaction, the ARN is available after a few days",
        developer.paypal.com/docs/checkout/advanced/customize/acquirer-reference-number): from now on
        ``GET /v2/payments/refunds/{id}`` lists ``acquirer_reference_number`` (spec: 1-36 characters,
        ``^[a-zA-Z0-9]+$``). PayPal sends no webhook for it.

        Raises:
            KeyError: no such refund.
            ValueError: not a COMPLETED v2 refund, or it has its reference already.
        """
        with self.lock:
            refund = self.refund_objects[provider_refund_id]
            if refund["_version"] != "v2" or _status(refund) != "COMPLETED" or "acquirer_reference_number" in refund:
                raise ValueError(f"refund {provider_refund_id} is {_status(refund)}: no reference to assign")
            refund["acquirer_reference_number"] = "74" + "".join(str(secrets.randbelow(10)) for _ in range(21))
            refund["update_time"] = timestamp(self._now())
            return public_fields(refund)

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund held (v2 and v1 shapes), oldest first (copies)."""
        with self.lock:
            ordered = sorted(self.refund_objects.values(), key=lambda refund: refund["_order"])
            return [public_fields(refund) for refund in ordered]

    def wait_delivered(self, timeout: float = 30.0) -> bool:
        """Wait until every webhook queued so far has been answered (or given up on)."""
        return self.webhooks.wait_idle(timeout)

    # ---------------------------------------------------------------- request plumbing

    def _api(self, handler: Callable[..., tuple[int, Any]], *, v1: bool = False) -> Callable[..., Response]:
        def endpoint(request: Request, **arguments: str) -> Response:
            try:
                client_id = self._authenticate(request)
                status, body = handler(request, client_id, **arguments)
            except ApiError as error:
                error.v1 = error.v1 or v1
                status, body = error.status, error.body()
            return json_response(body, status)

        endpoint.__name__ = handler.__name__
        return endpoint

    def _authenticate(self, request: Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, name="AUTHENTICATION_FAILURE")
        with self.lock:
            found = self.tokens.get(token.strip())
        if found is None:
            raise _OAuthError(401, "invalid_token", "Token signature verification failed")
        client_id, expires_at = found
        if self._now() >= expires_at:
            raise _OAuthError(401, "invalid_token", "Access Token not found in cache")
        return client_id

    def _token(self, request: Request) -> Response:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        client_id = secret = ""
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(credential.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                client_id = secret = ""
        if not client_id or self.clients.get(client_id) != secret:
            return json_response({"error": "invalid_client", "error_description": "Client Authentication failed"}, 401)
        form = parse_qs(request.get_data(as_text=True))
        grant = form.get("grant_type", [""])[0]
        if grant != "client_credentials":
            description = "Grant Type is NULL" if not grant else f"Unsupported grant_type: {grant}"
            return json_response({"error": "unsupported_grant_type", "error_description": description}, 400)
        token = f"A21AA{secrets.token_urlsafe(48)}"
        with self.lock:
            self.tokens[token] = (client_id, self._now() + self.token_ttl_seconds)
        return json_response(
            {
                "scope": SCOPES,
                "access_token": token,
                "token_type": "Bearer",
                "app_id": APP_ID,
                "expires_in": int(self.token_ttl_seconds),
                "nonce": f"{timestamp(self._now())}{secrets.token_urlsafe(16)}",
            }
        )

    def _idempotent(
        self, client_id: str, version: str, request: Request, make: Callable[[], dict[str, Any]]
    ) -> tuple[int, dict[str, Any]]:
        """Run ``make`` once per ``PayPal-Request-Id``; a repeat answers the refund it made, as it is now."""
        key = request.headers.get("PayPal-Request-Id")
        if not key:
            refund = make()
            return 201, refund
        scope = (client_id, version, key)
        ttl = V2_KEY_TTL_SECONDS if version == "v2" else V1_KEY_TTL_SECONDS
        with self.lock:
            saved = self._keys.get(scope)
            if saved is not None and self._now() - saved.created_at > ttl:
                del self._keys[scope]
                saved = None
            if saved is not None and saved.refund_id is not None:
                # The spec lists 201 as captures.refund's only success: the repeat answers like the first call.
                return 201, self.refund_objects[saved.refund_id]
            if scope in self._in_flight:
                raise ApiError(409, "PREVIOUS_REQUEST_IN_PROGRESS")
            self._in_flight.add(scope)
        try:
            refund = make()
            if self.processing_delay_seconds:
                time.sleep(self.processing_delay_seconds)  # the key stays in flight: a repeat now gets the 409
            with self.lock:
                self._keys[scope] = _Key(refund["id"], self._now())
            return 201, refund
        finally:
            with self.lock:
                self._in_flight.discard(scope)

    # ---------------------------------------------------------------- v2

    def _get_capture(self, request: Request, client_id: str, capture_id: str) -> tuple[int, Any]:
        with self.lock:
            capture = self.captures.get(capture_id)
            if capture is None:
                raise ApiError(404, "INVALID_RESOURCE_ID", field="capture_id", value=capture_id)
            return 200, copy.deepcopy(capture)

    def _get_refund_v2(self, request: Request, client_id: str, refund_id: str) -> tuple[int, Any]:
        with self.lock:
            refund = self.refund_objects.get(refund_id)
            if refund is None or refund["_version"] != "v2":
                raise ApiError(404, "INVALID_RESOURCE_ID", field="refund_id", value=refund_id)
            return 200, public_fields(refund)

    def _refund_capture(self, request: Request, client_id: str, capture_id: str) -> tuple[int, Any]:
        body = _json_body(request, v1=False)
        _validate_v2_refund(body)
        minimal = request.headers.get("Prefer", "return=minimal").strip().lower() != "return=representation"

        def make() -> dict[str, Any]:
            with self.lock:
                capture = self.captures.get(capture_id)
                if capture is None:
                    raise ApiError(404, "INVALID_RESOURCE_ID", field="capture_id", value=capture_id)
                return self._new_v2_refund(capture, body)

        status, refund = self._idempotent(client_id, "v2", request, make)
        with self.lock:
            public = public_fields(refund)
        if minimal:
            public = {key: public[key] for key in ("id", "status", "links") if key in public}
        return status, public

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """OutsideRefunds: a refund of a seeded capture made in PayPal's own interface (no ``invoice_id`` or
        ``custom_id`` of ours), with its ``PAYMENT.CAPTURE.REFUNDED`` webhook."""
        with self.lock:
            capture = self.captures[payment_id]
            currency = capture["amount"]["currency_code"]
            value = _format(amount_minor, CURRENCY_DECIMALS[currency])
            return str(self._new_v2_refund(capture, {"amount": {"currency_code": currency, "value": value}})["id"])

    def _new_v2_refund(self, capture: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        currency = capture["amount"]["currency_code"]
        decimals = CURRENCY_DECIMALS[currency]
        captured = _minor(capture["amount"]["value"], decimals)
        if "payment_instruction" in body:
            raise ApiError(422, "PLATFORM_FEE_NOT_ENABLED", field="/payment_instruction")
        if capture["status"] == "PENDING":
            raise ApiError(422, "PENDING_CAPTURE")
        held = self._held(capture["id"])
        if held >= captured:
            raise ApiError(422, "CAPTURE_FULLY_REFUNDED")
        if "amount" in body:
            money = body["amount"]
            if money["currency_code"] != currency:
                raise ApiError(
                    422, "REFUND_CAPTURE_CURRENCY_MISMATCH", field="/amount/currency_code", value=money["currency_code"]
                )
            amount = _money_minor(money["value"], currency)
        else:
            amount = captured - held
        if amount > captured - held:
            raise ApiError(422, "REFUND_AMOUNT_EXCEEDED", field="/amount/value", value=body["amount"]["value"])
        invoice_id = body.get("invoice_id")
        if invoice_id is not None and any(
            refund.get("invoice_id") == invoice_id for refund in self.refund_objects.values()
        ):
            raise ApiError(422, "DUPLICATE_INVOICE_ID", field="/invoice_id", value=invoice_id)
        behaviour = self._behaviours.get(capture["id"], SUCCEED)
        if behaviour == INSUFFICIENT_FUNDS:
            raise ApiError(422, "REFUND_FAILED_INSUFFICIENT_FUNDS")
        now = timestamp(self._now())
        refund_id = paypal_id()
        value = _format(amount, decimals)
        refund: dict[str, Any] = {
            "id": refund_id,
            "amount": {"currency_code": currency, "value": value},
            **{field: body[field] for field in ("invoice_id", "custom_id", "note_to_payer") if field in body},
            "status": "COMPLETED" if behaviour == SUCCEED else "PENDING",
            "seller_payable_breakdown": {
                "gross_amount": {"currency_code": currency, "value": value},
                "paypal_fee": {"currency_code": currency, "value": _format(0, decimals)},
                "net_amount": {"currency_code": currency, "value": value},
                "total_refunded_amount": {"currency_code": currency, "value": _format(held + amount, decimals)},
            },
            "payer": {"email_address": "merchant@example.com", "merchant_id": "7KNGBPH2U58GQ"},
            "links": [
                {"href": self._href(f"/v2/payments/refunds/{refund_id}"), "rel": "self", "method": "GET"},
                {"href": self._href(f"/v2/payments/captures/{capture['id']}"), "rel": "up", "method": "GET"},
            ],
            "create_time": now,
            "update_time": now,
            "_version": "v2",
            "_payment": capture["id"],
            "_order": next(self._order),
        }
        if refund["status"] == "PENDING":
            refund["status_details"] = {"reason": "ECHECK"}
        self.refund_objects[refund_id] = refund
        self._recount(capture["id"])
        if refund["status"] == "COMPLETED":
            self._emit(refund)
        else:
            self._schedule(refund_id, behaviour)
        return refund

    def _get_order(self, request: Request, client_id: str, order_id: str) -> tuple[int, Any]:
        """Orders v2 ``GET /v2/checkout/orders/{id}``: the order of a seeded capture, with its refunds (the one
        place PayPal lists a capture's refunds)."""
        with self.lock:
            capture_id = self.orders.get(order_id)
            if capture_id is None:
                raise ApiError(404, "INVALID_RESOURCE_ID", field="order_id", value=order_id)
            capture = self.captures[capture_id]
            refunds = [public_fields(refund) for refund in self._refunds_of(capture_id)]
            return 200, {
                "id": order_id,
                "intent": "CAPTURE",
                "status": "COMPLETED",
                "purchase_units": [
                    {
                        "reference_id": "default",
                        "amount": copy.deepcopy(capture["amount"]),
                        "payments": {"captures": [copy.deepcopy(capture)], **({"refunds": refunds} if refunds else {})},
                    }
                ],
                "create_time": capture["create_time"],
                "update_time": capture["update_time"],
                "links": [{"href": self._href(f"/v2/checkout/orders/{order_id}"), "rel": "self", "method": "GET"}],
            }

    def _refunds_of(self, payment_id: str) -> list[dict[str, Any]]:
        found = [refund for refund in self.refund_objects.values() if refund["_payment"] == payment_id]
        return sorted(found, key=lambda refund: refund["_order"])

    # ---------------------------------------------------------------- v1 (sales)

    def _get_payment_v1(self, request: Request, client_id: str, payment_id: str) -> tuple[int, Any]:
        """``GET /v1/payments/payment/{id}``: the payment of a seeded sale, its refunds as related resources."""
        with self.lock:
            sale = next((sale for sale in self.sales.values() if sale["parent_payment"] == payment_id), None)
            if sale is None:
                raise ApiError(404, name="INVALID_RESOURCE_ID", v1=True)
            related = [{"sale": copy.deepcopy(sale)}] + [
                {"refund": public_fields(refund)} for refund in self._refunds_of(sale["id"])
            ]
            return 200, {
                "id": payment_id,
                "intent": "sale",
                "state": "approved",
                "transactions": [{"amount": copy.deepcopy(sale["amount"]), "related_resources": related}],
                "create_time": sale["create_time"],
                "update_time": sale["update_time"],
            }

    def _get_sale(self, request: Request, client_id: str, sale_id: str) -> tuple[int, Any]:
        with self.lock:
            sale = self.sales.get(sale_id)
            if sale is None:
                raise ApiError(404, name="INVALID_RESOURCE_ID", v1=True)
            return 200, copy.deepcopy(sale)

    def _get_refund_v1(self, request: Request, client_id: str, refund_id: str) -> tuple[int, Any]:
        with self.lock:
            refund = self.refund_objects.get(refund_id)
            if refund is None or refund["_version"] != "v1":
                raise ApiError(404, name="INVALID_RESOURCE_ID", v1=True)
            return 200, public_fields(refund)

    def _refund_sale(self, request: Request, client_id: str, sale_id: str) -> tuple[int, Any]:
        body = _json_body(request, v1=True)
        _validate_v1_refund(body)

        def make() -> dict[str, Any]:
            with self.lock:
                sale = self.sales.get(sale_id)
                if sale is None:
                    raise ApiError(404, name="INVALID_RESOURCE_ID", v1=True)
                return self._new_v1_refund(sale, body)

        status, refund = self._idempotent(client_id, "v1", request, make)
        with self.lock:
            return status, public_fields(refund)

    def _new_v1_refund(self, sale: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        currency = sale["amount"]["currency"]
        decimals = CURRENCY_DECIMALS[currency]
        total = _minor(sale["amount"]["total"], decimals)
        if sale["state"] == "pending":
            raise ApiError(400, name="TRANSACTION_REFUSED", v1=True)
        held = self._held(sale["id"])
        if held >= total:
            raise ApiError(400, name="TRANSACTION_ALREADY_REFUNDED", v1=True)
        if "amount" in body:
            if body["amount"]["currency"] != currency:
                raise ApiError(
                    400, name="VALIDATION_ERROR", field="amount.currency", description="Currency mismatch", v1=True
                )
            amount = _money_minor(body["amount"]["total"], currency, v1=True)
        else:
            amount = total - held
        if amount > total - held:
            raise ApiError(400, name="REFUND_EXCEEDED_TRANSACTION_AMOUNT", v1=True)
        behaviour = self._behaviours.get(sale["id"], SUCCEED)
        if behaviour == INSUFFICIENT_FUNDS:
            raise ApiError(400, name="INSUFFICIENT_FUNDS", v1=True)
        now = timestamp(self._now())
        refund_id = paypal_id()
        value = _format(amount, decimals)
        refund: dict[str, Any] = {
            "id": refund_id,
            "create_time": now,
            "update_time": now,
            "state": "completed" if behaviour == SUCCEED else "pending",
            "amount": {"total": value, "currency": currency},
            "refund_from_received_amount": {"value": value, "currency": currency},
            "refund_from_transaction_fee": {"value": _format(0, decimals), "currency": currency},
            "total_refunded_amount": {"value": _format(held + amount, decimals), "currency": currency},
            "sale_id": sale["id"],
            "parent_payment": sale["parent_payment"],
            **{field: body[field] for field in ("invoice_number", "description", "reason") if field in body},
            "links": [
                {"href": self._href(f"/v1/payments/refund/{refund_id}"), "rel": "self", "method": "GET"},
                {"href": self._href(f"/v1/payments/sale/{sale['id']}"), "rel": "sale", "method": "GET"},
            ],
            "_version": "v1",
            "_payment": sale["id"],
            "_order": next(self._order),
        }
        self.refund_objects[refund_id] = refund
        self._recount(sale["id"])
        if refund["state"] == "completed":
            self._emit(refund)
        else:
            self._schedule(refund_id, behaviour)
        return refund

    # ---------------------------------------------------------------- state, events and the certificate

    def _held(self, payment_id: str) -> int:
        """Minor units of ``payment_id`` held by pending and completed refunds."""
        held = 0
        for refund in self.refund_objects.values():
            if refund["_payment"] == payment_id and _status(refund) in {"PENDING", "COMPLETED"}:
                held += _minor(_value(refund), CURRENCY_DECIMALS[_currency(refund)])
        return held

    def _recount(self, payment_id: str) -> None:
        now = timestamp(self._now())
        if payment_id in self.captures:
            capture = self.captures[payment_id]
            captured = _minor(capture["amount"]["value"], CURRENCY_DECIMALS[capture["amount"]["currency_code"]])
            held = self._held(payment_id)
            if capture["status"] != "PENDING":
                capture["status"] = "REFUNDED" if held >= captured else "PARTIALLY_REFUNDED" if held else "COMPLETED"
            capture["update_time"] = now
        elif payment_id in self.sales:
            sale = self.sales[payment_id]
            total = _minor(sale["amount"]["total"], CURRENCY_DECIMALS[sale["amount"]["currency"]])
            held = self._held(payment_id)
            if sale["state"] != "pending":
                sale["state"] = "refunded" if held >= total else "partially_refunded" if held else "completed"
            sale["update_time"] = now

    def _decide(self, refund: dict[str, Any], succeeded: bool) -> None:
        now = timestamp(self._now())
        if refund["_version"] == "v2":
            refund["status"] = "COMPLETED" if succeeded else "FAILED"
            if succeeded:
                refund.pop("status_details", None)
        else:
            refund["state"] = "completed" if succeeded else "failed"
        refund["update_time"] = now
        self._recount(refund["_payment"])
        if succeeded:
            self._emit(refund)

    def _schedule(self, refund_id: str, behaviour: str) -> None:
        if behaviour == MANUAL or self.settle_after_seconds is None:
            return

        def fire() -> None:
            with self.lock:
                refund = self.refund_objects.get(refund_id)
                if refund is not None and _status(refund) == "PENDING":
                    self._decide(refund, behaviour == PENDING_THEN_SUCCEED)

        timer = threading.Timer(self.settle_after_seconds, fire)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _emit(self, refund: dict[str, Any]) -> None:
        v2 = refund["_version"] == "v2"
        event_id = f"WH-{paypal_id(17)}-{paypal_id(17)}"
        amount = f"{_value(refund)} {_currency(refund)}"
        event = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": timestamp(self._now()),
            "resource_type": "refund",
            "resource_version": "2.0" if v2 else "1.0",
            "event_type": "PAYMENT.CAPTURE.REFUNDED" if v2 else "PAYMENT.SALE.REFUNDED",
            "summary": f"A {amount} capture payment was refunded" if v2 else f"A {amount} sale payment was refunded",
            "resource": public_fields(refund),
            "links": [
                {
                    "href": self._href(f"/v1/notifications/webhooks-events/{event_id}"),
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": self._href(f"/v1/notifications/webhooks-events/{event_id}/resend"),
                    "rel": "resend",
                    "method": "POST",
                },
            ],
        }
        self.events.append(event)
        self.webhooks.send(event_id, str(event["event_type"]), json.dumps(event).encode())

    def _href(self, path: str) -> str:
        return f"{self.public_url or 'https://api-m.sandbox.paypal.com'}{path}"

    def _capture_links(self, capture_id: str, order_id: str) -> list[dict[str, str]]:
        return [
            {"href": self._href(f"/v2/payments/captures/{capture_id}"), "rel": "self", "method": "GET"},
            {"href": self._href(f"/v2/payments/captures/{capture_id}/refund"), "rel": "refund", "method": "POST"},
            {"href": self._href(f"/v2/checkout/orders/{order_id}"), "rel": "up", "method": "GET"},
        ]

    def _sale_links(self, sale_id: str) -> list[dict[str, str]]:
        return [
            {"href": self._href(f"/v1/payments/sale/{sale_id}"), "rel": "self", "method": "GET"},
            {"href": self._href(f"/v1/payments/sale/{sale_id}/refund"), "rel": "refund", "method": "POST"},
        ]

    def _certificate(self, request: Request, cert_id: str) -> Response:
        if cert_id != self.cert_id:
            return json_response(ApiError(404).body(), 404)
        return Response(self.certificate_pem, mimetype="application/x-pem-file")

    # ---------------------------------------------------------------- control routes

    def _control_payments(self, request: Request) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        allowed = {"amount_minor", "currency", "kind", "settled", "behaviour", "invoice_id", "custom_id"}
        unknown = set(payload) - allowed
        if unknown or not isinstance(payload.get("amount_minor"), int) or not isinstance(payload.get("currency"), str):
            return json_response(
                {"error": f"need amount_minor (int) and currency; allowed fields {sorted(allowed)}"}, 400
            )
        try:
            seeded = self.seed_payment(
                payload["amount_minor"],
                payload["currency"],
                settled=bool(payload.get("settled", True)),
                behaviour=str(payload.get("behaviour", SUCCEED)),
                kind=str(payload.get("kind", "capture")),
                invoice_id=payload.get("invoice_id"),
                custom_id=payload.get("custom_id"),
            )
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response(seeded, 201)

    def _control_outcome(self, request: Request, refund_id: str) -> Response:
        return control_outcome(request, refund_id, self.settle_refund, shown=public_fields)

    def _control_acquirer_reference(self, request: Request, refund_id: str) -> Response:
        try:
            return json_response(self.assign_acquirer_reference(refund_id))
        except KeyError:
            return json_response({"error": f"no refund {refund_id}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 409)

    def _control_objects(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {
                    "captures": copy.deepcopy(list(self.captures.values())),
                    "sales": copy.deepcopy(list(self.sales.values())),
                    "refunds": self.refunds(),
                }
            )

    def _control_events(self, request: Request) -> Response:
        with self.lock:
            return json_response({"events": copy.deepcopy(self.events)})

    def _control_certificate(self, request: Request) -> Response:
        return json_response({"cert_url": self.cert_url, "pem": self.certificate_pem})


class _OAuthError(ApiError):
    """The identity service's answer for a bad token (OAuth 2.0 shape, not the REST error shape)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(status, name=error, description=description)
        self.error = error

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


# ---------------------------------------------------------------- helpers


def _status(refund: Mapping[str, Any]) -> str:
    return str(refund["status"]) if "status" in refund else str(refund["state"]).upper()


def _value(refund: Mapping[str, Any]) -> str:
    return str(refund["amount"]["value"] if "value" in refund["amount"] else refund["amount"]["total"])


def _currency(refund: Mapping[str, Any]) -> str:
    amount = refund["amount"]
    return str(amount["currency_code"] if "currency_code" in amount else amount["currency"])


def _minor(value: str, decimals: int) -> int:
    return int(Decimal(value).scaleb(decimals))


def _format(minor: int, decimals: int) -> str:
    return f"{Decimal(minor).scaleb(-decimals):.{decimals}f}"


def _money_minor(value: str, currency: str, *, v1: bool = False) -> int:
    """A refund amount in PayPal's units of ``currency`` (already known to be a PayPal currency)."""
    field = "amount.total" if v1 else "/amount/value"
    number = Decimal(value)
    if number <= 0:
        if v1:
            raise ApiError(400, name="VALIDATION_ERROR", field=field, description="Must be greater than zero", v1=True)
        raise ApiError(422, "CANNOT_BE_ZERO_OR_NEGATIVE", field=field, value=value)
    decimals = CURRENCY_DECIMALS[currency]
    exponent = number.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    fractional = number != number.to_integral_value()
    if decimals == 0 and (fractional or places):
        if v1:
            raise ApiError(
                400, name="VALIDATION_ERROR", field=field, description="Currency does not support decimals.", v1=True
            )
        raise ApiError(422, "DECIMALS_NOT_SUPPORTED", field=field, value=value)
    if places > decimals:
        if v1:
            raise ApiError(
                400, name="VALIDATION_ERROR", field=field, description="Amount has too many decimal places", v1=True
            )
        raise ApiError(422, "DECIMAL_PRECISION", field=field, value=value)
    return int(number.scaleb(decimals))


def _json_body(request: Request, *, v1: bool) -> dict[str, Any]:
    raw = request.get_data()
    if raw.strip() and request.mimetype != "application/json":
        if v1:
            raise ApiError(400, name="MALFORMED_REQUEST", v1=True)
        raise ApiError(415, name="UNSUPPORTED_MEDIA_TYPE")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        if v1:
            raise ApiError(400, name="MALFORMED_REQUEST", v1=True) from None
        raise ApiError(400, "MALFORMED_REQUEST_JSON", description="The request JSON is not well formed.") from None
    if not isinstance(body, dict):
        if v1:
            raise ApiError(400, name="MALFORMED_REQUEST", v1=True)
        raise ApiError(400, "MALFORMED_REQUEST_JSON", description="The request JSON is not well formed.")
    return body


def _validate_v2_refund(body: dict[str, Any]) -> None:
    """The spec's ``refund_request``: field types, lengths and the money object, before any business rule."""
    for field in body:
        if field not in _V2_REFUND_FIELDS:
            raise ApiError(
                400,
                "INVALID_PARAMETER_SYNTAX",
                field=f"/{field}",
                description=f"{field} is not a field of refund_request (this simulator refuses undefined fields)",
            )
    for field, limit in _STRING_LIMITS.items():
        if field not in body:
            continue
        value = body[field]
        if not isinstance(value, str):
            raise ApiError(400, "INVALID_PARAMETER_SYNTAX", field=f"/{field}", value=str(value))
        if not 1 <= len(value) <= limit or "\n" in value:
            raise ApiError(400, "INVALID_STRING_LENGTH", field=f"/{field}", value=value)
    if "amount" in body:
        money = body["amount"]
        if not isinstance(money, dict):
            raise ApiError(400, "INVALID_PARAMETER_SYNTAX", field="/amount")
        for part in ("currency_code", "value"):
            if part not in money:
                raise ApiError(400, "MISSING_REQUIRED_PARAMETER", field=f"/amount/{part}")
            if not isinstance(money[part], str):
                raise ApiError(400, "INVALID_PARAMETER_SYNTAX", field=f"/amount/{part}", value=str(money[part]))
        extra = set(money) - {"currency_code", "value"}
        if extra:
            raise ApiError(400, "INVALID_PARAMETER_SYNTAX", field=f"/amount/{sorted(extra)[0]}")
        if len(money["currency_code"]) != 3:
            raise ApiError(400, "INVALID_STRING_LENGTH", field="/amount/currency_code", value=money["currency_code"])
        if len(money["value"]) > 32:
            raise ApiError(400, "INVALID_STRING_LENGTH", field="/amount/value", value=money["value"])
        if not _VALUE.match(money["value"]):
            raise ApiError(400, "INVALID_PARAMETER_SYNTAX", field="/amount/value", value=money["value"])
        if money["currency_code"] not in CURRENCY_DECIMALS:
            raise ApiError(422, "INVALID_CURRENCY_CODE", field="/amount/currency_code", value=money["currency_code"])


def _validate_v1_refund(body: dict[str, Any]) -> None:
    """The v1 ``refund_request`` subset refundflow may send: amount ``{total, currency}``, invoice_number,
    description, reason (``total`` at most 10 characters, at most two decimals)."""
    for field in body:
        if field not in _V1_REFUND_FIELDS:
            raise ApiError(
                400, name="VALIDATION_ERROR", field=field, description="This field name is not defined", v1=True
            )
    for field in ("invoice_number", "description", "reason"):
        if field in body and (not isinstance(body[field], str) or not 1 <= len(body[field]) <= 127):
            raise ApiError(400, name="VALIDATION_ERROR", field=field, description="Invalid string", v1=True)
    if "amount" in body:
        amount = body["amount"]
        if not isinstance(amount, dict) or set(amount) != {"total", "currency"}:
            raise ApiError(
                400, name="VALIDATION_ERROR", field="amount", description="amount needs total and currency", v1=True
            )
        total, currency = amount["total"], amount["currency"]
        if not isinstance(total, str) or len(total) > 10 or not re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", total):
            raise ApiError(
                400, name="VALIDATION_ERROR", field="amount.total", description="Invalid amount format", v1=True
            )
        if not isinstance(currency, str) or currency not in CURRENCY_DECIMALS:
            raise ApiError(
                400, name="VALIDATION_ERROR", field="amount.currency", description="Currency is not supported", v1=True
            )
        try:
            Decimal(total)
        except InvalidOperation:
            raise ApiError(400, name="VALIDATION_ERROR", field="amount.total", v1=True) from None


# ---------------------------------------------------------------- demo scenarios (make demo)


def __getattr__(name: str) -> Any:
    """``DEMO_SCENARIOS``, built when the demo asks (it needs the local client, not the simulator's users)."""
    if name == "DEMO_SCENARIOS":
        return _demo_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _demo_scenarios() -> list[Any]:
    """The usual payment scenarios (full, partial, asynchronous success, late failure), a v1 sale refund, and an
    answer lost after PayPal made the refund: a 500 after the work, so the connector cannot tell, and the workflow
    resends under the same PayPal-Request-Id (PayPal cannot find a refund by our id) and gets the refund made."""
    from local.client import TERMINAL
    from local.scenarios import Outcome, Scenario, ScenarioContext, payment_scenarios

    def sale(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(3_000, "USD", kind="sale")
        refund_id = context.submit(outcome, context.request("sale", payment, amount=1_250, currency="USD"))
        refund = context.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        held = [item for item in context.simulator.refunds() if item.get("invoice_number") == refund_id]
        outcome.check(
            [(item["sale_id"], item["amount"]) for item in held]
            == [(payment["payment_id"], {"total": "12.50", "currency": "USD"})],
            f"PayPal v1 refunds for {refund_id}: {held}",
        )

    def answer_lost(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(4_500, "EUR")
        context.simulator.add_fault(
            FaultRule(method="POST", path=r"^/v2/payments/captures/[^/]+/refund$", status=500, when="after")
        )
        refund_id = context.submit(outcome, context.request("answer-lost", payment))
        refund = context.client.wait_for(refund_id, TERMINAL | {"NEEDS_ATTENTION"}, timeout=90)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        ours = [item for item in context.simulator.refunds() if item.get("custom_id") == refund_id]
        outcome.check(len(ours) == 1, f"{len(ours)} PayPal refunds carry {refund_id}: paid more than once?")

    def late_acquirer_reference(context: ScenarioContext, outcome: Outcome) -> None:
        payment = context.simulator.seed_payment(3_900, "EUR")
        refund_id = context.submit(outcome, context.request("late-arn", payment))
        refund = context.client.wait_for(refund_id, TERMINAL)
        outcome.check(refund["status"] == "COMPLETED", f"ended {refund['status']}")
        window = refund.get("expected_arrival") or {}
        outcome.check(window.get("to_days") == 30, f"expected arrival {window}: PayPal's documented 30 days?")
        if refund["status"] != "COMPLETED":
            return
        arn = context.simulator.assign_acquirer_reference(refund["provider_refund_id"])["acquirer_reference_number"]
        ran = context.client.http.post(f"{context.client.api_url}/_local/schedules/WatchAcquirerReferencesFunction")
        outcome.check(ran.status_code == 200, f"the acquirer reference schedule answered {ran.status_code}")
        refund = context.client.refund(refund_id)
        outcome.check(refund["acquirer_reference"] == arn, f"ARN {refund['acquirer_reference']}, PayPal has {arn}")
        outcome.notes.append(
            f"ARN {arn}; money expected {window.get('earliest_date')} to {window.get('latest_date')} "
            f"({window.get('basis')})"
        )

    return [
        *payment_scenarios("paypal", async_seed={"behaviour": MANUAL}, unknown_outcome=None),
        Scenario(
            "acquirer reference days later, read on schedule",
            "COMPLETED with PayPal's 30-day window; the ARN PayPal shows later is read by the schedule and shown",
            late_acquirer_reference,
        ),
        Scenario("v1 sale refund", "COMPLETED, one v1 refund of 12.50 USD on the sale", sale),
        Scenario(
            "answer lost after PayPal refunded (500 after the work)",
            "COMPLETED by resending under the same PayPal-Request-Id; one refund at PayPal",
            answer_lost,
            exclusive=True,
        ),
    ]
