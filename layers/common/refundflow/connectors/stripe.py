"""Stripe as a RefundProvider, through the official ``stripe`` SDK (``StripeClient``).

Facts this module relies on, checked against Stripe's public docs and the SDK (see the docstrings
below for each one):
- ``POST /v1/refunds`` takes ``payment_intent`` or ``charge``, ``amount`` in the currency's smallest
  unit as Stripe defines it, ``reason`` (``duplicate`` | ``fraudulent`` | ``requested_by_customer``),
  ``metadata`` and an ``Idempotency-Key`` header (docs.stripe.com/api/refunds/create).
- A POST with an idempotency key has its first response saved once the endpoint began executing,
  500s included, and replayed for retries; other parameters under the same key are an
  ``idempotency_error`` (docs.stripe.com/api/idempotent_requests).
- Webhooks are signed ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`` with HMAC-SHA256 over
  ``"<t>.<raw body>"``; the SDK only rejects old timestamps (stripe-python ``WebhookSignature``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn, TypeVar

import stripe
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, ValidationError, model_validator
from stripe.params import RefundCreateParams, RefundListParams

from refundflow import settings
from refundflow.connectors.stripe_amounts import StripeAmountError, from_stripe_amount, to_stripe_amount
from refundflow.errors import (
    AlreadyDoneError,
    AuthenticationFailed,
    ConfigurationError,
    InvalidRequest,
    NotFound,
    OutcomeUnknownError,
    RefundflowError,
    RejectedError,
    TransientError,
)
from refundflow.models import PaymentProvider, RefundReason
from refundflow.observability import logger
from refundflow.ports import (
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
    RefundProvider,
)

PLATFORM = "stripe"
SIGNATURE_HEADER = "stripe-signature"
DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_TOLERANCE_SECONDS = 300

# ---------------------------------------------------------------- Stripe payloads we read


class _Payload(BaseModel):
    """Platform payloads: validated for what we read, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _Refund(_Payload):
    id: str
    object: Literal["refund"]
    amount: StrictInt
    currency: str
    status: str | None = None
    charge: str | None = None
    payment_intent: str | None = None
    metadata: dict[str, str] | None = None
    failure_reason: str | None = None

    @model_validator(mode="after")
    def _names_a_payment(self) -> _Refund:
        if not (self.payment_intent or self.charge):
            raise ValueError("a refund without payment_intent and charge")
        return self

    @property
    def payment_id(self) -> str:
        return self.payment_intent or self.charge or ""


class _RefundList(_Payload):
    data: list[_Refund]


class _Charge(_Payload):
    id: str
    object: Literal["charge"]
    amount: StrictInt
    amount_captured: StrictInt
    amount_refunded: StrictInt
    captured: StrictBool
    currency: str
    status: str
    payment_intent: str | None = None
    refunds: _RefundList | None = None


class _EventData(_Payload):
    object: dict[str, Any]


class _Event(_Payload):
    id: str
    object: Literal["event"]
    type: str
    created: StrictInt
    data: _EventData


P = TypeVar("P", bound=_Payload)

# Stripe's refund statuses (docs.stripe.com/api/refunds/object#refund_object-status). A refund that
# needs the customer's action has not moved money yet, so it counts as pending.
_STATUSES = {
    "pending": ProviderRefundStatus.PENDING,
    "requires_action": ProviderRefundStatus.PENDING,
    "succeeded": ProviderRefundStatus.SUCCEEDED,
    "failed": ProviderRefundStatus.FAILED,
    "canceled": ProviderRefundStatus.CANCELED,
}

# Stripe knows three reasons; "fraudulent" also puts the card on the account's block lists, so only
# a fraud refund says so. Refunds we make on the merchant's own initiative carry no reason.
_REASONS: dict[RefundReason, str | None] = {
    RefundReason.DUPLICATE_CHARGE: "duplicate",
    RefundReason.FRAUDULENT: "fraudulent",
    RefundReason.PRODUCT_RETURN: "requested_by_customer",
    RefundReason.DAMAGED: "requested_by_customer",
    RefundReason.WRONG_ITEM: "requested_by_customer",
    RefundReason.NOT_AS_DESCRIBED: "requested_by_customer",
    RefundReason.NOT_RECEIVED: "requested_by_customer",
    RefundReason.DELIVERY_FAILED: "requested_by_customer",
    RefundReason.CHANGED_MIND: "requested_by_customer",
    RefundReason.GOODWILL: None,
    RefundReason.OTHER: None,
}

