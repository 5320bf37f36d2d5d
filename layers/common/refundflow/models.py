"""The models refundflow owns: strict, frozen, no unknown fields (a client cannot mass-assign)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from refundflow.money import Money
from refundflow.status import RefundStatus


class StrictModel(BaseModel):
    # defer_build (here and on every model of the layer): a model's validator is built when it is first used, not
    # when its module is imported; each function loads dozens of models and uses a few (README, Cost per refund).
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid", use_enum_values=False)


def _valid_email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    if not local or "." not in domain or any(ch.isspace() for ch in value) or domain.startswith("."):
        raise ValueError("not a valid e-mail address")
    return value


Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@+\-/#]+$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_valid_email)]


class PaymentProvider(StrEnum):
    STRIPE = "stripe"
    PAYPAL = "paypal"
    SQUARE = "square"
    AMAZON_PAY = "amazon_pay"
    ADYEN = "adyen"
    BRAINTREE = "braintree"
    KLARNA = "klarna"
    MOLLIE = "mollie"
    CHARGEBEE = "chargebee"
    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"


class BooksSystem(StrEnum):
    XERO = "xero"
    QUICKBOOKS = "quickbooks"
    NETSUITE = "netsuite"
    SAP = "sap"
    DYNAMICS = "dynamics"
    DYNAMICS_FINANCE = "dynamics_finance"
    ZOHO_BOOKS = "zoho_books"


class RefundReason(StrEnum):
    PRODUCT_RETURN = "product_return"
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    NOT_RECEIVED = "not_received"
    DELIVERY_FAILED = "delivery_failed"
    CHANGED_MIND = "changed_mind"
    DUPLICATE_CHARGE = "duplicate_charge"
    FRAUDULENT = "fraudulent"
    GOODWILL = "goodwill"
    OTHER = "other"


class RefundOrigin(StrEnum):
    """Who made the refund: refundflow (asked for through a trigger), or someone outside it (a provider's
    dashboard, another tool), recorded from the provider's news."""

    REFUNDFLOW = "refundflow"
    EXTERNAL = "external"


class ReturnStatus(StrEnum):
    """Where the goods of a return are: requested < label_created < in_transit < received < inspected < closed.
    ``delivery_failed`` (the parcel never arrived) ranks like ``in_transit``; ``not_required`` is a request's
    only (no goods come back)."""

    NOT_REQUIRED = "not_required"
    REQUESTED = "requested"
    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    INSPECTED = "inspected"
    CLOSED = "closed"
    DELIVERY_FAILED = "delivery_failed"

    @property
    def rank(self) -> int:
        """The step's place in the lifecycle: the return's status is its highest-ranked step's."""
        return _RETURN_RANK[self]


_RETURN_RANK = {
    ReturnStatus.NOT_REQUIRED: 0,
    ReturnStatus.REQUESTED: 1,
    ReturnStatus.LABEL_CREATED: 2,
    ReturnStatus.IN_TRANSIT: 3,
    ReturnStatus.DELIVERY_FAILED: 3,
    ReturnStatus.RECEIVED: 4,
    ReturnStatus.INSPECTED: 5,
    ReturnStatus.CLOSED: 6,
}


# An allocation rule's name (refundflow.domain.allocation.AllocationRule; the policy says which are allowed).
AllocationRuleName = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
LocatorKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class PaymentReference(StrictModel):
    provider: PaymentProvider
    payment_id: Identifier = Field(
        description="The provider's payment object id (Stripe: pi_… or ch_…; PayPal: the capture id): the object "
        "the refundable balance is kept on."
    )
    locator: dict[LocatorKey, Identifier] = Field(
        default_factory=dict,
        max_length=8,
        description="Provider-owned parts that say what payment_id is (PayPal {kind: sale} for a v1 sale id; "
        "Shopify {transaction_id: ...}); keys and values are checked against the platform's catalog entry.",
    )


