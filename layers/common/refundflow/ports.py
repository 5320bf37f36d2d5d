"""The ports the domain talks through. Adapters and platform connectors implement them; tests inject fakes.

Ports v2 (the platform kit): a connector declares what its platform can do (``PaymentCapabilities`` /
``BooksCapabilities``, built from the platform's catalog entry) and the domain acts on that record, never
on a platform's name. Inbound webhooks have a port of their own (``InboundPlatform``), separate from the
API connector: intake holds only verification secrets, a platform's function only its API credentials.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import IO, Annotated, Any, ClassVar, Literal, Protocol

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from refundflow import carddata
from refundflow.currencies import CurrencyProfile
from refundflow.errors import RefundflowError
from refundflow.events import ReconciliationEvent, RefundEvent
from refundflow.models import (
    AuditEntry,
    CreditDocument,
    CreditDocumentKind,
    CustomerContact,
    CustomerRefundSummary,
    InvoiceReference,
    PaymentProvider,
    PaymentReference,
    Refund,
    RefundableBalance,
    RefundLine,
    RefundReason,
    ReturnStatus,
    ReturnStep,
    StrictModel,
    TenderKind,
    VelocityDay,
)
from refundflow.money import Money
from refundflow.sources import VerifiedSource as VerifiedSource  # re-exported: the ports name it
from refundflow.status import RefundStatus

# ---------------------------------------------------------------- capabilities


class IdempotencySupport(StrictModel):
    """How a platform takes an idempotency key, and how long it remembers one."""

    carrier: Literal["header", "body", "query", "none"] = Field(
        description="Where the key travels: a request header, a body field or a query parameter; none: no key."
    )
    name: str | None = Field(
        default=None, description="Header, field or query parameter name; None when carrier is none."
    )
    key_lifetime_hours: float | None = Field(
        default=None, gt=0, description="How long the platform remembers a key (None: not documented / forever)."
    )

    @property
    def supported(self) -> bool:
        return self.carrier != "none"

    def key_alive(self, since: datetime, now: datetime) -> bool:
        """Whether a key first sent at ``since`` is still remembered at ``now``."""
        if not self.supported:
            return False
        if self.key_lifetime_hours is None:
            return True
        return (now - since).total_seconds() < self.key_lifetime_hours * 3600


class PaymentCapabilities(StrictModel):
    """What a payment platform can do; the domain acts on it (never on the platform's name)."""

    idempotency: IdempotencySupport
    find_by_reference: bool = Field(description="Our refund can be found at the platform by our reference.")
    outcome: Literal["pollable", "webhook_only"] = Field(
        description="pollable: get_refund reads the outcome; webhook_only: only a webhook tells it."
    )
    void_before_settlement: bool = Field(default=False, description="The platform voids an unsettled payment.")
    partial_refunds: bool = True
    payment_lookup: bool = Field(
        default=True, description="get_payment can read the payment's captured and refunded amounts."
    )
    currencies: CurrencyProfile = Field(default_factory=CurrencyProfile)
    locator: dict[str, list[str]] = Field(
        default_factory=dict, description="Provider-owned locator keys and their allowed values (empty: any)."
    )
    settlement_news: bool = Field(
        default=False, description="Its webhooks announce payouts, whose records its connector reads (PayoutReader)."
    )
    acquirer_reference: Literal["read", "webhook", "none"] = Field(
        default="none",
        description="read: get_refund gives the refund's ARN once the network assigned it (re-read until then); "
        "webhook: only the refund's webhook carries it; none: the platform exposes no ARN.",
    )


class BooksCapabilities(StrictModel):
    document_kinds: list[CreditDocumentKind] = Field(min_length=1)
    find_by_reference: bool
    idempotency: IdempotencySupport
    currencies: CurrencyProfile = Field(default_factory=CurrencyProfile)


# ---------------------------------------------------------------- payment providers


class ProviderPayment(StrictModel):
    """A captured payment as the provider sees it."""

    provider: PaymentProvider
    payment_id: str
    captured: Money = Field(description="Amount captured (what can be refunded at most).")
    refunded: Money = Field(description="Amount already refunded at the provider, by anyone.")
    status: str
    settled: bool = Field(default=True, description="False while a void (not a refund) would reverse it.")
    captured_at: datetime | None = Field(
        default=None,
        description="When the payment was captured, where the platform says (Stripe: the charge's created; PayPal: "
        "the capture's create_time): the order of a split-tender refund's last_captured_first rule.",
    )


class ProviderRefundStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"
    CANCELED = "canceled"


class ProviderRefundRequest(StrictModel):
    refund_id: str = Field(description="Our refund id: the merchant reference the platform echoes back.")
    payment: PaymentReference
    amount: Money
    reason: RefundReason
    idempotency_key: str
    metadata: dict[str, str] = Field(default_factory=dict)

    @property
    def payment_id(self) -> str:
        return self.payment.payment_id


def _platform_text(text: str) -> str:
    """Free text a platform sends (a refusal reason) as we may store and log it: card data masked, bounded."""
    return carddata.mask_text(text)[:256]


class ProviderRefund(StrictModel):
    provider: PaymentProvider
    provider_refund_id: str
    payment_id: str
    amount: Money
    status: ProviderRefundStatus
    refund_id: str | None = Field(default=None, description="Our refund id, when the provider echoes it.")
    failure_reason: Annotated[str, AfterValidator(_platform_text)] | None = Field(
        default=None, description="The platform's reason, card numbers masked, at most 256 characters."
    )
    method: Literal["refund", "void"] = Field(default="refund", description="void: reversed before settlement.")
    acquirer_reference: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{6,40}$")] | None = Field(
        default=None,
        description="The card network's reference for the refund (ARN), once the provider has it: what the "
        "customer's bank traces the money with. Stripe: destination_details.card.reference when available.",
    )


