"""PayPal as a RefundProvider, through the shared HTTP client (PayPal REST: Payments v2, and v1 for sale ids).

Facts this module relies on (developer.paypal.com, and the official spec ``payments_payment_v2.json`` 2.5):
- OAuth 2.0 client credentials: ``POST /v1/oauth2/token`` (Basic client id:secret, ``grant_type=
  client_credentials``) answers ``{access_token, token_type: "Bearer", expires_in}``; the token is kept until
  ``TOKEN_MARGIN_SECONDS`` before it expires (PayPal's are valid 32,400 s), and fetched again once when an API call
  answers 401 (PayPal revoked or forgot it);
- ``POST /v2/payments/captures/{id}/refund`` with ``{amount: {currency_code, value}, custom_id}`` (a decimal string
  in PayPal's decimals; ``custom_id`` carries our refund id back on the refund and its webhook), ``Prefer:
  return=representation`` for the whole refund, ``PayPal-Request-Id`` (the spec keeps it 45 days; a repeat
  "returns the latest status of the previous request"); 201 with status COMPLETED, PENDING, FAILED or CANCELLED;
- errors ``{name, message, debug_id, details: [{issue, description}]}``: 422 ``CAPTURE_FULLY_REFUNDED``,
  ``REFUND_AMOUNT_EXCEEDED``, ``REFUND_CAPTURE_CURRENCY_MISMATCH``, ``PENDING_CAPTURE``..., 409
  ``PREVIOUS_REQUEST_IN_PROGRESS`` (the same request id is still being processed);
- ``GET /v2/payments/refunds/{id}``, ``GET /v2/payments/captures/{id}``; a capture does not carry what was refunded
  so far: its order (``GET /v2/checkout/orders/{id}``, ``purchase_units[].payments.refunds``) lists its refunds;
- legacy v1, for merchants whose orders carry sale ids (locator ``{"kind": "sale"}``): ``POST
  /v1/payments/sale/{id}/refund`` with ``{amount: {total, currency}, invoice_number}`` (``PayPal-Request-Id`` kept
  30 days), ``GET /v1/payments/refund/{id}``, ``GET /v1/payments/sale/{id}`` and its payment
  ``GET /v1/payments/payment/{id}`` for the refunds; v1 errors ``{name, message}``: ``TRANSACTION_ALREADY_REFUNDED``,
  ``REFUND_EXCEEDED_TRANSACTION_AMOUNT``.

PayPal cannot find a refund by our reference (no refund search in Payments v2), so ``find_refund`` is unsupported
and the domain resends with the same PayPal-Request-Id while the key lives. Amounts go through PayPal's currency
profile (``amounts.py``); webhook verification is in ``inbound.py`` (intake, no API credentials).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector, secret_strings
from refundflow.connectors.http import HttpClient, HttpResponse, missing, retry_after_seconds, status_failure
from refundflow.connectors.payment import HttpRefundProvider
from refundflow.errors import (
    AlreadyDoneError,
    AmountNotRepresentable,
    ConfigurationError,
    OutcomeUnknownError,
    RefundflowError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.observability import logger
from refundflow.platforms.paypal.amounts import TITLE, from_paypal, to_paypal
from refundflow.platforms.paypal.payloads import (
    HOLDING,
    PLATFORM,
    PayloadError,
    money_of,
    order_of,
    provider_refund,
    status_of,
)
from refundflow.ports import ProviderPayment, ProviderRefund, ProviderRefundRequest

DEFAULT_API_BASE = "https://api-m.paypal.com"
TOKEN_MARGIN_SECONDS = 300.0

# PayPal's issues (v2 ``details[].issue``, v1 ``name``) in our vocabulary.
_ALREADY_REFUNDED = {"CAPTURE_FULLY_REFUNDED", "TRANSACTION_ALREADY_REFUNDED"}
_OVER_REFUND = {"REFUND_AMOUNT_EXCEEDED", "REFUND_EXCEEDED_TRANSACTION_AMOUNT"}
_CODES = {
    "REFUND_CAPTURE_CURRENCY_MISMATCH": "currency_mismatch",
    "PENDING_CAPTURE": "payment_not_captured",
    "REFUND_FAILED_INSUFFICIENT_FUNDS": "insufficient_funds",
    "INSUFFICIENT_FUNDS": "insufficient_funds",
    "REFUND_TIME_LIMIT_EXCEEDED": "refund_window_passed",
    "TRANSACTION_DISPUTED": "payment_disputed",
    "REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK": "payment_disputed",
    "DECIMALS_NOT_SUPPORTED": "amount_not_representable",
    "DECIMAL_PRECISION": "amount_not_representable",
    "INVALID_RESOURCE_ID": "resource_missing",
}


class PayPalRefundProvider(HttpRefundProvider):
    """Refunds and look-ups for one PayPal REST app (client id and secret)."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = TITLE

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        api_base: str = DEFAULT_API_BASE,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises:
        ConfigurationError: no client id or secret."""
        if not client_id or not client_secret:
            raise ConfigurationError("PayPal client id and secret are needed", platform=PLATFORM)
        self._credentials = (client_id, client_secret)
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)
        self._clock = clock
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()

    # ---------------------------------------------------------------- OAuth

    def access_token(self, *, renew: bool = False) -> str:
        """A bearer token, reused until ``TOKEN_MARGIN_SECONDS`` before it expires.

        Raises:
            RejectedError: ``provider_authentication_failed`` (PayPal refused the client credentials).
            TransientError: PayPal's token endpoint could not answer now.
        """
        with self._token_lock:
            if self._token is not None and not renew and self._clock() < self._token[1]:
                return self._token[0]
            answer = self.http.request(
                "POST",
                "/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=self._credentials,
                headers={"Accept": "application/json"},
            )
            body = answer.json_object_or_empty()
            if answer.status in (400, 401, 403):
                raise RejectedError(
                    f"PayPal refused the client credentials: {body.get('error_description') or body.get('error')}",
                    code="provider_authentication_failed",
                    platform=PLATFORM,
                )
            if not answer.ok:
                raise TransientError(
                    f"PayPal token endpoint answered {answer.status}",
                    platform=PLATFORM,
                    retry_after_seconds=retry_after_seconds(answer),
                )
            token, lifetime = body.get("access_token"), body.get("expires_in")
            if not isinstance(token, str) or not token or not isinstance(lifetime, int) or lifetime <= 0:
                raise TransientError("PayPal token answer without access_token and expires_in", platform=PLATFORM)
            self._token = (token, self._clock() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2))
            return token

    def _call(
        self, method: str, path: str, *, json: Any = None, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """One API call with the bearer token; a 401 gets one new token and one more try (PayPal processed
        nothing: the same PayPal-Request-Id goes with it)."""
        for attempt in range(2):
            token = self.access_token(renew=attempt > 0)
            answer = self.http.request(
                method,
                path,
                json=json,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json", **(headers or {})},
            )
            if answer.status != 401:
                return answer
        return answer

    # ---------------------------------------------------------------- payments

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The capture's (or sale's) captured amount and what has been refunded from it, by anyone.

        Raises:
            NotFound: PayPal does not know the capture or sale.
            TransientError: PayPal could not answer now.
            RejectedError: a capture or sale that is not completed (pending, declined), bad credentials.
        """
        if _is_sale(payment):
            return self._get_sale(payment.payment_id)
        capture = self._read(f"/v2/payments/captures/{payment.payment_id}", what="capture")
        status = str(capture.get("status"))
        if status not in {"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"}:
            raise RejectedError(
                f"capture {payment.payment_id} is {status}, not a completed capture",
                code="payment_not_captured",
                platform=PLATFORM,
            )
        captured = _money(capture)
        refunded = captured - captured
        if status == "REFUNDED":
            refunded = captured
        elif status == "PARTIALLY_REFUNDED":
            order_id = order_of(capture)
            if order_id is None:
                raise TransientError(f"capture {payment.payment_id} names no order", platform=PLATFORM)
            order = self._read(f"/v2/checkout/orders/{order_id}", what="order")
            for unit in order.get("purchase_units") or []:
                for refund in ((unit or {}).get("payments") or {}).get("refunds") or []:
                    mine = provider_refund(refund, payment_id=payment.payment_id).payment_id == payment.payment_id
                    if mine and status_of(refund) in HOLDING:
                        refunded = refunded + _money(refund)
        return ProviderPayment(
            provider=PaymentProvider.PAYPAL,
            payment_id=payment.payment_id,
            captured=captured,
            refunded=refunded,
            status=status,
            captured_at=_created(capture),
        )

    def _get_sale(self, sale_id: str) -> ProviderPayment:
        sale = self._read(f"/v1/payments/sale/{sale_id}", what="sale")
        state = str(sale.get("state"))
        if state not in {"completed", "partially_refunded", "refunded"}:
            raise RejectedError(
                f"sale {sale_id} is {state}, not a completed sale", code="payment_not_captured", platform=PLATFORM
            )
        captured = _money(sale)
        refunded = captured - captured
        if state == "refunded":
            refunded = captured
        elif state == "partially_refunded":
            parent = sale.get("parent_payment")
            if not isinstance(parent, str) or not parent:
                raise TransientError(f"sale {sale_id} names no parent payment", platform=PLATFORM)
            paid = self._read(f"/v1/payments/payment/{parent}", what="payment")
            for transaction in paid.get("transactions") or []:
                for related in (transaction or {}).get("related_resources") or []:
                    refund = (related or {}).get("refund")
                    if isinstance(refund, dict) and refund.get("sale_id") == sale_id and status_of(refund) in HOLDING:
                        refunded = refunded + _money(refund)
        return ProviderPayment(
            provider=PaymentProvider.PAYPAL,
            payment_id=sale_id,
            captured=captured,
            refunded=refunded,
            status=state,
            captured_at=_created(sale),
        )

    # ---------------------------------------------------------------- refunds

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund exactly ``request.amount`` of the capture (v2) or sale (v1), under ``PayPal-Request-Id``.

        Raises:
            TransientError: 409 (the same request id is still being processed), 429, or no connection before
                the request left: retry with the same key.
            OutcomeUnknownError: a 5xx, a read timeout or an unreadable answer after sending: PayPal may have
                made the refund; the same PayPal-Request-Id tells on the next try.
            AlreadyDoneError: the capture or sale is already fully refunded.
            RejectedError: over-refund (``amount_exceeds_refundable``), currency mismatch, a pending capture,
                insufficient funds, unknown payment (``resource_missing``), bad credentials, any other refusal
                with PayPal's issue.
            AmountNotRepresentable: an amount or currency PayPal cannot take exactly.
        """
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        money = to_paypal(request.amount)
        headers = {"PayPal-Request-Id": request.idempotency_key, "Prefer": "return=representation"}
        if _is_sale(request.payment):
            path = f"/v1/payments/sale/{request.payment_id}/refund"
            body: dict[str, Any] = {
                "amount": {"total": money["value"], "currency": money["currency_code"]},
                "invoice_number": request.refund_id,
            }
        else:
            path = f"/v2/payments/captures/{request.payment_id}/refund"
            body = {"amount": money, "custom_id": request.refund_id}
        answer = self._call("POST", path, json=body, headers=headers)
        if not answer.ok:
            raise _map_error(answer, write=True)
        try:
            result = provider_refund(answer.json_object(), payment_id=request.payment_id)
        except (PayloadError, AmountNotRepresentable, ValueError) as error:
            raise OutcomeUnknownError(f"unreadable answer to POST {path}: {error}", platform=PLATFORM) from error
        logger.info(
            "paypal refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": result.provider_refund_id,
                "status": result.status,
                "debug_id": answer.headers.get("Paypal-Debug-Id"),
            },
        )
        return result

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """``GET /v2/payments/refunds/{id}`` (``/v1/payments/refund/{id}`` for a sale).

        Raises:
            NotFound: no such refund. TransientError: PayPal could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        if _is_sale(payment):
            refund = self._read(f"/v1/payments/refund/{provider_refund_id}", what="refund")
        else:
            refund = self._read(f"/v2/payments/refunds/{provider_refund_id}", what="refund")
        try:
            return provider_refund(refund, payment_id=payment.payment_id)
        except PayloadError as error:
            raise TransientError(
                f"unreadable PayPal refund {provider_refund_id}: {error}", platform=PLATFORM
            ) from error

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """PayPal cannot find a refund by our reference.

        Raises:
            UnsupportedOperation: always (the catalog says ``find_by_reference: false``).
        """
        raise UnsupportedOperation("PayPal has no refund search by custom_id or invoice_id", platform=PLATFORM)

    def _read(self, path: str, *, what: str) -> dict[str, Any]:
        answer = self._call("GET", path)
        if not answer.ok:
            raise _map_error(answer, write=False)
        try:
            return answer.json_object()
        except ValueError as error:
            raise TransientError(f"unreadable PayPal {what}: {error}", platform=PLATFORM) from error