_HEX_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
# The over-refund error carries no `code` at Stripe: it is a 400 `invalid_request_error` with
# `param=amount` and the message "Refund amount ($X) is greater than unrefunded amount on charge
# ($Y)" (observed in public integrations, e.g. edx/commerce-coordinator#360; Stripe's error-code
# page documents no code for it). `amount_too_large` is documented, but for "greater than the maximum
# amount allowed", so it is accepted here as the same refusal without being relied upon.
_OVER_REFUND_MESSAGE = re.compile(r"greater than (the )?(unrefunded|charge) amount", re.IGNORECASE)


def refund_status(value: str | None) -> ProviderRefundStatus:
    """Our status for a Stripe refund status.

    An unknown status (a future Stripe addition) is treated as pending: the refund exists, and
    pending keeps the amount reserved until a webhook or a poll says how it ended.
    """
    status = _STATUSES.get(value or "")
    if status is None:
        logger.warning("unknown Stripe refund status, treated as pending", extra={"stripe_status": value})
        return ProviderRefundStatus.PENDING
    return status


def stripe_reason(reason: RefundReason) -> str | None:
    return _REASONS[reason]


# ---------------------------------------------------------------- the provider


class StripeRefundProvider(RefundProvider):
    """Refunds, refund lookups and webhook verification for one Stripe account."""

    provider = PaymentProvider.STRIPE

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secrets: Sequence[str],
        api_base: str = DEFAULT_API_BASE,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        stripe_version: str | None = None,
        timeout: tuple[float, float] | None = None,
        max_network_retries: int | None = None,
        client: stripe.StripeClient | None = None,
        http_client: stripe.HTTPClient | None = None,
        now: Callable[[], float] = time.time,
        list_page_size: int = 100,
    ) -> None:
        """Configure the provider; the SDK client is built on first use.

        ``timeout`` (connect, read) and ``max_network_retries`` default to ConnectorSettings. The
        SDK's own retries reuse our idempotency key, so they can never refund twice.

        Raises:
            ConfigurationError: no API key, or no webhook secret.
        """
        if not api_key:
            raise ConfigurationError("Stripe API key is empty", platform=PLATFORM)
        secrets = [secret for secret in webhook_secrets if secret]
        if not secrets:
            raise ConfigurationError("at least one Stripe webhook secret is needed", platform=PLATFORM)
        if tolerance_seconds <= 0:
            raise ConfigurationError("webhook tolerance must be positive", platform=PLATFORM)
        self._api_key = api_key
        self._webhook_secrets = tuple(secret.encode() for secret in secrets)
        self._api_base = api_base.rstrip("/")
        self._tolerance = tolerance_seconds
        self._stripe_version = stripe_version
        self._timeout = timeout
        self._max_network_retries = max_network_retries
        self._client = client
        self._http_client = http_client
        self._now = now
        self._page_size = list_page_size

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            config = settings.load(settings.ConnectorSettings)
            timeout = self._timeout or (config.connect_timeout_seconds, config.read_timeout_seconds)
            retries = self._max_network_retries
            self._client = stripe.StripeClient(
                self._api_key,
                base_addresses={"api": self._api_base},
                stripe_version=self._stripe_version,
                max_network_retries=config.max_network_retries if retries is None else retries,
                http_client=self._http_client or stripe.RequestsClient(timeout=timeout),
            )
        return self._client

    # ---------------------------------------------------------------- payments

    def get_payment(self, payment_id: str) -> ProviderPayment:
        """The payment's captured and already refunded amounts (PaymentIntent via its latest charge).

        Raises:
            NotFound: Stripe does not know the PaymentIntent or Charge.
            TransientError: Stripe could not answer now (429, 5xx, network).
            RejectedError: not a ``pi_``/``ch_`` id, a payment that has not succeeded or was not
                captured, a currency Stripe amounts cannot express exactly, or bad credentials.
        """
        status, charge = self._load_charge(payment_id)
        if status != "succeeded" or charge is None or charge.status != "succeeded" or not charge.captured:
            raise RejectedError(
                f"payment {payment_id} is not a succeeded, captured payment (status {status})",
                code="payment_not_captured",
                platform=PLATFORM,
            )
        return ProviderPayment(
            provider=self.provider,
            payment_id=payment_id,
            captured=from_stripe_amount(charge.amount_captured, charge.currency),
            refunded=from_stripe_amount(charge.amount_refunded, charge.currency),
            status=charge.status,
        )

    def _load_charge(self, payment_id: str) -> tuple[str, _Charge | None]:
        """The payment's status and its charge (the PaymentIntent's latest charge, expanded)."""
        try:
            if payment_id.startswith("pi_"):
                intent = self.client.v1.payment_intents.retrieve(payment_id, {"expand": ["latest_charge"]})
                data = intent.to_dict()
                latest = data.get("latest_charge")
                charge = _parse(_Charge, latest, on_error=TransientError) if isinstance(latest, dict) else None
                return str(data.get("status")), charge
            if payment_id.startswith("ch_"):
                charge = _parse(_Charge, self.client.v1.charges.retrieve(payment_id).to_dict(), on_error=TransientError)
                return charge.status, charge
        except stripe.StripeError as error:
            raise _map_error(error, write=False) from error
        raise RejectedError(
            f"{payment_id!r} is neither a PaymentIntent (pi_) nor a Charge (ch_) id",
            code="invalid_payment_id",
            platform=PLATFORM,
        )

    # ---------------------------------------------------------------- refunds

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """``POST /v1/refunds`` for exactly ``request.amount``, under ``request.idempotency_key``.

        The payment's currency is checked first: Stripe's refund has no currency of its own and
        would refund the same number in the charge's currency.

        Raises:
            TransientError: 409 (the same key is still being processed), 429, or a failure of the
                read before the refund was sent: retry with the same key.
            OutcomeUnknownError: a 5xx or a network failure after sending (Stripe saves a 500 once
                the endpoint began, so the refund may exist): ``find_refund`` before any retry.
            AlreadyDoneError: ``charge_already_refunded``.
            RejectedError: over-refund (``amount_exceeds_refundable``), a key reused with other
                parameters (``idempotency_key_reused``), unknown payment (``resource_missing``),
                currency mismatch, an amount Stripe cannot express, bad credentials
                (``provider_authentication_failed``), any other 4xx with Stripe's code and message.
        """
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        amount, currency = to_stripe_amount(request.amount)
        try:
            _, charge = self._load_charge(request.payment_id)
        except NotFound as error:
            raise RejectedError(error.message, code="resource_missing", platform=PLATFORM) from error
        if charge is not None and charge.currency.lower() != currency:
            raise RejectedError(
                f"refund in {request.amount.currency} for a payment in {charge.currency.upper()}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        # Our refund_id wins over caller metadata: find_refund depends on it.
        params: RefundCreateParams = {
            "amount": amount,
            "metadata": {**request.metadata, "refund_id": request.refund_id},
        }
        if request.payment_id.startswith("pi_"):
            params["payment_intent"] = request.payment_id
        else:
            params["charge"] = request.payment_id
        reason = stripe_reason(request.reason)
        if reason is not None:
            params["reason"] = reason
        try:
            refund = self.client.v1.refunds.create(params, {"idempotency_key": request.idempotency_key})
        except stripe.StripeError as error:
            mapped = _map_error(error, write=True)
            if isinstance(mapped, NotFound):  # the payment named in the body: a final refusal here
                mapped = RejectedError(mapped.message, code="resource_missing", platform=PLATFORM)
            raise mapped from error
        except Exception as error:
            # The SDK can fail on an answer it cannot read (a proxy's error page, an error body of
            # another shape). The request was sent: only find_refund can tell what happened.
            raise OutcomeUnknownError(f"unreadable answer to POST /v1/refunds: {error!r}", platform=PLATFORM) from error
        result = _provider_refund(_parse(_Refund, refund.to_dict(), on_error=OutcomeUnknownError))
        logger.info(
            "stripe refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": result.provider_refund_id,
                "status": result.status,
            },
        )
        return result

    def get_refund(self, provider_refund_id: str) -> ProviderRefund:
        """``GET /v1/refunds/{id}``.

        Raises:
            NotFound: no such refund.
            TransientError: Stripe could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        try:
            refund = self.client.v1.refunds.retrieve(provider_refund_id)
        except stripe.StripeError as error:
            raise _map_error(error, write=False) from error
        return _provider_refund(_parse(_Refund, refund.to_dict(), on_error=TransientError))

    def find_refund(self, refund_id: str, payment_id: str) -> ProviderRefund | None:
        """Our refund among the payment's refunds (every page), by ``metadata.refund_id``.

        When several match (a failed attempt and its successor), the newest one that did not fail
        or get canceled wins: that is the one moving the money.

        Raises:
            TransientError: Stripe could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        matches = [
            refund for refund in self._list_refunds(payment_id) if (refund.metadata or {}).get("refund_id") == refund_id
        ]
        if not matches:
            return None
        if len(matches) > 1:
            logger.warning(
                "several Stripe refunds carry one refund_id", extra={"refund_id": refund_id, "count": len(matches)}
            )
        live = [refund for refund in matches if refund_status(refund.status) not in _FINAL_FAILURES]
        return _provider_refund((live or matches)[0])

    def _list_refunds(self, payment_id: str) -> Iterator[_Refund]:
        params: RefundListParams = {"limit": self._page_size}
        if payment_id.startswith("pi_"):
            params["payment_intent"] = payment_id
        else:
            params["charge"] = payment_id
        try:
            page = self.client.v1.refunds.list(params)
            for refund in page.auto_paging_iter():
                yield _parse(_Refund, refund.to_dict(), on_error=TransientError)
        except stripe.StripeError as error:
            mapped = _map_error(error, write=False)
            if isinstance(mapped, NotFound):
                return  # an unknown payment has no refunds: nothing was ever created for it
            raise mapped from error

    # ---------------------------------------------------------------- webhooks

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> ProviderEvent:
        """Verify ``Stripe-Signature`` over the raw body, then reduce the event.

        Any ``v1`` signature made with any configured secret is accepted (secret rotation); the
        timestamp must be within the tolerance in both directions (the SDK only checks the past).

        Raises:
            AuthenticationFailed: missing or malformed header, no signature matching, a timestamp
                older or newer than the tolerance.
            InvalidRequest: a verified body that is not a well-formed Stripe event.
        """
        timestamp = self.verify_signature(headers, raw_body)
        try:
            event = _Event.model_validate_json(raw_body)
        except ValidationError as error:
            raise InvalidRequest(
                f"verified body is not a Stripe event: {_first_error(error)}", platform=PLATFORM
            ) from error
        logger.debug("stripe webhook verified", extra={"event_id": event.id, "signed_at": timestamp})
        try:
            return _provider_event(event)
        except (ValidationError, StripeAmountError) as error:
            detail = _first_error(error) if isinstance(error, ValidationError) else error.message
            raise InvalidRequest(
                f"{event.type} {event.id} carries a malformed object: {detail}", platform=PLATFORM
            ) from error

    def verify_signature(self, headers: Mapping[str, str], raw_body: bytes) -> int:
        """The signed timestamp of a delivery whose signature checks out.

        Raises:
            AuthenticationFailed: with the precise reason.
        """
        values = {value for key, value in headers.items() if key.lower() == SIGNATURE_HEADER}
        if not values or not any(value.strip() for value in values):
            raise AuthenticationFailed("missing Stripe-Signature header", platform=PLATFORM)
        if len(values) > 1:
            raise AuthenticationFailed("several different Stripe-Signature headers", platform=PLATFORM)
        timestamp, signatures = _parse_signature_header(values.pop())
        signed = timestamp.encode() + b"." + raw_body
        expected = [hmac.new(secret, signed, hashlib.sha256).hexdigest() for secret in self._webhook_secrets]
        # Every candidate is compared against every secret in constant time; a match anywhere wins.
        matched = False
        for candidate in signatures:
            for digest in expected:
                matched |= hmac.compare_digest(digest, candidate)
        if not matched:
            raise AuthenticationFailed("no Stripe-Signature v1 signature matches the body", platform=PLATFORM)
        signed_at = int(timestamp)
        age = self._now() - signed_at
        if age > self._tolerance:
            raise AuthenticationFailed(
                f"Stripe-Signature timestamp is {age:.0f}s old (tolerance {self._tolerance}s)", platform=PLATFORM
            )
        if -age > self._tolerance:
            raise AuthenticationFailed(
                f"Stripe-Signature timestamp is {-age:.0f}s in the future (tolerance {self._tolerance}s)",
                platform=PLATFORM,
            )
        return signed_at