class ProviderEvent(StrictModel):
    """A verified inbound provider webhook, reduced to what the domain needs. News, not truth: the
    platform's function reads the truth before applying anything."""

    provider: PaymentProvider
    event_id: str
    event_type: str
    occurred_at: datetime
    refunds: list[ProviderRefund] = Field(
        default_factory=list, description="Refund objects the event carries (may be empty, e.g. charge.refunded)."
    )
    payment: PaymentReference | None = Field(default=None, description="The payment the event is about, when known.")
    named_refund_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list,
        max_length=100,
        description="Refunds the news names by the platform's id only, as pointers (a body nobody signed, such as "
        "Chargebee's; an Amazon Pay IPN, which names an object and carries none of its content). Our refunds among "
        "them (awaiting an outcome, or paid and so open to a late failure) are read from the platform before "
        "anything changes; nothing else of such news is believed.",
    )
    payments: list[ProviderPayment] = Field(
        default_factory=list,
        description="News of captured (and refunded) amounts, from platforms that cannot be read "
        "(payment_lookup false): recorded on the payment's refundable balance, the only source of it there.",
    )
    payout_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None,
        description="A payout the news is about (Stripe payout.*): a pointer only; the platform's function reads "
        "the payout and its settlement records (a PayoutReader) before anything is recorded.",
    )


class RefundProvider(ABC):
    """A payment platform that can refund a captured payment. ``capabilities`` says which of the optional
    operations exist (the others raise ``UnsupportedOperation``)."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def capabilities(self) -> PaymentCapabilities:
        """What the platform can do (its catalog entry's payment record)."""

    @abstractmethod
    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        """The payment's captured and refunded amounts (only when ``capabilities.payment_lookup``).

        Raises:
            NotFound: the provider does not know the payment.
            TransientError: the provider could not answer now.
            RejectedError: any other final refusal (e.g. a payment that was never captured).
            UnsupportedOperation: the platform cannot read a payment.
        """

    @abstractmethod
    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund ``request.amount`` of the payment, idempotently under ``request.idempotency_key`` where the
        platform takes one. A platform that voids before settlement answers with ``method="void"``.

        Raises:
            TransientError: 429, a concurrent use of the key, or a connection failure before the
                request was sent: retry with the same key.
            OutcomeUnknownError: the request may have been processed (read timeout, or a 5xx the
                provider may have answered after starting the work).
            AlreadyDoneError: the payment is already fully refunded.
            RejectedError: a final refusal (over-refund, invalid payment, key reused with other
                parameters), with the provider's reason.
        """

    @abstractmethod
    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """The refund's current state at the provider (only when ``capabilities.outcome`` is pollable).

        Raises:
            NotFound, TransientError, RejectedError; UnsupportedOperation for webhook-only platforms.
        """

    def get_refund_with_reference(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        """``get_refund`` with the refund's acquirer reference (ARN) where the platform has it: the acquirer
        reference schedule's read (``capabilities.acquirer_reference`` read). A platform whose ARN takes another call
        (Braintree: its XML gateway) makes it here, never on the workflow's polls.

        Raises:
            as get_refund.
        """
        return self.get_refund(provider_refund_id, payment)

    @abstractmethod
    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        """Our refund at the provider, found by our reference, or None if it was never created (only when
        ``capabilities.find_by_reference``).

        Raises:
            TransientError; UnsupportedOperation when the platform cannot find by reference.
        """


# ---------------------------------------------------------------- inbound webhooks


class PayoutStatus(StrEnum):
    """Where a payout is: ``settled`` once its records can be read (paid, and listed in full); ``failed`` (or
    canceled): the money never reached the bank; ``pending``: neither yet (news will come again)."""

    PENDING = "pending"
    SETTLED = "settled"
    FAILED = "failed"


class ProviderPayout(StrictModel):
    """A payout as its platform reports it (``amount`` > 0: what the bank receives)."""

    payout_id: str
    status: PayoutStatus
    amount: Money
    arrival_date: date | None = None
    failure: str | None = Field(default=None, description="The platform's failure code and message, when failed.")


class PayoutReader(ABC):
    """A payment platform whose payouts can be read with their settlement records (its catalog entry's
    ``settlement_news``)."""

    @abstractmethod
    def get_payout(self, payout_id: str) -> ProviderPayout:
        """Raises: NotFound: no such payout. TransientError: the platform could not answer now."""

    @abstractmethod
    def write_payout_report(self, payout: ProviderPayout, out: IO[str]) -> int:
        """Write the payout's settlement records to ``out`` as the platform's own settlement report (the CSV
        ``reconciliation.providers`` reads for it), one page of records at a time; returns the lines written.

        Raises:
            TransientError: the platform could not answer now (nothing of ``out`` may be used then).
        """


class InboundAnswer(StrictModel):
    """What the platform expects back for an accepted delivery (Adyen ``[accepted]``, Stripe a JSON ack)."""

    status: int = 200
    content_type: str = "application/json"
    body: str = '{"received": true}'


class TicketNews(StrictModel):
    """A verified help-desk delivery: a ticket (case, conversation) that may ask for, approve or withdraw a
    refund. News, not truth: the platform's own function reads the ticket through the platform's API and the
    merchant's mapping decides what it asks for."""

    platform: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,20}$")]
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    ticket_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:#/@+-]{1,128}$")]
    occurred_at: datetime | None = None
    payload: dict[str, Any] = Field(
        default_factory=dict, description="The delivery's JSON as the platform sent it (card-checked by intake)."
    )
    refused: dict[str, Any] | None = Field(
        default=None,
        description="Intake refused the delivery (card data in its body, which is then left out): the refusal "
        "(type, code, message, errors naming fields), so the help desk's function tells the ticket why.",
    )


