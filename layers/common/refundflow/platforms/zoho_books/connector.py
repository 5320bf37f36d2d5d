"""Zoho Books connector: a refund becomes a credit note linked to its invoice, applied or refunded, exactly once.

Flow (Zoho Books API v3, every call with ``organization_id``; each step re-reads Zoho before writing, so a crash
between steps resumes without duplicates):

1. ``GET /invoices/{invoice_id}``: the invoice must be sent (not draft or void) and in the booking's currency; its
   ``customer_id`` becomes the credit note's customer.
2. Find the credit note by our reference (``GET /creditnotes?reference_number=<refund id>``) or create it
   (``POST /creditnotes?invoice_id=...``: tax-inclusive lines, ``reference_number`` = the refund id).
   A credit note that comes back as a draft is marked open (``POST /creditnotes/{id}/status/open``).
3. While the invoice still has a balance, apply ``min(invoice balance, credit balance)`` to it
   (``POST /creditnotes/{id}/invoices``).
4. Refund what remains on the credit note from the provider's clearing account (``POST /creditnotes/{id}/refunds``).

Zoho Books takes no idempotency key, so the lookup by reference (and the credit note's own balance, which every
application and refund lowers) is what makes a retry safe. Amounts are exact decimals both ways (never ``float``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, ClassVar

from pydantic import Field

from refundflow import settings
from refundflow.connectors.books import BooksAmounts, check_booking, per_provider, require_refund_id
from refundflow.connectors.http import HttpClient, HttpResponse, retry_after_seconds
from refundflow.connectors.oauth_tokens import SecretLoader, send_with_token
from refundflow.connectors.zoho import ZohoTokenSource as SharedZohoTokenSource
from refundflow.connectors.zoho import load_json
from refundflow.errors import (
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.models import BooksSystem, CreditDocument, CreditDocumentKind, CreditDocumentState, PaymentProvider
from refundflow.money import Money
from refundflow.ports import BooksCapabilities, BooksConnector, CreditBooking, CreditLeg

PLATFORM = "zoho_books"
# Zoho's error code for a record that does not exist ("Invoice does not exist.").
ZOHO_DOES_NOT_EXIST = 1002
# Lengths a split refund's words are cut to, conservatively (the Books API page does not state them for these fields):
# a credit note's notes and a refund's description (shown in one line of the credit note's refunds).
NOTES_LENGTH = 1000
DESCRIPTION_LENGTH = 100

_INVOICE_STATUSES_FOR_REFUND = {"sent", "viewed", "overdue", "unpaid", "partially_paid", "paid"}
_LIVE_CREDIT_NOTE_STATUSES = {"open", "closed"}
_AWAITING_APPROVAL = {"pending_approval", "approved"}

# ---------------------------------------------------------------- exact amounts and JSON


AMOUNTS = BooksAmounts(platform=PLATFORM, title="Zoho Books", bad_amount_code="zoho_bad_amount")
capabilities = AMOUNTS.capabilities
profile = AMOUNTS.profile
to_zoho_amount = AMOUNTS.to_platform
from_zoho_amount = AMOUNTS.from_platform
dump_json = AMOUNTS.dump_json


# ---------------------------------------------------------------- OAuth2 tokens


class ZohoTokenSource(SharedZohoTokenSource):
    """Zoho's refresh-token grant (refundflow.connectors.zoho), with the Books organization the secret names."""

    def __init__(self, *, accounts_base: str, load_secret: SecretLoader, **options: Any) -> None:
        super().__init__(
            accounts_base=accounts_base, load_secret=load_secret, platform=PLATFORM, title="Zoho Books", **options
        )

    @property
    def organization_id(self) -> str:
        """The Zoho Books organization every call names.

        Raises:
            ConfigurationError: the secret has no organization_id.
        """
        return self.secret_field("organization_id")


# ---------------------------------------------------------------- the books


