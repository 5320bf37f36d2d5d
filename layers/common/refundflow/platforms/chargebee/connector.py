"""Chargebee as a RefundProvider: ``POST /invoices/{invoice-id}/refund`` (API v2), read back by transaction.

Through the shared HTTP client, not the official ``chargebee`` SDK (3.20.0): the SDK builds its URL from the site
and a fixed domain (``https://{site}.chargebee.com/api/v2``: no base URL or path of our own, so no sandbox or
simulator), brings httpx, httpcore and anyio, and imports in 550 to 1,200 ms on top of requests. We use three
endpoints.

What Chargebee documents and this module relies on (apidocs.chargebee.com):
- base URL ``https://{site}.chargebee.com/api/v2`` (a test site is its own site, ``<name>-test``); HTTP Basic auth
  with the API key as the username and no password; request bodies ``application/x-www-form-urlencoded``;
- ``POST /invoices/{invoice-id}/refund`` with ``refund_amount`` (in cents, min 1; omitted it refunds everything
  refundable, so refundflow always sends it), ``comment`` (at most 300 characters), ``credit_note[reason_code]``;
  it refunds the invoice's online payment through its gateway, creates a refundable credit note and answers
  ``{invoice, transaction, credit_note}``, the ``transaction`` being the refund (``type: refund``);
- ``chargebee-idempotency-key`` (at most 100 characters): within the 30-minute window, the same key and
  parameters replay the first answer (``chargebee-idempotency-replayed: true``);
- ``GET /transactions/{id}``: the refund transaction, ``status`` one of ``in_progress``, ``success``, ``voided``,
  ``failure``, ``timeout``, ``needs_attention``, ``late_failure``; ``GET /invoices/{id}``: ``amount_paid`` and
  ``issued_credit_notes`` (what was credited back);
- amounts in cents, except the zero-decimal JPY, KRW, XAF and XOF (the catalog's currency profile);
- errors ``{message, type, api_error_code, param, error_cause_id}``: 400 for client errors (``type`` ``payment``
  when the gateway refused, ``invalid_request``, ``operation_failed``), 401 ``api_authentication_failed``, 403
  ``api_authorization_failed``, 404 ``resource_not_found``, 429 ``api_request_limit_exceeded``, 5xx.

Nothing we send on an invoice refund can be searched for (``comment`` and ``customer_notes`` are not list
filters), so ``find_refund`` is unsupported: after an unknown outcome the domain resends under the same key
while Chargebee remembers it (30 minutes), then asks a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector, bad_secret, secret_strings
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
    UnsupportedOperation,
)
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.observability import logger
from refundflow.ports import (
    PaymentCapabilities,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
)

PLATFORM = "chargebee"
TITLE = "Chargebee"
DEFAULT_API_BASE = "https://{site}.chargebee.com/api/v2"
MAX_KEY_LENGTH = 100
MAX_COMMENT_LENGTH = 300

# credit_note[reason_code] (CreditNote.ReasonCode) for the refundable credit note the refund creates.
_REASONS: Mapping[RefundReason, str] = {
    RefundReason.PRODUCT_RETURN: "product_unsatisfactory",
    RefundReason.DAMAGED: "product_unsatisfactory",
    RefundReason.WRONG_ITEM: "order_change",
    RefundReason.NOT_AS_DESCRIBED: "product_unsatisfactory",
    RefundReason.NOT_RECEIVED: "order_cancellation",
    RefundReason.DELIVERY_FAILED: "order_cancellation",
    RefundReason.CHANGED_MIND: "order_cancellation",
    RefundReason.DUPLICATE_CHARGE: "other",
    RefundReason.FRAUDULENT: "fraudulent",
    RefundReason.GOODWILL: "waiver",
    RefundReason.OTHER: "other",
}

# Transaction.status of a refund transaction in our vocabulary. ``timeout`` and ``needs_attention`` are not
# outcomes: the gateway has not told Chargebee yet, so the refund stays pending (and is polled again).
STATUSES: Mapping[str, ProviderRefundStatus] = {
    "in_progress": ProviderRefundStatus.PENDING,
    "timeout": ProviderRefundStatus.PENDING,
    "needs_attention": ProviderRefundStatus.PENDING,
    "success": ProviderRefundStatus.SUCCEEDED,
    "failure": ProviderRefundStatus.FAILED,
    "late_failure": ProviderRefundStatus.FAILED,
    "voided": ProviderRefundStatus.CANCELED,
}
# Credit notes that hold part of the paid amount: refunded, or credited and still to be refunded.
_CREDITED = {"refunded", "refund_due"}


class ChargebeeSettings(settings.EnvModel):
    api_base: str = Field(default=DEFAULT_API_BASE, alias="CHARGEBEE_API_BASE")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _LinkedCreditNote(_Payload):
    cn_id: str
    cn_reference_invoice_id: str | None = None


class Transaction(_Payload):
    """What we read of a ``transaction`` resource."""

    id: str = Field(min_length=1)
    type: str
    status: str
    amount: StrictInt = Field(ge=0)
    currency_code: str = Field(pattern=r"^[A-Za-z]{3}$")
    error_text: str | None = None
    linked_credit_notes: list[_LinkedCreditNote] = Field(default_factory=list)

    def invoice_ids(self) -> set[str]:
        return {note.cn_reference_invoice_id for note in self.linked_credit_notes if note.cn_reference_invoice_id}


class _IssuedCreditNote(_Payload):
    cn_id: str
    cn_total: StrictInt = Field(ge=0)
    cn_status: str


class Invoice(_Payload):
    """What we read of an ``invoice`` resource."""

    id: str = Field(min_length=1)
    status: str
    currency_code: str = Field(pattern=r"^[A-Za-z]{3}$")
    amount_paid: StrictInt = Field(default=0, ge=0)
    issued_credit_notes: list[_IssuedCreditNote] = Field(default_factory=list)


class _CreditNote(_Payload):
    id: str
    reference_invoice_id: str | None = None


class _RefundAnswer(_Payload):
    invoice: Invoice
    transaction: Transaction
    credit_note: _CreditNote | None = None


class ApiError(_Payload):
    message: str | None = None
    type: str | None = None
    api_error_code: str | None = None
    param: str | None = None


def chargebee_key(idempotency_key: str) -> str:
    """Our key as Chargebee takes it: at most 100 characters, deterministic (a longer key is hashed)."""
    if len(idempotency_key) <= MAX_KEY_LENGTH:
        return idempotency_key
    import hashlib

    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def comment_for(refund_id: str) -> str:
    """The refund's comment at Chargebee: our refund id, for a person reading the credit note."""
    return f"refundflow refund {refund_id}"[:MAX_COMMENT_LENGTH]