class ReturnNews(StrictModel):
    """A verified delivery about a return kept in a books platform (SAP's customer return): which return changed.
    News, not truth: the platform's books function reads the return through its API and records the step it has
    reached for the refund the return names."""

    platform: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,20}$")]
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    return_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    event_type: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    occurred_at: AwareDatetime | None = None


class PlatformReturn(StrictModel):
    """A return as its platform keeps it, reduced to what the lifecycle needs: the refund it names (None: it names
    none of ours) and the step it has reached (None: none yet that the lifecycle knows, e.g. not received)."""

    return_id: str
    refund_id: str | None
    status: ReturnStatus | None
    occurred_at: AwareDatetime = Field(description="When the platform last changed it (the step's occurred_at).")


class ReturnsReader(ABC):
    """Reads a return from the platform that keeps it (a books platform with returns news)."""

    @abstractmethod
    def read_return(self, return_id: str) -> PlatformReturn:
        """Raises:
        NotFound: no such return.
        TransientError: the platform could not answer.
        """


class InboundDelivery(StrictModel):
    """One verified delivery: every event it carries (a batch may carry several) and the answer."""

    events: list[ProviderEvent] = Field(default_factory=list)
    tickets: list[TicketNews] = Field(default_factory=list, description="Help-desk news (ticket platforms).")
    returns: list[ReturnNews] = Field(default_factory=list, description="Returns news (books platforms' returns).")
    answer: InboundAnswer = Field(default_factory=InboundAnswer)


class InboundPlatform(ABC):
    """Verifies a platform's webhook deliveries. Holds no API credentials and calls no platform API for
    money: verification secrets come in per call (``<SecretsPrefix>webhooks/<name>``)."""

    name: ClassVar[str]

    @abstractmethod
    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """Verify a delivery on its raw body and reduce it to events. A delivery that verifies for some
        items only is refused whole.

        Raises:
            AuthenticationFailed: missing, malformed, stale or wrong signature.
            InvalidRequest: a verified body that is not a well-formed delivery.
        """

    def verify_request(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        secret: Mapping[str, Any],
        query: Mapping[str, str] | None = None,
    ) -> InboundDelivery:
        """What intake calls: :meth:`verify`, unless the platform also reads the request's query parameters
        (Salesforce Outbound Messages carry their token in the endpoint URL, the one place they can). ``query``:
        the request's query parameters, secret-bearing: never logged."""
        return self.verify(headers, raw_body, secret)


class NewsForwarder(ABC):
    """Hands a verified event to the platform's own function (``operation: apply_news``, ``apply_ticket_news``
    for help-desk news, ``apply_return_news`` for a books platform's returns news), which reads the truth from
    the platform with its API credentials and applies it."""

    @abstractmethod
    def forward(self, platform: str, event: ProviderEvent | TicketNews | ReturnNews) -> dict[str, Any]:
        """Deliver ``event`` to ``platform``'s function, wait until it was applied, and return its answer.

        Raises:
            TransientError: not applied (answer 5xx so the platform delivers again).
        """


# ---------------------------------------------------------------- help desks (tickets)


class TicketUpdate(StrictModel):
    """What a ticket is told about its refund: one refund event, in words and as a status label. The platform
    writes it as it allows (an internal note, tags, a status or custom field, properties)."""

    marker: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="Stable per refund event (``refundflow:<event_id>``): written into the note, so a write that "
        "may have happened is found before it is written again."
    )
    refund_id: str | None = Field(default=None, description="None: the ticket's request was refused (no refund).")
    event: str = Field(description="The event's detail-type (RefundIssued...), or RefundRequestRefused.")
    status: RefundStatus | None = None
    label: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")] | None = Field(
        default=None,
        description="The refund's state in one word for tags and fields: requested, approved, issued, failed... "
        "None: a note only (a refused request), the ticket's refund state is left as it is.",
    )
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="The internal note: amount, status, provider refund id, the failure reason in words."
    )
    amount: Money | None = None
    provider_refund_id: str | None = None
    kind: Literal["internal_note", "public_reply"] = Field(
        default="internal_note",
        description="internal_note: for the agents (with the label). public_reply: the customer's one message about "
        "the refund, as the desk's public reply (no label, no tags); written only to desks whose catalog entry's "
        "ticket.writes lists public_reply, so a desk that has none never sees one.",
    )


