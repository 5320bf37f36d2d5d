"""SAP S/4HANA books connector: a refund becomes a credit memo request with reference to the invoice, which SAP bills
into the credit memo, exactly once.

Flow (SAP Gateway's OData v2 services; each step reads SAP before writing, so a crash between steps resumes):

1. ``GET API_BILLING_DOCUMENT_SRV/A_BillingDocument('{invoice}')``: an invoice (SD document category ``M``), not
   cancelled, posted to accounting, in the booking's currency; its sold-to party and sales area become the request's.
2. Find the credit memo request by our reference (``PurchaseOrderByCustomer eq '<refund id>'``), else
   ``POST API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest`` with its items (deep insert): one write, no idempotency
   key (SAP Gateway takes none), so the lookup guards every retry. A write needs the CSRF token: fetched with
   ``GET <service>/`` and ``x-csrf-token: Fetch``, sent back with the session cookies, fetched again when SAP
   answers 403 ``x-csrf-token: Required``.
3. SAP bills the request into the credit memo (a billing document of category ``O``) by its billing run, unless the
   request is blocked for billing (``HeaderBillingBlockReason``: a person releases it). Until the credit memo is
   posted to accounting the booking is pending: per ``SAP_PENDING_POLICY`` the refund waits (``TransientError``,
   retried through the books-retry wait) or completes with the request recorded as pending.

The credit memo is set against the invoice while the invoice is open (``InvoiceClearingStatus`` not ``C``): the
document is allocated to it. On a cleared (paid) invoice the credit is paid out: the request carries the payment
method of the payment provider and currency (``SAP_PAYMENT_METHODS``: its house bank is the clearing account).

Amounts: SAP computes the tax of an item from its net amount (the price condition), so a gross refund is sent as the
net amount that, at the invoice's tax rate, gives back exactly that gross; the billed credit memo's total is checked
against the refund. Amounts are OData ``Edm.Decimal`` strings, exact both ways.

Sign-in, by configuration (``SAP_AUTH``): the communication user's basic credentials, or an OAuth 2.0
client-credentials access token (an S/4HANA Cloud communication arrangement with OAuth 2.0 inbound, token endpoint
``/sap/bc/sec/oauth2/token`` on the API host; or an SAP BTP / XSUAA token URL), cached until shortly before it
expires and fetched again once when SAP answers 401.

Variant ``SAP_CREDIT_DOCUMENT=customer_return`` (Sales Returns Management): instead of the credit memo request, step
2 finds or creates the customer return (``API_CUSTOMER_RETURN_SRV/A_CustomerReturn``, communication scenario
SAP_COM_0157; a deep insert of the header with its items and their price condition, as SAP requires for this service:
"You can create customer returns. Note that you must use deep insert requests", SAP Cloud SDK ``CustomerReturnService``,
https://help.sap.com/doc/70cb974ddb104a6cbab4168f66b22844/1.0/en-US/com/sap/cloud/sdk/s4hana/datamodel/odata/services/
CustomerReturnService.html) of the merchant's return type (``SAP_CUSTOMER_RETURN_TYPE``, SAP's CBAR by default) with
reference to the invoice, our refund id as ``PurchaseOrderByCustomer`` and the order (return) reason. The credit memo
then follows from the return in SAP's billing exactly as from a request (its billing items name the return as their
``SalesDocument``), pending until posted. A return that triggered the refund (the merchant's returns process put our
refund id in ``SAP_RETURN_REFUND_FIELD``) is found by that field before any create and is the refund's document: SAP
is never given a second return for the same goods.

Returns news (``read_return``): the customer return a business event names, read from API_CUSTOMER_RETURN_SRV
(``A_CustomerReturn('<id>')``; communication scenario SAP_COM_0157), reduced to the refund id it carries and the
lifecycle step it reached (see ``inbound.py`` for the event).
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import Field

from refundflow import settings
from refundflow.connectors.books import check_booking, parse_per_provider, per_provider
from refundflow.connectors.capabilities import books_capabilities
from refundflow.connectors.http import HttpClient, HttpResponse, oauth_error_words, retry_after_seconds
from refundflow.currencies import CurrencyProfile
from refundflow.errors import (
    AmountNotRepresentable,
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.ids import is_refund_id
from refundflow.models import (
    BooksSystem,
    CreditDocument,
    CreditDocumentKind,
    CreditDocumentState,
    PaymentProvider,
    ReturnStatus,
)
from refundflow.money import Money
from refundflow.ports import BooksCapabilities, BooksConnector, CreditBooking, CreditLeg, PlatformReturn, ReturnsReader

PLATFORM = "sap"
BILLING = "API_BILLING_DOCUMENT_SRV"
CREDIT_MEMO_REQUESTS = "API_CREDIT_MEMO_REQUEST_SRV"
CUSTOMER_RETURNS = "API_CUSTOMER_RETURN_SRV"
# SD status values (header statuses of a sales document): A not yet processed, B partially, C completely.
COMPLETELY = "C"
# PurchaseOrderByCustomer is 35 characters: a refund id (rf_ + 32 hex digits) fits exactly.
REFERENCE_MAX_LENGTH = 35
# How long a waiting refund lets SAP's billing run (or a person releasing the block) work before asking again.
PENDING_RETRY_SECONDS = 900.0

INVOICE_CATEGORY = "M"
CREDIT_MEMO_CATEGORY = "O"
POSTED = "C"
CLEARED = "C"
REJECTED_COMPLETELY = "C"

PendingPolicy = Literal["wait", "record"]
CreditDocumentChoice = Literal["credit_memo_request", "customer_return"]
AuthMode = Literal["basic", "oauth2_client_credentials"]
ODATA_ROOT = "/sap/opu/odata/sap"
TOKEN_PATH = "/sap/bc/sec/oauth2/token"
# Fetch a new access token this long before the cached one expires, so a call never starts with a dying one.
TOKEN_EXPIRY_MARGIN_SECONDS = 120.0
SecretLoader = Callable[[bool], Mapping[str, Any]]
"""Reads the SAP secret; the flag asks for a fresh read that bypasses any cache."""


# ---------------------------------------------------------------- exact amounts


def capabilities() -> BooksCapabilities:
    """SAP's books capabilities, from its catalog entry."""
    return books_capabilities(PLATFORM, "SAP")


