"""Shopify as a RefundProvider: orders paid through Shopify's own payment gateways (Shopify Payments) are refunded
with the GraphQL Admin API's ``refundCreate``, through the shared HTTP client.

What Shopify documents and this module relies on (shopify.dev):
- one endpoint per shop and version, ``POST https://<shop>.myshopify.com/admin/api/<version>/graphql.json`` with
  ``X-Shopify-Access-Token`` (docs/api/admin-graphql; a custom app's Admin API access token);
- ``refundCreate`` with ``@idempotent(key:)`` (changelog 2025-12-12 "Adding idempotency for inventory adjustments and
  refund mutations": optional in 2026-01, mandatory from 2026-04): a repeat with the same key answers the first
  refund; our key is derived from the refund id (``ids.idempotency_key``);
- business refusals come as ``userErrors {field message}`` with HTTP 200; a bad document, bad credentials or a
  throttle as top-level ``errors`` whose ``extensions.code`` says which (``THROTTLED`` with
  ``extensions.cost.throttleStatus``: the wait is what the bucket lacks divided by its restore rate,
  docs/apps/build/apis/graphql-admin/rate-limits);
- a refund's money moves in its ``REFUND`` transactions, whose ``status`` (OrderTransactionStatus) is read back.

Never both: Shopify refunds only orders whose money was taken by a gateway named in ``SHOPIFY_REFUND_GATEWAYS``
(``shopify_payments`` by default). An order paid through another gateway (Stripe, PayPal, ...) is refused here
(``paid_through_other_gateway``): its refund goes to that provider, with that provider's payment id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn

from pydantic import Field, ValidationError

from refundflow import settings
from refundflow.connectors import graphql_http
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
from refundflow.platforms.shopify import graphql
from refundflow.platforms.shopify.graphql import PLATFORM, Order
from refundflow.platforms.shopify.returns import ShopifyReturns
from refundflow.ports import (
    PaymentCapabilities,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
)

DEFAULT_API_BASE = "https://your-shop.myshopify.com"
DEFAULT_API_VERSION = "2026-10"
DEFAULT_GATEWAYS = "shopify_payments"
_OVER_REFUND_WORDS = ("greater than", "more than", "exceed", "refundable")


class ShopifySettings(settings.EnvModel):
    api_base: str = Field(default=DEFAULT_API_BASE, alias="SHOPIFY_ADMIN_API_BASE")
    api_version: str = Field(default=DEFAULT_API_VERSION, alias="SHOPIFY_API_VERSION", pattern=r"^\d{4}-\d{2}$")
    refund_gateways: str = Field(default=DEFAULT_GATEWAYS, alias="SHOPIFY_REFUND_GATEWAYS")


class ShopifyRefundProvider(HttpRefundProvider):
    """Refunds and look-ups for one shop (a custom app's Admin API access token)."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = "Shopify"

    def __init__(
        self,
        *,
        access_token: str,
        api_base: str = DEFAULT_API_BASE,
        api_version: str = DEFAULT_API_VERSION,
        refund_gateways: frozenset[str] = frozenset({DEFAULT_GATEWAYS}),
        http: HttpClient | None = None,
        capabilities: PaymentCapabilities | None = None,
    ) -> None:
        """Raises:
        ConfigurationError: no access token, or no refund gateway."""
        if not access_token:
            raise ConfigurationError("a Shopify Admin API access token is needed", platform=PLATFORM)
        if not refund_gateways:
            raise ConfigurationError("SHOPIFY_REFUND_GATEWAYS names no gateway", platform=PLATFORM)
        self._token = access_token
        self.endpoint = f"{api_base.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._http_base_url = self.endpoint
        self.refund_gateways = refund_gateways
        self._http = http
        self._capabilities = capabilities

    # ---------------------------------------------------------------- the wire

    def _post(self, document: str, variables: Mapping[str, Any], *, write: bool) -> dict[str, Any]:
        """One GraphQL request (``connectors.graphql_http``); its ``data`` when there is no top-level error.

        Raises:
            the mapped error (``_raise_for``); OutcomeUnknownError for a write whose answer cannot be read.
        """

        def refuse(answer: HttpResponse, body: dict[str, Any]) -> NoReturn:
            _raise_for(answer, body, write=write)

        return graphql_http.post(
            self.http,
            document,
            variables,
            url=self.endpoint,
            headers={"X-Shopify-Access-Token": self._token, "Accept": "application/json"},
            write=write,
            title=self.title,
            refuse=refuse,
        )

    def _order(self, payment: PaymentReference) -> Order:
        """Raises: NotFound (no such order), TransientError, RejectedError."""
        data = self._post(graphql.ORDER, {"id": graphql.order_gid(payment.payment_id)}, write=False)
        try:
            order = graphql.parse_order(data.get("order"))
        except ValidationError as error:
            raise TransientError(
                f"unreadable Shopify order: {error.error_count()} errors", platform=PLATFORM
            ) from error
        if order is None:
            raise NotFound(f"Shopify has no order {payment.payment_id}", code="resource_missing", platform=PLATFORM)
        return order

    # ---------------------------------------------------------------- payments

    def _amounts(self, order: Order) -> tuple[Money, Money]:
        """What the order's capturing transactions took, and what its live refunds gave back."""
        currency = order.presentment_currency_code
        captured = Money.of(0, currency.upper())
        for transaction in order.capturing():
            captured = captured + graphql.money(self.money, transaction.amount_set.presentment_money)
        refunded = Money.of(0, currency.upper())
        for refund in order.refunds:
            for transaction in refund.transactions.nodes:
                if transaction.kind == "REFUND" and transaction.status in graphql.LIVE_REFUND:
                    refunded = refunded + graphql.money(self.money, transaction.amount_set.presentment_money)
        return captured, refunded

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The order's captured amount (its SALE and CAPTURE transactions that succeeded) and what its refunds took
        back, in the order's presentment currency.

        Raises:
            NotFound: no such order.
            RejectedError: an order that took no money (nothing captured yet), bad credentials.
            TransientError: Shopify could not answer now (throttled, 5xx).
        """
        order = self._order(payment)
        if not order.capturing():
            raise RejectedError(
                f"order {payment.payment_id} has taken no money", code="payment_not_captured", platform=PLATFORM
            )
        captured, refunded = self._amounts(order)
        return ProviderPayment(
            provider=PaymentProvider.SHOPIFY,
            payment_id=payment.payment_id,
            captured=captured,
            refunded=refunded,
            status="paid"
            if not refunded.is_positive()
            else "refunded"
            if refunded == captured
            else "partially_refunded",
        )

    # ---------------------------------------------------------------- refunds

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund ``request.amount`` of the order with ``refundCreate`` (its REFUND transactions against the
        capturing transactions, oldest first), our refund id in the refund's note, ``@idempotent(key:)``.

        Raises:
            TransientError: throttled, or Shopify unavailable before anything was done.
            OutcomeUnknownError: sent and no readable answer (5xx, timeout): find_refund before any resend.
            AlreadyDoneError: the order has nothing left to refund.
            RejectedError: more than is left (``amount_exceeds_refundable``), another currency than the order's
                (``currency_mismatch``), an order paid through a gateway Shopify does not refund for us
                (``paid_through_other_gateway``), an unknown order (``resource_missing``), the same key with other
                input (``idempotency_key_reused``), any other userError (``shopify_user_error``).
            AmountNotRepresentable: not exactly a Shopify amount (checked before anything is sent).
        """
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        self.money.to_platform(request.amount)
        try:
            order = self._order(request.payment)
        except NotFound as error:
            raise RejectedError(error.message, code="resource_missing", platform=PLATFORM) from error
        ours = [refund for refund in order.refunds if refund.refund_id == request.refund_id]
        if ours:  # made before (a lost answer, a retried step): the same refund, never a second one
            return graphql.provider_refund(ours[-1], self.money)
        if order.presentment_currency_code.upper() != request.amount.currency:
            raise RejectedError(
                f"refund in {request.amount.currency} of an order in {order.presentment_currency_code}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        transactions = self._refund_transactions(order, request.amount)
        data = self._post(
            graphql.REFUND_CREATE,
            {
                "input": {
                    "orderId": order.id,
                    "note": graphql.note_for(request.refund_id),
                    "notify": False,
                    "currency": order.presentment_currency_code,
                    "transactions": transactions,
                },
                "idempotencyKey": request.idempotency_key,
            },
            write=True,
        )
        payload = data.get("refundCreate")
        if not isinstance(payload, dict):
            raise OutcomeUnknownError("refundCreate answered no payload", platform=PLATFORM)
        user_errors = payload.get("userErrors") or []
        if user_errors:
            _raise_user_errors(user_errors)
        try:
            refund = graphql.parse_refund(payload.get("refund"))
            if refund is None:
                raise OutcomeUnknownError("refundCreate answered neither a refund nor an error", platform=PLATFORM)
            made = graphql.provider_refund(refund, self.money)
        except (ValidationError, AmountNotRepresentable) as error:
            raise OutcomeUnknownError(f"unreadable refundCreate answer: {error}", platform=PLATFORM) from error
        logger.info(
            "shopify refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": made.provider_refund_id,
                "status": made.status,
            },
        )
        return made

    def _refund_transactions(self, order: Order, amount: Money) -> list[dict[str, Any]]:
        """The REFUND transactions that give back ``amount``: each capturing transaction up to what is left of it.

        Raises:
            RejectedError: paid_through_other_gateway, amount_exceeds_refundable.
            AlreadyDoneError: nothing is left.
        """
        capturing = order.capturing()
        foreign = sorted({item.gateway or "unknown" for item in capturing} - self.refund_gateways)
        if foreign:
            raise RejectedError(
                f"order {order.name or order.id} was paid through {', '.join(foreign)}: refund it through that "
                "provider, not Shopify",
                code="paid_through_other_gateway",
                platform=PLATFORM,
            )
        given_back: dict[str, int] = {}
        for refund in order.refunds:
            for item in refund.transactions.nodes:
                if item.kind == "REFUND" and item.status in graphql.LIVE_REFUND and item.parent_transaction:
                    units = graphql.money(self.money, item.amount_set.presentment_money).minor_units
                    given_back[item.parent_transaction.id] = given_back.get(item.parent_transaction.id, 0) + units
        if not capturing:
            raise RejectedError(f"order {order.id} has taken no money", code="payment_not_captured", platform=PLATFORM)
        _, refunded = self._amounts(order)
        captured_units = sum(
            graphql.money(self.money, item.amount_set.presentment_money).minor_units for item in capturing
        )
        left = captured_units - refunded.minor_units
        if left <= 0:
            raise AlreadyDoneError(f"order {order.id} is refunded in full", code="already_refunded", platform=PLATFORM)
        if amount.minor_units > left:
            raise RejectedError(
                f"{amount} is more than the {Money.of(left, amount.currency)} left on order {order.id}",
                code="amount_exceeds_refundable",
                platform=PLATFORM,
            )
        wanted = amount.minor_units
        lines: list[dict[str, Any]] = []
        for item in capturing:
            taken = graphql.money(self.money, item.amount_set.presentment_money).minor_units
            share = min(wanted, taken - given_back.get(item.id, 0))
            if share <= 0:
                continue
            lines.append(
                {
                    "orderId": order.id,
                    "parentId": item.id,
                    "kind": "REFUND",
                    "gateway": item.gateway,
                    "amount": str(self.money.to_platform(Money.of(share, amount.currency))),
                }
            )
            wanted -= share
            if wanted == 0:
                break
        if wanted:
            raise RejectedError(
                f"{amount} is more than the capturing transactions of order {order.id} have left",
                code="amount_exceeds_refundable",
                platform=PLATFORM,
            )
        return lines

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """The refund read with ``node(id:)`` (its REFUND transactions' status).

        Raises:
            NotFound: no such refund, or one of another order.
            TransientError, RejectedError.
        """
        data = self._post(graphql.REFUND, {"id": graphql.refund_gid(provider_refund_id)}, write=False)
        try:
            refund = graphql.parse_refund(data.get("node"))
            if refund is None or refund.order.id != graphql.order_gid(payment.payment_id):
                raise NotFound(
                    f"order {payment.payment_id} has no refund {provider_refund_id}",
                    code="resource_missing",
                    platform=PLATFORM,
                )
            return graphql.provider_refund(refund, self.money)
        except (ValidationError, AmountNotRepresentable) as error:
            raise TransientError(f"unreadable Shopify refund: {error}", platform=PLATFORM) from error

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Our refund among the order's refunds, by the note we wrote on it.

        Raises:
            TransientError, RejectedError.
        """
        try:
            order = self._order(payment)
        except NotFound:
            return None
        ours = [refund for refund in order.refunds if refund.refund_id == refund_id]
        if len(ours) > 1:
            logger.warning("several Shopify refunds carry one refund id", extra={"refund_id": refund_id})
        return graphql.provider_refund(ours[-1], self.money) if ours else None


# ---------------------------------------------------------------- errors


def throttle_wait(body: Mapping[str, Any]) -> float | None:
    """Seconds until the bucket holds the query's cost again (``extensions.cost``), or None when not said."""
    cost = (body.get("extensions") or {}).get("cost") if isinstance(body.get("extensions"), dict) else None
    if not isinstance(cost, dict):
        return None
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost["requestedQueryCost"])
        available = float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return None
    if rate <= 0:
        return None
    return float(max(1, math.ceil((requested - available) / rate)))


