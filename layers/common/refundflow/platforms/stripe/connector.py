"""Stripe as a RefundProvider, through the official ``stripe`` SDK (``StripeClient``).

Facts this module relies on, checked against Stripe's public docs and the SDK (see the docstrings
below for each one):
- ``POST /v1/refunds`` takes ``payment_intent`` or ``charge``, ``amount`` in the currency's smallest
  unit as Stripe defines it, ``reason`` (``duplicate`` | ``fraudulent`` | ``requested_by_customer``),
  ``metadata`` and an ``Idempotency-Key`` header (docs.stripe.com/api/refunds/create).
- A POST with an idempotency key has its first response saved once the endpoint began executing,
  500s included, and replayed for retries; other parameters under the same key are an
  ``idempotency_error`` (docs.stripe.com/api/idempotent_requests).

Webhook verification is in ``inbound.py`` (no SDK there); amounts go through Stripe's currency profile
(``payloads.py``); the connector never converts money itself.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from typing import IO, Any, ClassVar

import stripe
from pydantic import Field
from stripe.params import BalanceTransactionListParams, RefundCreateParams, RefundListParams

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector, bad_secret
from refundflow.connectors.payment import CatalogRefundProvider
from refundflow.errors import (
    AlreadyDoneError,
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RefundflowError,
    RejectedError,
    TransientError,
)
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.observability import logger
from refundflow.platforms.stripe.payloads import (
    FINAL_FAILURES,
    PLATFORM,
    TITLE,
    StripeBalanceTransaction,
    StripeCharge,
    StripePayout,
    StripeRefund,
    from_stripe_amount,
    parse,
    provider_refund,
    refund_status,
    to_stripe_amount,
)
from refundflow.ports import (
    PayoutReader,
    PayoutStatus,
    ProviderPayment,
    ProviderPayout,
    ProviderRefund,
    ProviderRefundRequest,
)

DEFAULT_API_BASE = "https://api.stripe.com"

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

# The over-refund error carries no `code` at Stripe: it is a 400 `invalid_request_error` with
# `param=amount` and the message "Refund amount ($X) is greater than unrefunded amount on charge
# ($Y)" (observed in public integrations, e.g. edx/commerce-coordinator#360; Stripe's error-code
# page documents no code for it). `amount_too_large` is documented, but for "greater than the maximum
# amount allowed", so it is accepted here as the same refusal without being relied upon.
_OVER_REFUND_MESSAGE = re.compile(r"greater than (the )?(unrefunded|charge) amount", re.IGNORECASE)


def stripe_reason(reason: RefundReason) -> str | None:
    return _REASONS[reason]


# ---------------------------------------------------------------- the provider


class StripeRefundProvider(CatalogRefundProvider, PayoutReader):
    """Refunds and refund look-ups for one Stripe account, and its payouts' balance transactions."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = TITLE

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str = DEFAULT_API_BASE,
        stripe_version: str | None = None,
        timeout: tuple[float, float] | None = None,
        max_network_retries: int | None = None,
        client: stripe.StripeClient | None = None,
        http_client: stripe.HTTPClient | None = None,
        list_page_size: int = 100,
    ) -> None:
        """Configure the provider; the SDK client is built on first use.

        ``timeout`` (connect, read) and ``max_network_retries`` default to ConnectorSettings. The
        SDK's own retries reuse our idempotency key, so they can never refund twice.

        Raises:
            ConfigurationError: no API key.
        """
        if not api_key:
            raise ConfigurationError("Stripe API key is empty", platform=PLATFORM)
        self._api_key = api_key
        self._api_base = api_base.rstrip("/")
        self._stripe_version = stripe_version
        self._timeout = timeout
        self._max_network_retries = max_network_retries
        self._client = client
        self._http_client = http_client
        self._page_size = list_page_size
        self._payouts: dict[str, StripePayout] = {}

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

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The payment's captured and already refunded amounts (PaymentIntent via its latest charge).

        Raises:
            NotFound: Stripe does not know the PaymentIntent or Charge.
            TransientError: Stripe could not answer now (429, 5xx, network).
            RejectedError: not a ``pi_``/``ch_`` id, a payment that has not succeeded or was not
                captured, a currency Stripe amounts cannot express exactly, or bad credentials.
        """
        payment_id = payment.payment_id
        status, charge = self._load_charge(payment_id)
        if status != "succeeded" or charge is None or charge.status != "succeeded" or not charge.captured:
            raise RejectedError(
                f"payment {payment_id} is not a succeeded, captured payment (status {status})",
                code="payment_not_captured",
                platform=PLATFORM,
            )
        return ProviderPayment(
            provider=PaymentProvider.STRIPE,
            payment_id=payment_id,
            captured=from_stripe_amount(charge.amount_captured, charge.currency),
            refunded=from_stripe_amount(charge.amount_refunded, charge.currency),
            status=charge.status,
            # The charge's created (Unix seconds, docs.stripe.com/api/charges/object): when it was captured for an
            # automatic capture; the split-tender rule last_captured_first orders tenders by it.
            captured_at=datetime.fromtimestamp(charge.created, tz=UTC) if charge.created is not None else None,
        )

    def _load_charge(self, payment_id: str) -> tuple[str, StripeCharge | None]:
        """The payment's status and its charge (the PaymentIntent's latest charge, expanded)."""
        try:
            if payment_id.startswith("pi_"):
                intent = self.client.v1.payment_intents.retrieve(payment_id, {"expand": ["latest_charge"]})
                data = intent.to_dict()
                latest = data.get("latest_charge")
                charge = parse(StripeCharge, latest, on_error=TransientError) if isinstance(latest, dict) else None
                return str(data.get("status")), charge
            if payment_id.startswith("ch_"):
                charge = parse(
                    StripeCharge, self.client.v1.charges.retrieve(payment_id).to_dict(), on_error=TransientError
                )
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
        result = provider_refund(parse(StripeRefund, refund.to_dict(), on_error=OutcomeUnknownError))
        logger.info(
            "stripe refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": result.provider_refund_id,
                "status": result.status,
            },
        )
        return result

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
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
        return provider_refund(parse(StripeRefund, refund.to_dict(), on_error=TransientError))

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Our refund among the payment's refunds (every page), by ``metadata.refund_id``.

        When several match (a failed attempt and its successor), the newest one that did not fail
        or get canceled wins: that is the one moving the money.

        Raises:
            TransientError: Stripe could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        matches = [
            refund
            for refund in self._list_refunds(payment.payment_id)
            if (refund.metadata or {}).get("refund_id") == refund_id
        ]
        if not matches:
            return None
        if len(matches) > 1:
            logger.warning(
                "several Stripe refunds carry one refund_id", extra={"refund_id": refund_id, "count": len(matches)}
            )
        live = [refund for refund in matches if refund_status(refund.status) not in FINAL_FAILURES]
        return provider_refund((live or matches)[0])

    def _list_refunds(self, payment_id: str) -> Iterator[StripeRefund]:
        params: RefundListParams = {"limit": self._page_size}
        if payment_id.startswith("pi_"):
            params["payment_intent"] = payment_id
        else:
            params["charge"] = payment_id
        try:
            page = self.client.v1.refunds.list(params)
            for refund in page.auto_paging_iter():
                yield parse(StripeRefund, refund.to_dict(), on_error=TransientError)
        except stripe.StripeError as error:
            mapped = _map_error(error, write=False)
            if isinstance(mapped, NotFound):
                return  # an unknown payment has no refunds: nothing was ever created for it
            raise mapped from error

    # ---------------------------------------------------------------- payouts (PayoutReader)

    def get_payout(self, payout_id: str) -> ProviderPayout:
        """``GET /v1/payouts/{id}`` (docs.stripe.com/api/payouts/retrieve). A payout is ``settled`` once it is
        ``paid`` and its ``reconciliation_status`` is ``completed``: only then does the balance transaction list
        filtered on it hold all of its transactions (docs.stripe.com/payouts/reconciliation, the
        ``payout.reconciliation_completed`` event). ``failed`` and ``canceled`` payouts never reached the bank.
        A manual payout (``automatic: false``) cannot be itemized (``payout`` filters automatic payouts only):
        it stays pending here, and its settlement comes from the report file.

        Raises:
            NotFound: no such payout. TransientError: Stripe could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        try:
            data = self.client.v1.payouts.retrieve(payout_id).to_dict()
        except stripe.StripeError as error:
            raise _map_error(error, write=False) from error
        payout = parse(StripePayout, data, on_error=TransientError)
        self._payouts[payout.id] = payout
        failure = None
        if payout.status in ("failed", "canceled"):
            status = PayoutStatus.FAILED
            failure = f"{payout.status}: {payout.failure_code or 'no code'} {payout.failure_message or ''}".strip()
        elif payout.status == "paid" and payout.automatic and payout.reconciliation_status == "completed":
            status = PayoutStatus.SETTLED
        else:
            status = PayoutStatus.PENDING
        return ProviderPayout(
            payout_id=payout.id,
            status=status,
            amount=from_stripe_amount(payout.amount, payout.currency),
            arrival_date=_day(payout.arrival_date),
            failure=failure,
        )

    def write_payout_report(self, payout: ProviderPayout, out: IO[str]) -> int:
        """The payout's balance transactions as Stripe's itemized payout reconciliation report (the columns of
        ``payout_reconciliation.itemized``, amounts in major units): ``GET /v1/balance_transactions?payout=po_…``
        (docs.stripe.com/api/balance_transactions/list; ``source`` is the refund's ``re_`` id unexpanded, so no
        ``expand[]``), every page, ``list_page_size`` (100, Stripe's maximum) at a time; only one page is held.
        The payout's own balance transaction ends the report (added from the payout if the list left it out).

        Raises:
            TransientError: Stripe could not answer now, or answered something that is not a balance transaction.
            RejectedError: bad credentials or another final refusal.
        """
        stripe_payout = self._payouts.get(payout.payout_id)
        if stripe_payout is None:
            self.get_payout(payout.payout_id)
            stripe_payout = self._payouts[payout.payout_id]
        effective = _timestamp(stripe_payout.arrival_date)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        count = 0
        own_line_seen = False
        params: BalanceTransactionListParams = {"payout": stripe_payout.id, "limit": self._page_size}
        try:
            for item in self.client.v1.balance_transactions.list(params).auto_paging_iter():
                transaction = parse(StripeBalanceTransaction, item.to_dict(), on_error=TransientError)
                is_payout = transaction.reporting_category == "payout" and transaction.source_id == stripe_payout.id
                own_line_seen |= is_payout
                writer.writerow(_report_row(transaction, "" if is_payout else stripe_payout.id, effective))
                count += 1
        except stripe.StripeError as error:
            raise _map_error(error, write=False) from error
        if not own_line_seen:
            writer.writerow(_payout_row(stripe_payout))
            count += 1
        return count


