"""Square as a RefundProvider, through the shared HTTP client (Square API v2: Refunds and Payments).

Facts this module relies on (developer.squareup.com, and the official spec ``api.json`` of square/connect-api-
specification, Square-Version 2025-08-20):
- auth ``Authorization: Bearer <access token>`` (a personal access token of the application, or a seller's OAuth
  token with ``PAYMENTS_WRITE`` and ``PAYMENTS_READ``); ``Square-Version`` pins the API version;
- ``POST /v2/refunds`` (``RefundPayment``) with ``{idempotency_key, amount_money: {amount, currency}, payment_id,
  reason}``: the key is in the body, at most 45 characters; the same key with the same request answers the
  first refund again, with another request ``IDEMPOTENCY_KEY_REUSED``; the amount is in the smallest
  denomination and at most the payment's ``total_money`` less what was refunded; ``reason`` ≤ 192 characters
  carries the merchant's reference and our refund id (``refunds.py``); the answer is ``{refund: PaymentRefund}``,
  usually ``PENDING`` at first, then ``COMPLETED``, ``REJECTED`` or ``FAILED``;
- ``GET /v2/refunds/{refund_id}`` (``GetPaymentRefund``) and ``GET /v2/payments/{payment_id}`` (``GetPayment``:
  ``status``, ``total_money``, ``refunded_money``, ``refund_ids``);
- errors ``{errors: [{category, code, detail, field}]}``: ``REFUND_AMOUNT_INVALID`` (more than is left),
  ``REFUND_ALREADY_PENDING``, ``PAYMENT_NOT_REFUNDABLE``, ``REFUND_ERROR_PAYMENT_NEEDS_COMPLETION``,
  ``IDEMPOTENCY_KEY_REUSED``, ``NOT_FOUND``, ``UNAUTHORIZED``, ``RATE_LIMITED``, ``INTERNAL_SERVER_ERROR``...

Found by our reference: the payment lists its refunds (``refund_ids``) and each refund echoes the ``reason`` we
sent, which ends with our refund id: ``find_refund`` reads them. Square publishes no retention period for
idempotency keys (the catalog declares none), so after an unknown outcome the domain finds before it resends.

Not the official SDK ``squareup`` (46.0.0): it fits (base URL, timeouts and the body key can all be set) but it
is 31 MB of generated code on a second HTTP stack (httpx, httpcore, anyio, h11) beside the layer's ``requests``,
imports in about 210 ms with the bytecode cache and 850 ms without (its client and refunds resource), and
retries on its own unless told not to; we use three endpoints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector, secret_strings
from refundflow.connectors.http import HttpClient, HttpResponse, retry_after_seconds
from refundflow.connectors.payment import HttpRefundProvider
from refundflow.errors import (
    AlreadyDoneError,
    AmountNotRepresentable,
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RefundflowError,
    RejectedError,
    TransientError,
)
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.money import Money
from refundflow.observability import logger
from refundflow.platforms.square.amounts import PLATFORM, from_square, to_square
from refundflow.platforms.square.refunds import (
    PayloadError,
    money_of,
    provider_refund,
    reason_text,
    status_of,
)
from refundflow.ports import PaymentCapabilities, ProviderPayment, ProviderRefund, ProviderRefundRequest

DEFAULT_API_BASE = "https://connect.squareup.com"
SQUARE_VERSION = "2025-08-20"
MAX_KEY_LENGTH = 45
MAX_REFUNDS_READ = 100
"""A payment's refunds read at most by one look-up (Square's own refunds of one payment are few)."""

# Square's error codes in our vocabulary (final refusals; the transient and unknown ones are by status).
_CODES = {
    "PAYMENT_NOT_REFUNDABLE": "payment_not_refundable",
    "PAYMENT_NOT_REFUNDABLE_DUE_TO_DISPUTE": "payment_disputed",
    "REFUND_ERROR_PAYMENT_NEEDS_COMPLETION": "payment_not_captured",
    "REFUND_DECLINED": "refund_declined",
    "INSUFFICIENT_PERMISSIONS_FOR_REFUND": "provider_permission_denied",
    "INSUFFICIENT_SCOPES": "provider_permission_denied",
    "FORBIDDEN": "provider_permission_denied",
    "UNAUTHORIZED": "provider_authentication_failed",
    "ACCESS_TOKEN_EXPIRED": "provider_authentication_failed",
    "ACCESS_TOKEN_REVOKED": "provider_authentication_failed",
    "UNSUPPORTED_CURRENCY": "currency_mismatch",
    "CURRENCY_MISMATCH": "currency_mismatch",
    "IDEMPOTENCY_KEY_REUSED": "idempotency_key_reused",
    "NOT_FOUND": "resource_missing",
}


def square_key(idempotency_key: str) -> str:
    """Our key as Square takes it: at most 45 characters, deterministic (a longer key is hashed)."""
    if len(idempotency_key) <= MAX_KEY_LENGTH:
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:MAX_KEY_LENGTH]


class SquareRefundProvider(HttpRefundProvider):
    """Refunds and look-ups for one Square seller (an access token)."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = "Square"

    def __init__(
        self,
        *,
        access_token: str,
        api_base: str = DEFAULT_API_BASE,
        http: HttpClient | None = None,
        capabilities: PaymentCapabilities | None = None,
    ) -> None:
        """Raises:
        ConfigurationError: no access token."""
        if not access_token:
            raise ConfigurationError("Square access token is empty", platform=PLATFORM)
        self._token = access_token
        self._http = http
        self._http_base_url = api_base
        self._capabilities = capabilities

    def _call(self, method: str, path: str, *, json: Any = None) -> HttpResponse:
        return self.http.request(
            method,
            path,
            json=json,
            headers={
                "Authorization": f"Bearer {self._token}",
                "Square-Version": SQUARE_VERSION,
                "Accept": "application/json",
            },
        )

    # ---------------------------------------------------------------- refunds

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """``RefundPayment`` of exactly ``request.amount``, under the body's ``idempotency_key``.

        Raises:
            TransientError: 429, the key's first request still in progress (409), a refund of the payment still
                pending (``REFUND_ALREADY_PENDING``), or no connection before the request left: retry, same key.
            OutcomeUnknownError: a 5xx, a read timeout or an unreadable answer after sending: Square may have
                made the refund; the domain finds it (or the key answers it) before anything is sent again.
            AlreadyDoneError: nothing is left to refund on the payment.
            RejectedError: more than is left (``amount_exceeds_refundable``), an unknown payment
                (``resource_missing``), a key reused for another request, bad credentials, any other refusal.
            AmountNotRepresentable: a currency Square does not process (nothing is sent).
        """
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        body = {
            "idempotency_key": square_key(request.idempotency_key),
            "amount_money": to_square(request.amount),
            "payment_id": request.payment_id,
            "reason": reason_text(request.refund_id, request.reason, request.metadata.get("source_reference")),
        }
        answer = self._call("POST", "/v2/refunds", json=body)
        if not answer.ok:
            failed = _failed_refund(answer, request.payment_id)
            if failed is not None:
                return failed
            if _codes(answer) & {"REFUND_AMOUNT_INVALID"}:
                raise self._over_refund(answer, request.payment)
            raise _map_error(answer, write=True)
        try:
            result = provider_refund(_object(answer, "refund"), payment_id=request.payment_id)
        except (PayloadError, ValueError) as error:
            raise OutcomeUnknownError(f"unreadable answer to POST /v2/refunds: {error}", platform=PLATFORM) from error
        if result.payment_id != request.payment_id or result.amount != request.amount:
            raise OutcomeUnknownError(
                f"Square answered refund {result.provider_refund_id} of {result.amount} on {result.payment_id}, "
                f"not {request.amount} on {request.payment_id}",
                platform=PLATFORM,
            )
        logger.info(
            "square refund created",
            extra={"refund_id": request.refund_id, "provider_refund_id": result.provider_refund_id},
        )
        return result

    def _over_refund(self, answer: HttpResponse, payment: PaymentReference) -> RefundflowError:
        """``REFUND_AMOUNT_INVALID``: already done when nothing is left on the payment, else an over-refund."""
        message = _message(answer)
        try:
            seen = self.get_payment(payment)
        except RefundflowError:
            return RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
        if seen.refunded >= seen.captured:
            return AlreadyDoneError(message, code="already_refunded", platform=PLATFORM)
        return RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """``GET /v2/refunds/{id}``.

        Raises:
            NotFound: no such refund (or one of another payment). TransientError: Square could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        refund = self._read(f"/v2/refunds/{provider_refund_id}", "refund")
        try:
            found = provider_refund(refund, payment_id=payment.payment_id)
        except PayloadError as error:
            raise TransientError(
                f"unreadable Square refund {provider_refund_id}: {error}", platform=PLATFORM
            ) from error
        if found.payment_id != payment.payment_id:
            raise NotFound(
                f"Square refund {provider_refund_id} is of payment {found.payment_id}, not {payment.payment_id}",
                code="resource_missing",
                platform=PLATFORM,
            )
        return found

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Our refund among the payment's refunds (``refund_ids``), by the refund id its ``reason`` ends with.

        Raises:
            TransientError: Square could not answer now (or the payment is not readable now).
        """
        try:
            paid = self._read(f"/v2/payments/{payment.payment_id}", "payment")
        except NotFound:
            return None  # no such payment: no refund of it either
        except RejectedError as error:
            raise TransientError(
                f"cannot read Square payment {payment.payment_id}: {error.message}", platform=PLATFORM
            ) from error
        try:
            refunds = self._refunds_of(paid, payment)
        except (NotFound, RejectedError) as error:
            # a refund the payment lists cannot be read: never conclude "not made" from that
            raise TransientError(
                f"cannot read a refund of Square payment {payment.payment_id}: {error.message}", platform=PLATFORM
            ) from error
        ours = [refund for refund in refunds if refund.refund_id == refund_id]
        live = [refund for refund in ours if refund.status.value in {"pending", "succeeded"}]
        chosen = live or ours
        return chosen[-1] if chosen else None

    # ---------------------------------------------------------------- payments

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The payment's refundable total (``total_money``) and what is refunded or pending on it, by anyone.

        Raises:
            NotFound: Square does not know the payment.
            TransientError: Square could not answer now.
            RejectedError: a payment that is not completed (approved only, canceled, failed), bad credentials.
        """
        paid = self._read(f"/v2/payments/{payment.payment_id}", "payment")
        status = str(paid.get("status"))
        if status != "COMPLETED":
            raise RejectedError(
                f"Square payment {payment.payment_id} is {status}, not a completed payment",
                code="payment_not_captured",
                platform=PLATFORM,
            )
        try:
            captured = from_square(*money_of(paid, "total_money"))
            refunded = (
                from_square(*money_of(paid, "refunded_money"))
                if paid.get("refunded_money")
                else Money.zero(captured.currency)
            )
        except (PayloadError, AmountNotRepresentable) as error:
            raise TransientError(
                f"unreadable Square payment {payment.payment_id}: {error}", platform=PLATFORM
            ) from error
        holding = Money.zero(captured.currency)
        for refund in self._refunds_of(paid, payment):
            if refund.status.value in {"pending", "succeeded"} and refund.amount.currency == captured.currency:
                holding = holding + refund.amount
        return ProviderPayment(
            provider=PaymentProvider.SQUARE,
            payment_id=payment.payment_id,
            captured=captured,
            refunded=max(refunded, holding, key=lambda money: money.minor_units),
            status=status,
        )

    def _refunds_of(self, paid: Mapping[str, Any], payment: PaymentReference) -> list[ProviderRefund]:
        """Every refund the payment lists, read (pending ones count against what is left)."""
        ids = paid.get("refund_ids") or []
        if not isinstance(ids, list):
            raise TransientError(f"Square payment {payment.payment_id}: refund_ids is not a list", platform=PLATFORM)
        found: list[ProviderRefund] = []
        for refund_ref in ids[:MAX_REFUNDS_READ]:
            if isinstance(refund_ref, str) and refund_ref:
                found.append(self.get_refund(refund_ref, payment))
        return found

    def _read(self, path: str, field: str) -> dict[str, Any]:
        answer = self._call("GET", path)
        if not answer.ok:
            raise _map_error(answer, write=False)
        try:
            return _object(answer, field)
        except ValueError as error:
            raise TransientError(f"unreadable Square answer to GET {path}: {error}", platform=PLATFORM) from error


# ---------------------------------------------------------------- helpers


def _object(answer: HttpResponse, field: str) -> dict[str, Any]:
    """The answer's ``field`` object (``refund``, ``payment``).

    Raises:
        ValueError: not JSON, or no such object.
    """
    body = answer.json()
    found = body.get(field) if isinstance(body, dict) else None
    if not isinstance(found, dict):
        raise ValueError(f"no {field} object in the answer")
    return found


def _errors(answer: HttpResponse) -> list[dict[str, Any]]:
    try:
        body = answer.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [error for error in errors or [] if isinstance(error, dict)] if isinstance(errors, list) else []


def _codes(answer: HttpResponse) -> set[str]:
    return {str(error.get("code")) for error in _errors(answer)}


def _message(answer: HttpResponse) -> str:
    errors = _errors(answer)
    described = "; ".join(
        f"{error.get('code')}: {error.get('detail') or ''}".strip().rstrip(":") for error in errors[:3]
    )
    return f"Square answered {answer.status} {described or 'without an error body'}"


def _failed_refund(answer: HttpResponse, payment_id: str) -> ProviderRefund | None:
    """A refund Square made and failed at once (``RefundPaymentResponse`` may carry one beside its errors)."""
    try:
        refund = _object(answer, "refund")
        made = provider_refund(refund, payment_id=payment_id)
        status_of(refund)
    except (ValueError, PayloadError):
        return None
    return made if made.status.value == "failed" else None


def _map_error(answer: HttpResponse, *, write: bool) -> RefundflowError:
    """Square's failure in our vocabulary. ``write``: the call may have moved money."""
    codes = _codes(answer)
    message = _message(answer)
    status = answer.status
    if status == 429 or "RATE_LIMITED" in codes:
        return TransientError(
            message, code="rate_limited", platform=PLATFORM, retry_after_seconds=retry_after_seconds(answer)
        )
    if status >= 500 or (write and status == 408):
        if write:
            return OutcomeUnknownError(message, platform=PLATFORM)
        return TransientError(message, platform=PLATFORM, retry_after_seconds=retry_after_seconds(answer))
    if status in (408, 409) or "CONFLICT" in codes:
        # The key's first request is still being processed: the answer under the key will be the first one's.
        return TransientError(message, code="idempotency_key_in_use", platform=PLATFORM)
    if "REFUND_ALREADY_PENDING" in codes:
        return TransientError(message, code="refund_already_pending", platform=PLATFORM)
    if status == 404 or "NOT_FOUND" in codes:
        if write:
            return RejectedError(message, code="resource_missing", platform=PLATFORM)
        return NotFound(message, code="resource_missing", platform=PLATFORM)
    if "REFUND_AMOUNT_INVALID" in codes:
        return RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
    if status == 401:
        return RejectedError(message, code="provider_authentication_failed", platform=PLATFORM)
    if status == 403:
        return RejectedError(message, code="provider_permission_denied", platform=PLATFORM)
    code = next((_CODES[found] for found in sorted(codes) if found in _CODES), None)
    first = sorted(codes)[0].lower() if codes else str(status)
    return RejectedError(message, code=code or f"square_{first}", platform=PLATFORM)


# ---------------------------------------------------------------- factory


class SquareSettings(settings.EnvModel):
    """Square's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="SQUARE_API_BASE")


def _build(config: SquareSettings, name: str, secret: Mapping[str, Any]) -> SquareRefundProvider:
    """From SQUARE_API_BASE and the API secret ``{"access_token": ...}``.

    Raises:
        ConfigurationError: a secret of another shape.
    """
    (token,) = secret_strings(secret, name, ("access_token",), platform=PLATFORM)
    return SquareRefundProvider(access_token=token, api_base=config.api_base)


connector: SecretBoundConnector[SquareSettings, SquareRefundProvider] = SecretBoundConnector(
    PLATFORM, SquareSettings, _build
)
"""The process's SquareRefundProvider (see refundflow.connectors.factory: a rotated token is used without a cold
start)."""