def profile() -> CurrencyProfile:
    return capabilities().currencies


def to_sap_amount(money: Money) -> str:
    """``money`` as SAP's ``Edm.Decimal`` string in major units, exactly.

    Raises:
        AmountNotRepresentable: a currency or digit SAP cannot carry.
    """
    return format(profile().to_platform_decimal(money), "f")


def from_sap_amount(value: Any, currency: str) -> Money:
    """An ``Edm.Decimal`` string from SAP as exact ``Money``.

    Raises:
        RejectedError: not a decimal, or more decimals than the currency has.
    """
    if not isinstance(value, str):
        raise RejectedError(f"SAP sent a non-decimal amount {value!r}", code="sap_bad_amount", platform=PLATFORM)
    try:
        return profile().from_platform(Decimal(value), currency)
    except (InvalidOperation, AmountNotRepresentable) as error:
        raise RejectedError(f"SAP sent the amount {value!r} for {currency}", code="sap_bad_amount") from error


def net_for_gross(gross: Money, tax_rate: Fraction) -> Money:
    """The net amount whose tax at ``tax_rate`` (rounded half up to the currency's unit, as SAP's pricing does)
    gives back exactly ``gross``.

    Raises:
        RejectedError: no net amount does (the gross falls between two nets a unit apart).
    """
    if tax_rate == 0:
        return gross
    start = int(Fraction(gross.minor_units) / (1 + tax_rate))
    for net in (start, start + 1, start - 1, start + 2, start - 2):
        tax = int(
            (Decimal(net) * Decimal(tax_rate.numerator) / Decimal(tax_rate.denominator)).quantize(0, ROUND_HALF_UP)
        )
        if net > 0 and net + tax == gross.minor_units:
            return Money.of(net, gross.currency)
    raise RejectedError(
        f"SAP computes tax on the net amount: no net amount gives exactly {gross} at the invoice's tax rate; "
        "book this refund by hand",
        code="sap_tax_rounding",
        platform=PLATFORM,
    )


def odata_date(day: date) -> str:
    """An ``Edm.DateTime`` value in OData v2 JSON (``/Date(<ms since 1970, UTC>)/``)."""
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp()) * 1000})/"


# ---------------------------------------------------------------- session: basic auth and the CSRF token


def odata_datetime(value: Any, field: str) -> datetime:
    """An OData v2 ``Edm.DateTimeOffset`` in JSON (``/Date(<ms>+0000)/``) as an aware datetime.

    Raises:
        TransientError: SAP answered something else in ``field``.
    """
    match = re.fullmatch(r"/Date\((-?\d+)([+-]\d{4})?\)/", value) if isinstance(value, str) else None
    if match is None:
        raise TransientError(f"SAP answered {field} {value!r}, not an OData date-time", platform=PLATFORM)
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)


def default_token_url(api_base: str) -> str:
    """S/4HANA's own OAuth 2.0 token endpoint on the API host of ``api_base`` (the OData root).

    Raises:
        ConfigurationError: ``api_base`` does not end in the OData root, so the host cannot be told.
    """
    base = api_base.rstrip("/")
    if not base.endswith(ODATA_ROOT):
        raise ConfigurationError(
            f"SAP_TOKEN_URL is needed: SAP_API_BASE {api_base!r} does not end in {ODATA_ROOT}", platform=PLATFORM
        )
    return base[: -len(ODATA_ROOT)] + TOKEN_PATH