class TenderKind(StrEnum):
    """What a tender of a split-tender order is (``refundflow.domain.allocation``: store credit and gift cards are
    refunded last under ``store_credit_last``)."""

    CARD = "card"
    WALLET = "wallet"
    BANK = "bank"
    BUY_NOW_PAY_LATER = "buy_now_pay_later"
    GIFT_CARD = "gift_card"
    STORE_CREDIT = "store_credit"
    OTHER = "other"


def _store_credit_or_payment(kind: TenderKind, payment: PaymentReference | None, paid: Money | None) -> None:
    """A store-credit tender names no payment (refundflow's ledger, kept by customer) and says what the order paid
    with store credit (``paid``, positive: the most it can take back); every other tender names its payment and no
    ``paid`` (its platform says what it captured)."""
    if kind is TenderKind.STORE_CREDIT:
        if payment is not None:
            raise ValueError("a store_credit tender names no payment: it is refundflow's ledger, kept by customer")
        if paid is None or paid.minor_units <= 0:
            raise ValueError("a store_credit tender needs paid: what the order paid with store credit (positive)")
        return
    if payment is None:
        raise ValueError(f"a {kind.value} tender needs its payment")
    if paid is not None:
        raise ValueError(f"paid is for a store_credit tender; a {kind.value} tender's platform says what it captured")


class Tender(StrictModel):
    """One payment of an order paid with several (a card and a gift card, two cards, a deposit and a final
    payment). A ``store_credit`` tender has no ``payment`` (refundflow's own store-credit ledger, kept by the
    customer: ``refundflow.domain.store_credit.customer_key``) and carries ``paid``, what the order paid with store
    credit as the request's verified source said: the most it can take back."""

    payment: PaymentReference | None = None
    kind: TenderKind = TenderKind.CARD
    paid: Money | None = None

    @model_validator(mode="after")
    def _payment_unless_store_credit(self) -> Tender:
        _store_credit_or_payment(self.kind, self.payment, self.paid)
        return self


class TenderRequest(StrictModel):
    """One tender as ``POST /refund-requests`` names it. A payment platform's tender names its payment; a
    ``store_credit`` tender names none: it is refundflow's own store-credit ledger, kept by the customer (there is
    no payment platform to name, ``PaymentProvider`` lists platforms only)."""

    payment: PaymentReference | None = Field(
        default=None, description="The platform's payment (required, except for a store_credit tender)."
    )
    kind: TenderKind = TenderKind.CARD
    paid: Money | None = Field(
        default=None,
        description="A store_credit tender only (required there): what the order paid with store credit, the most "
        "it can take back. The shop redeemed it at checkout, so the shop says it; refundflow keeps no record of "
        "redemptions.",
    )

    @model_validator(mode="after")
    def _payment_unless_store_credit(self) -> TenderRequest:
        _store_credit_or_payment(self.kind, self.payment, self.paid)
        return self


class LegStatus(StrEnum):
    """Where one leg of a split-tender refund is."""

    PLANNED = "planned"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SplitLeg(StrictModel):
    """One tender's share of a split-tender refund: refunded as a refund of its own (``refund_id``, its own
    provider refund and idempotency key), or credited to store credit (``kind`` store_credit)."""

    index: int = Field(ge=0, le=63, description="The leg's number; a remedy adds a leg, never renumbers one.")
    tender_index: int = Field(
        ge=0,
        le=7,
        description="Which of the refund's tenders it goes back to (a store-credit remedy's leg on an order without "
        "a store-credit tender: the failed leg's tender, whose amount it credits).",
    )
    payment: PaymentReference | None = Field(default=None, description="None for a store-credit leg only.")
    kind: TenderKind
    amount: Money
    status: LegStatus = LegStatus.PLANNED
    refund_id: str | None = Field(default=None, description="The leg's own refund (None for store credit).")
    provider_refund_id: str | None = None
    acquirer_reference: str | None = None
    failure: str | None = None
    replaces: int | None = Field(default=None, description="The failed leg a remedy moved this amount from.")
    remedies: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=4,
        description="A failed leg's proposed remedies in words, for the person who decides (retry, move the amount "
        "to another tender or to store credit); the ticket's note lists them.",
    )

    @model_validator(mode="after")
    def _payment_unless_store_credit(self) -> SplitLeg:
        if (self.payment is None) != (self.kind is TenderKind.STORE_CREDIT):
            raise ValueError("a store_credit leg names no payment (it is credited to the ledger); every other leg does")
        return self


