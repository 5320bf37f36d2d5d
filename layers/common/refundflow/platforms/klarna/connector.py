"""Klarna as a RefundProvider: the Order Management API v1 refunds a captured order.

Through the shared HTTP client: no maintained Python SDK covers Order Management (Klarna's own Python library is for
Klarna Checkout v2 and was last released in 2015), and we use three endpoints. What Klarna documents and this module
relies on (docs.klarna.com, "Refund orders and manage authorizations", "Error codes and messages for Order
Management", "Escalation and retry policy"):

- HTTP Basic auth with the API credential's username and password; base URL per region and environment
  (``https://api[-na|-oc][.playground].klarna.com``);
- ``POST /ordermanagement/v1/orders/{order_id}/refunds`` with ``{refunded_amount, description, reference}``:
  ``refunded_amount`` in minor units of the order's currency (the body names no currency), ``reference`` (at most
  255 characters, "included in the settlement files") carries our refund id; the answer is ``201 Created`` with
  the new refund's id in the ``Refund-Id`` header and its URL in ``Location``, and no body. A refund has no status:
  the 201 means it was made, so the outcome is read back (``pollable``) and never pending;
- ``Klarna-Idempotency-Key`` (a UUID; Klarna asks for UUIDv5): a retry under the key within 24 hours is executed
  once and answered with the first result; only the key matters, not the body;
- ``GET /ordermanagement/v1/orders/{order_id}``: ``purchase_currency``, ``captured_amount``, ``refunded_amount``,
  ``status`` and ``refunds[]`` (each ``{refund_id, refunded_amount, refunded_at, reference, ...}``): the payment
  look-up, and the find by our reference; ``GET .../refunds/{refund_id}``: one refund;
- errors ``{error_code, error_messages, correlation_id}``: 403 ``REFUND_NOT_ALLOWED`` (no captures, cancelled,
  fully refunded, or more than was captured: Klarna tells them apart only in the message, so the order is read to
  name the reason), 404 ``NO_SUCH_ORDER`` / ``NOT_FOUND``, 409 ``CONFLICT``, 413/422 invalid requests, 429
  ``TOO_MANY_REQUESTS``, 500 ``INTERNAL_SERVER_ERROR`` / ``UNEXPECTED_ERROR``, 502-504 ``TEMPORARILY_UNAVAILABLE``.

Klarna sends no webhook for refunds (its Notifications API covers Klarna Network payment requests, not Order
Management orders), so this platform has no inbound part.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector, secret_strings
from refundflow.connectors.http import HttpClient, HttpResponse, missing, status_failure
from refundflow.connectors.payment import HttpRefundProvider
from refundflow.errors import (
    AlreadyDoneError,
    AmountNotRepresentable,
    ConfigurationError,
    OutcomeUnknownError,
    RefundflowError,
    RejectedError,
    TransientError,
)
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.observability import logger
from refundflow.platforms.klarna.amounts import from_klarna, to_klarna
from refundflow.ports import (
    PaymentCapabilities,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
)

PLATFORM = "klarna"
DEFAULT_API_BASE = "https://api.playground.klarna.com"
ORDERS = "/ordermanagement/v1/orders"
MAX_TEXT = 255
# Our idempotency keys become UUIDv5 in this namespace: deterministic, and the UUID Klarna asks for.
KEY_NAMESPACE = uuid.UUID("6f1d3c2e-5a4b-4c8d-9e7f-0a1b2c3d4e5f")

# ``description`` is shown to the customer.
_DESCRIPTIONS: Mapping[RefundReason, str] = {
    RefundReason.PRODUCT_RETURN: "Refund for your returned items",
    RefundReason.DAMAGED: "Refund for damaged items",
    RefundReason.WRONG_ITEM: "Refund for a wrong item",
    RefundReason.NOT_AS_DESCRIBED: "Refund for items not as described",
    RefundReason.NOT_RECEIVED: "Refund for items not received",
    RefundReason.DELIVERY_FAILED: "Refund for a failed delivery",
    RefundReason.CHANGED_MIND: "Refund for your returned items",
    RefundReason.DUPLICATE_CHARGE: "Refund of a duplicate charge",
    RefundReason.FRAUDULENT: "Refund of an unauthorised purchase",
    RefundReason.GOODWILL: "Goodwill refund",
    RefundReason.OTHER: "Refund",
}


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Refund(_Payload):
    refund_id: str = Field(min_length=1)
    refunded_amount: StrictInt
    reference: str | None = None
    refunded_at: str | None = None


class _Order(_Payload):
    order_id: str = Field(min_length=1)
    status: str = ""
    purchase_currency: str = Field(min_length=3, max_length=3)
    captured_amount: StrictInt = 0
    refunded_amount: StrictInt = 0
    refunds: list[_Refund] = Field(default_factory=list)


class _Error(_Payload):
    error_code: str | None = None
    error_messages: list[str] = Field(default_factory=list)
    correlation_id: str | None = None


def klarna_key(idempotency_key: str) -> str:
    """Our key as Klarna takes it: a UUIDv5 of it (the same key always gives the same UUID)."""
    return str(uuid.uuid5(KEY_NAMESPACE, idempotency_key))


class KlarnaRefundProvider(HttpRefundProvider):
    """Refunds and look-ups for one Klarna API credential (username and password)."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = "Klarna"

    def __init__(
        self,
        *,
        username: str,
        password: str,
        api_base: str = DEFAULT_API_BASE,
        http: HttpClient | None = None,
        capabilities: PaymentCapabilities | None = None,
    ) -> None:
        """Raises:
        ConfigurationError: no username or password."""
        if not username or not password:
            raise ConfigurationError("Klarna API username and password are needed", platform=PLATFORM)
        self._credentials = (username, password)
        self._http_base_url = api_base.rstrip("/")
        self._http = http
        self._capabilities = capabilities
        # An order's currency never changes: kept so that reading a refund costs one call.
        self._currencies: dict[str, str] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- the order

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The order's captured amount and what has been refunded from it, by anyone.

        Raises:
            NotFound: Klarna does not know the order. TransientError: Klarna could not answer now.
            RejectedError: an order with nothing captured (``payment_not_captured``), bad credentials.
        """
        order = self._order(payment.payment_id)
        if order.captured_amount <= 0:
            raise RejectedError(
                f"Klarna order {payment.payment_id} is {order.status or 'not captured'}: nothing was captured",
                code="payment_not_captured",
                platform=PLATFORM,
            )
        return ProviderPayment(
            provider=PaymentProvider.KLARNA,
            payment_id=payment.payment_id,
            captured=_money(order.captured_amount, order.purchase_currency),
            refunded=_money(order.refunded_amount, order.purchase_currency),
            status=order.status or "CAPTURED",
        )

    # ---------------------------------------------------------------- refunds

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund ``request.amount`` of the order under ``Klarna-Idempotency-Key``; Klarna's 201 means it was made.

        Raises:
            TransientError: 409 (a conflicting request on the order or key), 429, or a connection that failed
                before the request left: retry with the same key.
            OutcomeUnknownError: a 5xx, a read timeout, or a 201 without the refund's id: Klarna may have made it;
                the order's refunds tell (find by our reference), or the same key within 24 hours.
            AlreadyDoneError: the order is already fully refunded.
            RejectedError: more than is left (``amount_exceeds_refundable``), nothing captured
                (``payment_not_captured``), unknown order (``resource_missing``), bad credentials, any other
                refusal with Klarna's error code.
            AmountNotRepresentable: a currency Klarna does not take, or more than one refund may carry.
        """
        order_id = request.payment.payment_id
        amount = to_klarna(request.amount)
        if amount <= 0:
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        body = {
            "refunded_amount": amount,
            "description": _DESCRIPTIONS[request.reason][:MAX_TEXT],
            "reference": request.refund_id[:MAX_TEXT],
        }
        answer = self.http.request(
            "POST",
            f"{ORDERS}/{order_id}/refunds",
            json=body,
            headers={"Klarna-Idempotency-Key": klarna_key(request.idempotency_key), "Accept": "application/json"},
            auth=self._credentials,
        )
        if answer.status != 201:
            error = _error_of(answer)
            if answer.status == 403 and error.error_code == "REFUND_NOT_ALLOWED":
                raise self._not_allowed(request, error)
            raise _map_error(answer, error, write=True)
        refund_id = _created_refund_id(answer)
        if refund_id is None:
            raise OutcomeUnknownError(
                f"Klarna answered 201 for order {order_id} without the refund's id", platform=PLATFORM
            )
        logger.info("klarna refund created", extra={"refund_id": request.refund_id, "provider_refund_id": refund_id})
        return ProviderRefund(
            provider=PaymentProvider.KLARNA,
            provider_refund_id=refund_id,
            payment_id=order_id,
            amount=request.amount,
            status=ProviderRefundStatus.SUCCEEDED,
            refund_id=request.refund_id,
        )

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """``GET .../orders/{order_id}/refunds/{refund_id}``: a refund Klarna holds was made.

        Raises:
            NotFound: no such refund on the order. TransientError: Klarna could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        order_id = payment.payment_id
        currency = self._currency(order_id)
        answer = self._get(f"{ORDERS}/{order_id}/refunds/{provider_refund_id}")
        try:
            refund = _Refund.model_validate(answer.json())
        except (ValidationError, ValueError) as error:
            raise TransientError(f"unreadable Klarna refund {provider_refund_id}", platform=PLATFORM) from error
        return _provider_refund(refund, order_id, currency)

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Our refund among the order's refunds, by the ``reference`` we set (our refund id), or None.

        Raises:
            TransientError: Klarna could not answer now. NotFound: Klarna does not know the order.
        """
        order = self._order(payment.payment_id)
        for refund in order.refunds:
            if refund.reference == refund_id[:MAX_TEXT]:
                return _provider_refund(refund, payment.payment_id, order.purchase_currency)
        return None

    # ---------------------------------------------------------------- helpers

    def _order(self, order_id: str) -> _Order:
        answer = self._get(f"{ORDERS}/{order_id}")
        try:
            order = _Order.model_validate(answer.json())
        except (ValidationError, ValueError) as error:
            raise TransientError(f"unreadable Klarna order {order_id}", platform=PLATFORM) from error
        with self._lock:
            self._currencies[order_id] = order.purchase_currency
        return order

    def _currency(self, order_id: str) -> str:
        with self._lock:
            known = self._currencies.get(order_id)
        return known if known is not None else self._order(order_id).purchase_currency

    def _get(self, path: str) -> HttpResponse:
        answer = self.http.request("GET", path, headers={"Accept": "application/json"}, auth=self._credentials)
        if answer.status != 200:
            raise _map_error(answer, _error_of(answer), write=False)
        return answer

    def _not_allowed(self, request: ProviderRefundRequest, error: _Error) -> RefundflowError:
        """A 403 REFUND_NOT_ALLOWED named by the order's figures (Klarna's code is the same for every reason; the
        refusal made nothing, so reading the order now is safe)."""
        message = _message(403, error)
        try:
            order = self._order(request.payment.payment_id)
        except RefundflowError:
            return RejectedError(message, code="refund_not_allowed", platform=PLATFORM)
        left = order.captured_amount - order.refunded_amount
        if order.captured_amount <= 0:
            return RejectedError(message, code="payment_not_captured", platform=PLATFORM)
        if left <= 0:
            return AlreadyDoneError(message, code="already_refunded", platform=PLATFORM)
        try:
            asked = to_klarna(request.amount)
        except AmountNotRepresentable:
            asked = 0
        if asked > left:
            return RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
        return RejectedError(message, code="refund_not_allowed", platform=PLATFORM)