class ChargebeeRefundProvider(HttpRefundProvider):
    """Refunds of one Chargebee site's invoices."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = TITLE

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str,
        http: HttpClient | None = None,
        capabilities: PaymentCapabilities | None = None,
    ) -> None:
        """``api_base`` is the site's API base (``https://acme-test.chargebee.com/api/v2``).

        Raises:
            ConfigurationError: no API key, or a base URL that still names ``{site}``.
        """
        if not api_key:
            raise ConfigurationError("Chargebee API key is empty", platform=PLATFORM)
        if "{site}" in api_base:
            raise ConfigurationError("Chargebee API base still names {site}", platform=PLATFORM)
        self._auth = (api_key, "")
        self._http = http
        self._http_base_url = api_base
        self._capabilities = capabilities

    # ---------------------------------------------------------------- reads

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The invoice's paid amount and what refundable credit notes already hold of it.

        Raises:
            NotFound: Chargebee does not know the invoice.
            TransientError: Chargebee could not answer now.
            RejectedError: an invoice with nothing paid (not paid, voided), bad credentials.
        """
        _require_invoice(payment)
        body = self._read(f"invoices/{payment.payment_id}")
        try:
            invoice = Invoice.model_validate(body.get("invoice"))
        except ValidationError as error:
            raise TransientError(f"unreadable Chargebee invoice {payment.payment_id}", platform=PLATFORM) from error
        if invoice.amount_paid <= 0 or invoice.status == "voided":
            raise RejectedError(
                f"invoice {invoice.id} is {invoice.status} with nothing paid",
                code="payment_not_captured",
                platform=PLATFORM,
            )
        credited = sum(note.cn_total for note in invoice.issued_credit_notes if note.cn_status in _CREDITED)
        return ProviderPayment(
            provider=PaymentProvider.CHARGEBEE,
            payment_id=invoice.id,
            captured=self.money.from_platform(invoice.amount_paid, invoice.currency_code),
            refunded=self.money.from_platform(min(credited, invoice.amount_paid), invoice.currency_code),
            status=invoice.status,
        )

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """The refund transaction ``GET /transactions/{id}``.

        Raises:
            NotFound: no such transaction. TransientError: Chargebee could not answer now.
            RejectedError: not a refund of ``payment``'s invoice, bad credentials.
        """
        _require_invoice(payment)
        body = self._read(f"transactions/{provider_refund_id}")
        try:
            transaction = Transaction.model_validate(body.get("transaction"))
        except ValidationError as error:
            raise TransientError(f"unreadable Chargebee transaction {provider_refund_id}", platform=PLATFORM) from error
        invoices = transaction.invoice_ids()
        if transaction.type != "refund" or (invoices and payment.payment_id not in invoices):
            raise RejectedError(
                f"transaction {transaction.id} is not a refund of invoice {payment.payment_id}",
                code="refund_of_another_payment",
                platform=PLATFORM,
            )
        return self._refund(transaction, payment.payment_id, refund_id=None)

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Raises: UnsupportedOperation: nothing refundflow sends with a refund is searchable at Chargebee."""
        raise UnsupportedOperation("Chargebee cannot find a refund by our reference", platform=PLATFORM)

    # ---------------------------------------------------------------- the refund

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund exactly ``request.amount`` of the invoice under ``chargebee-idempotency-key``.

        Raises:
            TransientError: 429, the key still being processed (409), or no connection before the request
                left: retry with the same key.
            OutcomeUnknownError: a 5xx, a read timeout or an unreadable answer after sending: resend under the
                same key within its 30 minutes.
            AlreadyDoneError: the invoice has nothing left to refund and nothing was asked beyond it.
            RejectedError: over-refund (``amount_exceeds_refundable``), the gateway refused
                (``payment_processing_failed``), an unknown invoice (``resource_missing``), bad credentials,
                any other refusal with Chargebee's code.
            AmountNotRepresentable: an amount Chargebee cannot carry exactly (checked before anything is sent).
        """
        _require_invoice(request.payment)
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        amount = self.money.to_platform_units(request.amount)
        invoice_id = request.payment.payment_id
        form = {
            "refund_amount": str(amount),
            "comment": comment_for(request.refund_id),
            "credit_note[reason_code]": _REASONS[request.reason],
        }
        headers = {"chargebee-idempotency-key": chargebee_key(request.idempotency_key), "Accept": "application/json"}
        answer = self.http.request("POST", f"invoices/{invoice_id}/refund", data=form, headers=headers, auth=self._auth)
        if not answer.ok:
            raise _map_error(answer, write=True)
        try:
            parsed = _RefundAnswer.model_validate(answer.json())
        except (ValidationError, ValueError) as error:
            raise OutcomeUnknownError("Chargebee's refund answer is unreadable", platform=PLATFORM) from error
        if parsed.invoice.id != invoice_id or parsed.transaction.type != "refund":
            raise OutcomeUnknownError(
                f"Chargebee answered a {parsed.transaction.type} transaction for invoice {parsed.invoice.id}",
                platform=PLATFORM,
            )
        result = self._refund(parsed.transaction, invoice_id, refund_id=request.refund_id)
        if result.amount.currency != request.amount.currency:
            raise OutcomeUnknownError(
                f"Chargebee refunded in {result.amount.currency}, asked {request.amount.currency}", platform=PLATFORM
            )
        logger.info(
            "chargebee refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": result.provider_refund_id,
                "status": result.status,
                "credit_note": parsed.credit_note.id if parsed.credit_note else None,
                "replayed": answer.headers.get("chargebee-idempotency-replayed") == "true",
            },
        )
        return result

    # ---------------------------------------------------------------- helpers

    def _refund(self, transaction: Transaction, invoice_id: str, *, refund_id: str | None) -> ProviderRefund:
        status = STATUSES.get(transaction.status)
        if status is None:
            raise TransientError(
                f"Chargebee transaction {transaction.id} has an unknown status {transaction.status!r}",
                platform=PLATFORM,
            )
        try:
            amount = self.money.from_platform(transaction.amount, transaction.currency_code)
        except AmountNotRepresentable as error:
            raise TransientError(
                f"Chargebee transaction {transaction.id}: {error.message}", platform=PLATFORM
            ) from error
        failed = status in {ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED}
        return ProviderRefund(
            provider=PaymentProvider.CHARGEBEE,
            provider_refund_id=transaction.id,
            payment_id=invoice_id,
            amount=amount,
            status=status,
            refund_id=refund_id,
            failure_reason=(f"{transaction.status}: {transaction.error_text or 'no reason given'}" if failed else None),
        )

    def _read(self, path: str) -> dict[str, Any]:
        answer = self.http.request("GET", path, headers={"Accept": "application/json"}, auth=self._auth)
        if not answer.ok:
            raise _map_error(answer, write=False)
        try:
            body = answer.json()
        except ValueError as error:
            raise TransientError(f"unreadable Chargebee answer to GET {path}", platform=PLATFORM) from error
        if not isinstance(body, dict):
            raise TransientError(f"Chargebee answered GET {path} with no object", platform=PLATFORM)
        return body