class InvoiceReference(StrictModel):
    system: BooksSystem
    invoice_id: Identifier = Field(description="The books system's invoice id (Xero: InvoiceID).")


class OrderItem(StrictModel):
    sku: Identifier
    description: ShortText | None = None
    category: Identifier | None = None
    quantity: int = Field(ge=1, le=100_000)
    unit_price: Money | None = None
    final_sale: bool = False


class OrderInfo(StrictModel):
    order_id: Identifier
    platform: Identifier | None = None
    placed_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    items: list[OrderItem] = Field(default_factory=list, max_length=500)


class ReturnInfo(StrictModel):
    status: ReturnStatus
    received_at: AwareDatetime | None = None
    tracking_reference: Identifier | None = None


class ReturnLineOutcome(StrEnum):
    """What the inspection found for one returned line."""

    RESELLABLE = "resellable"
    DAMAGED = "damaged"
    NOT_RETURNED = "not_returned"
    WRONG_ITEM = "wrong_item"


class InspectedLine(StrictModel):
    sku: Identifier
    quantity: int = Field(ge=1, le=100_000)
    outcome: ReturnLineOutcome


class ReturnStep(StrictModel):
    """One step of a return's lifecycle, as the returns system (the verified source) reported it.

    Steps are stored one item each, keyed by status and ``occurred_at``: a redelivered step is a duplicate and a
    late one is kept in the history without winding the return's status back."""

    status: ReturnStatus
    occurred_at: AwareDatetime = Field(description="When the returns system saw it happen (with a UTC offset).")
    recorded_at: datetime = Field(description="When refundflow recorded it.")
    source: Identifier = Field(description="The source system whose secret verified the delivery.")
    tracking_reference: Identifier | None = None
    lines: list[InspectedLine] | None = Field(
        default=None, max_length=500, description="Per line outcomes: only with status inspected."
    )

    @model_validator(mode="after")
    def _lines_only_inspected(self) -> ReturnStep:
        if self.lines is not None and self.status is not ReturnStatus.INSPECTED:
            raise ValueError("lines are only reported with status inspected")
        return self

    @property
    def key(self) -> tuple[ReturnStatus, datetime]:
        """What makes two deliveries the same step: its status and when it happened (in UTC)."""
        return self.status, self.occurred_at.astimezone(UTC)

    def same_report(self, other: ReturnStep) -> bool:
        """Whether ``other`` reports exactly this step (recorded_at aside): a redelivery, not a conflict."""
        fields = {"recorded_at", "occurred_at"}
        return self.key == other.key and self.model_dump(exclude=fields) == other.model_dump(exclude=fields)


class ReturnLifecycle(StrictModel):
    """A return's status (its highest-ranked step's) and its steps, oldest first."""

    status: ReturnStatus
    steps: list[ReturnStep]

    @classmethod
    def of(cls, steps: Iterable[ReturnStep]) -> ReturnLifecycle | None:
        """The lifecycle of ``steps`` (any order), or None without steps. Among steps of the highest rank the
        latest one counts (delivery_failed after in_transit)."""
        ordered = sorted(steps, key=lambda step: (step.occurred_at.astimezone(UTC), step.recorded_at))
        if not ordered:
            return None
        top = max(ordered, key=lambda step: (step.status.rank, step.occurred_at.astimezone(UTC)))
        return cls(status=top.status, steps=ordered)

    def reached(self, status: ReturnStatus) -> bool:
        """Whether a step at or beyond ``status`` exists (a late in_transit does not undo a receipt)."""
        return any(step.status.rank >= status.rank for step in self.steps)

    @property
    def inspected_lines(self) -> list[InspectedLine]:
        """The lines of the latest inspection (an inspection reported again later replaces the earlier one)."""
        inspections = [step for step in self.steps if step.status is ReturnStatus.INSPECTED and step.lines]
        return list(inspections[-1].lines or []) if inspections else []