# Stripe's itemized payout reconciliation report columns (docs.stripe.com/reports/report-types/payout-reconciliation),
# the ones reconciliation.providers reads.
REPORT_COLUMNS = (
    "balance_transaction_id",
    "created_utc",
    "available_on_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "automatic_payout_id",
    "automatic_payout_effective_at",
)


def _day(seconds: int | None) -> date | None:
    return datetime.fromtimestamp(seconds, tz=UTC).date() if seconds is not None else None


def _timestamp(seconds: int | None) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if seconds is not None else ""


def _decimal(amount: int, currency: str) -> str:
    """A signed amount in Stripe's unit as the report writes it: major units, the currency's decimals."""
    text = from_stripe_amount(abs(amount), currency).to_decimal_string()
    return f"-{text}" if amount < 0 else text


def _report_row(transaction: StripeBalanceTransaction, payout_id: str, effective: str) -> list[str]:
    currency = transaction.currency
    return [
        transaction.id,
        _timestamp(transaction.created),
        _timestamp(transaction.available_on),
        currency.lower(),
        _decimal(transaction.amount, currency),
        _decimal(transaction.fee, currency),
        _decimal(transaction.net, currency),
        transaction.reporting_category,
        transaction.source_id,
        transaction.description or "",
        payout_id,
        effective if payout_id else "",
    ]


