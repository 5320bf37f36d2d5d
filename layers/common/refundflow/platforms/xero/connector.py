"""Xero books connector: a refund becomes an ACCRECCREDIT credit note linked to its invoice, exactly once.

Flow (each step re-reads Xero before writing, so a crash between steps resumes without duplicates):

1. ``GET /Invoices/{InvoiceID}``: the invoice must be a sales invoice (ACCREC), AUTHORISED or PAID, in the
   booking's currency; its contact becomes the credit note's contact.
2. Find the credit note by our reference (``Reference`` starts with the refund id) or ``PUT /CreditNotes``
   (AUTHORISED, ``LineAmountTypes: Inclusive`` because the customer gets a gross amount back).
3. While the invoice still has an amount due, allocate ``min(AmountDue, RemainingCredit)`` to it with
   ``PUT /CreditNotes/{id}/Allocations``. Xero refuses allocations above the amount due and allocations to
   an invoice that is already paid off, so a paid invoice is never allocated to.
4. Pay out what remains on the credit note as a cash refund: ``PUT /Payments`` against the credit note.

Xero keeps an ``Idempotency-Key`` for six minutes only, so the key on every create guards the network retry
and the lookup by reference guards everything later. Amounts cross the boundary as exact JSON numbers built
from ``Money`` (``Decimal`` both ways, never ``float``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, ClassVar

from pydantic import Field

from refundflow import settings
from refundflow.connectors import exact_json
from refundflow.connectors.books import BooksAmounts, check_booking, parse_per_provider, per_provider, require_refund_id
from refundflow.connectors.http import HttpClient, HttpResponse, retry_after_seconds
from refundflow.connectors.oauth_tokens import RefreshTokenGrant, SecretLoader, SecretSaver, send_with_token
from refundflow.errors import (
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.models import BooksSystem, CreditDocument, CreditDocumentKind, CreditDocumentState, PaymentProvider
from refundflow.money import Money
from refundflow.ports import BooksCapabilities, BooksConnector, CreditBooking, CreditLeg

PLATFORM = "xero"
IDEMPOTENCY_KEY_MAX_LENGTH = 128
# The longest reference written (a credit note's or a payment's); Xero's API spec gives no length, so a split
# refund's list of legs is cut conservatively here.
REFERENCE_LENGTH = 255
# Xero keeps an idempotency key, and the answer it gave, for six minutes from the first call.
XERO_IDEMPOTENCY_WINDOW_SECONDS = 360.0
# Refresh a little before Xero's 30-minute access tokens expire, so a call never starts with a dying token.
TOKEN_EXPIRY_MARGIN_SECONDS = 120.0

_INVOICE_STATUSES_FOR_REFUND = {"AUTHORISED", "PAID"}
_LIVE_CREDIT_NOTE_STATUSES = {"AUTHORISED", "PAID"}


# ---------------------------------------------------------------- exact amounts and JSON


AMOUNTS = BooksAmounts(platform=PLATFORM, title="Xero", bad_amount_code="xero_bad_amount")
# Xero keeps two decimals in every currency (a three-decimal amount books only when its last digit is 0).
capabilities = AMOUNTS.capabilities
profile = AMOUNTS.profile
to_xero_amount = AMOUNTS.to_platform
from_xero_amount = AMOUNTS.from_platform
dump_json = AMOUNTS.dump_json
load_json = exact_json.loads
"""JSON with every non-integer number as an exact ``Decimal`` (``connectors.exact_json``)."""

# ---------------------------------------------------------------- OAuth2 tokens


class XeroTokenSource(RefreshTokenGrant):
    """Access tokens from Xero's refresh-token grant, cached until shortly before they expire.

    Xero rotates the refresh token on every refresh (the old one stays usable for a 30-minute grace period,
    unused ones expire after 60 days), so each new one is stored through ``save_secret`` at once. When
    another process rotated it first, Xero answers ``invalid_grant``: the secret is re-read once, bypassing
    caches, and the refresh retried with the newer token.
    """

    service = "Xero identity"
    unavailable_code = "xero_identity_unavailable"
    reconnect_code = "xero_reconnect_required"
    reconnect_hint = "reconnect the Xero app and store the new refresh token"
    secret_store_code = "xero_secret_store"

    def __init__(
        self,
        *,
        identity_base: str,
        load_secret: SecretLoader,
        save_secret: SecretSaver,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin_seconds: float = TOKEN_EXPIRY_MARGIN_SECONDS,
    ) -> None:
        super().__init__(
            platform=PLATFORM,
            title="Xero",
            http=http or HttpClient(platform=PLATFORM, base_url=identity_base),
            load_secret=load_secret,
            save_secret=save_secret,
            clock=clock,
            expiry_margin_seconds=expiry_margin_seconds,
        )

    @property
    def tenant_id(self) -> str:
        """The Xero organisation (``xero-tenant-id``) the secret is connected to.

        Raises:
            ConfigurationError: the secret has no tenant_id.
        """
        return self.secret_field("tenant_id")

    def _token_request(self, secret: Mapping[str, Any]) -> HttpResponse:
        return self._http.request(
            "POST",
            "/connect/token",
            data={"grant_type": "refresh_token", "refresh_token": self._field(secret, "refresh_token")},
            headers={"Accept": "application/json"},
            auth=(self._field(secret, "client_id"), self._field(secret, "client_secret")),
        )


# ---------------------------------------------------------------- the books


class XeroBooks(BooksConnector):
    """The refund's credit note, its allocation to the invoice and its cash refund, in one Xero organisation."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self,
        *,
        tokens: XeroTokenSource,
        api_base: str = "https://api.xero.com/api.xro/2.0",
        refund_account_code: str = "200",
        payment_account_code: str = "090",
        clearing_accounts: Mapping[str, str] | None = None,
        http: HttpClient | None = None,
    ) -> None:
        """``clearing_accounts``: the bank or clearing account each payment provider's cash refunds are paid
        from, keyed ``<provider>:<CURRENCY>``, ``<provider>:*`` or ``*:<CURRENCY>`` (most specific wins);
        ``payment_account_code`` is the account for everything else."""
        self._tokens = tokens
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)
        self._refund_account_code = refund_account_code
        self._payment_account_code = payment_account_code
        self._clearing_accounts = dict(clearing_accounts or {})

    @property
    def capabilities(self) -> BooksCapabilities:
        return capabilities()

    def clearing_account(self, provider: PaymentProvider, currency: str) -> str:
        """The account code the cash refund of ``provider`` in ``currency`` is paid from."""
        configured = per_provider(self._clearing_accounts, provider, currency)
        return configured if configured is not None else self._payment_account_code

    # ------------------------------------------------------------ port

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        """Create (exactly once) the credit note linked to the invoice and the cash refund payment from the
        provider's clearing account.

        Safe to call again after any failure: every step first reads what Xero already holds.

        Raises:
            TransientError: Xero could not be reached, was rate-limited (``retry_after_seconds`` set) or did
                not answer a write (outcome unknown: the next call finds what was created).
            RejectedError: Xero or this connector refuses the booking for good: invoice in another currency,
                not a sales invoice, not AUTHORISED/PAID, a credit note for this refund with another total,
                Xero validation errors (with Xero's messages), 403, or a refresh token Xero no longer accepts.
            NotFound: the invoice does not exist in the organisation.
        """
        try:
            return self._record(booking)
        except OutcomeUnknownError as error:
            raise TransientError(
                f"{error.message}; the next attempt reads Xero before writing again",
                code="xero_outcome_unknown",
                platform=PLATFORM,
            ) from error

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The credit document already recorded for this booking, found by its external reference.

        Raises:
            TransientError: Xero could not answer now.
            RejectedError: Xero refused the read (403, bad credentials).
        """
        found = self._find_credit_note(booking.external_reference)
        if found is None:
            return None
        note = self._get_credit_note(_text(found, "CreditNoteID"))
        return self._document(note, booking)

    # ------------------------------------------------------------ steps

    def _record(self, booking: CreditBooking) -> CreditDocument:
        self._check_booking(booking)
        invoice = self._get_invoice(booking.invoice.invoice_id)
        self._check_invoice(invoice, booking)
        found = self._find_credit_note(booking.external_reference)
        if found is None:
            note = self._create_credit_note(booking, invoice)
        else:
            note = self._get_credit_note(_text(found, "CreditNoteID"))
        self._check_credit_note(note, booking)
        allocated = self._allocate(note, invoice, booking)
        paid = self._refund_cash(note, booking, allocated)
        if allocated.is_positive() or paid:
            # Read back once so the document carries Xero's own ids and totals.
            note = self._get_credit_note(_text(note, "CreditNoteID"))
        return self._document(note, booking)

    def _check_booking(self, booking: CreditBooking) -> None:
        check_booking(
            booking,
            system=BooksSystem.XERO,
            platform=PLATFORM,
            invoice="a Xero invoice",
            document="a refund credit note",
            to_platform=to_xero_amount,
        )

    def _get_invoice(self, invoice_id: str) -> dict[str, Any]:
        payload = self._call("GET", f"/Invoices/{invoice_id}")
        return _single(payload, "Invoices")

    def _check_invoice(self, invoice: Mapping[str, Any], booking: CreditBooking) -> None:
        number = invoice.get("InvoiceNumber") or invoice.get("InvoiceID")
        if invoice.get("Type") != "ACCREC":
            raise RejectedError(f"invoice {number} is not a sales invoice (ACCREC)", platform=PLATFORM)
        if invoice.get("CurrencyCode") != booking.amount.currency:
            raise RejectedError(
                f"invoice {number} is in {invoice.get('CurrencyCode')}, the refund in {booking.amount.currency}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        if invoice.get("Status") not in _INVOICE_STATUSES_FOR_REFUND:
            raise RejectedError(
                f"invoice {number} is {invoice.get('Status')}, only AUTHORISED or PAID invoices are credited",
                code="invoice_status",
                platform=PLATFORM,
            )
        contact = invoice.get("Contact")
        if not isinstance(contact, Mapping) or not contact.get("ContactID"):
            raise RejectedError(f"invoice {number} has no contact", platform=PLATFORM)

    def _find_credit_note(self, refund_id: str) -> dict[str, Any] | None:
        # Our references are refund ids, rf_ + 32 hex digits: nothing to escape in the filter, and with their fixed
        # length a prefix match on the reference is an exact match on the refund.
        require_refund_id(refund_id, platform=PLATFORM)
        where = f'Type=="ACCRECCREDIT" AND Reference!=null AND Reference.StartsWith("{refund_id}")'
        payload = self._call("GET", "/CreditNotes", params={"where": where})
        notes = payload.get("CreditNotes") if isinstance(payload, Mapping) else None
        matches = [note for note in notes or [] if isinstance(note, dict)]
        if len(matches) > 1:
            numbers = ", ".join(str(note.get("CreditNoteNumber")) for note in matches)
            raise RejectedError(
                f"several credit notes carry refund {refund_id} ({numbers}): fix them in Xero",
                code="duplicate_credit_notes",
                platform=PLATFORM,
            )
        return matches[0] if matches else None

    def _create_credit_note(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> dict[str, Any]:
        if booking.amount > from_xero_amount(invoice.get("Total"), booking.amount.currency):
            raise RejectedError(
                f"refund {booking.amount} is more than invoice {invoice.get('InvoiceNumber')} totals",
                code="over_credit",
                platform=PLATFORM,
            )
        body = {
            "CreditNotes": [
                {
                    "Type": "ACCRECCREDIT",
                    "Status": "AUTHORISED",
                    "Contact": {"ContactID": _text(invoice["Contact"], "ContactID")},
                    "Date": booking.booking_date.isoformat(),
                    "CurrencyCode": booking.amount.currency,
                    "Reference": _reference(booking, invoice),
                    "LineAmountTypes": "Inclusive",
                    "LineItems": self._line_items(booking, invoice),
                }
            ]
        }
        payload = self._call(
            "PUT",
            "/CreditNotes",
            body=body,
            key=_key(booking, "creditnote"),
        )
        return _single(payload, "CreditNotes")

    def _line_items(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> list[dict[str, Any]]:
        tax_type = _shared_tax_type(invoice.get("LineItems"))
        if booking.lines:
            parts = [(line.description, line.quantity, line.amount) for line in booking.lines]
        else:
            description = f"Refund {booking.reference} of invoice {invoice.get('InvoiceNumber')}"
            parts = [(description, 1, booking.amount)]
        items = []
        for description, quantity, amount in parts:
            unit = Money.of(amount.minor_units // quantity, amount.currency)
            if amount.minor_units % quantity or not _fits_xero(unit):
                # The gross line amount is what must be exact: book it as one unit rather than round a price.
                description, quantity, unit = f"{description} (x{quantity})", 1, amount
            item: dict[str, Any] = {
                "Description": description,
                "Quantity": quantity,
                "UnitAmount": to_xero_amount(unit),
                "AccountCode": self._refund_account_code,
            }
            if tax_type is not None:
                item["TaxType"] = tax_type
            items.append(item)
        return items

    def _get_credit_note(self, credit_note_id: str) -> dict[str, Any]:
        return _single(self._call("GET", f"/CreditNotes/{credit_note_id}"), "CreditNotes")

    def _check_credit_note(self, note: Mapping[str, Any], booking: CreditBooking) -> None:
        number = note.get("CreditNoteNumber") or note.get("CreditNoteID")
        if note.get("Status") not in _LIVE_CREDIT_NOTE_STATUSES:
            raise RejectedError(
                f"credit note {number} for refund {booking.refund_id} is {note.get('Status')} in Xero",
                code="credit_note_status",
                platform=PLATFORM,
            )
        if note.get("CurrencyCode") != booking.amount.currency:
            raise RejectedError(f"credit note {number} is in {note.get('CurrencyCode')}", platform=PLATFORM)
        total = from_xero_amount(note.get("Total"), booking.amount.currency)
        if total != booking.amount:
            raise RejectedError(
                f"credit note {number} for refund {booking.refund_id} totals {total}, the refund is {booking.amount}",
                code="credit_note_conflict",
                platform=PLATFORM,
            )

    def _allocate(self, note: Mapping[str, Any], invoice: Mapping[str, Any], booking: CreditBooking) -> Money:
        """Allocate to the invoice what it still owes; returns the amount allocated now (zero if none)."""
        invoice_id = _text(invoice, "InvoiceID")
        currency = booking.amount.currency
        nothing = Money.zero(currency)
        if _allocations_to(note, invoice_id) or _live_payments(note):
            return nothing
        remaining = from_xero_amount(note.get("RemainingCredit"), currency)
        due = from_xero_amount(invoice.get("AmountDue", 0), currency)
        if invoice.get("Status") != "AUTHORISED" or not due.is_positive() or not remaining.is_positive():
            return nothing
        amount = due.min(remaining)
        credit_note_id = _text(note, "CreditNoteID")
        body = {
            "Allocations": [
                {
                    "Invoice": {"InvoiceID": invoice_id},
                    "Amount": to_xero_amount(amount),
                    "Date": booking.booking_date.isoformat(),
                }
            ]
        }
        self._call(
            "PUT",
            f"/CreditNotes/{credit_note_id}/Allocations",
            body=body,
            key=_key(booking, "allocation"),
        )
        return amount

    def _refund_cash(self, note: Mapping[str, Any], booking: CreditBooking, allocated_now: Money) -> bool:
        """Pay out what remains on the credit note after ``allocated_now``; True when a payment was made.

        A split refund pays each cash leg as its own payment from its provider's clearing account (its Reference
        names the leg, which is how a retry finds it) and leaves the store credit on the note as credit."""
        if not booking.legs:
            if _live_payments(note):
                return False
            remaining = from_xero_amount(note.get("RemainingCredit"), booking.amount.currency) - allocated_now
            if not remaining.is_positive():
                return False
            self._pay(note, booking, remaining, booking.payment_provider, str(note.get("Reference") or ""), "payment")
            return True
        budget = from_xero_amount(note.get("RemainingCredit"), booking.currency) - allocated_now - booking.store_credit
        paid_references = {str(payment.get("Reference") or "") for payment in _live_payments(note)}
        paid = False
        for leg in booking.cash_legs():
            reference = _leg_reference(booking, leg)
            if reference in paid_references or leg.payment_provider is None:
                continue
            amount = leg.amount.min(budget)
            if not amount.is_positive():
                break
            self._pay(note, booking, amount, leg.payment_provider, reference, f"payment-{leg.index}")
            budget = budget - amount
            paid = True
        return paid

    def _pay(
        self,
        note: Mapping[str, Any],
        booking: CreditBooking,
        amount: Money,
        provider: PaymentProvider,
        reference: str,
        step: str,
    ) -> None:
        body = {
            "Payments": [
                {
                    "CreditNote": {"CreditNoteID": _text(note, "CreditNoteID")},
                    "Account": {"Code": self.clearing_account(provider, booking.currency)},
                    "Date": booking.booking_date.isoformat(),
                    "Amount": to_xero_amount(amount),
                    "Reference": reference or booking.external_reference,
                }
            ]
        }
        self._call("PUT", "/Payments", body=body, key=_key(booking, step))

    def _document(self, note: Mapping[str, Any], booking: CreditBooking) -> CreditDocument:
        currency = booking.amount.currency
        allocations = _allocations_to(note, booking.invoice.invoice_id)
        payments = _live_payments(note)
        return CreditDocument(
            system=BooksSystem.XERO,
            kind=CreditDocumentKind.CREDIT_NOTE,
            state=CreditDocumentState.POSTED,
            document_id=_text(note, "CreditNoteID"),
            number=note.get("CreditNoteNumber") or None,
            external_reference=str(note.get("Reference") or "")[:256] or None,
            total=from_xero_amount(note.get("Total"), currency),
            allocated_to_invoice=_sum((item.get("Amount") for item in allocations), currency),
            cash_refunded=_sum((item.get("Amount") for item in payments), currency),
            allocation_id=next((item.get("AllocationID") for item in allocations if item.get("AllocationID")), None),
            payment_id=next((item.get("PaymentID") for item in payments if item.get("PaymentID")), None),
        )

    # ------------------------------------------------------------ HTTP

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        key: str | None = None,
    ) -> Any:
        """One accounting call; a 401 refreshes the token once and repeats the call."""
        data = dump_json(body) if body is not None else None

        def send(token: str) -> HttpResponse:
            headers = {
                "Authorization": f"Bearer {token}",
                "xero-tenant-id": self._tokens.tenant_id,
                "Accept": "application/json",
            }
            if data is not None:
                headers["Content-Type"] = "application/json"
            if key is not None:
                headers["Idempotency-Key"] = key
            return self._http.request(method, path, params=params, data=data, headers=headers)

        return _payload_or_raise(method, path, send_with_token(self._tokens, send))


def _payload_or_raise(method: str, path: str, response: HttpResponse) -> Any:
    where = f"{method} {path}"
    if response.ok:
        try:
            return load_json(response.body)
        except ValueError as error:
            raise TransientError(f"{where}: Xero answered with unreadable JSON", platform=PLATFORM) from error
    status = response.status
    if status == 400:
        message = _validation_messages(response)
        if "is used with a different request" in message:
            # Xero keeps a key (and the answer it gave) for six minutes; a changed request under the same key is
            # refused until then. The lookup before every write makes the later retry safe.
            raise TransientError(
                f"{where}: {message}",
                code="xero_idempotency_window",
                platform=PLATFORM,
                retry_after_seconds=XERO_IDEMPOTENCY_WINDOW_SECONDS,
            )
        raise RejectedError(f"{where}: {message}", code="xero_validation", platform=PLATFORM)
    if status == 401:
        raise RejectedError(f"{where}: Xero refused a fresh access token", code="xero_unauthorized", platform=PLATFORM)
    if status == 403:
        raise RejectedError(
            f"{where}: forbidden (tenant not connected or scope missing)", code="xero_forbidden", platform=PLATFORM
        )
    if status == 404:
        raise NotFound(f"{where}: not found in Xero", platform=PLATFORM)
    if status == 429:
        problem = response.headers.get("X-Rate-Limit-Problem") or response.headers.get("x-rate-limit-problem")
        raise TransientError(
            f"{where}: rate limited ({problem or 'limit'})",
            code="xero_rate_limited",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    if status >= 500:
        raise TransientError(
            f"{where}: Xero answered {status}",
            code="xero_unavailable",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    raise RejectedError(f"{where}: Xero answered {status}", code=f"xero_http_{status}", platform=PLATFORM)


def _validation_messages(response: HttpResponse) -> str:
    """Xero's validation messages (``Elements[].ValidationErrors[].Message``), else its ``Message``."""
    try:
        payload = load_json(response.body)
    except ValueError:
        return response.body.decode("utf-8", "replace")[:500] or "bad request"
    if not isinstance(payload, Mapping):
        return "bad request"
    messages: list[str] = []
    for element in payload.get("Elements") or []:
        if isinstance(element, Mapping):
            for error in element.get("ValidationErrors") or []:
                if isinstance(error, Mapping) and error.get("Message"):
                    messages.append(str(error["Message"]))
    if messages:
        return "; ".join(dict.fromkeys(messages))
    return str(payload.get("Message") or payload.get("Detail") or payload.get("Title") or "bad request")