def request_return_step(refund: Refund) -> ReturnStep | None:
    """A request's own ``return`` as the first step of the lifecycle (source: the request's source)."""
    info = refund.return_info
    if info is None:
        return None
    occurred = info.received_at if info.received_at is not None else refund.created_at
    return ReturnStep(
        status=info.status,
        occurred_at=occurred if occurred.tzinfo is not None else occurred.replace(tzinfo=UTC),
        recorded_at=refund.created_at,
        source=refund.source.system,
        tracking_reference=info.tracking_reference,
    )


def return_lifecycle(refund: Refund | None, steps: Iterable[ReturnStep]) -> ReturnLifecycle | None:
    """The lifecycle of a refund's return: the request's own ``return`` as the first step, then the stored steps
    (a stored step reporting the same status at the same moment stands for the request's)."""
    stored = list(steps)
    first = request_return_step(refund) if refund is not None else None
    if first is not None and all(step.key != first.key for step in stored):
        stored.append(first)
    return ReturnLifecycle.of(stored)


class CustomerContact(StrictModel):
    email: Email
    name: ShortText | None = None
    customer_id: Identifier | None = None
    locale: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] | None = None


class SourceReference(StrictModel):
    system: Identifier = Field(description="The system that asked for the refund, e.g. returns-portal.")
    reference: Identifier = Field(description="Its id for this refund request (RMA, ticket, case).")
    ticket_id: Identifier | None = None


class RefundLine(StrictModel):
    """A line being refunded; lines become the credit note's lines."""

    description: ShortText
    sku: Identifier | None = None
    category: Identifier | None = None
    quantity: int = Field(default=1, ge=1, le=100_000)
    amount: Money = Field(description="Gross amount of the line (quantity included), minor units.")


class SourceApprover(StrictModel):
    """A person who already approved the refund where it was asked for (a help desk's team lead).

    A claim from an authenticated source, not a decision: the policy decides whether that person's
    role is enough for this refund, and the audit trail records who it was."""

    id: Identifier
    role: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    name: ShortText | None = None


class Adjustment(StrictModel):
    """A deduction the policy applied (restocking fee, shipping deduction, cap)."""

    kind: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
    description: ShortText
    amount: Money


class PolicyDecisionRecord(StrictModel):
    outcome: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
    policy_version: ShortText
    rule_id: ShortText
    reason_code: ShortText | None = None
    required_role: ShortText | None = None
    adjustments: list[Adjustment] = Field(default_factory=list)
    explanation: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ApprovalRecord(StrictModel):
    decision: Annotated[str, StringConstraints(pattern=r"^(approve|reject)$")]
    approver: ShortText
    role: ShortText
    channel: ShortText
    decided_at: datetime
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ReservationState(StrEnum):
    HELD = "HELD"
    RELEASED = "RELEASED"
    CONSUMED = "CONSUMED"


class Reservation(StrictModel):
    amount: Money
    state: ReservationState
    day: date = Field(description="UTC day the amount was reserved on (the per-day total it counts in).")


class CreditDocumentKind(StrEnum):
    CREDIT_NOTE = "credit_note"
    CREDIT_MEMO = "credit_memo"
    REFUND_RECEIPT = "refund_receipt"
    CUSTOMER_REFUND = "customer_refund"


class CreditDocumentState(StrEnum):
    POSTED = "posted"
    PENDING = "pending"


class CreditDocument(StrictModel):
    """What the books hold for a refund: the credit document (credit note, credit memo, refund receipt or
    customer refund) and how it was settled (allocated to the invoice, paid out from the clearing account)."""

    system: BooksSystem
    kind: CreditDocumentKind = CreditDocumentKind.CREDIT_NOTE
    state: CreditDocumentState = CreditDocumentState.POSTED
    document_id: ShortText
    number: ShortText | None = None
    total: Money
    allocated_to_invoice: Money
    cash_refunded: Money
    allocation_id: ShortText | None = None
    payment_id: ShortText | None = None
    external_reference: ShortText | None = Field(
        default=None, description="Our reference on the document (the refund id), as the books hold it."
    )

    @model_validator(mode="before")
    @classmethod
    def _stored_before_v2(cls, data: Any) -> Any:
        """Refunds stored before the general credit document named its id ``credit_note_id``."""
        if isinstance(data, dict) and "credit_note_id" in data:
            data = dict(data)
            data["document_id"] = data.pop("credit_note_id")
            data.setdefault("number", data.pop("credit_note_number", None))
            data.pop("credit_note_number", None)
        return data