def _raise_for(answer: HttpResponse, body: Mapping[str, Any], *, write: bool) -> NoReturn:
    """Shopify's top-level failure in our vocabulary. ``write``: the request may have moved money."""
    errors = body.get("errors")
    first: dict[str, Any] = {}
    if isinstance(errors, list):
        first = next((error for error in errors if isinstance(error, dict)), {})
    elif isinstance(errors, str):  # a 401/404 answers {"errors": "[API] Invalid API key or access token ..."}
        first = {"message": errors}
    found = first.get("extensions")
    code = str(found.get("code") or "") if isinstance(found, dict) else ""
    message = f"Shopify {answer.status} {code or '-'}: {str(first.get('message') or 'no message')[:200]}"
    failure: RefundflowError
    if code == "THROTTLED" or answer.status == 429:
        wait = retry_after_seconds(answer) or throttle_wait(body)
        failure = TransientError(message, code="rate_limited", platform=PLATFORM, retry_after_seconds=wait)
    elif code == "IDEMPOTENCY_CONCURRENT_REQUEST":
        failure = TransientError(message, code="idempotency_key_in_use", platform=PLATFORM)
    elif code == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH":
        failure = RejectedError(message, code="idempotency_key_reused", platform=PLATFORM)
    elif answer.status == 401:
        failure = RejectedError(message, code="provider_authentication_failed", platform=PLATFORM)
    elif answer.status == 403 or code == "ACCESS_DENIED":
        failure = RejectedError(message, code="provider_permission_denied", platform=PLATFORM)
    elif answer.status >= 500 or code in {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"} or not body:
        failure = (
            OutcomeUnknownError(message, platform=PLATFORM) if write else TransientError(message, platform=PLATFORM)
        )
    else:
        failure = RejectedError(message, code=f"shopify_{(code or str(answer.status)).lower()}", platform=PLATFORM)
    raise failure


def _raise_user_errors(user_errors: list[Any]) -> NoReturn:
    """``refundCreate``'s userErrors (UserError: field, message; no code is documented for this payload)."""
    first = next((error for error in user_errors if isinstance(error, dict)), {})
    text = str(first.get("message") or "refused")
    field = ".".join(str(part) for part in first.get("field") or [])
    message = f"Shopify refused the refund ({field or '-'}): {text[:200]}"
    lowered = text.lower()
    if any(word in lowered for word in _OVER_REFUND_WORDS):
        raise RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
    raise RejectedError(message, code="shopify_user_error", platform=PLATFORM)


class ShopifyConnector(ShopifyRefundProvider, ShopifyReturns):
    """The shop's one connector: its refunds (payment role) and its returns read and written back (ticket role)."""


# ---------------------------------------------------------------- factory


def _gateways(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _build(config: ShopifySettings, secret_name: str, secret: Mapping[str, Any]) -> ShopifyConnector:
    """From SHOPIFY_ADMIN_API_BASE, SHOPIFY_API_VERSION, SHOPIFY_REFUND_GATEWAYS and ``{"access_token": ...}``.

    Raises:
        ConfigurationError: a secret of another shape, no gateway.
    """
    (token,) = secret_strings(secret, secret_name, ("access_token",), platform=PLATFORM)
    return ShopifyConnector(
        access_token=token,
        api_base=config.api_base,
        api_version=config.api_version,
        refund_gateways=_gateways(config.refund_gateways),
    )


connector: SecretBoundConnector[ShopifySettings, ShopifyConnector] = SecretBoundConnector(
    PLATFORM, ShopifySettings, _build
)
"""The process's provider (see refundflow.connectors.factory: a rotated token is used without a cold start)."""
