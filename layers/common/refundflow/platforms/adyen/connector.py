"""Adyen as a RefundProvider: ``POST /payments/{paymentPspReference}/refunds`` (Checkout API v71).

Through the shared HTTP client, not the official ``Adyen`` SDK (16.0.0): the refund is one JSON POST, and
the SDK derives its base URL from ``platform`` and a live prefix (no way to point it at a sandbox without
overwriting a service attribute), takes one timeout for connect and read, and leaves transport failures
unclassified, while the shared client already tells "never sent" (retry) from "sent, no answer"
(outcome unknown). The SDK imports in about 55 ms; ``requests`` is already loaded by the shared layer.

What Adyen documents and this module relies on:
- auth ``X-API-Key``; body ``{merchantAccount, amount: {currency, value}, reference (≤ 80), merchantRefundReason}``;
  the answer is 201 ``{pspReference, paymentPspReference, status: "received", ...}`` and nothing else: the
  outcome arrives only by the REFUND notification, so ``outcome`` is ``webhook_only``;
- ``Idempotency-Key`` (≤ 64 characters, company-wide, kept at least 31 days): a retry with the key gets the
  first answer, never a second refund;
- no API reads a payment or a refund: ``get_payment``, ``get_refund`` and ``find_refund`` are not offered;
- errors are ``ServiceError`` bodies ``{status, errorCode, message, errorType, pspReference}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector, secret_strings
from refundflow.connectors.http import HttpClient, HttpResponse, status_failure
from refundflow.connectors.payment import HttpRefundProvider
from refundflow.errors import (
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RefundflowError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.ports import (
    PaymentCapabilities,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
)

PLATFORM = "adyen"
DEFAULT_API_BASE = "https://checkout-test.adyen.com/v71"
MAX_KEY_LENGTH = 64
MAX_REFERENCE_LENGTH = 80

# merchantRefundReason (PaymentRefundRequest): FRAUD | CUSTOMER REQUEST | RETURN | DUPLICATE | OTHER.
_REASONS: Mapping[RefundReason, str] = {
    RefundReason.PRODUCT_RETURN: "RETURN",
    RefundReason.DAMAGED: "RETURN",
    RefundReason.WRONG_ITEM: "RETURN",
    RefundReason.NOT_AS_DESCRIBED: "CUSTOMER REQUEST",
    RefundReason.NOT_RECEIVED: "CUSTOMER REQUEST",
    RefundReason.DELIVERY_FAILED: "CUSTOMER REQUEST",
    RefundReason.CHANGED_MIND: "CUSTOMER REQUEST",
    RefundReason.DUPLICATE_CHARGE: "DUPLICATE",
    RefundReason.FRAUDULENT: "FRAUD",
    RefundReason.GOODWILL: "OTHER",
    RefundReason.OTHER: "OTHER",
}


class AdyenSettings(settings.EnvModel):
    adyen_api_base: str = Field(default=DEFAULT_API_BASE, alias="ADYEN_API_BASE")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Amount(_Payload):
    currency: str
    value: StrictInt


class _RefundAnswer(_Payload):
    """``PaymentRefundResponse``: what we read of it."""

    psp_reference: str = Field(alias="pspReference", min_length=1, max_length=64)
    payment_psp_reference: str = Field(alias="paymentPspReference", min_length=1)
    status: str
    amount: _Amount
    reference: str | None = None


class _ServiceError(_Payload):
    status: int | None = None
    error_code: str | None = Field(default=None, alias="errorCode")
    message: str | None = None
    error_type: str | None = Field(default=None, alias="errorType")


def adyen_key(idempotency_key: str) -> str:
    """Our key as Adyen takes it: at most 64 characters, deterministic (a longer key is hashed)."""
    if len(idempotency_key) <= MAX_KEY_LENGTH:
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:MAX_KEY_LENGTH]


class AdyenRefundProvider(HttpRefundProvider):
    """Refunds for one Adyen merchant account."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = "Adyen"
    provider = PaymentProvider.ADYEN

    def __init__(
        self,
        *,
        api_key: str,
        merchant_account: str,
        api_base: str = DEFAULT_API_BASE,
        http: HttpClient | None = None,
        capabilities: PaymentCapabilities | None = None,
    ) -> None:
        """Raises:
        ConfigurationError: no API key or merchant account."""
        if not api_key:
            raise ConfigurationError("Adyen API key is empty", platform=PLATFORM)
        if not merchant_account:
            raise ConfigurationError("Adyen merchant account is empty", platform=PLATFORM)
        self._api_key = api_key
        self._merchant_account = merchant_account
        self._http_base_url = api_base.rstrip("/")
        self._http = http
        self._capabilities = capabilities

    # ---------------------------------------------------------------- what Adyen cannot answer

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """Raises: UnsupportedOperation: Adyen's APIs do not read a payment back."""
        raise UnsupportedOperation("Adyen has no API that reads a payment", platform=PLATFORM)

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """Raises: UnsupportedOperation: the outcome comes only by the REFUND notification."""
        raise UnsupportedOperation("Adyen reports refund outcomes only by notification", platform=PLATFORM)

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Raises: UnsupportedOperation: Adyen cannot list refunds by our reference."""
        raise UnsupportedOperation("Adyen cannot find a refund by our reference", platform=PLATFORM)

    # ---------------------------------------------------------------- the refund

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Ask Adyen to refund; the answer is always ``received`` (a PENDING refund).

        Raises:
            TransientError: 429, the key still in use (``704``), or no connection: retry with the same key.
            OutcomeUnknownError: sent and no answer, or a 5xx: resend with the same key within its lifetime.
            NotFound: Adyen does not know the payment (``167``).
            RejectedError: any other refusal (authentication, merchant account, validation), with Adyen's code.
            AmountNotRepresentable: an amount Adyen cannot carry exactly (checked before anything is sent).
        """
        payment_id = request.payment.payment_id
        body: dict[str, Any] = {
            "merchantAccount": self._merchant_account,
            "amount": {
                "currency": request.amount.currency,
                "value": self.money.to_platform(request.amount),
            },
            "reference": request.refund_id[:MAX_REFERENCE_LENGTH],
            "merchantRefundReason": _REASONS[request.reason],
        }
        headers = {
            "X-API-Key": self._api_key,
            "Idempotency-Key": adyen_key(request.idempotency_key),
            "Accept": "application/json",
        }
        response = self.http.request("POST", f"payments/{payment_id}/refunds", json=body, headers=headers)
        if response.status != 201:
            _raise_for(response)
        answer = _parse(response)
        if answer.status != "received" or answer.payment_psp_reference != payment_id:
            raise OutcomeUnknownError(
                f"Adyen answered status {answer.status!r} for payment {answer.payment_psp_reference}",
                platform=PLATFORM,
            )
        return ProviderRefund(
            provider=PaymentProvider.ADYEN,
            provider_refund_id=answer.psp_reference,
            payment_id=payment_id,
            amount=self.money.from_platform(answer.amount.value, answer.amount.currency),
            status=ProviderRefundStatus.PENDING,
            refund_id=request.refund_id,
        )