_FINAL_FAILURES = {ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED}


def _parse_signature_header(header: str) -> tuple[str, list[str]]:
    """``t`` and the ``v1`` values; other schemes are ignored, as Stripe documents."""
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator or not key:
            raise AuthenticationFailed(f"malformed Stripe-Signature element {item.strip()[:20]!r}", platform=PLATFORM)
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.match(timestamps[0]):
        raise AuthenticationFailed("malformed Stripe-Signature: needs exactly one numeric t=", platform=PLATFORM)
    if not signatures:
        raise AuthenticationFailed("malformed Stripe-Signature: no v1 signature", platform=PLATFORM)
    # A signature that is not 64 lowercase hex digits (base64, upper case, truncated) can never
    # match; it is kept so the answer is the precise "no signature matches".
    return timestamps[0], [value for value in signatures if _HEX_SIGNATURE.match(value)] or [""]


def _provider_refund(refund: _Refund) -> ProviderRefund:
    return ProviderRefund(
        provider=PaymentProvider.STRIPE,
        provider_refund_id=refund.id,
        payment_id=refund.payment_id,
        amount=from_stripe_amount(refund.amount, refund.currency),
        status=refund_status(refund.status),
        refund_id=(refund.metadata or {}).get("refund_id"),
        failure_reason=refund.failure_reason,
    )


