"""Braintree as a RefundProvider, through its GraphQL API and the shared HTTP client.

Why not the official ``braintree`` SDK (4.x): it speaks the XML gateway, not the GraphQL API whose schema the
requests are checked against; it takes no idempotency key either (Braintree has none); its base URL comes from a
fixed ``Environment`` and one timeout covers connect and read; and it imports its whole model tree at start-up.

What Braintree documents and this module relies on (developer.paypal.com/braintree/graphql):
- one endpoint, ``POST`` JSON ``{query, variables}``, ``Authorization: Basic base64(public key:private key)`` and a
  ``Braintree-Version`` date header;
- ``refundTransaction`` refunds a transaction that is settled or settling, in part or whole, any number of times up
  to its amount, with the refund's ``orderId`` (ours: the refund id, found again later);
  ``reverseTransaction`` voids one that has not settled (whole only: a void cannot be partial);
- answers are ``{data, errors, extensions}``; an error carries ``extensions.legacyCode`` (the gateway's validation
  codes: 91521 refund too large, 91512 already refunded in full, 91506 not settled, 91504 cannot be voided) and,
  ``extensions.errorClass`` (VALIDATION, NOT_FOUND, AUTHENTICATION, AUTHORIZATION, UNSUPPORTED_CLIENT, INTERNAL,
  SERVICE_AVAILABILITY, RESOURCE_LIMIT: the classes the official SDKs' own GraphQL client tells apart);
- there is no idempotency key: before any resend the domain finds our refund by its order id among the
  transaction's ``refunds`` (``find_refund``), which is why the capability record says find_by_reference;
- a refund's own acquirer reference number (ARN) is not in the GraphQL schema (``CreditCardTransactionDetails.
  acquirerReferenceNumber`` is reached only through the refund's payment method snapshot, "equivalent to
  ``refundedTransaction.paymentMethodSnapshot``": the sale's); the XML gateway the server SDKs speak has it on the
  refund transaction (``Transaction.find(id).acquirer_reference_number``, "a unique number that tags a credit or debit
  card transaction when it goes from the merchant's bank through to the cardholder's bank",
  developer.paypal.com/braintree/docs/reference/response/transaction/python): ``GET <gateway>/merchants/<merchant
  id>/transactions/<legacy id>``, ``X-ApiVersion: 6``, the same Basic credentials. Read only by the acquirer
  reference schedule (``get_refund_with_reference``), and only when the secret names the ``merchant_id``.
"""

from __future__ import annotations

import threading
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
from refundflow.observability import logger
from refundflow.platforms.braintree import graphql
from refundflow.platforms.braintree.graphql import PLATFORM, Transaction
from refundflow.ports import (
    PaymentCapabilities,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
)

DEFAULT_API_BASE = "https://payments.braintree-api.com/graphql"
DEFAULT_GATEWAY_BASE = "https://api.braintreegateway.com"
# braintree_python Configuration.api_version(): the XML gateway's version header the server SDKs send.
XML_API_VERSION = "6"
# A transaction's XML is a few KB; more is not a transaction.
MAX_XML_BYTES = 262_144
MAX_ORDER_ID_LENGTH = 255
MAX_CACHED_IDS = 1024

_ALREADY_REFUNDED = {"91512"}
_OVER_REFUND = {"91521"}
_CODES = {
    "91506": "payment_not_settled",
    "91504": "payment_not_voidable",
    "91505": "currency_mismatch",
    "91511": "payment_not_refundable",
    "915200": "refund_declined",
}
_TRANSIENT_CLASSES = {"SERVICE_AVAILABILITY", "RESOURCE_LIMIT", "INTERNAL"}


class BraintreeSettings(settings.EnvModel):
    api_base: str = Field(default=DEFAULT_API_BASE, alias="BRAINTREE_API_BASE")
    gateway_base: str = Field(default=DEFAULT_GATEWAY_BASE, alias="BRAINTREE_GATEWAY_BASE")