class FailureRecord(StrictModel):
    code: ShortText
    message: Annotated[str, StringConstraints(max_length=2000)]
    platform: ShortText | None = None


class Refund(StrictModel):
    """The refund's current state (the ``STATE`` item)."""

    refund_id: str
    status: RefundStatus
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime
    payment: PaymentReference
    requested_amount: Money | None = None
    amount: Money | None = None
    reason: RefundReason
    customer: CustomerContact
    source: SourceReference
    source_platform: ShortText
    order: OrderInfo | None = None
    invoice: InvoiceReference | None = None
    return_info: ReturnInfo | None = None
    lines: list[RefundLine] = Field(default_factory=list)
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None
    approved_by: SourceApprover | None = None
    request_fingerprint: str
    correlation_id: str
    origin: RefundOrigin = RefundOrigin.REFUNDFLOW
    policy: PolicyDecisionRecord | None = None
    approval: ApprovalRecord | None = None
    reservation: Reservation | None = None
    provider_refund_id: str | None = None
    provider_status: str | None = None
    acquirer_reference: str | None = Field(
        default=None, description="The card network's reference (ARN) the customer's bank traces the refund with."
    )
    acquirer_reference_unavailable: str | None = Field(
        default=None,
        description="Why no ARN will be recorded (the platform exposes none, or none came before the cut-off): "
        "set once, and the scheduled re-read stops reading the refund.",
    )
    credit_document: CreditDocument | None = None
    attention_reason: str | None = None
    books_attempts: int = Field(default=0, ge=0)
    lookup_attempts: int = Field(default=0, ge=0, description="Payment look-ups that found the provider unreachable.")
    failure: FailureRecord | None = None
    withdrawn: FailureRecord | None = Field(
        default=None, description="The approval was withdrawn where it was given (a help desk): no money may move."
    )
    audit_seq: int = 0
    audit_head: str = ""
    status_seq: int = Field(default=0, description="Audit sequence number of the latest status change.")
    status_since: datetime | None = Field(
        default=None,
        description="When the refund entered its status (set by the store with each status change). Stored only as"
        " the sort key of the by-status index, so None when read in a status that index leaves out.",
    )
    return_seq: int = Field(
        default=0, description="Audit sequence number of the latest return step recorded (ReturnUpdated)."
    )
    tenders: list[Tender] = Field(
        default_factory=list,
        max_length=8,
        description="A split-tender refund's tenders (empty for a refund of one payment, whose payment is "
        "``payment``); ``payment`` is then the first tender's.",
    )
    allocation_rule: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")] | None = Field(
        default=None, description="The split-tender allocation rule the legs were divided by."
    )
    legs: list[SplitLeg] = Field(default_factory=list, max_length=64, description="A split-tender refund's legs.")
    parent_refund_id: str | None = Field(
        default=None, description="A leg's split-tender refund: the leg is approved by its parent's decision."
    )
    return_seen_seq: int = Field(
        default=0, description="The return_seq the policy last decided on (a refund waiting for its return)."
    )

    @property
    def currency(self) -> str | None:
        if self.amount is not None:
            return self.amount.currency
        return self.requested_amount.currency if self.requested_amount else None

    def evolve(self, **changes: Any) -> Refund:
        """A copy with ``changes`` applied and validated (the model is frozen)."""
        return Refund.model_validate({**self.model_dump(), **changes})


class CustomerRefundSummary(StrictModel):
    """The part of an earlier refund that velocity needs (what the repository's customer index returns)."""

    refund_id: str
    status: RefundStatus
    created_at: datetime
    amount: Money

    @classmethod
    def of(cls, refund: Refund) -> CustomerRefundSummary:
        amount = refund.amount or refund.requested_amount
        if amount is None:
            raise ValueError(f"earlier refund {refund.refund_id} has no amount")
        return cls(refund_id=refund.refund_id, status=refund.status, created_at=refund.created_at, amount=amount)