def _provider_event(event: _Event) -> ProviderEvent:
    """The refunds and payment an event is about, by the type of object it carries."""
    obj = event.data.object
    kind = obj.get("object")
    refunds: list[ProviderRefund] = []
    payment_id: str | None = None
    if kind == "refund":
        refund = _provider_refund(_Refund.model_validate(obj))
        refunds.append(refund)
        payment_id = refund.payment_id
    elif kind == "charge":
        charge = _Charge.model_validate(obj)
        payment_id = charge.payment_intent or charge.id
        # Since API 2022-11-15 a charge no longer embeds its refunds; older versions still do.
        refunds.extend(_provider_refund(refund) for refund in (charge.refunds.data if charge.refunds else []))
    elif kind == "payment_intent" and isinstance(obj.get("id"), str):
        payment_id = obj["id"]
    return ProviderEvent(
        provider=PaymentProvider.STRIPE,
        event_id=event.id,
        event_type=event.type,
        occurred_at=datetime.fromtimestamp(event.created, tz=UTC),
        refunds=refunds,
        payment_id=payment_id,
    )


def _parse(model: type[P], data: Any, *, on_error: type[RefundflowError]) -> P:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise on_error(
            f"unexpected Stripe {model.__name__.strip('_').lower()}: {_first_error(error)}", platform=PLATFORM
        ) from error


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc']) or 'body'}: {first['msg']}"