class TicketPlatform(ABC):
    """A help desk (or CRM) seen from its own function, with its API credentials: reads the ticket a delivery
    names (the truth the merchant's mapping reads) and writes refund news back to it."""

    name: ClassVar[str]

    @abstractmethod
    def read_ticket(self, ticket_id: str) -> dict[str, Any]:
        """The ticket as the platform's API returns it (JSON object).

        Raises:
            NotFound: no such ticket.
            TransientError: the platform could not answer now (rate limit: ``retry_after_seconds`` set).
            RejectedError: any other final refusal (credentials, permissions).
        """

    @abstractmethod
    def has_update(self, ticket_id: str, marker: str) -> bool:
        """Whether an update carrying ``marker`` is already on the ticket (a write whose answer was lost).

        Raises:
            NotFound, TransientError, RejectedError.
        """

    @abstractmethod
    def write_back(self, ticket_id: str, update: TicketUpdate) -> None:
        """Write ``update`` to the ticket (the note carries ``update.marker``).

        Raises:
            NotFound: the ticket is gone (the update is dropped, and ops hear of it).
            TransientError: retry later (a rate limit sets ``retry_after_seconds`` from the platform's ``Retry-After``).
            OutcomeUnknownError: the write may have happened (``has_update`` tells before any rewrite).
            RejectedError: a final refusal (the update is parked in the queue's DLQ).
        """


# ---------------------------------------------------------------- books


class CreditLeg(StrictModel):
    """One leg of a split-tender refund as the books record it: a cash refund from its provider's clearing account,
    or store credit (refundflow's own ledger) left as credit on the document, never paid out."""

    index: int = Field(ge=0, le=63, description="The leg's number (``SplitLeg.index``).")
    kind: TenderKind
    payment_provider: PaymentProvider | None = Field(
        description="Whose clearing account paid the leg's cash refund; None: store credit (left as credit)."
    )
    amount: Money
    provider_refund_id: str | None = Field(default=None, description="The provider's refund id (None: store credit).")

    @property
    def is_store_credit(self) -> bool:
        return self.payment_provider is None

    def words(self) -> str:
        """The leg in one short phrase for a memo, narration or reference field: ``leg 1 stripe 60.00 EUR re_1``,
        ``leg 2 store credit 40.00 EUR``."""
        what = "store credit" if self.payment_provider is None else self.payment_provider.value
        text = f"leg {self.index + 1} {what} {self.amount}"
        return f"{text} {self.provider_refund_id}" if self.provider_refund_id else text


class CreditBooking(StrictModel):
    """What the books must record for one refund. ``legs``: a split-tender refund's legs (empty for a refund of one
    payment, whose cash refund is all ``payment_provider``'s); they add up to ``amount``."""

    refund_id: str
    invoice: InvoiceReference
    amount: Money
    lines: list[RefundLine] = Field(default_factory=list)
    customer: CustomerContact
    booking_date: date
    reference: str
    payment_provider: PaymentProvider = Field(
        description="Whose clearing account paid the cash refund (with the amount's currency)."
    )
    idempotency_key: str = Field(description="Passed in by the domain; the same on every retry of this booking.")
    external_reference: str = Field(description="Our reference on the document, found again by find_credit_document.")
    legs: list[CreditLeg] = Field(
        default_factory=list,
        max_length=64,
        description="A split-tender refund's legs: each cash leg paid from its own provider's clearing account where "
        "the books can hold several cash refunds on one document, every leg named in the document's reference or memo.",
    )

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def store_credit(self) -> Money:
        """What stays as credit on the document (the store-credit legs): never paid out in cash."""
        total = Money.zero(self.currency)
        for leg in self.legs:
            if leg.is_store_credit:
                total = total + leg.amount
        return total

    def cash_legs(self) -> list[CreditLeg]:
        """What is paid out in cash, one leg per provider refund: the split refund's cash legs, or for a refund of
        one payment one leg of the whole amount from ``payment_provider``."""
        if not self.legs:
            return [
                CreditLeg(index=0, kind=TenderKind.OTHER, payment_provider=self.payment_provider, amount=self.amount)
            ]
        return [leg for leg in self.legs if not leg.is_store_credit]

    def legs_in_words(self, limit: int | None = None) -> str:
        """Every leg, for a field that names them (empty for a refund of one payment); cut at ``limit`` characters
        with an ellipsis when the field is shorter."""
        text = "; ".join(leg.words() for leg in self.legs)
        if limit is not None and len(text) > limit:
            return text[: max(limit - 3, 0)] + "..."
        return text