class ZohoBooks(BooksConnector):
    """The refund's credit note, its application to the invoice and its refund, in one Zoho Books organization."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self,
        *,
        tokens: ZohoTokenSource,
        api_base: str = "https://www.zohoapis.com/books/v3",
        refund_account_id: str = "",
        tax_ids: Mapping[str, str] | None = None,
        payment_account_id: str = "",
        clearing_accounts: Mapping[str, str] | None = None,
        refund_mode: str = "banktransfer",
        http: HttpClient | None = None,
    ) -> None:
        """``refund_account_id``: the income (or sales returns) account of the credit note's lines, empty for the
        organization's default sales account. ``tax_ids``: the credit note's tax for each tax of the invoice
        (``<invoice tax_id>`` or ``*`` -> tax_id); unmapped, a line takes the invoice's own tax when all its lines
        share one. ``clearing_accounts``: the bank or clearing account each provider's refunds are paid from, keyed
        ``<provider>:<CURRENCY>``, ``<provider>:*`` or ``*:<CURRENCY>`` (most specific wins), else
        ``payment_account_id``."""
        self._tokens = tokens
        self._http = http or HttpClient(platform=PLATFORM, base_url=api_base)
        self._refund_account_id = refund_account_id
        self._tax_ids = dict(tax_ids or {})
        self._payment_account_id = payment_account_id
        self._clearing_accounts = dict(clearing_accounts or {})
        self._refund_mode = refund_mode

    @property
    def capabilities(self) -> BooksCapabilities:
        return capabilities()

    def clearing_account(self, provider: PaymentProvider, currency: str) -> str:
        """The account id the refund of ``provider`` in ``currency`` is paid from.

        Raises:
            RejectedError: no account is configured for that provider and currency.
        """
        configured = per_provider(self._clearing_accounts, provider, currency)
        if configured is not None:
            return configured
        if not self._payment_account_id:
            raise RejectedError(
                f"no Zoho Books account is configured to refund {provider.value} payments in {currency} from",
                code="zoho_no_clearing_account",
                platform=PLATFORM,
            )
        return self._payment_account_id

    # ------------------------------------------------------------ port

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        """Create (exactly once) the credit note linked to the invoice and its customer, apply it to what the
        invoice still owes and refund the rest from the provider's clearing account.

        Safe to call again after any failure: every step first reads what Zoho Books already holds.

        Raises:
            TransientError: Zoho could not be reached, was rate-limited or did not answer a write (the next call
                finds what was created).
            RejectedError: Zoho or this connector refuses the booking for good: invoice in another currency, a
                draft or void invoice, a locked (closed) period, a credit note for this refund with another total,
                Zoho's validation messages, or a refresh token Zoho no longer accepts.
            NotFound: the invoice does not exist in the organization.
        """
        try:
            return self._record(booking)
        except OutcomeUnknownError as error:
            raise TransientError(
                f"{error.message}; the next attempt reads Zoho Books before writing again",
                code="zoho_outcome_unknown",
                platform=PLATFORM,
            ) from error

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The credit note already recorded for this booking, found by its reference number (the refund id).

        Raises:
            TransientError: Zoho could not answer now.
            RejectedError: Zoho refused the read.
        """
        found = self._find_credit_note(booking.external_reference)
        if found is None:
            return None
        note = self._get_credit_note(_text(found, "creditnote_id"))
        return self._document(note, booking)

    # ------------------------------------------------------------ steps

    def _record(self, booking: CreditBooking) -> CreditDocument:
        self._check_booking(booking)
        invoice = _single(self._call("GET", f"/invoices/{booking.invoice.invoice_id}"), "invoice")
        self._check_invoice(invoice, booking)
        found = self._find_credit_note(booking.external_reference)
        if found is None:
            note = self._create_credit_note(booking, invoice)
        else:
            note = self._get_credit_note(_text(found, "creditnote_id"))
        note = self._open(note, booking)
        self._check_credit_note(note, invoice, booking)
        note = self._apply(note, invoice, booking)
        note = self._refund(note, booking)
        return self._document(note, booking)

    def _check_booking(self, booking: CreditBooking) -> None:
        check_booking(
            booking,
            system=BooksSystem.ZOHO_BOOKS,
            platform=PLATFORM,
            invoice="a Zoho Books invoice",
            document="a refund credit note",
            to_platform=to_zoho_amount,
        )

    def _check_invoice(self, invoice: Mapping[str, Any], booking: CreditBooking) -> None:
        number = invoice.get("invoice_number") or invoice.get("invoice_id")
        if invoice.get("currency_code") != booking.amount.currency:
            raise RejectedError(
                f"invoice {number} is in {invoice.get('currency_code')}, the refund in {booking.amount.currency}",
                code="currency_mismatch",
                platform=PLATFORM,
            )
        if invoice.get("status") not in _INVOICE_STATUSES_FOR_REFUND:
            raise RejectedError(
                f"invoice {number} is {invoice.get('status')} in Zoho Books: only sent invoices are credited",
                code="invoice_status",
                platform=PLATFORM,
            )
        if not invoice.get("customer_id"):
            raise RejectedError(f"invoice {number} has no customer", platform=PLATFORM)

    def _find_credit_note(self, refund_id: str) -> dict[str, Any] | None:
        require_refund_id(refund_id, platform=PLATFORM)
        payload = self._call("GET", "/creditnotes", params={"reference_number": refund_id})
        notes = payload.get("creditnotes") if isinstance(payload, Mapping) else None
        # The filter may match more loosely than equality: only our exact reference counts.
        matches = [
            note
            for note in notes or []
            if isinstance(note, dict) and note.get("reference_number") == refund_id and note.get("status") != "void"
        ]
        if len(matches) > 1:
            numbers = ", ".join(str(note.get("creditnote_number")) for note in matches)
            raise RejectedError(
                f"several credit notes carry refund {refund_id} ({numbers}): void the extra ones in Zoho Books",
                code="duplicate_credit_notes",
                platform=PLATFORM,
            )
        return matches[0] if matches else None

    def _create_credit_note(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> dict[str, Any]:
        if booking.amount > from_zoho_amount(invoice.get("total"), booking.amount.currency):
            raise RejectedError(
                f"refund {booking.amount} is more than invoice {invoice.get('invoice_number')} totals",
                code="over_credit",
                platform=PLATFORM,
            )
        body = {
            "customer_id": _text(invoice, "customer_id"),
            "date": booking.booking_date.isoformat(),
            "reference_number": booking.external_reference,
            "is_inclusive_tax": True,
            "line_items": self._line_items(booking, invoice),
            "notes": _notes(booking, invoice),
        }
        payload = self._call("POST", "/creditnotes", params={"invoice_id": _text(invoice, "invoice_id")}, body=body)
        return _single(payload, "creditnote")

    def credit_tax_id(self, invoice: Mapping[str, Any]) -> str | None:
        """The tax of the credit note's lines: the mapping for the invoice's shared tax, else that tax itself."""
        shared = _shared_tax_id(invoice.get("line_items"))
        if shared is not None and shared in self._tax_ids:
            return self._tax_ids[shared]
        if "*" in self._tax_ids:
            return self._tax_ids["*"] or None
        return shared

    def _line_items(self, booking: CreditBooking, invoice: Mapping[str, Any]) -> list[dict[str, Any]]:
        tax_id = self.credit_tax_id(invoice)
        if booking.lines:
            parts = [(line.description, line.quantity, line.amount) for line in booking.lines]
        else:
            parts = [(f"Refund {booking.reference} of invoice {invoice.get('invoice_number')}", 1, booking.amount)]
        items = []
        for description, quantity, amount in parts:
            unit = Money.of(amount.minor_units // quantity, amount.currency)
            if amount.minor_units % quantity or profile().representable(unit) is not None:
                # The gross line amount must be exact: book it as one unit rather than round a price.
                description, quantity, unit = f"{description} (x{quantity})", 1, amount
            item: dict[str, Any] = {
                "description": description,
                "quantity": quantity,
                "rate": to_zoho_amount(unit),
            }
            if self._refund_account_id:
                item["account_id"] = self._refund_account_id
            if tax_id is not None:
                item["tax_id"] = tax_id
            items.append(item)
        return items

    def _get_credit_note(self, creditnote_id: str) -> dict[str, Any]:
        return _single(self._call("GET", f"/creditnotes/{creditnote_id}"), "creditnote")

    def _open(self, note: dict[str, Any], booking: CreditBooking) -> dict[str, Any]:
        """A draft credit note is marked open (``POST /creditnotes/{id}/status/open``) so it can be applied or
        refunded; one waiting for the organization's approval is left to the approver."""
        status = note.get("status")
        if status in _AWAITING_APPROVAL:
            raise RejectedError(
                f"credit note {note.get('creditnote_number')} for refund {booking.refund_id} waits for approval in "
                "Zoho Books: approve it there, then retry the refund's books step",
                code="credit_note_awaiting_approval",
                platform=PLATFORM,
            )
        if status != "draft":
            return note
        creditnote_id = _text(note, "creditnote_id")
        self._call("POST", f"/creditnotes/{creditnote_id}/status/open")
        return self._get_credit_note(creditnote_id)

    def _check_credit_note(self, note: Mapping[str, Any], invoice: Mapping[str, Any], booking: CreditBooking) -> None:
        number = note.get("creditnote_number") or note.get("creditnote_id")
        if note.get("status") not in _LIVE_CREDIT_NOTE_STATUSES:
            raise RejectedError(
                f"credit note {number} for refund {booking.refund_id} is {note.get('status')} in Zoho Books",
                code="credit_note_status",
                platform=PLATFORM,
            )
        if note.get("customer_id") != invoice.get("customer_id") or note.get("currency_code") != booking.currency:
            raise RejectedError(
                f"credit note {number} is for another customer or currency than invoice "
                f"{invoice.get('invoice_number')}",
                code="credit_note_conflict",
                platform=PLATFORM,
            )
        total = from_zoho_amount(note.get("total"), booking.currency)
        if total != booking.amount:
            raise RejectedError(
                f"credit note {number} for refund {booking.refund_id} totals {total}, the refund is {booking.amount}",
                code="credit_note_conflict",
                platform=PLATFORM,
            )

    def _apply(self, note: dict[str, Any], invoice: Mapping[str, Any], booking: CreditBooking) -> dict[str, Any]:
        """Apply the credit to what the invoice still owes, once; returns the credit note as it is now."""
        currency = booking.currency
        creditnote_id = _text(note, "creditnote_id")
        invoice_id = _text(invoice, "invoice_id")
        if (
            self._applications(creditnote_id, invoice_id)
            or from_zoho_amount(note.get("total_refunded_amount", 0), currency).is_positive()
        ):
            return note
        balance = from_zoho_amount(note.get("balance"), currency)
        due = from_zoho_amount(invoice.get("balance", 0), currency)
        if not due.is_positive() or not balance.is_positive():
            return note
        body = {"invoices": [{"invoice_id": invoice_id, "amount_applied": to_zoho_amount(due.min(balance))}]}
        self._call("POST", f"/creditnotes/{creditnote_id}/invoices", body=body)
        return self._get_credit_note(creditnote_id)

    def _refund(self, note: dict[str, Any], booking: CreditBooking) -> dict[str, Any]:
        """Refund what remains on the credit note from the clearing account; returns the credit note as it is now.

        A split refund refunds each cash leg on its own from its provider's clearing account (its description names
        the leg, which is how a retry finds it) and leaves the store credit on the note as the customer's credit."""
        creditnote_id = _text(note, "creditnote_id")
        balance = from_zoho_amount(note.get("balance"), booking.currency)
        if not booking.legs:
            if not balance.is_positive() or self._refunds(creditnote_id):
                return note
            self._refund_leg(creditnote_id, booking, balance, booking.payment_provider, f"Refund {booking.reference}")
            return self._get_credit_note(creditnote_id)
        budget = balance - booking.store_credit
        done = {str(row.get("description") or "") for row in self._refunds(creditnote_id)}
        refunded = False
        for leg in booking.cash_legs():
            description = _leg_description(booking, leg)
            amount = leg.amount.min(budget)
            if description in done or leg.payment_provider is None or not amount.is_positive():
                continue
            self._refund_leg(creditnote_id, booking, amount, leg.payment_provider, description, by=False)
            budget = budget - amount
            refunded = True
        return self._get_credit_note(creditnote_id) if refunded else note

    def _refund_leg(
        self,
        creditnote_id: str,
        booking: CreditBooking,
        amount: Money,
        provider: PaymentProvider,
        description: str,
        *,
        by: bool = True,
    ) -> None:
        body = {
            "date": booking.booking_date.isoformat(),
            "refund_mode": self._refund_mode,
            "reference_number": booking.external_reference,
            "amount": to_zoho_amount(amount),
            "from_account_id": self.clearing_account(provider, booking.currency),
            "description": f"{description} paid by {provider.value}" if by else description,
        }
        self._call("POST", f"/creditnotes/{creditnote_id}/refunds", body=body)

    def _applications(self, creditnote_id: str, invoice_id: str) -> list[Mapping[str, Any]]:
        payload = self._call("GET", f"/creditnotes/{creditnote_id}/invoices")
        rows = payload.get("invoices_credited") if isinstance(payload, Mapping) else None
        return [row for row in rows or [] if isinstance(row, Mapping) and row.get("invoice_id") == invoice_id]

    def _refunds(self, creditnote_id: str) -> list[Mapping[str, Any]]:
        payload = self._call("GET", f"/creditnotes/{creditnote_id}/refunds")
        rows = payload.get("creditnote_refunds") if isinstance(payload, Mapping) else None
        return [row for row in rows or [] if isinstance(row, Mapping)]

    def _document(self, note: Mapping[str, Any], booking: CreditBooking) -> CreditDocument:
        currency = booking.currency
        creditnote_id = _text(note, "creditnote_id")
        applications = self._applications(creditnote_id, booking.invoice.invoice_id)
        refunded = from_zoho_amount(note.get("total_refunded_amount", 0), currency)
        refunds = self._refunds(creditnote_id) if refunded.is_positive() else []
        return CreditDocument(
            system=BooksSystem.ZOHO_BOOKS,
            kind=CreditDocumentKind.CREDIT_NOTE,
            state=CreditDocumentState.POSTED,
            document_id=creditnote_id,
            number=note.get("creditnote_number") or None,
            external_reference=str(note.get("reference_number") or "")[:256] or None,
            total=from_zoho_amount(note.get("total"), currency),
            allocated_to_invoice=_sum((row.get("credited_amount") for row in applications), currency),
            cash_refunded=_sum((row.get("amount") for row in refunds), currency),
            allocation_id=next(
                (str(row["creditnote_invoice_id"]) for row in applications if row.get("creditnote_invoice_id")), None
            ),
            payment_id=next(
                (str(row["creditnote_refund_id"]) for row in refunds if row.get("creditnote_refund_id")), None
            ),
        )

    # ------------------------------------------------------------ HTTP

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None) -> Any:
        """One Books call in the secret's organization; a 401 refreshes the token once and repeats the call."""
        data = dump_json(body) if body is not None else None

        def send(token: str) -> HttpResponse:
            headers = {"Authorization": f"Zoho-oauthtoken {token}", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            query = {"organization_id": self._tokens.organization_id, **(params or {})}
            return self._http.request(method, path, params=query, data=data, headers=headers)

        return _payload_or_raise(method, path, send_with_token(self._tokens, send))


def _payload_or_raise(method: str, path: str, response: HttpResponse) -> Any:
    where = f"{method} {path}"
    try:
        payload = load_json(response.body)
    except ValueError:
        payload = None
    code = payload.get("code") if isinstance(payload, Mapping) else None
    message = str(payload.get("message") or "") if isinstance(payload, Mapping) else ""
    status = response.status
    if response.ok:
        if not isinstance(payload, Mapping) or code not in (0, None):
            raise TransientError(f"{where}: Zoho Books answered {status} without a readable result", platform=PLATFORM)
        return payload
    if status == 429 or status >= 500:
        raise TransientError(
            f"{where}: Zoho Books answered {status} ({message or 'unavailable'})",
            code="zoho_rate_limited" if status == 429 else "zoho_unavailable",
            platform=PLATFORM,
            retry_after_seconds=retry_after_seconds(response),
        )
    if code == ZOHO_DOES_NOT_EXIST or status == 404:
        raise NotFound(f"{where}: {message or 'not found'} (Zoho Books)", platform=PLATFORM)
    if status == 401:
        raise RejectedError(
            f"{where}: Zoho Books refused a fresh access token ({message})", code="zoho_unauthorized", platform=PLATFORM
        )
    if status == 403:
        raise RejectedError(
            f"{where}: the Zoho Books user may not do this ({message}): check the client's scopes and the user's role",
            code="zoho_forbidden",
            platform=PLATFORM,
        )
    if "lock" in message.lower():
        raise RejectedError(
            f"the period is closed in Zoho Books (transaction locking): {message}",
            code="books_period_closed",
            platform=PLATFORM,
        )
    raise RejectedError(
        f"Zoho Books refused {where}: {message or f'HTTP {status}'} (code {code})",
        code="zoho_validation",
        platform=PLATFORM,
    )


# ---------------------------------------------------------------- payload helpers


def _single(payload: Any, name: str) -> dict[str, Any]:
    item = payload.get(name) if isinstance(payload, Mapping) else None
    if not isinstance(item, dict):
        raise TransientError(f"Zoho Books answered without {name}", platform=PLATFORM)
    return item


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise TransientError(f"Zoho Books answered without {name}", platform=PLATFORM)
    return value


def _shared_tax_id(lines: Any) -> str | None:
    tax_ids = {line.get("tax_id") for line in lines or [] if isinstance(line, Mapping)}
    if len(tax_ids) == 1:
        (only,) = tax_ids
        return only if isinstance(only, str) and only else None
    return None


def _sum(values: Iterable[Any], currency: str) -> Money:
    total = Money.zero(currency)
    for value in values:
        total = total + from_zoho_amount(value, currency)
    return total


# ---------------------------------------------------------------- factory


class ZohoBooksSettings(settings.EnvModel):
    """Zoho Books' own settings (its catalog entry's ``settings``, set on its function only)."""

    api_base: str = Field(default="https://www.zohoapis.com/books/v3", alias="ZOHO_BOOKS_API_BASE")
    accounts_base: str = Field(default="https://accounts.zoho.com", alias="ZOHO_BOOKS_ACCOUNTS_BASE")
    refund_account_id: str = Field(default="", alias="ZOHO_BOOKS_REFUND_ACCOUNT_ID")
    tax_ids: str = Field(default="", alias="ZOHO_BOOKS_TAX_IDS")
    payment_account_id: str = Field(default="", alias="ZOHO_BOOKS_PAYMENT_ACCOUNT_ID")
    clearing_accounts: str = Field(default="", alias="ZOHO_BOOKS_CLEARING_ACCOUNTS")
    refund_mode: str = Field(default="banktransfer", alias="ZOHO_BOOKS_REFUND_MODE")


def parse_mapping(text: str, setting: str, *, keyed_by_provider: bool) -> dict[str, str]:
    """``a=b,c=d`` as a mapping; with ``keyed_by_provider`` each key is ``<provider>:<CURRENCY>`` (or ``*``).

    Raises:
        ConfigurationError: a malformed entry.
    """
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, value = (part.strip() for part in item.partition("="))
        provider, colon, currency = key.partition(":")
        if not separator or not key or not value or (keyed_by_provider and not (colon and provider and currency)):
            form = "<provider>:<CURRENCY>=<account id>" if keyed_by_provider else "<invoice tax id>=<tax id>"
            raise ConfigurationError(f"{setting}: {item!r} is not {form}")
        mapping[key] = value
    return mapping


@cache
def connector() -> ZohoBooks:
    """The process-wide Zoho Books connector, from ``ZohoBooksSettings`` and its API secret
    (``<SecretsPrefix>zoho_books``: client_id, client_secret, refresh_token, organization_id), built on first use.

    Raises:
        ConfigurationError: no secret name, or malformed settings.
    """
    from refundflow.adapters.secrets import get_json_secret, platform_secret_name

    config = settings.load(ZohoBooksSettings)
    name = platform_secret_name(PLATFORM)

    def load_secret(force: bool) -> Mapping[str, Any]:
        return get_json_secret(name, force_fetch=force)

    return ZohoBooks(
        tokens=ZohoTokenSource(accounts_base=config.accounts_base, load_secret=load_secret),
        api_base=config.api_base,
        refund_account_id=config.refund_account_id,
        tax_ids=parse_mapping(config.tax_ids, "ZOHO_BOOKS_TAX_IDS", keyed_by_provider=False),
        payment_account_id=config.payment_account_id,
        clearing_accounts=parse_mapping(
            config.clearing_accounts, "ZOHO_BOOKS_CLEARING_ACCOUNTS", keyed_by_provider=True
        ),
        refund_mode=config.refund_mode,
    )


def _notes(booking: CreditBooking, invoice: Mapping[str, Any]) -> str:
    """The credit note's notes: the refund and its invoice, and a split refund's every leg."""
    notes = f"Refund {booking.reference} of invoice {invoice.get('invoice_number')}"
    return f"{notes}: {booking.legs_in_words(NOTES_LENGTH - len(notes) - 2)}" if booking.legs else notes


def _leg_description(booking: CreditBooking, leg: CreditLeg) -> str:
    """The description of a split refund's refund of one cash leg (how a retry finds it refunded)."""
    return f"Refund {booking.reference} {leg.words()}"[:DESCRIPTION_LENGTH]
