"""Amazon Pay as a RefundProvider, through the shared HTTP client (Amazon Pay API v2).

Facts this module relies on (developer.amazon.com/docs/amazon-pay-api-v2: refund, charge, idempotency,
signing-requests, error-handling):
- every request is signed with the merchant's RSA private key (``signing.py``, AMZN-PAY-RSASSA-PSS-V2) under its
  public key id; the base URL carries the environment and version (``https://pay-api.amazon.com/sandbox/v2``,
  ``/live/v2``; ``pay-api.amazon.eu``, ``pay-api.amazon.jp``);
- ``POST /refunds`` with ``{chargeId, refundAmount: {amount, currencyCode}, softDescriptor}`` and
  ``x-amz-pay-idempotency-key`` (at most 32 characters, kept indefinitely; the same key with other values is
  ``DuplicateIdempotencyKey``) answers 201 with the Refund ``{refundId, chargeId, refundAmount, softDescriptor,
  statusDetails: {state: RefundInitiated | Refunded | Declined, reasonCode, reasonDescription}, creationTimestamp}``;
- ``GET /refunds/{refundId}``; ``GET /charges/{chargeId}``: ``{chargeAmount, captureAmount, refundedAmount,
  statusDetails: {state: ... Captured ...}}``;
- errors ``{reasonCode, message}``: 400 ``TransactionAmountExceeded`` (more than the charge allows: Amazon lets a
  merchant refund up to 15 % or 75 USD/EUR/GBP, 8,400 JPY, above the captured amount; refundflow's balance never
  asks for more than what is left), ``InvalidParameterValue``, ``DuplicateIdempotencyKey``; 401
  ``InvalidRequestSignature`` / ``UnauthorizedAccess``; 404 ``ResourceNotFound``; 422 ``InvalidChargeStatus``;
  429 ``TooManyRequests``; 5xx ``InternalServerError`` / ``ServiceUnavailable``.

A Refund carries none of our references (``softDescriptor`` is 16 characters on the buyer's statement: the
source's reference goes there, cut to fit), so ``find_refund`` is unsupported and the domain resends under the same
idempotency key, which Amazon keeps indefinitely. The merchant's order reference stays on the Charge Permission
(``merchantMetadata.merchantReferenceId``), where the order was taken.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector, secret_strings
from refundflow.connectors.http import HttpClient, HttpResponse, missing, status_failure
from refundflow.connectors.payment import HttpRefundProvider
from refundflow.errors import (
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
from refundflow.platforms.amazon_pay.amounts import TITLE, from_amazon, to_amazon
from refundflow.platforms.amazon_pay.signing import amazon_idempotency_key, signed_headers
from refundflow.ports import (
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

PLATFORM = "amazon_pay"
DEFAULT_API_BASE = "https://pay-api.amazon.com/live/v2"
DEFAULT_REGION = "na"
SOFT_DESCRIPTOR_LENGTH = 16
_STATES = {
    "RefundInitiated": ProviderRefundStatus.PENDING,
    "Refunded": ProviderRefundStatus.SUCCEEDED,
    "Declined": ProviderRefundStatus.FAILED,
}
_CODES = {
    "TransactionAmountExceeded": "amount_exceeds_refundable",
    "DuplicateIdempotencyKey": "idempotency_key_reused",
    "InvalidChargeStatus": "payment_not_captured",
    "TransactionCountExceeded": "too_many_refunds",
    "CurrencyMismatch": "currency_mismatch",
    "InvalidParameterValue": "invalid_request",
    "InvalidRequestFormat": "invalid_request",
    "MissingParameterValue": "invalid_request",
    "UnrecognizedField": "invalid_request",
    "MissingHeader": "invalid_request",
    "InvalidHeaderValue": "invalid_request",
}
_DESCRIPTOR = re.compile(r"[^A-Za-z0-9 ._-]")


class AmazonPayRefundProvider(HttpRefundProvider):
    """Refunds and look-ups for one Amazon Pay merchant key (public key id and RSA private key)."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = TITLE

    def __init__(
        self,
        *,
        public_key_id: str,
        private_key: RSAPrivateKey,
        api_base: str = DEFAULT_API_BASE,
        region: str = DEFAULT_REGION,
        http: HttpClient | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Raises:
        ConfigurationError: no public key id, or a base URL without a host."""
        if not public_key_id:
            raise ConfigurationError("Amazon Pay public_key_id is needed", platform=PLATFORM)
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)
        parts = urlsplit(self._http.base_url)
        if not parts.netloc:
            raise ConfigurationError(f"Amazon Pay API base {api_base!r} has no host", platform=PLATFORM)
        self._host = parts.netloc
        self._base_path = parts.path.rstrip("/")
        self._public_key_id = public_key_id
        self._key = private_key
        self._region = region
        self._now = now

    def _call(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, idempotency_key: str | None = None
    ) -> HttpResponse:
        payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        headers = signed_headers(
            key=self._key,
            public_key_id=self._public_key_id,
            method=method,
            path=f"{self._base_path}{path}",
            host=self._host,
            region=self._region,
            payload=payload,
            at=self._now(),
            idempotency_key=idempotency_key,
        )
        return self.http.request(method, path, data=payload.decode() if body is not None else None, headers=headers)

    # ---------------------------------------------------------------- payments

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The Charge's captured amount and what has been refunded from it (``refundedAmount``).

        Raises:
            NotFound: Amazon Pay does not know the charge.
            TransientError: Amazon Pay could not answer now.
            RejectedError: a charge that is not captured, bad credentials.
        """
        charge = self._read(f"/charges/{payment.payment_id}", what="charge")
        state = str((charge.get("statusDetails") or {}).get("state"))
        if state != "Captured":
            raise RejectedError(
                f"charge {payment.payment_id} is {state}, not captured", code="payment_not_captured", platform=PLATFORM
            )
        try:
            captured = from_amazon(charge.get("captureAmount"))
            refunded = from_amazon(charge["refundedAmount"]) if charge.get("refundedAmount") else captured - captured
        except AmountNotRepresentable as error:
            raise TransientError(f"unreadable Amazon Pay charge amounts: {error.message}", platform=PLATFORM) from error
        return ProviderPayment(
            provider=PaymentProvider.AMAZON_PAY,
            payment_id=payment.payment_id,
            captured=captured,
            refunded=refunded,
            status=state,
        )

    # ---------------------------------------------------------------- refunds

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund exactly ``request.amount`` of the Charge under ``x-amz-pay-idempotency-key``.

        Raises:
            TransientError: 429, or no connection before the request left: retry with the same key.
            OutcomeUnknownError: a 5xx, a read timeout or an unreadable answer after sending: the same key tells.
            RejectedError: over-refund (``amount_exceeds_refundable``), a charge not captured, unknown charge
                (``resource_missing``), the key reused with other values, bad credentials, any other refusal.
            AmountNotRepresentable: an amount or currency Amazon Pay cannot take exactly.
        """
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        body: dict[str, Any] = {"chargeId": request.payment_id, "refundAmount": to_amazon(request.amount)}
        descriptor = soft_descriptor(request.metadata.get("source_reference"))
        if descriptor:
            body["softDescriptor"] = descriptor
        key = amazon_idempotency_key(request.idempotency_key)
        answer = self._call("POST", "/refunds", body=body, idempotency_key=key)
        if not answer.ok:
            raise _map_error(answer, write=True)
        try:
            result = provider_refund(answer.json_object())
        except (AmountNotRepresentable, ValueError) as error:
            raise OutcomeUnknownError(f"unreadable answer to POST /refunds: {error}", platform=PLATFORM) from error
        logger.info(
            "amazon pay refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": result.provider_refund_id,
                "status": result.status,
                "request_id": answer.headers.get("x-amz-pay-request-id"),
            },
        )
        return result

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """``GET /refunds/{refundId}``.

        Raises:
            NotFound: no such refund. TransientError: Amazon Pay could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        refund = self._read(f"/refunds/{provider_refund_id}", what="refund")
        try:
            return provider_refund(refund)
        except (AmountNotRepresentable, ValueError) as error:
            raise TransientError(
                f"unreadable Amazon Pay refund {provider_refund_id}: {error}", platform=PLATFORM
            ) from error

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Amazon Pay cannot find a refund by our reference.

        Raises:
            UnsupportedOperation: always (the catalog says ``find_by_reference: false``).
        """
        raise UnsupportedOperation(
            "Amazon Pay has no refund search and keeps none of our references", platform=PLATFORM
        )

    def _read(self, path: str, *, what: str) -> dict[str, Any]:
        answer = self._call("GET", path)
        if not answer.ok:
            raise _map_error(answer, write=False)
        try:
            return answer.json_object()
        except ValueError as error:
            raise TransientError(f"unreadable Amazon Pay {what}: {error}", platform=PLATFORM) from error


# ---------------------------------------------------------------- payloads


def soft_descriptor(reference: str | None) -> str | None:
    """What the buyer's statement shows beside the refund: the source's reference, cut to 16 characters."""
    if not reference:
        return None
    return _DESCRIPTOR.sub("", reference)[:SOFT_DESCRIPTOR_LENGTH].strip() or None


def provider_refund(refund: dict[str, Any]) -> ProviderRefund:
    """An Amazon Pay Refund as our ProviderRefund (it never names our refund id).

    Raises:
        ValueError: no refundId or chargeId, or a state Amazon Pay does not document.
        AmountNotRepresentable: an amount our money cannot hold exactly.
    """
    refund_id, charge_id = refund.get("refundId"), refund.get("chargeId")
    if not isinstance(refund_id, str) or not refund_id or not isinstance(charge_id, str) or not charge_id:
        raise ValueError("refund without refundId or chargeId")
    details = refund.get("statusDetails") or {}
    state = details.get("state") if isinstance(details, dict) else None
    if state not in _STATES:
        raise ValueError(f"refund state {state!r} is not one Amazon Pay documents")
    reason = details.get("reasonCode") if state == "Declined" else None
    return ProviderRefund(
        provider=PaymentProvider.AMAZON_PAY,
        provider_refund_id=refund_id,
        payment_id=charge_id,
        amount=from_amazon(refund.get("refundAmount")),
        status=_STATES[str(state)],
        failure_reason=str(reason) if reason else None,
    )


def _map_error(answer: HttpResponse, *, write: bool) -> RefundflowError:
    """Amazon Pay's failure in our vocabulary. ``write``: the call may have moved money."""
    body = answer.json_object_or_empty()
    reason = body.get("reasonCode") if isinstance(body.get("reasonCode"), str) else None
    message = f"Amazon Pay answered {answer.status} {reason or ''}: {body.get('message') or ''}".strip()
    status = answer.status
    shared = status_failure(answer, message, platform=PLATFORM, write=write, in_progress=None)
    if shared is not None:
        return shared
    if status == 404 or reason == "ResourceNotFound":
        return missing(message, platform=PLATFORM, write=write)
    return RejectedError(message, code=_CODES.get(reason or "", "invalid_request"), platform=PLATFORM)


# ---------------------------------------------------------------- factory


class AmazonPaySettings(settings.EnvModel):
    """Amazon Pay's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="AMAZON_PAY_API_BASE")
    region: str = Field(default=DEFAULT_REGION, alias="AMAZON_PAY_REGION")


def _build(config: AmazonPaySettings, name: str, secret: Mapping[str, Any]) -> AmazonPayRefundProvider:
    """Raises: ConfigurationError: a secret of another shape."""
    from refundflow.platforms.amazon_pay.signing import load_private_key

    public_key_id, private_key = secret_strings(secret, name, ("public_key_id", "private_key"), platform=PLATFORM)
    return AmazonPayRefundProvider(
        public_key_id=public_key_id,
        private_key=load_private_key(private_key),
        api_base=config.api_base,
        region=config.region,
    )


connector: SecretBoundConnector[AmazonPaySettings, AmazonPayRefundProvider] = SecretBoundConnector(
    PLATFORM, AmazonPaySettings, _build
)
"""The process's AmazonPayRefundProvider, built from AmazonPaySettings and its API secret
(``<SecretsPrefix>amazon_pay``), again when either changes (see refundflow.connectors.factory)."""