# ---------------------------------------------------------------- payload helpers


def _single(payload: Any, collection: str) -> dict[str, Any]:
    items = payload.get(collection) if isinstance(payload, Mapping) else None
    if not items or not isinstance(items[0], dict):
        raise TransientError(f"Xero answered without {collection}", platform=PLATFORM)
    item: dict[str, Any] = items[0]
    errors = [error.get("Message") for error in item.get("ValidationErrors") or [] if isinstance(error, Mapping)]
    if errors:
        raise RejectedError("; ".join(str(error) for error in errors), code="xero_validation", platform=PLATFORM)
    return item


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise TransientError(f"Xero answered without {name}", platform=PLATFORM)
    return value


def _key(booking: CreditBooking, step: str) -> str:
    """The key of one write of the booking: the domain's key plus the step (Xero takes up to 128 characters)."""
    key = f"{booking.idempotency_key}:{step}"
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise RejectedError(f"idempotency key {key[:40]}... is too long for Xero", platform=PLATFORM)
    return key


def _reference(booking: CreditBooking, invoice: Mapping[str, Any]) -> str:
    """Our reference on the credit note (found again by its refund-id prefix); a split refund's also names every
    leg, cut to ``REFERENCE_LENGTH``."""
    reference = f"{booking.external_reference} refund of {invoice.get('InvoiceNumber') or invoice.get('InvoiceID')}"
    if not booking.legs:
        return reference
    return f"{reference}: {booking.legs_in_words(REFERENCE_LENGTH - len(reference) - 2)}"