def _payout_row(payout: StripePayout) -> list[str]:
    amount = _decimal(-payout.amount, payout.currency)
    zero = _decimal(0, payout.currency)
    day = _timestamp(payout.arrival_date)
    return [
        payout.balance_transaction or payout.id,
        day,
        day,
        payout.currency.lower(),
        amount,
        zero,
        amount,
        "payout",
        payout.id,
        "STRIPE PAYOUT",
        "",
        "",
    ]


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


class StripeSettings(settings.EnvModel):
    """Stripe's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="STRIPE_API_BASE")
    api_version: str | None = Field(default=None, alias="STRIPE_API_VERSION")


def _build_stripe_provider(config: StripeSettings, name: str, secret: Mapping[str, Any]) -> StripeRefundProvider:
    """Raises: ConfigurationError: a secret of another shape."""
    api_key = secret.get("api_key")
    if not isinstance(api_key, str) or not api_key.startswith(("sk_", "rk_")):
        raise bad_secret(name, "api_key must be a secret or restricted key (sk_/rk_)", platform=PLATFORM)
    return StripeRefundProvider(api_key=api_key, api_base=config.api_base, stripe_version=config.api_version)


connector: SecretBoundConnector[StripeSettings, StripeRefundProvider] = SecretBoundConnector(
    PLATFORM, StripeSettings, _build_stripe_provider
)
"""The process's StripeRefundProvider, built from StripeSettings and its API secret (``<SecretsPrefix>{PLATFORM}``),
again when either changes (see refundflow.connectors.factory)."""