# ---------------------------------------------------------------- errors


def _retry_after(error: stripe.StripeError) -> float | None:
    headers = error.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _map_error(error: stripe.StripeError, *, write: bool) -> RefundflowError:
    """Stripe's failure in our vocabulary. ``write``: the call may have moved money."""
    status = error.http_status
    code = error.code or (error.error.code if error.error is not None else None)
    message = error.user_message or str(error)
    if isinstance(error, stripe.APIConnectionError):
        # The SDK already retried with the same key. After sending, the refund may exist.
        if write:
            return OutcomeUnknownError(f"no answer from Stripe: {message}", platform=PLATFORM)
        return TransientError(f"no answer from Stripe: {message}", platform=PLATFORM)
    if isinstance(error, stripe.IdempotencyError):
        return RejectedError(message, code="idempotency_key_reused", platform=PLATFORM)
    if status == 409:
        # Another request with this key is still being processed; its result will be replayed.
        return TransientError(
            message, code=code or "idempotency_key_in_use", platform=PLATFORM, retry_after_seconds=_retry_after(error)
        )
    if isinstance(error, stripe.RateLimitError) or status == 429:
        # Stripe's rate limiter runs before the idempotency layer: nothing happened.
        return TransientError(message, code="rate_limited", platform=PLATFORM, retry_after_seconds=_retry_after(error))
    if isinstance(error, stripe.AuthenticationError):
        return RejectedError(message, code="provider_authentication_failed", platform=PLATFORM)
    if isinstance(error, stripe.PermissionError):
        return RejectedError(message, code="provider_permission_denied", platform=PLATFORM)
    if status is None or status >= 500:
        if write:
            return OutcomeUnknownError(f"Stripe answered {status}: {message}", platform=PLATFORM)
        return TransientError(
            f"Stripe answered {status}: {message}", platform=PLATFORM, retry_after_seconds=_retry_after(error)
        )
    if code == "charge_already_refunded":
        return AlreadyDoneError(message, code=code, platform=PLATFORM)
    if code == "resource_missing" or status == 404:
        return NotFound(message, code="resource_missing", platform=PLATFORM)
    param = getattr(error, "param", None)
    if code == "amount_too_large" or (code is None and param == "amount" and _OVER_REFUND_MESSAGE.search(message)):
        return RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
    return RejectedError(message, code=code or "invalid_request_error", platform=PLATFORM)