def _require_invoice(payment: PaymentReference) -> None:
    kind = payment.locator.get("kind", "invoice")
    if kind != "invoice":
        raise RejectedError(
            f"Chargebee refunds invoices, not a {kind}", code="locator_not_supported", platform=PLATFORM
        )


def _api_error(answer: HttpResponse) -> ApiError:
    try:
        body = answer.json()
        return ApiError.model_validate(body if isinstance(body, dict) else {})
    except (ValidationError, ValueError):
        return ApiError()


# api_error_code values meaning the invoice has nothing (left) to refund.
_NOTHING_LEFT = {"invalid_state_for_request"}
_OVER_REFUND_PARAMS = {"refund_amount"}


def _map_error(answer: HttpResponse, *, write: bool) -> RefundflowError:
    """Chargebee's error answer in our vocabulary. ``write``: the call may have moved money."""
    error = _api_error(answer)
    status = answer.status
    code = error.api_error_code or str(status)
    message = f"Chargebee {status} {code}: {error.message or 'no message'}"
    # 409: the first request under this key is still being processed: its answer will be the one replayed.
    shared = status_failure(answer, message, platform=PLATFORM, write=write)
    if shared is not None:
        return shared
    if status == 404 or code == "resource_not_found":
        return missing(message, platform=PLATFORM, write=write)
    if error.type == "payment" or code == "payment_processing_failed":
        return RejectedError(message, code="payment_processing_failed", platform=PLATFORM)
    if code == "param_wrong_value" and error.param in _OVER_REFUND_PARAMS:
        return RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
    if write and code in _NOTHING_LEFT:
        return AlreadyDoneError(message, code="already_refunded", platform=PLATFORM)
    return RejectedError(message, code=f"chargebee_{code}", platform=PLATFORM)


# ---------------------------------------------------------------- factory


def _build(config: ChargebeeSettings, secret_name: str, secret: Mapping[str, Any]) -> ChargebeeRefundProvider:
    """From CHARGEBEE_API_BASE and the API secret ``{"api_key": ..., "site": ...}``.

    Raises:
        ConfigurationError: a secret of another shape.
    """
    api_key, site = secret_strings(secret, secret_name, ("api_key", "site"), platform=PLATFORM)
    if not all(char.isalnum() or char == "-" for char in site):
        raise bad_secret(secret_name, "site is a Chargebee site name (letters, digits and '-')", platform=PLATFORM)
    return ChargebeeRefundProvider(api_key=api_key, api_base=config.api_base.replace("{site}", site))


connector: SecretBoundConnector[ChargebeeSettings, ChargebeeRefundProvider] = SecretBoundConnector(
    PLATFORM, ChargebeeSettings, _build
)
"""The process's provider (see refundflow.connectors.factory: a rotated key is used without a cold start)."""