class BooksConnector(ABC):
    """An accounting system that records a refund as a credit document linked to the invoice."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def capabilities(self) -> BooksCapabilities:
        """What the books can do (its catalog entry's books record)."""

    @abstractmethod
    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        """Create the credit document linked to the invoice and the cash refund from the clearing account of
        ``booking.payment_provider`` in ``booking.currency``, under ``booking.idempotency_key``.

        Raises:
            TransientError: the books could not be reached or were rate-limited: retry later.
            RejectedError: the books refuse the document for good (unknown invoice, closed period,
                currency mismatch, no clearing account for that provider and currency).
            NotFound: the invoice does not exist.
        """

    @abstractmethod
    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The credit document already recorded for this booking, found by ``booking.external_reference``
        (only when ``capabilities.find_by_reference``).

        Raises:
            TransientError; UnsupportedOperation when the books cannot find by reference.
        """


# ---------------------------------------------------------------- the refund store


class StoreWrite(Protocol):
    """An opaque item written in the same transaction as a refund's change (a balance move, a daily total,
    a single-use marker). Only the store that made it can write it."""


@dataclass(frozen=True)
class StatusMove:
    """One audit entry of several written together (``RefundStore.transition_through``): a status change to
    ``to``, or, with ``note`` (the entry's type), an entry that keeps the status (``to`` is the status it is in)."""

    to: RefundStatus
    actor: str
    details: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    # What the status's event carries when the audit details are too much for the bus (None: the details).
    event_details: dict[str, Any] | None = None


class StoredChange(Protocol):
    @property
    def refund(self) -> Refund: ...

    @property
    def entry(self) -> AuditEntry: ...


class CreatedRefund(Protocol):
    @property
    def refund(self) -> Refund: ...

    @property
    def created(self) -> bool: ...

    @property
    def duplicate_delivery(self) -> bool: ...

    @property
    def written(self) -> tuple[Refund, ...]:
        """The refund as after each entry the creation wrote (as created, then after each ``then`` move); empty when
        nothing was written."""
        ...


@dataclass(frozen=True)
class ProviderRefundEntry:
    """A refund found by the id its provider gave it, as stored now: enough to match a settlement line."""

    refund_id: str
    provider_refund_id: str
    status: RefundStatus
    amount: Money | None


@dataclass(frozen=True)
class ReconciliationMarker:
    """The first line that settled, or was classified for, something: a re-run finds it and changes nothing."""

    key: str
    file: str
    line_no: int | None
    match_class: str
    refund_id: str | None
    line_key: str | None = None


@dataclass(frozen=True)
class AnnouncedPayout:
    """A payout a provider's settlement announced: what the bank statement must credit."""

    reference: str
    amount: int
    currency: str
    booked_on: date | None
    file: str


@dataclass(frozen=True)
class KeptBankLine:
    """A bank statement line no announced payout explained when its statement was reconciled (the statement
    landed before the settlement announcing the payout): kept so that the settlement, when it lands,
    resolves it. ``record`` is the converted line (``reconciliation.records.bank_to_json``)."""

    key: str
    file: str
    record: dict[str, Any]


@dataclass(frozen=True)
class PayoutMember:
    """A settlement line that named one of our refunds and a payout: the payout -> refunds side of a trace.
    Written in the same transaction that records the line on the refund (settled, matched, or a mismatch)."""

    payout_id: str
    refund_id: str
    line_key: str
    file: str
    line_no: int | None
    match_class: str
    amount: int
    currency: str


@dataclass(frozen=True)
class BankCredit:
    """The bank statement line that credited a payout (``match_class``: ``matched`` or ``payout_amount_differs``):
    kept by payout (the payout's "credited" marker) and by the line (its file and line number)."""

    payout_id: str
    file: str
    line_no: int
    line_key: str
    match_class: str
    amount: int
    currency: str
    direction: str
    booked_on: date | None


@dataclass(frozen=True)
class StatusQueue:
    """The refunds currently in one status: how many, and when the oldest of them was requested."""

    status: RefundStatus
    count: int
    oldest_created_at: datetime | None


@dataclass(frozen=True)
class AwaitedReference:
    """A completed refund whose acquirer reference (ARN) has not come yet."""

    refund_id: str
    provider: str
    completed_at: datetime


@dataclass(frozen=True)
class RequestedRefund:
    """A refund request the request intake stored (refundflow.request_intake) before its workflow created the
    refund: the RECEIVED refund it becomes, the delivery that brought it and the source whose secret verified it."""

    refund: Refund
    delivery_id: str
    verified_source: str


class RefundStore(ABC):
    """Everything the domain uses of the refunds table (adapter: ``adapters.dynamodb.RefundRepository``).

    Raises GuardUnavailable when the store cannot be reached."""

    @abstractmethod
    def audit_keys(self) -> Any:
        """The keys audit entries are signed and verified with."""

    @abstractmethod
    def create(
        self,
        refund: Refund,
        *,
        actor: str,
        delivery: tuple[str, str] | None,
        details: dict[str, Any] | None = None,
        entry_type: str = "RefundRequested",
        extra: Iterable[StoreWrite] = (),
        request_stored: bool = False,
        then: Sequence[StatusMove] = (),
    ) -> CreatedRefund:
        """Store a new refund, its first audit entry, the delivery's first-seen marker and ``extra`` (once);
        ``request_stored``: intake stored its request already (:meth:`find_refund_or_request`); ``then``: status
        changes made in the same write, an audit entry each (as :meth:`transition_through`).

        Raises:
            ProviderRefundClaimed: the refund names a provider refund id another refund holds (nothing written).
        """

    @abstractmethod
    def get(self, refund_id: str) -> Refund:
        """Raises: NotFound."""

    @abstractmethod
    def find(self, refund_id: str) -> Refund | None: ...

    @abstractmethod
    def find_refund_or_request(self, refund_id: str) -> Refund | RequestedRefund | None:
        """The refund, else the request the request intake stored for it, as the RECEIVED refund it becomes with
        what intake verified (one read: no moment between the two)."""

    @abstractmethod
    def transition(
        self,
        refund: Refund,
        to: RefundStatus,
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        changes: dict[str, Any] | None = None,
        extra: Iterable[StoreWrite] = (),
    ) -> StoredChange:
        """Move ``refund`` to ``to`` atomically with its audit entry and ``extra`` writes.

        Raises:
            IllegalTransition, ConcurrentModification, GuardUnavailable, TransientError.
        """

    @abstractmethod
    def transition_through(
        self, refund: Refund, moves: Sequence[StatusMove], *, extra: Iterable[StoreWrite] = ()
    ) -> Sequence[StoredChange]:
        """Several status changes (or notes) in one write: the state as after the last move and one audit entry per
        move, chained as if written one by one (a transaction costs per item, so two moves cost one state write less).

        Raises:
            IllegalTransition, ConcurrentModification, GuardUnavailable, TransientError.
        """

    @abstractmethod
    def record(
        self,
        refund: Refund,
        entry_type: str,
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        changes: dict[str, Any] | None = None,
        extra: Iterable[StoreWrite] = (),
    ) -> StoredChange:
        """Append an audit entry (and apply ``changes``) without changing the status."""

    @abstractmethod
    def timeline(self, refund_id: str) -> list[AuditEntry]: ...

    @abstractmethod
    def audit_trail(self, refund_id: str) -> tuple[list[AuditEntry], int | None]: ...

    @abstractmethod
    def list_by_status(self, status: RefundStatus, limit: int = 50) -> list[Refund]: ...

    def awaiting_acquirer_reference(self, since: datetime) -> list[AwaitedReference]:
        """The refunds COMPLETED since ``since`` with no ARN and no reason why none will come (the re-read's list)."""
        raise NotImplementedError

    @abstractmethod
    def status_queue(self, status: RefundStatus) -> StatusQueue:
        """How many refunds are in ``status`` now and the creation time of the oldest (the by-status index)."""

    @abstractmethod
    def customer_history(self, email: str, since: datetime) -> list[CustomerRefundSummary]: ...

    @abstractmethod
    def velocity_days(self, email: str, first: date, last: date) -> list[VelocityDay]:
        """The customer's velocity counters of the UTC days ``first`` to ``last`` (days without refunds absent),
        kept in the transaction of every write that changes what a refund counts for."""

    @abstractmethod
    def customer_refunds_on(self, email: str, day: date) -> list[CustomerRefundSummary]:
        """The customer's refunds created on the UTC day ``day``, one by one (a velocity window's edge day)."""

    @abstractmethod
    def get_balance(self, provider: PaymentProvider, payment_id: str) -> RefundableBalance | None: ...

    @abstractmethod
    def open_balance(self, payment: ProviderPayment) -> RefundableBalance: ...

    @abstractmethod
    def record_payment_news(self, payment: ProviderPayment) -> RefundableBalance:
        """Record what a platform that cannot be read told us of a payment: open its balance from the news, or
        raise the captured amount to it (captured never goes down, so never below refunded + reserved), and
        move what the news counts as refunded outside refundflow out of ``remaining``."""

    @abstractmethod
    def limit_to_provider(self, payment: ProviderPayment) -> RefundableBalance:
        """Open or update the payment's refundable balance from the provider's figures."""

    @abstractmethod
    def reserve(self, refund: Refund, amount: Money) -> StoreWrite: ...

    @abstractmethod
    def release(self, refund: Refund, amount: Money) -> StoreWrite: ...

    @abstractmethod
    def consume(self, refund: Refund, amount: Money) -> StoreWrite: ...

    @abstractmethod
    def unconsume(self, refund: Refund, amount: Money) -> StoreWrite: ...

    @abstractmethod
    def refunds_for_payment(self, provider: PaymentProvider, payment_id: str) -> list[Refund]: ...

    @abstractmethod
    def open_refunds_for_payment(self, provider: PaymentProvider, payment_id: str) -> list[Refund]:
        """Our refunds of the payment whose provider outcome may still be open (submitted, pending, needing a
        person), read consistently, without reading the ones long done in full."""

    @abstractmethod
    def provider_refund_owner(self, provider_refund_id: str) -> str | None:
        """The refund holding ``provider_refund_id`` (a consistent read), or None."""

    @abstractmethod
    def count_external_refund(self, refund: Refund, amount: Money, *, held: bool) -> StoreWrite:
        """The write counting a refund made outside refundflow on its payment's balance, exactly once (it goes
        into the transaction that records the refund): ``held`` while the provider holds it pending."""

    @abstractmethod
    def daily_total(self, currency: str, day: date) -> Money: ...

    @abstractmethod
    def add_to_daily_total(self, amount: Money, day: date) -> StoreWrite: ...

    @abstractmethod
    def spend_once(
        self, platform: str, event_id: str, refund_id: str, error: Callable[[], RefundflowError]
    ) -> StoreWrite:
        """A first-seen marker written with what it guards (a single-use token)."""

    @abstractmethod
    def mark_delivery(self, platform: str, event_id: str, refund_id: str) -> bool:
        """Record an inbound delivery id; False if it was seen before."""

    @abstractmethod
    def delivery_refund_id(self, platform: str, event_id: str) -> str | None: ...

    @abstractmethod
    def return_steps(self, refund_id: str) -> list[ReturnStep]:
        """The return steps stored for ``refund_id`` (also before the refund exists), in no particular order."""

    @abstractmethod
    def return_step_put(self, refund_id: str, step: ReturnStep) -> StoreWrite:
        """A write of ``step`` only if no step with its status and occurred_at is stored for ``refund_id``
        (``ReturnStepExists`` otherwise): added to the transaction of its audit entry, and marked as recorded."""

    @abstractmethod
    def put_return_step(self, refund_id: str, step: ReturnStep) -> bool:
        """Store ``step`` if absent (a refund that does not exist yet). Returns False if it was stored before."""

    @abstractmethod
    def return_step_noted(self, refund_id: str, step: ReturnStep) -> StoreWrite:
        """A mark on a step stored before its refund existed that its audit entry is written: added to that entry's
        transaction, it fails (``ReturnStepExists``) when the entry was written already, so that the refund's
        creation and the step's own delivery, racing, record it once."""

    @abstractmethod
    def put_wait_token(self, refund_id: str, kind: str, token: str) -> None: ...

    @abstractmethod
    def take_wait_token(self, refund_id: str, kind: str) -> str | None:
        """Remove and return the stored token: only one caller ever gets it."""

    @abstractmethod
    def peek_wait_token(self, refund_id: str, kind: str) -> str | None: ...

    # reconciliation

    @abstractmethod
    def refunds_by_provider_refund_id(self, provider_refund_ids: Iterable[str]) -> dict[str, ProviderRefundEntry]:
        """Our refunds by the id their provider gave them (an eventually consistent index)."""

    @abstractmethod
    def refunds_in_status(self, status: RefundStatus, *, updated_before: datetime) -> Iterator[Refund]:
        """Every refund still in ``status`` that entered it before ``updated_before`` (a status the store lists
        cheaply: the by-status index's ``INDEXED_STATUSES``; writes that keep the status do not move a refund)."""

    @abstractmethod
    def reconciliation_marker(self, marker: ReconciliationMarker, error: Callable[[], RefundflowError]) -> StoreWrite:
        """A first-seen marker written with what it records; ``error`` if it exists."""

    @abstractmethod
    def put_reconciliation_marker(self, marker: ReconciliationMarker) -> bool:
        """Write the marker on its own; False if one was there already."""

    @abstractmethod
    def get_reconciliation_marker(self, key: str) -> ReconciliationMarker | None: ...

    @abstractmethod
    def seen_in_settlement(self, refund_id: str) -> StoreWrite:
        """A write saying a settlement line named the refund (whatever its class), idempotent."""

    @abstractmethod
    def was_seen_in_settlement(self, refund_id: str) -> bool: ...

    @abstractmethod
    def announce_payout(self, payout: AnnouncedPayout) -> None:
        """Keep a payout a settlement announced for the bank statements to come (idempotent)."""

    @abstractmethod
    def announced_payouts(self) -> list[AnnouncedPayout]: ...

    @abstractmethod
    def keep_bank_line(self, line: KeptBankLine) -> None:
        """Keep a bank line no payout explained yet, for the settlements to come (idempotent)."""

    @abstractmethod
    def kept_bank_lines(self) -> list[KeptBankLine]: ...

    @abstractmethod
    def forget_bank_line(self, key: str) -> None:
        """A kept bank line a settlement has now explained (idempotent)."""

    @abstractmethod
    def payout_member(self, member: PayoutMember) -> StoreWrite:
        """A write saying the payout carried the refund's line, to go with the line's own record (idempotent)."""

    @abstractmethod
    def payout_members(
        self, payout_id: str, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[PayoutMember], str | None]:
        """Up to ``limit`` lines of our refunds a payout carried, in the order of their line keys, from the one
        after ``after``; and the line key to continue after (None: that was the last)."""

    @abstractmethod
    def announced_payout(self, reference: str) -> AnnouncedPayout | None: ...

    @abstractmethod
    def record_bank_credit(self, credit: BankCredit) -> bool:
        """Keep the bank line that credited a payout (the payout's "credited" marker, first one wins, and the
        line's own look-up); False if the payout was credited before."""

    @abstractmethod
    def bank_credit_for_payout(self, payout_id: str) -> BankCredit | None: ...

    @abstractmethod
    def bank_credit_at(self, file: str, line_no: int) -> BankCredit | None:
        """The payout credit of a bank statement's line (its file and line number), if it credited one."""


# ---------------------------------------------------------------- refund requests


# ---------------------------------------------------------------- AWS-side ports


class EventPublisher(ABC):
    @abstractmethod
    def publish(self, events: Sequence[RefundEvent | ReconciliationEvent]) -> None:
        """Put the events on the bus (at-least-once; consumers deduplicate on ``event_id``).

        Raises:
            TransientError: the bus did not accept every event.
        """


class WorkflowStarter(ABC):
    @abstractmethod
    def start(self, refund_id: str, payload: Mapping[str, Any]) -> str:
        """Start the refund workflow named after the refund; an existing execution is not an error.

        Raises:
            TransientError: the start could not be confirmed (safe to call again).
        """


class TaskCallbacks(ABC):
    @abstractmethod
    def succeed(self, task_token: str, output: Mapping[str, Any]) -> bool:
        """Resume a waiting workflow. False when the token is no longer valid (already used, timed out).

        Raises:
            TransientError.
        """

    @abstractmethod
    def fail(self, task_token: str, error: str, cause: str) -> bool:
        """Fail a waiting task. False when the token is no longer valid.

        Raises:
            TransientError.
        """


class Mailer(ABC):
    @abstractmethod
    def send(self, *, to: str, template: str, data: Mapping[str, Any], idempotency_key: str) -> str:
        """Send a templated e-mail; returns the message id.

        Raises:
            TransientError: the mail service did not accept the message.
        """


class MerchantWebhook(ABC):
    """The merchant's own endpoint for refund messages (Standard Webhooks, signed with the merchant's secret): the
    merchant's system tells its customer, in its own words and channel."""

    def takes(self, source_system: str) -> bool:
        """Whether the merchant's system tells the customers of refunds asked for by ``source_system`` (all, unless
        the endpoint is configured for some source systems only)."""
        return True

    @abstractmethod
    def send(self, *, message_id: str, body: Mapping[str, Any]) -> None:
        """POST ``body`` signed under ``message_id`` (the same id on every attempt: the merchant drops repeats).

        Raises:
            TransientError: not taken (any answer but 2xx, or none): the queue retries with the same id, then
                parks the message in its DLQ (a rate limit sets ``retry_after_seconds`` from ``Retry-After``).
        """


# ---------------------------------------------------------------- store credit


StoreCreditCustomerKey = Annotated[str, StringConstraints(min_length=4, max_length=300)]
StoreCreditEntryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:#@+\-]{1,200}$")]


class StoreCreditEntry(StrictModel):
    """One credit to a customer's store-credit balance, kept by refundflow (a split refund's store-credit leg, or
    the amount a failed leg was moved to). ``customer_key`` is ``refundflow.domain.store_credit.customer_key``:
    ``id:<customer_id>`` when the request named the customer, else ``email:<lowercased address>``."""

    entry_id: StoreCreditEntryId = Field(description="Idempotency: one entry per id, ever (a refund's leg: rf_…#leg1).")
    customer_key: StoreCreditCustomerKey
    amount: Money
    refund_id: str
    note: Annotated[str, StringConstraints(max_length=500)] = ""
    created_at: AwareDatetime

    def same_credit(self, other: StoreCreditEntry) -> bool:
        """True when ``other`` credits the same customer, amount and refund with the same note (its time aside)."""
        return self.model_dump(exclude={"created_at"}) == other.model_dump(exclude={"created_at"})


class StoreCreditLedger(ABC):
    """Store credit as a tender of its own: a balance per customer and currency that only refundflow's entries
    change (redeeming it at checkout is the shop's business). Every credit is written exactly once per entry id."""

    @abstractmethod
    def credit(
        self, customer_key: str, amount: Money, entry_id: str, refund_id: str, note: str = ""
    ) -> StoreCreditEntry:
        """Add ``amount`` (positive) to the customer's balance in its currency and record the entry, together.
        Called again with the same ``entry_id`` and the same content it returns the first entry and changes nothing.

        Raises:
            InvalidRequest: ``amount`` is not positive, or a key or id is malformed.
            IdempotencyConflict: ``entry_id`` was used before with another customer, amount, refund or note.
            TransientError / GuardUnavailable: the store was busy or unreachable (safe to call again).
        """

    @abstractmethod
    def balance(self, customer_key: str, currency: str) -> Money:
        """The customer's store-credit balance in ``currency`` (zero when nothing was ever credited).

        Raises:
            TransientError / GuardUnavailable.
        """

    @abstractmethod
    def entries(self, customer_key: str) -> list[StoreCreditEntry]:
        """The customer's entries, oldest first (ties by entry id).

        Raises:
            TransientError / GuardUnavailable.
        """