# Earlier refunds that never paid anything do not count towards a customer's velocity.
VELOCITY_NOT_COUNTED = frozenset({RefundStatus.REJECTED, RefundStatus.FAILED})


class VelocityContribution(StrictModel):
    """What one refund adds to its customer's velocity counters: one refund and its amount, on the UTC day it
    was created. A refund contributes while it is neither rejected nor failed and has an amount (the one looked
    up or decided, else the one requested); a request for "everything left" not looked up yet adds nothing."""

    day: date
    amount: Money

    @classmethod
    def of(cls, refund: Refund) -> VelocityContribution | None:
        amount = refund.amount or refund.requested_amount
        if amount is None or refund.status in VELOCITY_NOT_COUNTED or refund.parent_refund_id is not None:
            # A split-tender refund's leg is part of its parent, which counts once.
            return None
        return cls(day=refund.created_at.astimezone(UTC).date(), amount=amount)


class VelocityDay(StrictModel):
    """One day's counter of a customer's refunds (created that UTC day and counted): how many, and their
    amounts per currency (other currencies count as refunds but are not added up)."""

    day: date
    count: int = Field(ge=0)
    amounts: dict[str, int] = Field(default_factory=dict)


class CustomerVelocity(StrictModel):
    """A customer's velocity counters from ``first_day`` to ``last_day`` (days without refunds are absent), and
    the refunds created on ``edge_days`` one by one: the days on which a window starts, where only the refunds
    after the window's first moment count (read from the by-customer index, only for days whose counter is not
    empty)."""

    first_day: date
    last_day: date
    days: list[VelocityDay]
    edge_days: list[date]
    edge_refunds: list[CustomerRefundSummary]


class AuditEntry(StrictModel):
    """One entry of the append-only, keyed audit chain (refundflow.audit). ``hash`` is the entry's MAC under
    ``scheme`` ``hmac-sha256-v2`` with key ``key_id``; entries stored before the keyed scheme have no
    scheme field and read as ``sha256-v1`` (plain SHA-256 chain)."""

    refund_id: str
    seq: int = Field(ge=1)
    at: datetime
    type: ShortText
    actor: ShortText
    from_status: RefundStatus | None = None
    to_status: RefundStatus | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str
    scheme: ShortText = "sha256-v1"
    key_id: ShortText | None = None


class RefundableBalance(StrictModel):
    """The ``PAYMENT#…/REFUNDABLE`` item: how much of a captured payment can still be refunded."""

    provider: PaymentProvider
    payment_id: str
    captured: Money
    refunded: Money
    reserved: Money
    remaining: Money

    @model_validator(mode="after")
    def _consistent(self) -> RefundableBalance:
        if self.captured.minor_units < 0 or self.remaining.minor_units < 0:
            raise ValueError("captured and remaining must not be negative")
        return self


RefundId = Annotated[str, StringConstraints(pattern=r"^rf_[0-9a-f]{32}$")]


class StepInput(StrictModel):
    """What a workflow step receives: the refund it works on."""

    refund_id: RefundId


class ProviderStepInput(StepInput):
    """A payment-provider step: which of the provider function's operations to run."""

    operation: Literal["look_up_payment", "refund", "poll_refund", "read_acquirer_reference"]


class ReadPaymentInput(StrictModel):
    """``read_payment``: a split-tender refund's look-up asks the tender's platform function for the payment (what
    was captured and refunded) and its refundable balance, opened or updated as the single-payment look-up does."""

    operation: Literal["read_payment"]
    payment: PaymentReference


class TenderPayment(StrictModel):
    """What ``read_payment`` answers: the payment's refundable balance at this moment."""

    payment: PaymentReference
    captured: Money
    refunded: Money
    remaining: Money
    captured_at: datetime | None = None