def _money(value: int, currency: str) -> Money:
    try:
        return from_klarna(value, currency)
    except AmountNotRepresentable as error:
        raise TransientError(
            f"Klarna amount {value} {currency} cannot be read: {error.message}", platform=PLATFORM
        ) from error


def _provider_refund(refund: _Refund, order_id: str, currency: str) -> ProviderRefund:
    return ProviderRefund(
        provider=PaymentProvider.KLARNA,
        provider_refund_id=refund.refund_id,
        payment_id=order_id,
        amount=_money(refund.refunded_amount, currency),
        status=ProviderRefundStatus.SUCCEEDED,
        refund_id=refund.reference or None,
    )


def _created_refund_id(answer: HttpResponse) -> str | None:
    """The new refund's id: the ``Refund-Id`` header, else the last segment of ``Location``."""
    headers = {key.lower(): value for key, value in answer.headers.items()}
    refund_id = (headers.get("refund-id") or "").strip()
    if refund_id:
        return refund_id
    location = (headers.get("location") or "").rstrip("/")
    if "/refunds/" in location:
        return location.rsplit("/", 1)[1] or None
    return None


def _error_of(answer: HttpResponse) -> _Error:
    try:
        return _Error.model_validate(answer.json() or {})
    except (ValidationError, ValueError):
        return _Error()


