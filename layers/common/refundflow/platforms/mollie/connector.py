"""Mollie as a RefundProvider, through the shared HTTP client (Mollie API v2, API key).

Facts this module relies on (docs.mollie.com and the official spec ``mollie/openapi`` ``specs.yaml``):
- ``Authorization: Bearer <test_... | live_...>`` (the key chooses test or live mode; the base URL is the same);
- ``POST /v2/payments/{paymentId}/refunds`` with ``{amount: {currency, value}, description, metadata}`` (``value`` a
  decimal string in the currency's decimals; ``metadata`` is kept and returned on every read, so it carries our
  refund id) answers 201 with the refund (status ``queued``, ``pending``, ``processing``, ``refunded``, ``failed`` or
  ``canceled``); ``Idempotency-Key`` on any POST: a repeat within the key's life answers the cached first response
  (``Idempotent-Replayed: true``), a repeat while the first is processed is a 409, the same key with other
  parameters a 400 (docs.mollie.com/reference/api-idempotency);
- errors ``{status, title, detail, field?, _links}`` (``application/hal+json``): 401, 403, 404, 409 ("A duplicate
  refund has been detected"), 422 (validation and refusals, ``detail`` says which), 429, 5xx;
- ``GET /v2/payments/{paymentId}/refunds/{refundId}``, ``GET /v2/payments/{paymentId}/refunds`` (paginated: ``from``
  and ``limit`` up to 250, ``_links.next``), ``GET /v2/payments/{paymentId}`` (``status``, ``amount``,
  ``amountRemaining``: what can still be refunded, ``amountRefunded``).

Mollie finds our refund by its metadata in the payment's refund list, so after an unknown outcome the domain
looks before it resends; the Idempotency-Key (kept one hour) guards a resend inside that hour as well. Amounts go
through Mollie's currency profile (``amounts.py``); webhooks are in ``inbound.py`` (intake, no API credentials).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from pydantic import Field

from refundflow import settings
from refundflow.connectors.factory import SecretBoundConnector, bad_secret
from refundflow.connectors.http import HttpClient, HttpResponse, missing, status_failure
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
from refundflow.observability import logger
from refundflow.platforms.mollie.amounts import PLATFORM, TITLE, from_mollie, to_mollie
from refundflow.platforms.mollie.payloads import (
    METADATA_KEY,
    PAYMENT_ID,
    REFUND_ID,
    PayloadError,
    ours,
    provider_refund,
)
from refundflow.ports import ProviderPayment, ProviderRefund, ProviderRefundRequest

DEFAULT_API_BASE = "https://api.mollie.com"
PAGE_LIMIT = 250
MAX_PAGES = 40
REFUNDABLE_STATUSES = frozenset({"paid"})


class MollieRefundProvider(HttpRefundProvider):
    """Refunds and look-ups for one Mollie website profile (its API key)."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = TITLE

    def __init__(self, *, api_key: str, api_base: str = DEFAULT_API_BASE, http: HttpClient | None = None) -> None:
        """Raises:
        ConfigurationError: no API key, or one that is neither a test_ nor a live_ key."""
        if not api_key or not api_key.startswith(("test_", "live_")):
            raise ConfigurationError("a Mollie API key (test_... or live_...) is needed", platform=PLATFORM)
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/hal+json"}
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)

    # ---------------------------------------------------------------- payments

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The payment's amount and what is no longer refundable (refunded or held by open refunds).

        Raises:
            NotFound: Mollie does not know the payment.
            TransientError: Mollie could not answer now.
            RejectedError: a payment that is not paid (open, canceled, expired, failed...), bad credentials.
        """
        found = self._read(f"/v2/payments/{_payment_id(payment.payment_id)}", what="payment")
        status = str(found.get("status"))
        if status not in REFUNDABLE_STATUSES:
            raise RejectedError(
                f"payment {payment.payment_id} is {status}, not paid", code="payment_not_captured", platform=PLATFORM
            )
        try:
            captured = from_mollie(found.get("amountCaptured") or found.get("amount"))
            remaining = found.get("amountRemaining")
            if remaining is not None:
                refunded = captured - from_mollie(remaining)
            elif found.get("amountRefunded") is not None:
                refunded = from_mollie(found.get("amountRefunded"))
            else:
                refunded = captured - captured
        except AmountNotRepresentable as error:
            raise TransientError(f"unreadable Mollie payment amounts: {error.message}", platform=PLATFORM) from error
        return ProviderPayment(
            provider=PaymentProvider.MOLLIE,
            payment_id=payment.payment_id,
            captured=captured,
            refunded=min(refunded, captured) if refunded.minor_units > 0 else captured - captured,
            status=status,
        )

    # ---------------------------------------------------------------- refunds

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund exactly ``request.amount`` of the payment, under ``Idempotency-Key``.

        Raises:
            TransientError: 409 (the same key is still being processed, or Mollie saw a duplicate refund in short
                succession), 429, or no connection before the request left: retry with the same key.
            OutcomeUnknownError: a 5xx, a read timeout or an unreadable answer after sending: Mollie may have made
                the refund; the domain finds it by our id in the payment's refunds before anything is resent.
            AlreadyDoneError: the payment is already fully refunded.
            RejectedError: over-refund (``amount_exceeds_refundable``), unknown payment (``resource_missing``), the
                key reused with other parameters, bad credentials, any other refusal with Mollie's detail.
            AmountNotRepresentable: an amount or currency Mollie cannot take exactly.
        """
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        path = f"/v2/payments/{_payment_id(request.payment_id)}/refunds"
        reference = request.metadata.get("source_reference")
        body: dict[str, Any] = {
            "amount": to_mollie(request.amount),
            "description": (f"Refund {reference}" if reference else f"Refund {request.refund_id}")[:255],
            "metadata": {METADATA_KEY: request.refund_id, **({"source_reference": reference} if reference else {})},
        }
        answer = self.http.request(
            "POST", path, json=body, headers={**self._headers, "Idempotency-Key": request.idempotency_key}
        )
        if not answer.ok:
            raise _map_error(answer, write=True)
        try:
            result = provider_refund(answer.json_object(), payment_id=request.payment_id)
        except (PayloadError, AmountNotRepresentable, ValueError) as error:
            raise OutcomeUnknownError(f"unreadable answer to POST {path}: {error}", platform=PLATFORM) from error
        logger.info(
            "mollie refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": result.provider_refund_id,
                "status": result.status,
                "replayed": answer.headers.get("Idempotent-Replayed") == "true",
            },
        )
        return result

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """``GET /v2/payments/{paymentId}/refunds/{refundId}``.

        Raises:
            NotFound: no such refund. TransientError: Mollie could not answer now.
            RejectedError: bad credentials or another final refusal.
        """
        if not REFUND_ID.match(provider_refund_id):
            raise NotFound(f"{provider_refund_id!r} is not a Mollie refund id", platform=PLATFORM)
        refund = self._read(
            f"/v2/payments/{_payment_id(payment.payment_id)}/refunds/{provider_refund_id}", what="refund"
        )
        try:
            return provider_refund(refund, payment_id=payment.payment_id)
        except (PayloadError, AmountNotRepresentable) as error:
            raise TransientError(
                f"unreadable Mollie refund {provider_refund_id}: {error}", platform=PLATFORM
            ) from error

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Our refund among the payment's refunds (by the refund id in its metadata), or None.

        Raises:
            TransientError: Mollie could not answer now, or the list is longer than we read.
            NotFound: Mollie does not know the payment.
        """
        path = f"/v2/payments/{_payment_id(payment.payment_id)}/refunds"
        start: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": PAGE_LIMIT, **({"from": start} if start else {})}
            page = self._read(path, what="refund list", params=params)
            for refund in ((page.get("_embedded") or {}).get("refunds")) or []:
                if isinstance(refund, dict) and ours(refund) == refund_id:
                    try:
                        return provider_refund(refund, payment_id=payment.payment_id)
                    except (PayloadError, AmountNotRepresentable) as error:
                        raise TransientError(f"unreadable Mollie refund: {error}", platform=PLATFORM) from error
            start = _next_from(page)
            if start is None:
                return None
        raise TransientError(f"payment {payment.payment_id} has more refunds than we page through", platform=PLATFORM)

    def _read(self, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        answer = self.http.request("GET", path, params=params, headers=self._headers)
        if not answer.ok:
            raise _map_error(answer, write=False)
        try:
            return answer.json_object()
        except ValueError as error:
            raise TransientError(f"unreadable Mollie {what}: {error}", platform=PLATFORM) from error


# ---------------------------------------------------------------- helpers


def _payment_id(payment_id: str) -> str:
    """A Mollie payment id fit for a path (never a path of our choosing).

    Raises:
        RejectedError: ``resource_missing``, not a ``tr_`` id."""
    if not PAYMENT_ID.match(payment_id):
        raise RejectedError(f"{payment_id!r} is not a Mollie payment id", code="resource_missing", platform=PLATFORM)
    return payment_id


def _next_from(page: dict[str, Any]) -> str | None:
    """The ``from`` of the next page (only the id is taken from Mollie's link, never its host)."""
    link = ((page.get("_links") or {}).get("next")) or {}
    href = link.get("href") if isinstance(link, dict) else None
    if not isinstance(href, str):
        return None
    found = parse_qs(urlsplit(href).query).get("from") or []
    return found[0] if found and REFUND_ID.match(found[0]) else None


def _map_error(answer: HttpResponse, *, write: bool) -> RefundflowError:
    """Mollie's failure in our vocabulary. ``write``: the call may have moved money."""
    body = answer.json_object_or_empty()
    detail = str(body.get("detail") or body.get("title") or "")
    field = body.get("field")
    message = f"Mollie answered {answer.status}: {detail}{f' (field {field})' if field else ''}"
    status = answer.status
    lowered = detail.lower()
    # 409: the same Idempotency-Key still being processed, or an identical refund moments ago: try again later.
    shared = status_failure(answer, message, platform=PLATFORM, write=write)
    if shared is not None:
        return shared
    if status == 404:
        return missing(message, platform=PLATFORM, write=write)
    if status == 400 and "idempotency" in lowered:
        return RejectedError(message, code="idempotency_key_reused", platform=PLATFORM)
    if "already" in lowered and "refunded" in lowered:
        return AlreadyDoneError(message, code="already_refunded", platform=PLATFORM)
    if "higher than" in lowered or "remaining" in lowered:
        return RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
    if field == "amount" or (isinstance(field, str) and field.startswith("amount.")):
        return RejectedError(message, code="invalid_amount", platform=PLATFORM)
    return RejectedError(message, code="invalid_request" if status == 400 else "mollie_refused", platform=PLATFORM)


# ---------------------------------------------------------------- factory


class MollieSettings(settings.EnvModel):
    """Mollie's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default=DEFAULT_API_BASE, alias="MOLLIE_API_BASE")


def _build(config: MollieSettings, name: str, secret: Mapping[str, Any]) -> MollieRefundProvider:
    """Raises: ConfigurationError: a secret of another shape."""
    api_key = secret.get("api_key")
    if not isinstance(api_key, str) or not api_key.startswith(("test_", "live_")):
        raise bad_secret(name, "api_key must be a Mollie test_ or live_ API key", platform=PLATFORM)
    return MollieRefundProvider(api_key=api_key, api_base=config.api_base)


connector: SecretBoundConnector[MollieSettings, MollieRefundProvider] = SecretBoundConnector(
    PLATFORM, MollieSettings, _build
)
"""The process's MollieRefundProvider, built from MollieSettings and its API secret (``<SecretsPrefix>mollie``),
again when either changes (see refundflow.connectors.factory)."""