class StateError(StrictModel):
    """The error a Step Functions Catch hands over (``ResultPath: $.error``)."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid", populate_by_name=True)

    error: str = Field(alias="Error")
    cause: str = Field(default="", alias="Cause")


class FailureStepInput(StepInput):
    error: StateError


class WaitStepInput(StepInput):
    wait_for: Literal["approval", "refund_outcome", "return"]
    task_token: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class StepResult(StrictModel):
    """What a step hands back to the state machine to route on."""

    refund_id: str
    status: RefundStatus
    outcome: Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,40}$")]
    provider: PaymentProvider | Literal["split"] = Field(
        description="The function the workflow's platform steps invoke (refund-<provider>): ``split`` for a "
        "split-tender refund, whose legs each go to their own payment's platform."
    )
    books: BooksSystem | None = Field(
        default=None, description="The invoice's books system (the books function to call), None without invoice."
    )
    parent_refund_id: str | None = Field(
        default=None,
        exclude=True,
        description="A split-tender leg's parent, for the function that ran the step (never in the step's output).",
    )


class RefundRequestBody(BaseModel):
    """``POST /refund-requests``: ask for a refund. Amounts are minor units; nothing here sets what is refundable."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid", populate_by_name=True)

    # tenders before payment: payment's validator sees whether tenders were given.
    tenders: list[TenderRequest] | None = Field(
        default=None,
        min_length=2,
        max_length=8,
        description="An order paid with several payments (split tenders): refunded across them, one leg each.",
    )
    payment: PaymentReference | None = Field(
        default=None,
        validate_default=True,
        description="The payment to refund (or ``tenders``, for an order paid with several).",
    )
    allocation: AllocationRuleName | None = Field(
        default=None, description="With tenders: the allocation rule that divides the amount (the policy's default)."
    )
    amount: Money | None = Field(
        default=None, description="Refund this much (minor units). Omit it to refund everything still refundable."
    )
    reason: RefundReason
    customer: CustomerContact
    source: SourceReference
    order: OrderInfo | None = None
    invoice: InvoiceReference | None = Field(
        default=None, description="The invoice to credit in the books; without it no credit note is booked."
    )
    return_info: ReturnInfo | None = Field(default=None, alias="return")
    lines: list[RefundLine] = Field(default_factory=list, max_length=200)
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None
    approved_by: SourceApprover | None = Field(
        default=None,
        description="Who already approved this where it was asked for; the policy decides if that role is enough.",
    )

    @field_validator("payment")
    @classmethod
    def _payment_or_tenders(cls, payment: PaymentReference | None, info: ValidationInfo) -> PaymentReference | None:
        """``payment`` is required unless ``tenders`` are given, and not both (a missing payment is reported at
        ``payment``, as before tenders existed; tenders that were refused are reported at ``tenders`` alone)."""
        if "tenders" not in info.data:
            return payment  # the tenders were refused: their own error says why
        tenders = info.data["tenders"]
        if payment is None and tenders is None:
            raise PydanticCustomError("missing", "Field required (or tenders, for an order paid with several)")
        if payment is not None and tenders is not None:
            raise ValueError("name exactly one of payment (one payment) or tenders (an order paid with several)")
        return payment

    @model_validator(mode="after")
    def _consistent_amounts(self) -> RefundRequestBody:
        _check_amounts(self.amount, self.lines)
        if self.tenders is not None:
            payments = [
                (tender.payment.provider, tender.payment.payment_id) if tender.payment else ("store_credit", "")
                for tender in self.tenders
            ]
            if len(set(payments)) != len(payments):
                raise ValueError("tenders must name distinct payments (and store credit at most once)")
            if self.tenders[0].payment is None:
                raise ValueError("the first tender must be a payment (store credit may come after it)")
            asked = self.requested_amount
            paid = [tender.paid for tender in self.tenders if tender.paid is not None]
            if asked is not None and any(money.currency != asked.currency for money in paid):
                raise ValueError(
                    f"a store_credit tender's paid must be in the refund's currency ({asked.currency}): the order "
                    "was paid in one currency"
                )
        elif self.allocation is not None:
            raise ValueError("allocation is for tenders only")
        return self

    @property
    def first_payment(self) -> PaymentReference:
        """The payment (or the first tender's): the refund's ``payment``, which its indexes key on."""
        if self.payment is not None:
            return self.payment
        first = self.tenders[0].payment if self.tenders else None
        if first is None:
            raise ValueError("a split-tender request's first tender is a payment")  # the validator says so
        return first

    @property
    def requested_amount(self) -> Money | None:
        if self.amount is not None:
            return self.amount
        if self.lines:
            return Money.of(sum(line.amount.minor_units for line in self.lines), self.lines[0].amount.currency)
        return None