def _message(status: int, error: _Error) -> str:
    messages = "; ".join(error.error_messages) or "no message"
    code = f" {error.error_code}" if error.error_code else ""
    return f"Klarna {status}{code}: {messages} (correlation_id {error.correlation_id})"


def _map_error(answer: HttpResponse, error: _Error, *, write: bool) -> RefundflowError:
    """Klarna's failure in our vocabulary. ``write``: the call may have moved money."""
    status = answer.status
    message = _message(status, error)
    code = (error.error_code or str(status)).lower()
    if status == 403 and error.error_code is not None:
        return RejectedError(message, code=f"klarna_{code}", platform=PLATFORM)
    # 409 CONFLICT: another request on the order (or under the key) is being processed; the key makes a retry safe.
    shared = status_failure(answer, message, platform=PLATFORM, write=write, in_progress="conflict")
    if shared is not None:
        return shared
    if status == 404:
        return missing(message, platform=PLATFORM, write=write)
    return RejectedError(message, code=f"klarna_{code}", platform=PLATFORM)


# ---------------------------------------------------------------- factory


class KlarnaSettings(settings.EnvModel):
    """Klarna's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="KLARNA_API_BASE")


def _build(config: KlarnaSettings, name: str, secret: Mapping[str, Any]) -> KlarnaRefundProvider:
    """From KLARNA_API_BASE and the API secret ``{"username": ..., "password": ...}``.

    Raises:
        ConfigurationError: a secret of another shape.
    """
    username, password = secret_strings(secret, name, ("username", "password"), platform=PLATFORM)
    return KlarnaRefundProvider(username=username, password=password, api_base=config.api_base)


connector: SecretBoundConnector[KlarnaSettings, KlarnaRefundProvider] = SecretBoundConnector(
    PLATFORM, KlarnaSettings, _build
)
"""The process's KlarnaRefundProvider, built from KlarnaSettings and its API secret (``<SecretsPrefix>klarna``),
again when either changes (see refundflow.connectors.factory)."""