# ---------------------------------------------------------------- factory


class _StripeProviderFactory:
    """``stripe_provider()``: one provider per process, built again when the secret changes. The secret is
    read through the secrets cache on every call (SECRETS_CACHE_SECONDS), so a revoked webhook secret or
    API key stops working without a cold start."""

    def __init__(self) -> None:
        self._built: tuple[str, StripeRefundProvider] | None = None

    def __call__(self) -> StripeRefundProvider:
        """The process's StripeRefundProvider, from StripeSettings and the STRIPE_SECRET_NAME secret.

        Raises:
            ConfigurationError: missing settings, or a secret of another shape.
        """
        from refundflow.adapters.secrets import get_json_secret

        config = settings.load(settings.StripeSettings)
        secret = get_json_secret(config.stripe_secret_name)
        version = hashlib.sha256(repr((config, sorted(secret.items()))).encode()).hexdigest()
        built = self._built
        if built is not None and built[0] == version:
            return built[1]
        provider = _build_stripe_provider(config, secret)
        self._built = (version, provider)
        return provider

    def cache_clear(self) -> None:
        self._built = None


stripe_provider = _StripeProviderFactory()


def _build_stripe_provider(config: settings.StripeSettings, secret: dict[str, Any]) -> StripeRefundProvider:
    """The secret is ``{"api_key": "sk_…", "webhook_secrets": ["whsec_…", …]}``.

    Raises:
        ConfigurationError: a secret of another shape.
    """
    api_key = secret.get("api_key")
    webhook_secrets = secret.get("webhook_secrets")
    if not isinstance(api_key, str) or not api_key.startswith(("sk_", "rk_")):
        _bad_secret(config.stripe_secret_name, "api_key must be a secret or restricted key (sk_/rk_)")
    if (
        not isinstance(webhook_secrets, list)
        or not webhook_secrets
        or not all(isinstance(value, str) and value.startswith("whsec_") for value in webhook_secrets)
    ):
        _bad_secret(config.stripe_secret_name, "webhook_secrets must be a non-empty list of whsec_ secrets")
    return StripeRefundProvider(
        api_key=api_key,
        webhook_secrets=webhook_secrets,
        api_base=config.stripe_api_base,
        stripe_version=config.stripe_api_version,
        tolerance_seconds=config.webhook_tolerance_seconds,
    )


def _bad_secret(name: str, why: str) -> NoReturn:
    raise ConfigurationError(f"secret {name}: {why}", platform=PLATFORM)