class SapSession:
    """How the function signs in to SAP, and one CSRF token per OData service, with its session cookies.

    ``auth`` ``basic``: the communication user's ``username`` and ``password``. ``oauth2_client_credentials``: an
    access token bought with the secret's ``client_id`` and ``client_secret`` (HTTP basic on the token request, as
    SAP's token endpoints take it) at ``token_url``, with ``scope`` when the arrangement needs one; cached until
    ``TOKEN_EXPIRY_MARGIN_SECONDS`` before it expires. SAP Gateway answers a write without a valid CSRF token with 403
    and ``x-csrf-token: Required``; the token is bound to the session cookies of the call that fetched it (kept by
    the HTTP client's session). The secret is read on first use and read again (bypassing caches, with a new access
    token) once when SAP answers 401, for a password or client secret changed meanwhile.
    """

    def __init__(
        self,
        *,
        load_secret: SecretLoader,
        http: HttpClient,
        auth: AuthMode = "basic",
        token_url: str = "",
        scope: str = "",
        token_http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if auth == "oauth2_client_credentials" and not token_url:
            raise ConfigurationError("SAP OAuth 2.0 sign-in needs a token URL", platform=PLATFORM)
        self.http = http
        self.auth = auth
        self._token_url = token_url
        self._scope = scope
        self._token_http = token_http or HttpClient(platform=PLATFORM, base_url=token_url)
        self._clock = clock
        self._load_secret = load_secret
        self._secret: Mapping[str, Any] | None = None
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def authorization(self, *, fresh: bool = False) -> str:
        """The ``Authorization`` header: the communication user's basic credentials or a bearer access token.

        Raises:
            ConfigurationError: the secret lacks the keys the sign-in needs.
            TransientError: the token endpoint could not answer now.
            RejectedError: the token endpoint refused the client (``sap_unauthorized``).
        """
        with self._lock:
            if self._secret is None or fresh:
                self._secret = dict(self._load_secret(fresh))
                self._access_token = None
            secret = self._secret
            if self.auth == "oauth2_client_credentials":
                return "Bearer " + self._bearer(secret)
        username, password = _pair(secret, "username", "password")
        return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")

    def _bearer(self, secret: Mapping[str, Any]) -> str:
        if self._access_token is not None and self._clock() < self._expires_at - TOKEN_EXPIRY_MARGIN_SECONDS:
            return self._access_token
        client_id, client_secret = _pair(secret, "client_id", "client_secret")
        form = {"grant_type": "client_credentials", **({"scope": self._scope} if self._scope else {})}
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        try:
            response = self._token_http.request(
                "POST",
                "",
                absolute_url=self._token_url,
                data=form,
                headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            )
        except OutcomeUnknownError as error:  # a token request changes nothing: asking again is safe
            raise TransientError("SAP's token endpoint did not answer", platform=PLATFORM) from error
        if response.status != 200:
            raise _token_error(response)
        try:
            payload = response.json()
        except ValueError as error:
            raise TransientError("SAP's token endpoint answered with unreadable JSON", platform=PLATFORM) from error
        token = payload.get("access_token") if isinstance(payload, Mapping) else None
        expires_in = payload.get("expires_in") if isinstance(payload, Mapping) else None
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or isinstance(expires_in, bool):
            raise TransientError("SAP's token endpoint answered without a usable access token", platform=PLATFORM)
        self._access_token, self._expires_at = token, self._clock() + expires_in
        return token

    def csrf_token(self, service: str) -> str:
        """The CSRF token of ``service``, fetched on first use.

        Raises:
            TransientError / RejectedError: the fetch failed (see ``raise_for``).
        """
        with self._lock:
            token = self._tokens.get(service)
        if token is not None:
            return token
        response = self.http.request(
            "GET",
            f"/{service}/",
            headers={"Authorization": self.authorization(), "x-csrf-token": "Fetch", "Accept": "application/json"},
        )
        token = response.headers.get("x-csrf-token") or response.headers.get("X-CSRF-Token")
        if not response.ok or not token or token.lower() == "required":
            raise raise_for("GET", f"/{service}/ (CSRF token)", response)
        with self._lock:
            self._tokens[service] = token
        return token

    def forget_token(self, service: str) -> None:
        with self._lock:
            self._tokens.pop(service, None)


# ---------------------------------------------------------------- the books


class SapBooks(BooksConnector, ReturnsReader):
    """The refund's credit memo request and the credit memo SAP bills from it, in one S/4HANA system; and the
    customer returns that name a refund (their business events are SAP's returns news)."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self,
        *,
        session: SapSession,
        request_type: str = "CR",
        order_reason: str = "",
        material: str = "REFUND",
        price_condition: str = "PMP0",
        pending_policy: PendingPolicy = "wait",
        payment_methods: Mapping[str, str] | None = None,
        return_refund_field: str = "PurchaseOrderByCustomer",
        credit_document: CreditDocumentChoice = "credit_memo_request",
        customer_return_type: str = "CBAR",
    ) -> None:
        """``credit_document``: the sales document the credit is booked by (a credit memo request, or a customer
        return of ``customer_return_type``). ``payment_methods``: the payment method each payment provider's cash
        refunds leave by, keyed ``<provider>:<CURRENCY>``, ``<provider>:*`` or ``*:<CURRENCY>`` (most specific wins)."""
        self._session = session
        self._request_type = request_type
        self._order_reason = order_reason
        self._material = material
        self._price_condition = price_condition
        self._pending_policy = pending_policy
        self._payment_methods = dict(payment_methods or {})
        self._return_refund_field = return_refund_field
        self._credit_document = credit_document
        self._customer_return_type = customer_return_type

    @property
    def capabilities(self) -> BooksCapabilities:
        return capabilities()

    def payment_method(self, provider: PaymentProvider, currency: str) -> str | None:
        """The payment method the cash refund of ``provider`` in ``currency`` leaves by (None: none set)."""
        return per_provider(self._payment_methods, provider, currency)

    # ------------------------------------------------------------ port

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        """Create (exactly once) the credit memo request with reference to the invoice and read the credit memo SAP
        billed from it.

        Raises:
            TransientError: SAP could not be reached, did not answer the write (the next call finds the request),
                or (``SAP_PENDING_POLICY=wait``) has not posted the credit memo yet.
            RejectedError: SAP or this connector refuses the booking for good: invoice in another currency, not an
                invoice, cancelled or not posted, a closed posting period, a request for this refund with another
                amount or rejected in SAP, SAP's validation messages, missing authorisations.
            NotFound: the invoice does not exist.
        """
        try:
            return self._record(booking)
        except OutcomeUnknownError as error:
            raise TransientError(
                f"{error.message}; the next attempt reads SAP before writing again",
                code="sap_outcome_unknown",
                platform=PLATFORM,
            ) from error

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The credit document already recorded for this booking (posted, or pending while SAP has not billed and
        posted it), found by its external reference.

        Raises:
            TransientError, RejectedError: SAP could not answer, or refused the read.
        """
        request = self._find_sales_document(booking.external_reference)
        if request is None:
            return None
        invoice = self._get_invoice(booking.invoice.invoice_id)
        return self._document(request, invoice, booking)

    def read_return(self, return_id: str) -> PlatformReturn:
        """The customer return ``return_id`` (``GET API_CUSTOMER_RETURN_SRV/A_CustomerReturn('<id>')``): the refund
        id the merchant's returns process put in its ``SAP_RETURN_REFUND_FIELD`` (PurchaseOrderByCustomer by
        default, as our credit memo requests carry it), and the lifecycle step it reached: ``received`` once the
        goods receipt of its returns delivery is posted completely (``OverallDeliveryStatus`` C), ``closed`` once
        the return is also completely processed (``OverallSDProcessStatus`` C); nothing before (a partial receipt
        is not the return). When it happened: its ``LastChangeDateTime``.

        Raises:
            NotFound: SAP knows no such customer return.
            TransientError, RejectedError: SAP could not answer, or refused the read.
        """
        if not re.fullmatch(r"[0-9A-Za-z]{1,10}", return_id):
            raise NotFound(f"{return_id!r} is not a customer return number", platform=PLATFORM)
        entity = _entity(self._call(CUSTOMER_RETURNS, "GET", f"/A_CustomerReturn('{return_id}')"))
        reference = entity.get(self._return_refund_field)
        refund_id = reference.strip() if isinstance(reference, str) and is_refund_id(reference.strip()) else None
        received = entity.get("OverallDeliveryStatus") == COMPLETELY
        status: ReturnStatus | None = None
        if received:
            processed = entity.get("OverallSDProcessStatus") == COMPLETELY
            status = ReturnStatus.CLOSED if processed else ReturnStatus.RECEIVED
        return PlatformReturn(
            return_id=return_id,
            refund_id=refund_id,
            status=status,
            occurred_at=odata_datetime(entity.get("LastChangeDateTime"), "LastChangeDateTime"),
        )

    # ------------------------------------------------------------ steps

    def _record(self, booking: CreditBooking) -> CreditDocument:
        self._check_booking(booking)
        invoice = self._get_invoice(booking.invoice.invoice_id)
        self._check_invoice(invoice, booking)
        request = self._find_sales_document(booking.external_reference)
        if request is None:
            if self._credit_document == "customer_return":
                request = self._create_return(booking, invoice)
            else:
                request = self._create_request(booking, invoice)
        self._check_request(request, booking, invoice)
        document = self._document(request, invoice, booking)
        if document.state is CreditDocumentState.PENDING and self._pending_policy == "wait":
            raise TransientError(
                f"{_what(request)} {document.document_id} for refund {booking.refund_id} is not billed and "
                f"posted in SAP yet{_block_text(request)}",
                code="sap_credit_memo_pending",
                platform=PLATFORM,
                retry_after_seconds=PENDING_RETRY_SECONDS,
            )
        return document

    def _check_booking(self, booking: CreditBooking) -> None:
        check_booking(
            booking,
            system=BooksSystem.SAP,
            platform=PLATFORM,
            invoice="an SAP invoice",
            document="a credit memo",
            to_platform=to_sap_amount,
            max_reference_length=REFERENCE_MAX_LENGTH,
        )

    def _get_invoice(self, invoice_id: str) -> dict[str, Any]:
        if not invoice_id.isalnum() or len(invoice_id) > 10:
            raise NotFound(f"{invoice_id!r} is not an SAP billing document number", platform=PLATFORM)
        return _entity(self._call(BILLING, "GET", f"/A_BillingDocument('{invoice_id}')"))

    def _check_invoice(self, invoice: Mapping[str, Any], booking: CreditBooking) -> None:
        number = invoice.get("BillingDocument")
        currency = booking.amount.currency
        if invoice.get("SDDocumentCategory") != INVOICE_CATEGORY:
            raise RejectedError(
                f"billing document {number} is not an invoice", code="not_an_invoice", platform=PLATFORM
            )
        if invoice.get("BillingDocumentIsCancelled"):
            raise RejectedError(f"invoice {number} is cancelled in SAP", code="invoice_status", platform=PLATFORM)
        if invoice.get("TransactionCurrency") != currency:
            raise RejectedError(
                f"invoice {number} is in {invoice.get('TransactionCurrency')}, the refund in {currency}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        if invoice.get("AccountingPostingStatus") != POSTED:
            raise RejectedError(
                f"invoice {number} is not posted to accounting in SAP, so it cannot be credited yet",
                code="invoice_status",
                platform=PLATFORM,
            )
        if not invoice.get("SoldToParty"):
            raise RejectedError(f"invoice {number} has no sold-to party", platform=PLATFORM)
        if booking.amount > _gross(invoice, currency):
            raise RejectedError(
                f"refund {booking.amount} is more than invoice {number} totals", code="over_credit", platform=PLATFORM
            )

    def _find_sales_document(self, refund_id: str) -> dict[str, Any] | None:
        """The refund's sales document (credit memo request, or customer return in the customer_return variant)
        found by our reference, or None.

        Raises:
            RejectedError: several live ones, or only rejected ones.
        """
        if self._credit_document == "customer_return":
            return self._find_return(refund_id)
        return self._find_request(refund_id)

    def _find_return(self, refund_id: str) -> dict[str, Any] | None:
        """The customer return carrying ``refund_id``: ours in ``PurchaseOrderByCustomer``, or the one the
        merchant's returns process created and that triggered the refund, in ``SAP_RETURN_REFUND_FIELD``."""
        if not is_refund_id(refund_id):
            raise RejectedError(f"{refund_id!r} is not a refund id", code="bad_refund_id", platform=PLATFORM)
        found: dict[str, dict[str, Any]] = {}
        for field in dict.fromkeys(("PurchaseOrderByCustomer", self._return_refund_field)):
            payload = self._call(
                CUSTOMER_RETURNS,
                "GET",
                "/A_CustomerReturn",
                params={"$filter": f"{field} eq '{refund_id}'", "$expand": "to_Item"},
            )
            for item in _results(payload):
                found[str(item.get("CustomerReturn"))] = item
        return _one_live(list(found.values()), refund_id, "customer return", "CustomerReturn")

    def _find_request(self, refund_id: str) -> dict[str, Any] | None:
        # Refund ids are rf_ + 32 hex digits: nothing to escape in the filter's string literal.
        if not is_refund_id(refund_id):
            raise RejectedError(f"{refund_id!r} is not a refund id", code="bad_refund_id", platform=PLATFORM)
        payload = self._call(
            CREDIT_MEMO_REQUESTS,
            "GET",
            "/A_CreditMemoRequest",
            params={"$filter": f"PurchaseOrderByCustomer eq '{refund_id}'", "$expand": "to_Item"},
        )
        return _one_live(_results(payload), refund_id, "credit memo request", "CreditMemoRequest")

    def _create_request(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> dict[str, Any]:
        currency = booking.amount.currency
        items = self._items(booking, invoice, "CreditMemoRequestItem", "CreditMemoRequestItemText")
        body: dict[str, Any] = {
            "CreditMemoRequestType": self._request_type,
            "SalesOrganization": invoice.get("SalesOrganization"),
            "DistributionChannel": invoice.get("DistributionChannel"),
            "OrganizationDivision": invoice.get("Division"),
            "SoldToParty": invoice.get("SoldToParty"),
            "PurchaseOrderByCustomer": booking.external_reference,
            "CustomerPurchaseOrderDate": odata_date(booking.booking_date),
            "TransactionCurrency": currency,
            "ReferenceSDDocument": invoice.get("BillingDocument"),
            "to_Item": items,
        }
        if self._order_reason:
            body["SDDocumentReason"] = self._order_reason
        method = self.payment_method(booking.payment_provider, currency)
        if method is not None and _paid_out(invoice, booking):
            body["PaymentMethod"] = method
        return _entity(self._call(CREDIT_MEMO_REQUESTS, "POST", "/A_CreditMemoRequest", body=body))

    def _create_return(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> dict[str, Any]:
        """``POST API_CUSTOMER_RETURN_SRV/A_CustomerReturn``: the customer return of the merchant's return type with
        reference to the invoice (its sold-to party and sales area), its items with their price condition (deep
        insert), our refund id as ``PurchaseOrderByCustomer`` and the order (return) reason."""
        currency = booking.amount.currency
        body: dict[str, Any] = {
            "CustomerReturnType": self._customer_return_type,
            "SalesOrganization": invoice.get("SalesOrganization"),
            "DistributionChannel": invoice.get("DistributionChannel"),
            "OrganizationDivision": invoice.get("Division"),
            "SoldToParty": invoice.get("SoldToParty"),
            "PurchaseOrderByCustomer": booking.external_reference,
            "CustomerPurchaseOrderDate": odata_date(booking.booking_date),
            "TransactionCurrency": currency,
            "ReferenceSDDocument": invoice.get("BillingDocument"),
            "to_Item": self._items(booking, invoice, "CustomerReturnItem", "CustomerReturnItemText"),
        }
        if self._order_reason:
            body["SDDocumentReason"] = self._order_reason
        method = self.payment_method(booking.payment_provider, currency)
        if method is not None and _paid_out(invoice, booking):
            body["PaymentMethod"] = method
        return _entity(self._call(CUSTOMER_RETURNS, "POST", "/A_CustomerReturn", body=body, what="customer return"))

    def _items(
        self, booking: CreditBooking, invoice: Mapping[str, Any], number_key: str, text_key: str
    ) -> list[dict[str, Any]]:
        """The document's items: one per refund line (or one for the refund), each of one piece of the refund
        material priced by the net amount whose tax gives back the line's gross."""
        currency = booking.amount.currency
        rate = _tax_rate(invoice, currency)
        if booking.lines:
            parts = [(line.description, line.amount) for line in booking.lines]
        elif booking.legs:
            # A split refund without lines of its own: one item per leg, its text naming the leg.
            parts = [(_leg_text(leg), leg.amount) for leg in booking.legs]
        else:
            parts = [(f"Refund {booking.reference} of invoice {invoice.get('BillingDocument')}", booking.amount)]
        items = []
        for position, (text, gross) in enumerate(parts, start=1):
            net = net_for_gross(gross, rate)
            items.append(
                {
                    number_key: str(position * 10),
                    "Material": self._material,
                    text_key: text[:40],
                    "RequestedQuantity": "1",
                    "RequestedQuantityUnit": "EA",
                    "to_PricingElement": [
                        {
                            "ConditionType": self._price_condition,
                            "ConditionRateValue": to_sap_amount(net),
                            "ConditionCurrency": currency,
                        }
                    ],
                }
            )
        return items

    def _check_request(self, request: Mapping[str, Any], booking: CreditBooking, invoice: Mapping[str, Any]) -> None:
        """The found or created sales document belongs to this refund's invoice: same currency, and it refers to
        the invoice. A customer return the merchant's returns process created may refer to the sales order
        instead (SAP lets a return reference either); it must then at least be the invoice's customer's."""
        number, what = _number(request), _what(request)
        if request.get("TransactionCurrency") != booking.amount.currency:
            raise RejectedError(
                f"{what} {number} for refund {booking.refund_id} is in {request.get('TransactionCurrency')}, the "
                f"refund in {booking.amount.currency}: correct it in SAP",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        reference = request.get("ReferenceSDDocument")
        by_order = "CustomerReturn" in request and request.get("ReferenceSDDocumentCategory") not in {None, "", "M"}
        if by_order and request.get("SoldToParty") != invoice.get("SoldToParty"):
            raise RejectedError(
                f"customer return {number} for refund {booking.refund_id} is for customer "
                f"{request.get('SoldToParty')}, invoice {booking.invoice.invoice_id} for {invoice.get('SoldToParty')}: "
                "correct the refund id on the return in SAP",
                code="credit_memo_conflict",
                platform=PLATFORM,
            )
        if not by_order and reference not in {None, "", booking.invoice.invoice_id}:
            raise RejectedError(
                f"{what} {number} for refund {booking.refund_id} refers to invoice "
                f"{reference}, not {booking.invoice.invoice_id}",
                code="credit_memo_conflict",
                platform=PLATFORM,
            )

    def _credit_memo(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        """The credit memo billed from ``request`` (a credit memo request or a customer return: the billing items
        name it as their ``SalesDocument``), not cancelled, or None while it is not billed."""
        number = _number(request)
        payload = self._call(
            BILLING,
            "GET",
            "/A_BillingDocumentItem",
            params={"$filter": f"SalesDocument eq '{number}'", "$select": "BillingDocument"},
        )
        for billing_document in dict.fromkeys(str(item.get("BillingDocument")) for item in _results(payload)):
            document = _entity(self._call(BILLING, "GET", f"/A_BillingDocument('{billing_document}')"))
            if document.get("SDDocumentCategory") == CREDIT_MEMO_CATEGORY and not document.get(
                "BillingDocumentIsCancelled"
            ):
                return document
        return None

    def _document(
        self, request: Mapping[str, Any], invoice: Mapping[str, Any], booking: CreditBooking
    ) -> CreditDocument:
        currency = booking.amount.currency
        nothing = Money.zero(currency)
        number = _number(request)
        reference = str(request.get("PurchaseOrderByCustomer") or "") or None
        if booking.external_reference not in (reference or ""):
            # A return the merchant's process created carries the refund id in its own field: the link is that.
            reference = booking.external_reference
        memo = self._credit_memo(request)
        if memo is None or memo.get("AccountingPostingStatus") != POSTED:
            if memo is not None and memo.get("AccountingPostingStatus") == "B":
                raise RejectedError(
                    f"credit memo {memo.get('BillingDocument')} for refund {booking.refund_id} was billed but SAP "
                    "could not post it to accounting (a closed posting period or a missing account): fix it in "
                    "Release Billing Documents",
                    code="closed_period",
                    platform=PLATFORM,
                )
            return CreditDocument(
                system=BooksSystem.SAP,
                kind=CreditDocumentKind.CREDIT_MEMO,
                state=CreditDocumentState.PENDING,
                document_id=number,
                number=number,
                total=booking.amount,
                allocated_to_invoice=nothing,
                cash_refunded=nothing,
                external_reference=reference,
            )
        total = _gross(memo, currency)
        if total != booking.amount:
            raise RejectedError(
                f"credit memo {memo.get('BillingDocument')} for refund {booking.refund_id} totals {total}, the refund "
                f"is {booking.amount}: correct it in SAP",
                code="credit_memo_conflict",
                platform=PLATFORM,
            )
        paid = _paid_out(invoice, booking)
        kept = invoice.get("InvoiceClearingStatus") == CLEARED and not paid
        if kept:
            # A split refund with store credit: the whole credit stays open on the customer's account (see _paid_out).
            return CreditDocument(
                system=BooksSystem.SAP,
                kind=CreditDocumentKind.CREDIT_MEMO,
                state=CreditDocumentState.POSTED,
                document_id=str(memo.get("BillingDocument")),
                number=str(memo.get("BillingDocument")),
                total=total,
                allocated_to_invoice=nothing,
                cash_refunded=nothing,
                external_reference=reference,
            )
        return CreditDocument(
            system=BooksSystem.SAP,
            kind=CreditDocumentKind.CREDIT_MEMO,
            state=CreditDocumentState.POSTED,
            document_id=str(memo.get("BillingDocument")),
            number=str(memo.get("BillingDocument")),
            total=total,
            allocated_to_invoice=nothing if paid else total,
            cash_refunded=total if paid else nothing,
            allocation_id=None if paid else str(invoice.get("BillingDocument")),
            payment_id=str(memo.get("AccountingDocument") or "") or None if paid else None,
            external_reference=reference,
        )

    # ------------------------------------------------------------ HTTP

    def _call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        what: str = "credit memo request",
    ) -> Any:
        """One OData call (``what``: the document a refusal is about). A write carries the service's CSRF token
        (fetched again once on 403 ``Required``); a 401 reads the secret again once."""
        import json

        write = method != "GET"
        fresh = False
        for attempt in range(3):
            headers = {"Authorization": self._session.authorization(fresh=fresh), "Accept": "application/json"}
            if write:
                headers["x-csrf-token"] = self._session.csrf_token(service)
                headers["Content-Type"] = "application/json"
            response = self._session.http.request(
                method,
                f"/{service}{path}",
                params={**(params or {}), "$format": "json"} if not write else params,
                data=json.dumps(body) if body is not None else None,
                headers=headers,
            )
            if attempt < 2 and response.status == 403 and _csrf_required(response):
                self._session.forget_token(service)
                continue
            if attempt < 2 and response.status == 401 and not fresh:
                fresh = True
                continue
            return _payload_or_raise(method, f"/{service}{path}", response, what)
        raise AssertionError("unreachable")  # pragma: no cover


def _csrf_required(response: HttpResponse) -> bool:
    value = response.headers.get("x-csrf-token") or response.headers.get("X-CSRF-Token") or ""
    return value.lower() == "required"


def _payload_or_raise(method: str, path: str, response: HttpResponse, what: str = "credit memo request") -> Any:
    if response.ok:
        if response.status == 204 or not response.body:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise TransientError(f"{method} {path}: SAP answered with unreadable JSON", platform=PLATFORM) from error
    raise raise_for(method, path, response, what)


# SAP message ids (class/number) that mean a closed posting period.
_CLOSED_PERIOD_MESSAGES = {"F5/201", "F5A/201", "VF/050"}


def raise_for(method: str, path: str, response: HttpResponse, what: str = "credit memo request") -> Exception:
    """The error for an OData error answer (``{"error": {"code", "message": {"value"}, "innererror":
    {"errordetails": [...]}}}``), in words an accountant can act on."""
    where = f"{method} {path}"
    status = response.status
    code, messages = _odata_error(response)
    text = "; ".join(messages) or f"HTTP {status}"
    if status in {400, 422}:
        codes = {code, *(_detail_codes(response))}
        if codes & _CLOSED_PERIOD_MESSAGES or ("period" in text.lower() and "not open" in text.lower()):
            return RejectedError(
                f"SAP refuses the {what}: the posting period is closed ({text}); open the period or book the "
                "credit in the current one",
                code="closed_period",
                platform=PLATFORM,
            )
        return RejectedError(f"SAP refuses the {what}: {text}", code="sap_validation", platform=PLATFORM)
    if status == 401:
        return RejectedError(
            f"{where}: SAP refused the communication user (check the user and password of the communication "
            "arrangement)",
            code="sap_unauthorized",
            platform=PLATFORM,
        )
    if status == 403:
        return RejectedError(
            f"{where}: the communication user may not do this ({text}); check the communication arrangements "
            "SAP_COM_0158 (credit memo requests), SAP_COM_0157 (customer returns) and SAP_COM_0120 (billing)",
            code="sap_forbidden",
            platform=PLATFORM,
        )
    if status == 404:
        return NotFound(f"{where}: not found in SAP ({text})", platform=PLATFORM)
    if status == 429 or status >= 500:
        return TransientError(
            f"{where}: SAP answered {status} ({text})",
            code="sap_unavailable",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    return RejectedError(f"{where}: SAP answered {status} ({text})", code=f"sap_http_{status}", platform=PLATFORM)


def _odata_error(response: HttpResponse) -> tuple[str, list[str]]:
    try:
        payload = response.json()
    except ValueError:
        return "", [response.body.decode("utf-8", "replace")[:300]] if response.body else []
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(error, Mapping):
        return "", []
    message = error.get("message")
    value = message.get("value") if isinstance(message, Mapping) else message
    messages = [str(value)] if value else []
    inner = error.get("innererror")
    details = inner.get("errordetails") if isinstance(inner, Mapping) else None
    for detail in details or []:
        if isinstance(detail, Mapping) and detail.get("severity", "error") == "error" and detail.get("message"):
            messages.append(str(detail["message"]))
    return str(error.get("code") or ""), list(dict.fromkeys(messages))


def _detail_codes(response: HttpResponse) -> Iterable[str]:
    try:
        payload = response.json()
    except ValueError:
        return []
    inner = payload.get("error", {}).get("innererror") if isinstance(payload, Mapping) else None
    details = inner.get("errordetails") if isinstance(inner, Mapping) else None
    return [str(detail.get("code")) for detail in details or [] if isinstance(detail, Mapping)]


# ---------------------------------------------------------------- payload helpers


def _entity(payload: Any) -> dict[str, Any]:
    entity = payload.get("d") if isinstance(payload, Mapping) else None
    if not isinstance(entity, dict):
        raise TransientError("SAP answered without the entity", platform=PLATFORM)
    return entity


def _results(payload: Any) -> list[dict[str, Any]]:
    data = payload.get("d") if isinstance(payload, Mapping) else None
    results = data.get("results") if isinstance(data, Mapping) else None
    if not isinstance(results, list):
        raise TransientError("SAP answered without results", platform=PLATFORM)
    return [item for item in results if isinstance(item, dict)]


def _gross(document: Mapping[str, Any], currency: str) -> Money:
    """A billing document's gross (``TotalGrossAmount``), checked against its net plus tax."""
    gross = from_sap_amount(document.get("TotalGrossAmount"), currency)
    net = from_sap_amount(document.get("TotalNetAmount"), currency)
    tax = from_sap_amount(document.get("TaxAmount"), currency)
    if net + tax != gross:
        raise RejectedError(
            f"billing document {document.get('BillingDocument')} totals {gross} but its net {net} and tax {tax} "
            "do not add up to it",
            code="sap_bad_amount",
            platform=PLATFORM,
        )
    return gross


def _tax_rate(invoice: Mapping[str, Any], currency: str) -> Fraction:
    net = from_sap_amount(invoice.get("TotalNetAmount"), currency).minor_units
    tax = from_sap_amount(invoice.get("TaxAmount"), currency).minor_units
    if net <= 0:
        raise RejectedError(f"invoice {invoice.get('BillingDocument')} has no net amount", platform=PLATFORM)
    return Fraction(tax, net)


def _number(document: Mapping[str, Any]) -> str:
    """The number of a credit memo request or a customer return."""
    return str(document.get("CustomerReturn") or document.get("CreditMemoRequest"))


def _what(document: Mapping[str, Any]) -> str:
    return "customer return" if "CustomerReturn" in document else "credit memo request"


def _one_live(found: list[dict[str, Any]], refund_id: str, what: str, key: str) -> dict[str, Any] | None:
    """The one sales document not rejected among those carrying ``refund_id``, or None.

    Raises:
        RejectedError: several live ones (reject all but one), or only rejected ones (a person decided).
    """
    live = [item for item in found if item.get("OverallSDDocumentRejectionSts") != REJECTED_COMPLETELY]
    rejected = [item for item in found if item.get("OverallSDDocumentRejectionSts") == REJECTED_COMPLETELY]
    if len(live) > 1:
        numbers = ", ".join(str(item.get(key)) for item in live)
        raise RejectedError(
            f"several {what}s carry refund {refund_id} ({numbers}): reject all but one in SAP",
            code=f"duplicate_{what.replace(' ', '_')}s",
            platform=PLATFORM,
        )
    if not live and rejected:
        raise RejectedError(
            f"{what} {rejected[0].get(key)} for refund {refund_id} was rejected in SAP: decide in SAP whether to "
            "credit the customer, then retry the refund's books",
            code=f"{what.replace(' ', '_')}_rejected",
            platform=PLATFORM,
        )
    return live[0] if live else None


def _block_text(request: Mapping[str, Any]) -> str:
    block = request.get("HeaderBillingBlockReason")
    if block:
        return f" (blocked for billing, reason {block}: release it in SAP)"
    if "CustomerReturn" in request and request.get("OverallDeliveryStatus") not in {None, "", COMPLETELY}:
        return " (SAP bills the return's credit memo once the goods receipt of its returns delivery is posted)"
    return " (waiting for SAP's billing run)"


# ---------------------------------------------------------------- factory


def _pair(secret: Mapping[str, Any], first: str, second: str) -> tuple[str, str]:
    """Two non-empty strings of the SAP secret.

    Raises:
        ConfigurationError: either is missing.
    """
    one, two = secret.get(first), secret.get(second)
    if not isinstance(one, str) or not one or not isinstance(two, str) or not two:
        raise ConfigurationError(f"the SAP secret needs {first} and {second}", platform=PLATFORM)
    return one, two


def _token_error(response: HttpResponse) -> Exception:
    """The error for a refused token request (RFC 6749 ``{"error", "error_description"}``)."""
    what = oauth_error_words(response)
    if response.status == 429 or response.status >= 500:
        return TransientError(
            f"SAP's token endpoint is unavailable ({what})",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    return RejectedError(
        f"SAP refused the OAuth 2.0 client ({what}): check the client id and secret of the communication "
        "arrangement's OAuth 2.0 details, and SAP_TOKEN_URL",
        code="sap_unauthorized",
        platform=PLATFORM,
    )


class SapSettings(settings.EnvModel):
    """SAP's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default="https://my000000-api.s4hana.cloud.sap/sap/opu/odata/sap", alias="SAP_API_BASE")
    request_type: str = Field(default="CR", alias="SAP_CREDIT_MEMO_REQUEST_TYPE")
    order_reason: str = Field(default="", alias="SAP_ORDER_REASON")
    material: str = Field(default="REFUND", alias="SAP_REFUND_MATERIAL")
    price_condition: str = Field(default="PMP0", alias="SAP_PRICE_CONDITION")
    pending_policy: PendingPolicy = Field(default="wait", alias="SAP_PENDING_POLICY")
    payment_methods: str = Field(default="", alias="SAP_PAYMENT_METHODS")
    auth: AuthMode = Field(default="basic", alias="SAP_AUTH")
    token_url: str = Field(default="", alias="SAP_TOKEN_URL")
    oauth_scope: str = Field(default="", alias="SAP_OAUTH_SCOPE")
    return_refund_field: str = Field(
        default="PurchaseOrderByCustomer", pattern=r"^[A-Z][A-Za-z0-9_]{1,39}$", alias="SAP_RETURN_REFUND_FIELD"
    )
    credit_document: CreditDocumentChoice = Field(default="credit_memo_request", alias="SAP_CREDIT_DOCUMENT")
    customer_return_type: str = Field(default="CBAR", pattern=r"^[A-Z0-9]{1,4}$", alias="SAP_CUSTOMER_RETURN_TYPE")


def parse_payment_methods(text: str) -> dict[str, str]:
    """``stripe:EUR=S,stripe:*=T,*:USD=U`` as a mapping (see ``SapBooks.payment_method``).

    Raises:
        ConfigurationError: a malformed entry.
    """
    return parse_per_provider(text, "SAP_PAYMENT_METHODS", value="method")


@cache
def connector() -> SapBooks:
    """The process-wide SAP books, from ``SapSettings`` and SAP's API secret (``<SecretsPrefix>sap``: username and
    password of the communication user, or the OAuth 2.0 client id and secret with
    ``SAP_AUTH=oauth2_client_credentials``), built on first use; the secret is read on the first call.

    Raises:
        ConfigurationError: no secret name, or malformed settings.
    """
    from refundflow.adapters.secrets import get_json_secret, platform_secret_name

    config = settings.load(SapSettings)
    name = platform_secret_name(PLATFORM)

    def load_secret(force: bool) -> Mapping[str, Any]:
        return get_json_secret(name, force_fetch=force)

    token_url = (config.token_url or default_token_url(config.api_base)) if config.auth != "basic" else ""
    session = SapSession(
        load_secret=load_secret,
        http=HttpClient(platform=PLATFORM, base_url=config.api_base),
        auth=config.auth,
        token_url=token_url,
        scope=config.oauth_scope,
    )
    return SapBooks(
        session=session,
        request_type=config.request_type,
        order_reason=config.order_reason,
        material=config.material,
        price_condition=config.price_condition,
        pending_policy=config.pending_policy,
        payment_methods=parse_payment_methods(config.payment_methods),
        return_refund_field=config.return_refund_field,
        credit_document=config.credit_document,
        customer_return_type=config.customer_return_type,
    )


def _paid_out(invoice: Mapping[str, Any], booking: CreditBooking) -> bool:
    """Whether the credit memo is paid out by SAP's payment run (the request carries the provider's payment method):
    when the invoice is cleared (paid), unless a split refund keeps store credit. The payment run pays a credit memo's
    open item whole, so a memo with store credit on it would pay the store credit out in cash: it carries no payment
    method, and its cash legs are cleared by a person against the provider's clearing account (every leg is an item
    of the memo)."""
    return invoice.get("InvoiceClearingStatus") == CLEARED and not booking.store_credit.is_positive()


def _leg_text(leg: CreditLeg) -> str:
    """A split refund's item text (SAP keeps 40 characters): the leg and its provider refund id, or store credit."""
    return f"leg {leg.index + 1} {leg.provider_refund_id or 'store credit'}"