def _leg_reference(booking: CreditBooking, leg: CreditLeg) -> str:
    """A split refund's payment of one cash leg: our refund id and the leg (how a retry finds it paid)."""
    return f"{booking.external_reference} {leg.words()}"[:REFERENCE_LENGTH]


def _fits_xero(money: Money) -> bool:
    return profile().representable(money) is None


def _shared_tax_type(lines: Any) -> str | None:
    tax_types = {line.get("TaxType") for line in lines or [] if isinstance(line, Mapping)}
    if len(tax_types) == 1:
        (only,) = tax_types
        return only if isinstance(only, str) and only else None
    return None


def _allocations_to(note: Mapping[str, Any], invoice_id: str) -> list[Mapping[str, Any]]:
    return [
        allocation
        for allocation in note.get("Allocations") or []
        if isinstance(allocation, Mapping)
        and not allocation.get("IsDeleted")
        and isinstance(allocation.get("Invoice"), Mapping)
        and str(allocation["Invoice"].get("InvoiceID", "")).lower() == invoice_id.lower()
    ]


def _live_payments(note: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        payment
        for payment in note.get("Payments") or []
        if isinstance(payment, Mapping) and payment.get("Status", "AUTHORISED") != "DELETED"
    ]


def _sum(values: Iterable[Any], currency: str) -> Money:
    total = Money.zero(currency)
    for value in values:
        total = total + from_xero_amount(value, currency)
    return total