# ---------------------------------------------------------------- helpers


def _is_sale(payment: PaymentReference) -> bool:
    return payment.locator.get("kind") == "sale"


def _money(resource: dict[str, Any]) -> Any:
    try:
        return from_paypal(*money_of(resource))
    except PayloadError as error:
        raise TransientError(f"PayPal object without an amount: {error}", platform=PLATFORM) from error


def _issue(body: dict[str, Any]) -> str | None:
    for detail in body.get("details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("issue"), str):
            return str(detail["issue"])
    name = body.get("name")
    return name if isinstance(name, str) else None


def _map_error(answer: HttpResponse, *, write: bool) -> RefundflowError:
    """PayPal's failure in our vocabulary. ``write``: the call may have moved money."""
    body = answer.json_object_or_empty()
    issue = _issue(body)
    message = (
        f"PayPal answered {answer.status} {issue or ''}: {body.get('message') or body.get('error_description') or ''}"
    )
    message = f"{message.strip()} (debug_id {body.get('debug_id') or answer.headers.get('Paypal-Debug-Id')})"
    status = answer.status
    # 409 PREVIOUS_REQUEST_IN_PROGRESS: the first request with this PayPal-Request-Id will finish; retry with it.
    shared = status_failure(answer, message, platform=PLATFORM, write=write)
    if shared is not None:
        return shared
    if issue in _ALREADY_REFUNDED:
        return AlreadyDoneError(message, code="already_refunded", platform=PLATFORM)
    if issue in _OVER_REFUND:
        return RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
    if status == 404 or issue == "INVALID_RESOURCE_ID":
        return missing(message, platform=PLATFORM, write=write)
    return RejectedError(message, code=_CODES.get(issue or "", (issue or "invalid_request").lower()), platform=PLATFORM)


# ---------------------------------------------------------------- factory


class PayPalSettings(settings.EnvModel):
    """PayPal's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="PAYPAL_API_BASE")


def _build(config: PayPalSettings, name: str, secret: Mapping[str, Any]) -> PayPalRefundProvider:
    """Raises: ConfigurationError: a secret of another shape."""
    client_id, client_secret = secret_strings(secret, name, ("client_id", "client_secret"), platform=PLATFORM)
    return PayPalRefundProvider(client_id=client_id, client_secret=client_secret, api_base=config.api_base)


connector: SecretBoundConnector[PayPalSettings, PayPalRefundProvider] = SecretBoundConnector(
    PLATFORM, PayPalSettings, _build
)
"""The process's PayPalRefundProvider, built from PayPalSettings and its API secret (``<SecretsPrefix>{PLATFORM}``),
again when either changes (see refundflow.connectors.factory)."""


def _created(resource: dict[str, Any]) -> datetime | None:
    """A capture's or sale's ``create_time`` (RFC 3339, payments v2 ``capture.create_time``; v1 sale likewise): when
    it was captured. None when absent or not a date-time with an offset (the tender is then ordered last)."""
    value = resource.get("create_time")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
