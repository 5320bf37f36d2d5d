"""WooCommerce as a RefundProvider and a TicketPlatform: the REST API v3 (``/wp-json/wc/v3``) of one store, through the
shared HTTP client, with a REST API key (read/write) as HTTP Basic credentials.

What WooCommerce documents and this module relies on (woocommerce.github.io/woocommerce-rest-api-docs: "Authentication",
"Orders", "Order notes", "Order refunds"; the v3 order refunds controller and ``wc_create_refund`` in
github.com/woocommerce/woocommerce, plugins/woocommerce/includes/rest-api/Controllers/Version3/
class-wc-rest-order-refunds-controller.php and includes/wc-order-functions.php):

- HTTP Basic ``consumer_key:consumer_secret`` over HTTPS; errors are WordPress REST errors
  ``{"code", "message", "data": {"status"}}`` (401 ``woocommerce_rest_authentication_error`` for a wrong key,
  404 ``woocommerce_rest_shop_order_invalid_id`` / ``woocommerce_rest_invalid_order_id`` for an unknown order);
- ``GET /orders/{id}``: the order with ``currency``, ``total`` (a decimal string), ``date_paid``, ``status``,
  ``number``, ``billing``, ``meta_data`` ``[{id, key, value}]`` and ``refunds`` ``[{id, reason, total}]`` (a
  refund's ``total`` is negative: ``"-25.00"``);
- ``POST /orders/{id}/refunds`` with ``amount`` (a decimal string), ``reason``, ``api_refund`` (true: the order's
  gateway refunds the money inside the call; a refusal deletes the refund and answers 500
  ``woocommerce_rest_cannot_create_order_refund`` with the gateway's words, and so does an amount above what is
  left to refund, "Invalid refund amount."), ``api_restock``, ``meta_data``; a negative amount is 400
  ``woocommerce_rest_invalid_order_refund``. The answer's ``refunded_payment`` says whether the gateway moved the
  money. No idempotency key exists: a replayed POST makes a second refund. ``meta_data`` is saved after the refund
  (and its gateway call) while ``reason`` is saved with it, so our refund id travels in both;
- ``GET /orders/{id}/refunds`` (``per_page`` at most 100, ``X-WP-TotalPages``) and ``GET /orders/{id}/refunds/{rid}``;
- ``GET /orders/{id}/notes`` and ``POST /orders/{id}/notes`` ``{"note", "customer_note": false}`` (a private note,
  never e-mailed to the customer); ``PUT /orders/{id}`` ``{"meta_data": [{"key", "value"}]}`` sets a meta field
  (an existing key is updated in place).

No rate limit in WooCommerce core's REST API: a host, CDN or security plugin may answer 429 with Retry-After, which
is a TransientError carrying it.
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, NoReturn

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector
from refundflow.connectors.http import HttpClient, HttpResponse, missing, status_failure
from refundflow.connectors.payment import HttpRefundProvider
from refundflow.errors import (
    AmountNotRepresentable,
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
)
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.money import Money
from refundflow.observability import logger
from refundflow.ports import (
    PaymentCapabilities,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
    TicketPlatform,
    TicketUpdate,
)

PLATFORM = "woocommerce"
DEFAULT_API_BASE = "https://shop.example.com/wp-json/wc/v3"
DEFAULT_STATUS_META_KEY = "_refundflow_refund_status"
REFUND_ID_META_KEY = "_refundflow_refund_id"
ORDER_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: the id goes into the request's path
META_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Our refund id in a refund's reason: "Refund requested (refundflow rf_...)".
REASON_REFERENCE = re.compile(r"\(refundflow (rf_[A-Za-z0-9_-]{1,80})\)")
REFUNDS_PER_PAGE = 100  # the REST API's maximum per_page
MAX_REFUND_PAGES = 10
CANNOT_CREATE = "woocommerce_rest_cannot_create_order_refund"
INVALID_REFUND = "woocommerce_rest_invalid_order_refund"
OVER_REFUND_WORDS = "Invalid refund amount"
TRY_AGAIN_WORDS = "please try again"
# Orders whose money was taken (WooCommerce's "paid" statuses, wc_get_is_paid_statuses) or given back in full.
PAID_STATUSES = frozenset({"processing", "completed", "on-hold", "refunded"})


class WooCommerceConnector(HttpRefundProvider, TicketPlatform):
    """One store: refunds through the order's gateway, and the order as the ticket of its refund request."""

    name = PLATFORM
    title: ClassVar[str] = "WooCommerce"

    def __init__(
        self,
        http: HttpClient,
        *,
        status_meta_key: str | None = DEFAULT_STATUS_META_KEY,
        capabilities: PaymentCapabilities | None = None,
    ) -> None:
        self._http = http
        self.status_meta_key = status_meta_key
        self._capabilities = capabilities

    # ------------------------------------------------------------------ payment

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The order as a payment: its total captured (once paid), the sum of its refunds refunded.

        Raises:
            NotFound: no such order. TransientError: the store could not answer.
            RejectedError: bad credentials, or an order that was never paid (pending, failed, cancelled).
        """
        order = self._order(_order_id(payment.payment_id))
        currency = str(order.get("currency", ""))
        status = str(order.get("status", ""))
        if not order.get("date_paid") and status not in PAID_STATUSES:
            raise RejectedError(
                f"WooCommerce order {payment.payment_id} was never paid (status {status})",
                code="payment_not_captured",
                platform=PLATFORM,
            )
        captured = self._amount(order.get("total"), currency)
        refunded = Money.zero(captured.currency)
        for summary in order.get("refunds") or []:
            if isinstance(summary, dict):
                refunded = refunded + self._amount(summary.get("total"), currency)
        return ProviderPayment(
            provider=PaymentProvider.WOOCOMMERCE,
            payment_id=payment.payment_id,
            captured=captured,
            refunded=refunded,
            status=status,
        )

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund through the order's gateway (``api_refund`` true), after looking for our refund among the order's
        refunds: WooCommerce takes no idempotency key, so a resend that found nothing is the only one.

        Raises:
            TransientError: the store could not be reached or rate-limited us before anything was done.
            OutcomeUnknownError: sent and no readable answer (a timeout, a 5xx without WooCommerce's code):
                find_refund before anything is resent.
            RejectedError: over-refund (``amount_exceeds_refundable``), the gateway's refusal
                (``gateway_refused``, WooCommerce deleted the refund), an unknown order (``resource_missing``),
                another currency than the order's (``currency_mismatch``), a non-positive amount, bad credentials.
            AmountNotRepresentable: not exactly an amount of the currency (checked before anything is sent).
        """
        order_id = _order_id(request.payment_id)
        amount = self.money.to_platform(request.amount)
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        try:
            currency = str(self._order(order_id).get("currency", ""))
        except NotFound as error:
            raise RejectedError(error.message, code="resource_missing", platform=PLATFORM) from error
        if currency != request.amount.currency:
            # WooCommerce refunds in the order's currency whatever is asked: never send another one
            raise RejectedError(
                f"refund in {request.amount.currency} of WooCommerce order {order_id} in {currency}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        found = self._find(order_id, currency, request.refund_id)
        if found is not None:
            logger.info("woocommerce refund found before sending", extra={"refund_id": request.refund_id})
            return found
        body = {
            "amount": str(amount),
            "reason": f"{request.reason.value.replace('_', ' ').capitalize()} (refundflow {request.refund_id})",
            "api_refund": True,
            "api_restock": False,
            "meta_data": [{"key": REFUND_ID_META_KEY, "value": request.refund_id}],
        }
        response = self.http.request("POST", f"orders/{order_id}/refunds", json=body)
        if not response.ok:
            self._refund_failed(response, request)
        made = self._refund(response, payment_id=order_id, currency=request.amount.currency)
        if made.amount != request.amount:
            raise OutcomeUnknownError(
                f"WooCommerce answered refund {made.provider_refund_id} with {made.amount}, not {request.amount}",
                platform=PLATFORM,
            )
        logger.info(
            "woocommerce refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": made.provider_refund_id,
                "status": made.status,
            },
        )
        return made

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """Raises: NotFound (no such refund of that order), TransientError, RejectedError."""
        order_id = _order_id(payment.payment_id)
        refund_id = _order_id(provider_refund_id)
        response = self.http.request("GET", f"orders/{order_id}/refunds/{refund_id}")
        if not response.ok:
            self._fail(response, f"read refund {refund_id} of order {order_id}", write=False)
        currency = str(self._order(order_id).get("currency", ""))
        return self._refund(response, payment_id=order_id, currency=currency)

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Our refund among the order's refunds, by the meta field we set or our refund id in its reason (saved with
        the refund, before its gateway call; the meta only after it), or None.

        Order notes are not searched: the refund object carries the reason from before its gateway call, and a
        gateway's note is written after it, so a note never knows of a refund the refunds list does not.

        Raises: TransientError; NotFound for an unknown order is a RejectedError (nothing can be refunded there).
        """
        order_id = _order_id(payment.payment_id)
        try:
            currency = str(self._order(order_id).get("currency", ""))
        except NotFound as error:
            raise RejectedError(error.message, code="resource_missing", platform=PLATFORM) from error
        return self._find(order_id, currency, refund_id)

    def _find(self, order_id: str, currency: str, refund_id: str) -> ProviderRefund | None:
        for page in range(1, MAX_REFUND_PAGES + 1):
            response = self.http.request(
                "GET", f"orders/{order_id}/refunds", params={"per_page": REFUNDS_PER_PAGE, "page": page}
            )
            if not response.ok:
                self._fail(response, f"list the refunds of order {order_id}", write=False)
            items = response.json()
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and _reference(item) == refund_id:
                    return self._refund_item(item, payment_id=order_id, currency=currency)
            if page >= _total_pages(response):
                return None
        return None

    # ------------------------------------------------------------------ the order as a ticket

    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """The order as GET /orders/{id} answers it, plus ``meta``: its meta fields by key (the last value of a key
        that repeats), so a mapping reads ``ticket.meta._refund_requested``."""
        order = self._order(_order_id(ticket_id))
        meta: dict[str, Any] = {}
        for entry in order.get("meta_data") or []:
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                value = entry.get("value")
                meta[entry["key"]] = value if isinstance(value, str | int | float | bool) else None
        return {**order, "meta": meta}

    def has_update(self, ticket_id: str, marker: str) -> bool:
        order_id = _order_id(ticket_id)
        response = self.http.request("GET", f"orders/{order_id}/notes", params={"type": "internal"})
        if not response.ok:
            self._fail(response, f"read the notes of order {order_id}", write=False)
        notes = response.json()
        return any(isinstance(note, dict) and marker in str(note.get("note", "")) for note in notes or [])

    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        """The state meta field first (writing the same value again changes nothing), then the private note with the
        marker: until the note is there, ``has_update`` says no and both are written again."""
        order_id = _order_id(ticket_id)
        if self.status_meta_key and update.label:
            body = {"meta_data": [{"key": self.status_meta_key, "value": update.label}]}
            response = self.http.request("PUT", f"orders/{order_id}", json=body)
            if not response.ok:
                self._fail(response, f"set the refund status of order {order_id}", write=True)
        note = {"note": update.text, "customer_note": False}
        response = self.http.request("POST", f"orders/{order_id}/notes", json=note)
        if not response.ok:
            self._fail(response, f"add a note to order {order_id}", write=True)

    # ------------------------------------------------------------------ helpers

    def _order(self, order_id: str) -> dict[str, Any]:
        response = self.http.request("GET", f"orders/{order_id}")
        if not response.ok:
            self._fail(response, f"read order {order_id}", write=False)
        order = response.json()
        if not isinstance(order, dict):
            raise RejectedError(f"WooCommerce answered order {order_id} with no order", platform=PLATFORM)
        return order

    def _amount(self, value: Any, currency: str) -> Money:
        """A WooCommerce decimal string (a refund's total is negative) as a positive Money."""
        try:
            number = abs(Decimal(str(value)))
        except InvalidOperation as error:
            raise RejectedError(f"WooCommerce sent an unreadable amount {value!r}", platform=PLATFORM) from error
        return self.money.from_platform(number, currency)

    def _refund(self, response: HttpResponse, *, payment_id: str, currency: str) -> ProviderRefund:
        item = response.json()
        if not isinstance(item, dict):
            raise OutcomeUnknownError("WooCommerce answered with no refund object", platform=PLATFORM)
        return self._refund_item(item, payment_id=payment_id, currency=currency)

    def _refund_item(self, item: dict[str, Any], *, payment_id: str, currency: str) -> ProviderRefund:
        """A refund object. ``refunded_payment`` false: WooCommerce recorded it but no gateway moved the money (made
        without ``api_refund``, or "Refund manually" in wp-admin): FAILED for a refund of ours, so it is never taken
        for money returned; the refund record stays on the order until a person deletes it."""
        try:
            amount = self._amount(item.get("amount"), currency)
        except AmountNotRepresentable as error:
            raise OutcomeUnknownError(f"unreadable WooCommerce refund amount: {error}", platform=PLATFORM) from error
        moved = item.get("refunded_payment") is True
        ours = _reference(item)
        return ProviderRefund(
            provider=PaymentProvider.WOOCOMMERCE,
            provider_refund_id=str(item.get("id")),
            payment_id=payment_id,
            amount=amount,
            status=ProviderRefundStatus.SUCCEEDED if moved or ours is None else ProviderRefundStatus.FAILED,
            refund_id=ours,
            failure_reason=None
            if moved or ours is None
            else "WooCommerce recorded the refund without its gateway (refunded_payment false): no money moved",
        )

    def _refund_failed(self, response: HttpResponse, request: ProviderRefundRequest) -> NoReturn:
        code, words = _error(response)
        message = f"WooCommerce could not refund order {request.payment_id}: {response.status} {code} {words}".strip()
        if code == CANNOT_CREATE and TRY_AGAIN_WORDS not in words.lower():
            # wc_create_refund failed and deleted the refund it started: nothing moved
            reason = "amount_exceeds_refundable" if OVER_REFUND_WORDS.lower() in words.lower() else "gateway_refused"
            raise RejectedError(message, code=reason, platform=PLATFORM)
        if code == INVALID_REFUND:
            raise RejectedError(message, code="invalid_amount", platform=PLATFORM)
        self._fail(response, f"refund order {request.payment_id}", write=True)

    def _fail(self, response: HttpResponse, what: str, *, write: bool) -> NoReturn:
        code, words = _error(response)
        message = f"WooCommerce could not {what}: {response.status} {code} {words}".strip()
        general = status_failure(response, message, platform=PLATFORM, write=write, in_progress=None)
        if general is not None:
            raise general
        if response.status == 404:
            raise missing(message, platform=PLATFORM, write=False)  # unknown order or refund, on a read or a write
        raise RejectedError(message, code=f"woocommerce_{code or response.status}"[:60], platform=PLATFORM)


def _error(response: HttpResponse) -> tuple[str, str]:
    """WordPress REST's ``code`` and ``message`` (empty when the body is not one)."""
    try:
        body = response.json() if response.body.lstrip().startswith(b"{") else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return "", ""
    code = re.sub(r"[^a-z0-9_]", "", str(body.get("code", "")).lower())
    return code, str(body.get("message", ""))[:300]


def _reference(item: dict[str, Any]) -> str | None:
    """Our refund id on a refund object: the meta field, else the reason."""
    for entry in item.get("meta_data") or []:
        if isinstance(entry, dict) and entry.get("key") == REFUND_ID_META_KEY and isinstance(entry.get("value"), str):
            return str(entry["value"])
    found = REASON_REFERENCE.search(str(item.get("reason") or ""))
    return found.group(1) if found else None


def _total_pages(response: HttpResponse) -> int:
    value = next((item for key, item in response.headers.items() if key.lower() == "x-wp-totalpages"), "1")
    return int(value) if str(value).isdigit() else 1


def _order_id(value: str) -> str:
    if not ORDER_ID.fullmatch(value or ""):
        raise RejectedError(f"not a WooCommerce order id: {value!r}", code="invalid_ticket_id", platform=PLATFORM)
    return value


class WooCommerceSettings(settings.EnvModel):
    """WooCommerce's own settings (its catalog entry's ``settings``, set on its two functions only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="WOOCOMMERCE_API_BASE")
    status_meta_key: str = Field(default=DEFAULT_STATUS_META_KEY, alias="WOOCOMMERCE_REFUND_STATUS_META_KEY")


def _build(config: WooCommerceSettings, name: str, secret: Any) -> WooCommerceConnector:
    """From WOOCOMMERCE_API_BASE, WOOCOMMERCE_REFUND_STATUS_META_KEY and the API secret ``{"consumer_key": "ck_...",
    "consumer_secret": "cs_..."}`` (a REST API key with Read/Write permissions).

    Raises:
        ConfigurationError: a secret of another shape, or a meta key that is not one.
    """
    key, secret_value = secret.get("consumer_key"), secret.get("consumer_secret")
    if not isinstance(key, str) or not key or ":" in key or not isinstance(secret_value, str) or not secret_value:
        raise ConfigurationError(f"secret {name}: consumer_key and consumer_secret must be set (a REST API key)")
    if config.status_meta_key and not META_KEY.fullmatch(config.status_meta_key):
        raise ConfigurationError("WOOCOMMERCE_REFUND_STATUS_META_KEY must be a meta key (letters, digits, _ and -)")
    credentials = base64.b64encode(f"{key}:{secret_value}".encode()).decode()
    http = HttpClient(
        platform=PLATFORM,
        base_url=config.api_base,
        default_headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
    )
    return WooCommerceConnector(http, status_meta_key=config.status_meta_key or None)


connector: SecretBoundConnector[WooCommerceSettings, WooCommerceConnector] = SecretBoundConnector(
    PLATFORM, WooCommerceSettings, _build
)
"""The process's WooCommerceConnector, from WooCommerceSettings and its API secret (``<SecretsPrefix>woocommerce``)."""