class BraintreeRefundProvider(HttpRefundProvider):
    """Refunds and look-ups for one Braintree gateway account (an API key pair)."""

    name: ClassVar[str] = PLATFORM
    title: ClassVar[str] = "Braintree"

    def __init__(
        self,
        *,
        public_key: str,
        private_key: str,
        api_base: str = DEFAULT_API_BASE,
        merchant_id: str | None = None,
        gateway_base: str = DEFAULT_GATEWAY_BASE,
        http: HttpClient | None = None,
        capabilities: PaymentCapabilities | None = None,
    ) -> None:
        """``merchant_id``: the gateway account's merchant id, for the XML gateway's refund read (its ARN); None: the
        ARN is not read.

        Raises:
            ConfigurationError: no public or private key."""
        if not public_key or not private_key:
            raise ConfigurationError("Braintree public and private keys are needed", platform=PLATFORM)
        self._auth = (public_key, private_key)
        self._merchant_id = merchant_id
        self._gateway_base = gateway_base.rstrip("/")
        self._http_base_url = api_base
        self._http = http
        self._capabilities = capabilities
        self._ids: dict[str, str] = {}
        self._ids_lock = threading.Lock()

    # ---------------------------------------------------------------- the wire

    def _post(self, document: str, variables: Mapping[str, Any], *, write: bool) -> dict[str, Any]:
        """One GraphQL request (``connectors.graphql_http``); its ``data`` when there is no error.

        Raises:
            the mapped error (see ``_raise_for``); OutcomeUnknownError for a write whose answer cannot be read.
        """

        def refuse(answer: HttpResponse, body: dict[str, Any]) -> NoReturn:
            errors = body.get("errors")
            _raise_for(answer, errors if isinstance(errors, list) else [], write=write)

        return graphql_http.post(
            self.http,
            document,
            variables,
            url=self.http.base_url,
            auth=self._auth,
            headers={"Braintree-Version": graphql.API_VERSION, "Accept": "application/json"},
            write=write,
            title=self.title,
            refuse=refuse,
        )

    def _transaction_id(self, payment: PaymentReference) -> str:
        """The payment's GraphQL id (a legacy id is translated once per process)."""
        if payment.locator.get("id_type", "graphql") != "legacy":
            return payment.payment_id
        with self._ids_lock:
            known = self._ids.get(payment.payment_id)
        if known is not None:
            return known
        data = self._post(graphql.ID_FROM_LEGACY_ID, {"legacyId": payment.payment_id}, write=False)
        found = data.get("idFromLegacyId")
        if not isinstance(found, str) or not found:
            raise TransientError("idFromLegacyId answered no id", platform=PLATFORM)
        with self._ids_lock:
            if len(self._ids) >= MAX_CACHED_IDS:
                self._ids.clear()
            self._ids[payment.payment_id] = found
        return found

    def _transaction(self, payment: PaymentReference) -> Transaction:
        """Raises: NotFound (no such transaction), TransientError, RejectedError."""
        transaction_id = self._transaction_id(payment)
        data = self._post(graphql.TRANSACTION, {"id": transaction_id}, write=False)
        try:
            transaction = graphql.parse_transaction(data.get("node"))
        except ValidationError as error:
            raise TransientError(
                f"unreadable Braintree transaction: {error.error_count()} errors", platform=PLATFORM
            ) from error
        if transaction is None:
            raise NotFound(
                f"Braintree has no transaction {payment.payment_id}", code="resource_missing", platform=PLATFORM
            )
        return transaction

    # ---------------------------------------------------------------- payments

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The transaction's amount, what its live refunds (or a void) took back, and whether it has settled.

        Raises:
            NotFound: no such transaction.
            RejectedError: a transaction that never took money (declined, failed, expired), bad credentials.
            TransientError: Braintree could not answer now.
        """
        transaction = self._transaction(payment)
        captured = graphql.money(self.money, transaction.amount)
        if transaction.status == "VOIDED":
            refunded = captured
        elif transaction.status in graphql.SETTLED or transaction.status in graphql.UNSETTLED:
            refunded = captured - captured
            for refund in transaction.refunds:
                if graphql.refund_status(refund) in {ProviderRefundStatus.SUCCEEDED, ProviderRefundStatus.PENDING}:
                    refunded = refunded + graphql.money(self.money, refund.amount)
        else:
            raise RejectedError(
                f"transaction {payment.payment_id} is {transaction.status}: nothing to refund",
                code="payment_not_captured",
                platform=PLATFORM,
            )
        return ProviderPayment(
            provider=PaymentProvider.BRAINTREE,
            payment_id=payment.payment_id,
            captured=captured,
            refunded=refunded,
            status=transaction.status,
            settled=transaction.status not in graphql.UNSETTLED,
        )

    # ---------------------------------------------------------------- refunds

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund a settled transaction (``refundTransaction``, orderId = our refund id) or void an unsettled one
        (``reverseTransaction``, whole amount only).

        Raises:
            TransientError: Braintree unavailable or rate-limited before anything was done.
            OutcomeUnknownError: sent and no readable answer (5xx, timeout): find_refund before any resend.
            AlreadyDoneError: the transaction is already refunded in full (91512) or voided.
            RejectedError: over-refund (``amount_exceeds_refundable``), a partial refund of an unsettled transaction
                (``partial_refund_before_settlement``), a currency other than the transaction's, an unknown
                transaction (``resource_missing``), bad credentials, any other refusal with Braintree's code.
            AmountNotRepresentable: not exactly a Braintree amount (checked before anything is sent).
        """
        value = self.money.to_platform(request.amount)
        if not request.amount.is_positive():
            raise RejectedError(
                f"refund amount {request.amount} is not positive", code="invalid_amount", platform=PLATFORM
            )
        try:
            transaction = self._transaction(request.payment)
        except NotFound as error:
            raise RejectedError(error.message, code="resource_missing", platform=PLATFORM) from error
        if transaction.amount.currency_code.upper() != request.amount.currency:
            raise RejectedError(
                f"refund in {request.amount.currency} of a transaction in {transaction.amount.currency_code}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        if transaction.status == "VOIDED":
            raise AlreadyDoneError(
                f"transaction {request.payment_id} is voided", code="payment_voided", platform=PLATFORM
            )
        if transaction.status in graphql.UNSETTLED:
            return self._void(request, transaction)
        data = self._post(
            graphql.REFUND_TRANSACTION,
            {
                "input": {
                    "clientMutationId": request.refund_id,
                    "transactionId": transaction.id,
                    "refund": {"amount": str(value), "orderId": request.refund_id[:MAX_ORDER_ID_LENGTH]},
                }
            },
            write=True,
        )
        try:
            refund = graphql.parse_refund((data.get("refundTransaction") or {}).get("refund"))
            made = graphql.provider_refund(
                refund, payment_id=request.payment_id, profile=self.money, ours=request.refund_id
            )
        except (ValidationError, AmountNotRepresentable) as error:
            raise OutcomeUnknownError(f"unreadable refundTransaction answer: {error}", platform=PLATFORM) from error
        logger.info(
            "braintree refund created",
            extra={
                "refund_id": request.refund_id,
                "provider_refund_id": made.provider_refund_id,
                "status": made.status,
            },
        )
        return made

    def _void(self, request: ProviderRefundRequest, transaction: Transaction) -> ProviderRefund:
        captured = graphql.money(self.money, transaction.amount)
        if request.amount != captured or transaction.refunds:
            raise RejectedError(
                f"transaction {request.payment_id} has not settled: Braintree can only void all of it ({captured})",
                code="partial_refund_before_settlement",
                platform=PLATFORM,
            )
        data = self._post(
            graphql.REVERSE_TRANSACTION,
            {"input": {"clientMutationId": request.refund_id, "transactionId": transaction.id}},
            write=True,
        )
        reversal = (data.get("reverseTransaction") or {}).get("reversal")
        try:
            if isinstance(reversal, dict) and reversal.get("__typename") == "Refund":
                # It settled in between: Braintree refunded the whole amount instead (without our order id).
                refund = graphql.parse_refund(reversal)
                made = graphql.provider_refund(refund, payment_id=request.payment_id, profile=self.money)
                return made.model_copy(update={"refund_id": request.refund_id})
            voided = graphql.Transaction.model_validate({**(reversal or {}), "refunds": []})
        except (ValidationError, AmountNotRepresentable) as error:
            raise OutcomeUnknownError(f"unreadable reverseTransaction answer: {error}", platform=PLATFORM) from error
        logger.info("braintree transaction voided", extra={"refund_id": request.refund_id, "status": voided.status})
        return graphql.void_of(
            request.payment_id,
            voided.legacy_id,
            voided.status,
            graphql.money(self.money, voided.amount),
            request.refund_id,
        )

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """The refund (by its legacy id) among the transaction's refunds, or the transaction's own void.

        Raises:
            NotFound: neither the transaction nor such a refund of it.
            TransientError, RejectedError.
        """
        transaction = self._transaction(payment)
        for refund in transaction.refunds:
            if refund.legacy_id == provider_refund_id:
                return graphql.provider_refund(refund, payment_id=payment.payment_id, profile=self.money)
        if provider_refund_id == transaction.legacy_id:
            amount = graphql.money(self.money, transaction.amount)
            return graphql.void_of(payment.payment_id, transaction.legacy_id, transaction.status, amount, None)
        raise NotFound(
            f"transaction {payment.payment_id} has no refund {provider_refund_id}",
            code="resource_missing",
            platform=PLATFORM,
        )

    def get_refund_with_reference(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """The refund (``get_refund``) and, once it went through as a refund (not a void), its ARN from the XML
        gateway.

        Raises:
            as get_refund; TransientError, RejectedError from the XML gateway.
        """
        refund = self.get_refund(provider_refund_id, payment)
        if refund.method == "void" or refund.status is not ProviderRefundStatus.SUCCEEDED or not self._merchant_id:
            return refund
        return refund.model_copy(update={"acquirer_reference": self._refund_reference(provider_refund_id)})

    def _refund_reference(self, legacy_id: str) -> str | None:
        """``acquirer-reference-number`` of the refund transaction (type credit), None while ``nil``.

        Raises:
            TransientError: 429, 5xx, an unreadable answer. RejectedError: 401, 403, 426. NotFound: 404.
        """
        url = f"{self._gateway_base}/merchants/{self._merchant_id}/transactions/{legacy_id}"
        answer = self.http.request(
            "GET",
            f"merchants/-/transactions/{legacy_id}",
            absolute_url=url,
            auth=self._auth,
            headers={"Accept": "application/xml", "X-ApiVersion": XML_API_VERSION},
        )
        if answer.status != 200:
            message = f"Braintree gateway {answer.status} reading transaction {legacy_id}"
            if answer.status == 404:
                raise NotFound(message, code="resource_missing", platform=PLATFORM)
            _raise_for(answer, [], write=False)
        return xml_reference(answer.body, legacy_id)

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Our refund among the transaction's refunds, by the order id we gave it; a voided transaction without
        refunds is its void (Braintree's void carries no order id: nothing else can be refunded on it anyway).

        Raises:
            TransientError, RejectedError.
        """
        try:
            transaction = self._transaction(payment)
        except NotFound:
            return None
        ours = [refund for refund in transaction.refunds if refund.order_id == refund_id]
        if ours:
            if len(ours) > 1:
                logger.warning("several Braintree refunds carry one order id", extra={"refund_id": refund_id})
            made = [
                graphql.provider_refund(refund, payment_id=payment.payment_id, profile=self.money) for refund in ours
            ]
            live = [
                refund
                for refund in made
                if refund.status in {ProviderRefundStatus.SUCCEEDED, ProviderRefundStatus.PENDING}
            ]
            return (live or made)[-1]
        if transaction.status == "VOIDED" and not transaction.refunds:
            amount = graphql.money(self.money, transaction.amount)
            return graphql.void_of(payment.payment_id, transaction.legacy_id, transaction.status, amount, None)
        return None


# ---------------------------------------------------------------- errors


def _raise_for(answer: HttpResponse, errors: list[Any], *, write: bool) -> NoReturn:
    """Braintree's failure in our vocabulary. ``write``: the request may have moved money."""
    first: dict[str, Any] = next((error for error in errors if isinstance(error, dict)), {})
    found = first.get("extensions")
    extensions: dict[str, Any] = found if isinstance(found, dict) else {}
    code = str(extensions.get("legacyCode") or "")
    error_class = str(extensions.get("errorClass") or "")
    message = f"Braintree {answer.status} {error_class or '-'} {code or '-'}: {first.get('message') or 'no message'}"
    failure: RefundflowError
    if answer.status == 429 or error_class == "RESOURCE_LIMIT":
        failure = TransientError(
            message, code="rate_limited", platform=PLATFORM, retry_after_seconds=retry_after_seconds(answer)
        )
    elif answer.status in (401,) or error_class == "AUTHENTICATION":
        failure = RejectedError(message, code="provider_authentication_failed", platform=PLATFORM)
    elif answer.status == 403 or error_class == "AUTHORIZATION":
        failure = RejectedError(message, code="provider_permission_denied", platform=PLATFORM)
    elif answer.status == 426 or error_class == "UNSUPPORTED_CLIENT":
        failure = RejectedError(message, code="provider_version_unsupported", platform=PLATFORM)
    elif answer.status >= 500 or error_class in _TRANSIENT_CLASSES or (not answer.ok and not errors):
        # Braintree may have started the work: only a look-up tells (a read is simply retried).
        failure = (
            OutcomeUnknownError(message, platform=PLATFORM) if write else TransientError(message, platform=PLATFORM)
        )
    elif code in _ALREADY_REFUNDED:
        failure = AlreadyDoneError(message, code="already_refunded", platform=PLATFORM)
    elif code in _OVER_REFUND:
        failure = RejectedError(message, code="amount_exceeds_refundable", platform=PLATFORM)
    elif error_class == "NOT_FOUND":
        failure = NotFound(message, code="resource_missing", platform=PLATFORM)
    else:
        failure = RejectedError(
            message, code=_CODES.get(code, f"braintree_{code or error_class or answer.status}"), platform=PLATFORM
        )
    raise failure


def xml_reference(body: bytes, legacy_id: str) -> str | None:
    """The ARN of the XML gateway's ``<transaction>`` for refund ``legacy_id``: its ``acquirer-reference-number``
    when the transaction is that refund (``type`` credit) and the value an ARN (6-40 letters and digits).

    Raises:
        TransientError: not a transaction's XML (or too large to be one).
    """
    from xml.etree import ElementTree

    if len(body) > MAX_XML_BYTES or b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise TransientError(f"Braintree gateway answered no transaction for {legacy_id}", platform=PLATFORM)
    try:
        # Braintree's answer over TLS to our credentials; no DTD or entity is accepted (checked above), and the
        # standard parser resolves no external entity.
        root = ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError as error:
        raise TransientError(f"unreadable Braintree transaction {legacy_id}", platform=PLATFORM) from error
    if root.tag != "transaction" or root.findtext("id") != legacy_id or root.findtext("type") != "credit":
        raise TransientError(f"Braintree gateway answered another transaction for {legacy_id}", platform=PLATFORM)
    value = (root.findtext("acquirer-reference-number") or "").strip()
    return value if 6 <= len(value) <= 40 and value.isascii() and value.isalnum() else None


# ---------------------------------------------------------------- factory


def _build(config: BraintreeSettings, secret_name: str, secret: Mapping[str, Any]) -> BraintreeRefundProvider:
    """From BRAINTREE_API_BASE, BRAINTREE_GATEWAY_BASE and the API secret ``{"public_key": ..., "private_key": ...,
    "merchant_id"?: ...}`` (without ``merchant_id`` refunds' ARNs are not read).

    Raises:
        ConfigurationError: a secret of another shape.
    """
    public_key, private_key = secret_strings(secret, secret_name, ("public_key", "private_key"), platform=PLATFORM)
    merchant_id = secret.get("merchant_id")
    if merchant_id is not None and (not isinstance(merchant_id, str) or not merchant_id.isalnum()):
        raise ConfigurationError(f"{secret_name}: merchant_id must be letters and digits", platform=PLATFORM)
    return BraintreeRefundProvider(
        public_key=public_key,
        private_key=private_key,
        api_base=config.api_base,
        merchant_id=merchant_id or None,
        gateway_base=config.gateway_base,
    )


connector: SecretBoundConnector[BraintreeSettings, BraintreeRefundProvider] = SecretBoundConnector(
    PLATFORM, BraintreeSettings, _build
)
"""The process's provider (see refundflow.connectors.factory: a rotated key is used without a cold start)."""