# ---------------------------------------------------------------- factory


class XeroSettings(settings.EnvModel):
    """Xero's own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default="https://api.xero.com/api.xro/2.0", alias="XERO_API_BASE")
    identity_base: str = Field(default="https://identity.xero.com", alias="XERO_IDENTITY_BASE")
    refund_account_code: str = Field(default="200", alias="XERO_REFUND_ACCOUNT_CODE")
    payment_account_code: str = Field(default="090", alias="XERO_PAYMENT_ACCOUNT_CODE")
    clearing_accounts: str = Field(default="", alias="XERO_CLEARING_ACCOUNTS")


def parse_clearing_accounts(text: str) -> dict[str, str]:
    """``stripe:EUR=091,stripe:*=090,*:USD=092`` as a mapping (see ``XeroBooks.clearing_account``).

    Raises:
        ConfigurationError: a malformed entry.
    """
    return parse_per_provider(text, "XERO_CLEARING_ACCOUNTS", value="code")


@cache
def connector() -> XeroBooks:
    """The process-wide Xero books, from ``XeroSettings`` and Xero's API secret (``<SecretsPrefix>xero``:
    client_id, client_secret, refresh_token, tenant_id; rotated in place), built on first use.

    Raises:
        ConfigurationError: no secret name, or malformed settings.
    """
    from refundflow.adapters.secrets import get_json_secret, platform_secret_name, put_json_secret

    config = settings.load(XeroSettings)
    name = platform_secret_name(PLATFORM)

    def load_secret(force: bool) -> Mapping[str, Any]:
        return get_json_secret(name, force_fetch=force)

    def save_secret(value: dict[str, Any]) -> None:
        put_json_secret(name, value)

    tokens = XeroTokenSource(identity_base=config.identity_base, load_secret=load_secret, save_secret=save_secret)
    return XeroBooks(
        tokens=tokens,
        api_base=config.api_base,
        refund_account_code=config.refund_account_code,
        payment_account_code=config.payment_account_code,
        clearing_accounts=parse_clearing_accounts(config.clearing_accounts),
    )