def _check_amounts(amount: Money | None, lines: list[RefundLine]) -> None:
    """A requested amount and its lines: positive, one currency, and the lines add up to the amount."""
    if amount is not None and amount.minor_units <= 0:
        raise ValueError("amount.minor_units must be positive")
    currencies = {line.amount.currency for line in lines}
    if amount is not None:
        currencies.add(amount.currency)
    if len(currencies) > 1:
        raise ValueError(f"lines and amount must share one currency, got {sorted(currencies)}")
    if any(line.amount.minor_units <= 0 for line in lines):
        raise ValueError("every line amount must be positive")
    if lines and amount is not None:
        total = sum(line.amount.minor_units for line in lines)
        if total != amount.minor_units:
            raise ValueError(f"lines add up to {total} minor units but amount is {amount.minor_units}")


class ReturnUpdateSource(StrictModel):
    system: Identifier = Field(description="The returns system; must be the source whose secret signed it.")
    reference: Identifier = Field(
        description="The reference its refund request had (source.reference on POST /refund-requests).",
    )


class ReturnUpdateBody(StrictModel):
    """``POST /triggers/return-updates``: a returns system reports a step of a return's lifecycle for the refund
    request it sent (``source.reference``). Steps may arrive in any order and more than once."""

    source: ReturnUpdateSource
    status: ReturnStatus
    occurred_at: AwareDatetime = Field(description="When it happened, with a UTC offset.")
    tracking_reference: Identifier | None = None
    lines: list[InspectedLine] | None = Field(
        default=None, max_length=500, description="Only with status inspected: what the inspection found per line."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ReturnUpdateBody:
        if self.status is ReturnStatus.NOT_REQUIRED:
            raise ValueError("not_required is a request's return status, not a step of a return")
        if self.lines is not None and self.status is not ReturnStatus.INSPECTED:
            raise ValueError("lines are only reported with status inspected")
        return self


class DeliveryFailureStatus(StrEnum):
    """What went wrong with a delivery, as a carrier or logistics platform reports it."""

    FAILED = "failed"  # delivery attempts exhausted
    RETURNED_TO_SENDER = "returned_to_sender"
    REFUSED = "refused"  # the recipient refused the parcel
    LOST = "lost"
    DAMAGED = "damaged"  # damaged in transit, not delivered


# Short enough that "<carrier>:<tracking number>" is a source reference (an Identifier, 128 characters).
CarrierName = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")]
TrackingNumber = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-/#]+$")]


class FailedShipment(StrictModel):
    carrier: CarrierName = Field(description="The carrier, e.g. dhl, ups, postnl.")
    tracking_number: TrackingNumber = Field(description="The shipment's tracking number: one refund per shipment.")
    status: DeliveryFailureStatus
    occurred_at: AwareDatetime = Field(description="When the carrier recorded the failure.")


class DeliveryFailureBody(StrictModel):
    """``POST /triggers/delivery-failures``: a carrier or logistics platform reports a failed delivery; refundflow
    asks for a refund with reason ``delivery_failed`` (the policy decides, and may auto-approve it). Amounts are
    minor units; omitted: everything still refundable on the payment."""

    shipment: FailedShipment
    payment: PaymentReference
    customer: CustomerContact
    order: OrderInfo | None = None
    invoice: InvoiceReference | None = None
    amount: Money | None = Field(default=None, description="Refund this much (minor units); omitted: all of it.")
    lines: list[RefundLine] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _consistent_amounts(self) -> DeliveryFailureBody:
        _check_amounts(self.amount, self.lines)
        return self