def _parse(response: HttpResponse) -> _RefundAnswer:
    """Raises: OutcomeUnknownError: a 201 we cannot read (the refund may exist: resend under the key)."""
    try:
        return _RefundAnswer.model_validate(response.json())
    except (ValidationError, ValueError) as error:
        raise OutcomeUnknownError("Adyen's refund answer is not a PaymentRefundResponse", platform=PLATFORM) from error


def _raise_for(response: HttpResponse) -> NoReturn:
    """Adyen's error answer in our vocabulary (the refund is a write: a 5xx may have taken effect)."""
    try:
        error = _ServiceError.model_validate(response.json() or {})
    except (ValidationError, ValueError):
        error = _ServiceError()
    status = response.status
    code = error.error_code or str(status)
    message = f"Adyen {status} {code}: {error.message or 'no message'}"
    # The refund is a write: a 5xx may have taken effect. A 409 means nothing particular at Adyen.
    shared = status_failure(response, message, platform=PLATFORM, write=True, in_progress=None)
    if shared is not None:
        raise shared
    failure: RefundflowError
    if status == 422 and code == "704":
        # The key's first request is still being processed (or another body used it): the answer under
        # the key will be the first one's, so a later retry with the same key is safe.
        failure = TransientError(message, code="idempotency_key_in_use", platform=PLATFORM)
    elif status == 422 and code == "167":
        failure = NotFound(message, code="resource_missing", platform=PLATFORM)
    else:
        failure = RejectedError(message, code=f"adyen_{code}", platform=PLATFORM)
    raise failure


# ---------------------------------------------------------------- factory


def _build(config: AdyenSettings, secret_name: str, secret: Mapping[str, Any]) -> AdyenRefundProvider:
    """From ADYEN_API_BASE and the API secret ``{"api_key": ..., "merchant_account": ...}``.

    Raises:
        ConfigurationError: a secret of another shape.
    """
    api_key, merchant_account = secret_strings(secret, secret_name, ("api_key", "merchant_account"), platform=PLATFORM)
    return AdyenRefundProvider(api_key=api_key, merchant_account=merchant_account, api_base=config.adyen_api_base)


connector: SecretBoundConnector[AdyenSettings, AdyenRefundProvider] = SecretBoundConnector(
    PLATFORM, AdyenSettings, _build
)
"""The process's provider (see refundflow.connectors.factory: a rotated key is used without a cold start)."""
