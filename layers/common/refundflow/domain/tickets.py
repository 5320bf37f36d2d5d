"""Help desks: a ticket asks for, approves or withdraws a refund, and every refund event goes back to it.

Two halves, both in the help desk's own function (its API credentials; intake only verified the delivery):

- trigger (:func:`apply_ticket_news`): the ticket is read from the platform (the delivery is news, not
  truth), the merchant's :class:`TicketMapping` (JMESPath over ``{"delivery": ..., "ticket": ...}``) says what
  it asks for, and the request goes through the same intake as ``POST /refund-requests``: the same card check,
  the same refund id rules, the same source trust (the help desk is the source; the policy's ``sources:`` says
  which approver roles it may assert, none by default). An approval on a ticket whose refund already waits
  for one decides it; a withdrawn approval stops the refund if no money has moved.
- write-back (:func:`write_back`): each refund event of a refund that came from the ticket, once, in order
  (the queue is FIFO), as the platform allows. A write whose answer was lost is looked for on the ticket
  (by its marker) before it is written again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal

import jmespath
import jmespath.exceptions
from pydantic import Field, ValidationError, model_validator

from refundflow import carddata
from refundflow.domain import notifications
from refundflow.domain.intake import (
    RETURN_UPDATED,
    Accepted,
    WorkflowTiming,
    accept_refund_request,
    request_fingerprint,
    source_refund_id,
)
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.returns import record_platform_return_step
from refundflow.domain.waiting import WaitFor, resume_waiting
from refundflow.errors import IdempotencyConflict, InvalidRequest, NotFound, RefundflowError
from refundflow.events import RefundEvent
from refundflow.models import (
    ApprovalRecord,
    FailureRecord,
    LegStatus,
    Refund,
    RefundOrigin,
    RefundRequestBody,
    StrictModel,
)
from refundflow.money import Money, MoneyError
from refundflow.policy import Policy
from refundflow.ports import (
    RefundStore,
    TaskCallbacks,
    TicketNews,
    TicketPlatform,
    TicketUpdate,
    VerifiedSource,
    WorkflowStarter,
)
from refundflow.status import RefundStatus

# The request fields a mapping may fill (everything else of the request is the kit's: source, approver).
MAPPABLE_FIELDS = frozenset(
    {
        "payment.provider",
        "payment.payment_id",
        "reason",
        "customer.email",
        "customer.name",
        "customer.customer_id",
        "customer.locale",
        "order.order_id",
        "order.platform",
        "invoice.system",
        "invoice.invoice_id",
        "note",
        # A shop's "ticket" is its return: where the goods are (a step of the return's lifecycle) and when.
        "return.status",
        "return.received_at",
    }
)
APPROVAL_WITHDRAWN = "approval_withdrawn"
# Before money moves: a withdrawn approval stops the refund in these states.
STOPPABLE = frozenset(
    {
        RefundStatus.RECEIVED,
        RefundStatus.VALIDATED,
        RefundStatus.PENDING_APPROVAL,
        RefundStatus.AWAITING_RETURN,
        RefundStatus.APPROVED,
    }
)
# The statuses whose workflow is parked on a task token, and what it waits for (resumed when the ticket stops it).
_PARKED = {RefundStatus.PENDING_APPROVAL: WaitFor.APPROVAL, RefundStatus.AWAITING_RETURN: WaitFor.RETURN}
WRITTEN = "ticket-written-{platform}"
ATTEMPTED = "ticket-attempted-{platform}"


class Intent(StrEnum):
    APPROVED = "approved"
    REQUESTED = "requested"
    CANCELLED = "cancelled"


def _compiled(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as error:
        raise ValueError(f"not a JMESPath expression: {expression!r}: {error}") from error


class AmountMapping(StrictModel):
    value: str = Field(description="JMESPath to the amount, in the currency's major units ('49.90').")
    currency: str = Field(description="JMESPath to the ISO 4217 code.")


class ApproverMapping(StrictModel):
    id: str = Field(description="JMESPath to the approver's id on the platform.")
    group: str = Field(description="JMESPath to the approver's group (team, queue, role) the roles map names.")
    name: str | None = None


class TicketMapping(StrictModel):
    """A merchant's reading of their help desk's tickets (its package's ``mapping.yaml`` by default)."""

    when: dict[Intent, str] = Field(
        description="JMESPath conditions, tried in the order cancelled, approved, requested; none true: ignored."
    )
    reference: str | None = Field(
        default=None, description="JMESPath to the refund's reference on the ticket (omitted: the ticket id)."
    )
    fields: dict[str, str] = Field(description="Request field (dotted) -> JMESPath.")
    amount: AmountMapping | None = Field(default=None, description="Omitted, or null on a ticket: a full refund.")
    approver: ApproverMapping | None = None
    roles: dict[str, str] = Field(
        default_factory=dict, description="Approver group -> refundflow role (the policy's roles). Unmapped: none."
    )

    @model_validator(mode="after")
    def _valid(self) -> TicketMapping:
        unknown = sorted(set(self.fields) - MAPPABLE_FIELDS)
        if unknown:
            raise ValueError(f"fields: not request fields a mapping may fill: {unknown}")
        expressions = [*self.when.values(), *self.fields.values(), self.reference]
        if self.amount is not None:
            expressions += [self.amount.value, self.amount.currency]
        if self.approver is not None:
            expressions += [self.approver.id, self.approver.group, self.approver.name]
        for expression in expressions:
            if expression is not None:
                _compiled(expression)
        return self

    def intent(self, document: Mapping[str, Any]) -> Intent | None:
        for intent in (Intent.CANCELLED, Intent.APPROVED, Intent.REQUESTED):
            expression = self.when.get(intent)
            if expression and _truthy(jmespath.search(expression, document)):
                return intent
        return None


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", [], {}, 0)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    return str(value).strip() or None


def load_mapping(document: Any, *, source: str) -> TicketMapping:
    """Raises: ConfigurationError-like InvalidRequest naming the problem (a broken mapping is never used)."""
    try:
        return TicketMapping.model_validate(document)
    except ValidationError as error:
        raise InvalidRequest(f"ticket mapping {source}: {error}", code="invalid_ticket_mapping") from error


# ---------------------------------------------------------------------------- trigger


@dataclass(frozen=True)
class TicketOutcome:
    """What a ticket delivery did: ``accepted`` (a refund request, new or redelivered), ``approved``,
    ``cancelled``, ``too_late`` (money already moving), ``ignored`` (the mapping saw no refund intent)."""

    outcome: Literal["accepted", "approved", "cancelled", "too_late", "ignored"]
    refund_id: str | None = None
    status: RefundStatus | None = None
    duplicate: bool = False

    def as_answer(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "refund_id": self.refund_id,
            "status": self.status.value if self.status else None,
            "duplicate": self.duplicate,
        }


def ticket_request(news: TicketNews, ticket: Mapping[str, Any], mapping: TicketMapping) -> tuple[Intent | None, Any]:
    """The intent and the refund request a ticket makes under ``mapping`` (request None when it asks nothing).

    Raises:
        CardDataRefused: a mapped value holds card data (named by field, never echoed).
        InvalidRequest: ``ticket_not_a_refund_request``, the mapped request is not a valid refund request
            (field-level ``errors``), or its amount is not exact in its currency.
    """
    document = {"delivery": news.payload, "ticket": dict(ticket)}
    intent = mapping.intent(document)
    if intent is None:
        return None, None
    reference = _text(jmespath.search(mapping.reference, document)) if mapping.reference else None
    request: dict[str, Any] = {
        "source": {"system": news.platform, "reference": reference or news.ticket_id, "ticket_id": news.ticket_id}
    }
    for path, expression in sorted(mapping.fields.items()):
        value = _text(jmespath.search(expression, document))
        if value is not None:
            _put(request, path, value)
    if mapping.amount is not None:
        request["amount"] = _amount(mapping.amount, document)
        if request["amount"] is None:
            del request["amount"]
    if intent is Intent.APPROVED and mapping.approver is not None:
        approver = _approver(mapping, document)
        if approver is not None:
            request["approved_by"] = approver
    # The ticket's own id and its approver's are the platform's record ids (just read from it): ids, never card data.
    platform_ids = {news.ticket_id, *([request["approved_by"]["id"]] if "approved_by" in request else [])}
    carddata.refuse_card_data(request, platform_ids=platform_ids)
    if intent is Intent.CANCELLED:
        return intent, request
    try:
        return intent, RefundRequestBody.model_validate(request)
    except ValidationError as error:
        problems = [
            {"field": ".".join(str(part) for part in item["loc"]), "problem": item["msg"], "type": item["type"]}
            for item in error.errors(include_url=False, include_input=False)
        ]
        invalid = InvalidRequest(
            f"ticket {news.ticket_id} does not map to a refund request ({len(problems)} problems)",
            code="ticket_not_a_refund_request",
        )
        invalid.errors = problems  # type: ignore[attr-defined]
        raise invalid from error


def _put(target: dict[str, Any], path: str, value: str) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _amount(mapping: AmountMapping, document: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = jmespath.search(mapping.value, document)
    currency = _text(jmespath.search(mapping.currency, document))
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    try:
        Decimal(text)
    except InvalidOperation:
        text = ""
    if not currency or not text:
        raise InvalidRequest(
            "the ticket's refund amount must be a decimal number with a currency code", code="invalid_ticket_amount"
        )
    try:
        money = Money.from_decimal_string(text, currency.upper())
    except (MoneyError, ValueError) as error:
        raise InvalidRequest(f"the ticket's refund amount: {error}", code="amount_not_representable") from error
    return money.model_dump(mode="json")


def _approver(mapping: TicketMapping, document: Mapping[str, Any]) -> dict[str, Any] | None:
    assert mapping.approver is not None
    approver_id = _text(jmespath.search(mapping.approver.id, document))
    group = _text(jmespath.search(mapping.approver.group, document))
    role = mapping.roles.get(group or "")
    if approver_id is None or role is None:
        return None  # an approval by nobody the merchant named as an approver: the policy decides alone
    name = _text(jmespath.search(mapping.approver.name, document)) if mapping.approver.name else None
    return {"id": approver_id, "role": role, **({"name": name[:200]} if name else {})}


def apply_ticket_news(
    news: TicketNews,
    *,
    tickets: TicketPlatform,
    mapping: TicketMapping,
    recorder: RefundRecorder,
    starter: WorkflowStarter,
    callbacks: TaskCallbacks,
    policy: Policy,
    timing: WorkflowTiming,
) -> TicketOutcome:
    """Read the ticket the delivery names and do what it asks, once whatever the redeliveries.

    Raises:
        NotFound: the platform has no such ticket.
        CardDataRefused, InvalidRequest: the ticket does not make a valid refund request (nothing stored).
        Forbidden: (through intake) the source may not ask for this refund.
        IdempotencyConflict: the ticket asked for this refund before with other content, and it is no longer
            waiting for an approval.
        TransientError: the platform, the store or the workflow could not be reached (the help desk retries).
    """
    ticket = tickets.read_ticket(news.ticket_id)
    intent, request = ticket_request(news, ticket, mapping)
    if intent is None:
        return TicketOutcome("ignored")
    reference = request["source"]["reference"] if isinstance(request, dict) else request.source.reference
    refund_id = source_refund_id(news.platform, news.platform, reference)
    existing = _existing(recorder.repository, refund_id)
    if intent is Intent.CANCELLED:
        if existing is None:
            return TicketOutcome("ignored")
        return _withdraw(existing, news, recorder=recorder, callbacks=callbacks)
    assert isinstance(request, RefundRequestBody)
    if existing is not None and existing.status is RefundStatus.PENDING_APPROVAL and request.approved_by is not None:
        return _approve_waiting(existing, request, news, recorder=recorder, callbacks=callbacks, policy=policy)
    if existing is not None and request.return_info is not None:
        return _return_step(existing, request, news, recorder=recorder, callbacks=callbacks)
    accepted: Accepted = accept_refund_request(
        request,
        source=VerifiedSource(news.platform),
        delivery_id=news.event_id,
        recorder=recorder,
        starter=starter,
        timing=timing,
        channel=news.platform,
    )
    return TicketOutcome("accepted", accepted.refund.refund_id, accepted.refund.status, accepted.duplicate)


def _return_step(
    refund: Refund, request: RefundRequestBody, news: TicketNews, *, recorder: RefundRecorder, callbacks: TaskCallbacks
) -> TicketOutcome:
    """A ticket that reports where the return of its refund is (a shop's return, read again after the refund was
    requested): the step is recorded like any returns system's (once, any order), and a refund waiting for its
    goods (AWAITING_RETURN) is decided again. The request itself is not made again.

    Raises:
        IdempotencyConflict: this status and moment were reported before with other content.
        TransientError: the store or the waiting workflow could not be reached.
    """
    assert request.return_info is not None
    occurred_at = request.return_info.received_at or news.occurred_at or datetime.now(UTC)
    recorded = record_platform_return_step(
        refund.refund_id,
        request.return_info.status,
        occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC),
        source=news.platform,
        delivery_id=news.event_id,
        recorder=recorder,
        callbacks=callbacks,
    )
    current = recorded.refund or recorder.repository.get(refund.refund_id)
    return TicketOutcome("accepted", refund.refund_id, current.status, recorded.duplicate)


def _existing(repository: RefundStore, refund_id: str) -> Refund | None:
    try:
        return repository.get(refund_id)
    except NotFound:
        return None


def _approve_waiting(
    refund: Refund,
    request: RefundRequestBody,
    news: TicketNews,
    *,
    recorder: RefundRecorder,
    callbacks: TaskCallbacks,
    policy: Policy,
) -> TicketOutcome:
    """A team lead approved in the ticket a refund that waits for approval: it counts when the policy lets
    this help desk assert that role and the role is the one required (or above); otherwise it waits on."""
    approver = request.approved_by
    assert approver is not None
    if request_fingerprint(request.model_copy(update={"approved_by": None})) != refund.request_fingerprint:
        raise IdempotencyConflict(
            f"ticket {news.ticket_id} now asks for another refund than the one waiting for approval; "
            "decide it in refundflow or withdraw it first"
        )
    required = refund.policy.required_role if refund.policy else None
    if not (policy.source_may_assert(news.platform, approver.role) and policy.role_satisfies(approver.role, required)):
        recorder.note(
            refund,
            "TicketApprovalNotHonoured",
            actor=f"{news.platform}:{approver.id}",
            details={"role": approver.role, "required_role": required, "delivery_id": news.event_id},
        )
        return TicketOutcome("accepted", refund.refund_id, refund.status, duplicate=True)
    record = ApprovalRecord(
        decision="approve",
        approver=approver.id,
        role=approver.role,
        channel=news.platform,
        decided_at=datetime.now(UTC),
        note=f"approved in {news.platform} ticket {news.ticket_id}",
    )
    approved = recorder.move(
        refund,
        RefundStatus.APPROVED,
        actor=f"{news.platform}:{approver.id}",
        details={"decision": "approve", "role": approver.role, "required_role": required, "delivery_id": news.event_id},
        changes={"approval": record},
    )
    resume_waiting(approved, WaitFor.APPROVAL, repository=recorder.repository, callbacks=callbacks)
    return TicketOutcome("approved", approved.refund_id, approved.status)


def _withdraw(refund: Refund, news: TicketNews, *, recorder: RefundRecorder, callbacks: TaskCallbacks) -> TicketOutcome:
    """Stop a refund whose approval was withdrawn in the ticket, if no money has moved; the workflow ends it
    (a waiting one is resumed, a running one stops at its last gate before the provider)."""
    if refund.status is RefundStatus.REJECTED and refund.failure and refund.failure.code == APPROVAL_WITHDRAWN:
        return TicketOutcome("cancelled", refund.refund_id, refund.status, duplicate=True)
    if refund.status not in STOPPABLE:
        recorder.note(
            refund,
            "TicketWithdrawalTooLate",
            actor=news.platform,
            details={"status": refund.status.value, "delivery_id": news.event_id},
        )
        return TicketOutcome("too_late", refund.refund_id, refund.status)
    failure = FailureRecord(
        code=APPROVAL_WITHDRAWN, message=f"approval withdrawn in {news.platform} ticket {news.ticket_id}"
    )
    if refund.status in _PARKED:
        stopped = recorder.move(
            refund,
            RefundStatus.REJECTED,
            actor=news.platform,
            details={"code": APPROVAL_WITHDRAWN, "delivery_id": news.event_id},
            changes={"failure": failure},
        )
        resume_waiting(stopped, _PARKED[refund.status], repository=recorder.repository, callbacks=callbacks)
        return TicketOutcome("cancelled", stopped.refund_id, stopped.status)
    # Moving: the payment step reads this before it sends anything and rejects the refund instead.
    marked = recorder.note(
        refund,
        "ApprovalWithdrawn",
        actor=news.platform,
        details={"delivery_id": news.event_id},
        changes={"withdrawn": failure},
    )
    return TicketOutcome("cancelled", marked.refund_id, marked.status)


# ---------------------------------------------------------------------------- write-back

LABELS: dict[RefundStatus, str] = {
    RefundStatus.RECEIVED: "requested",
    RefundStatus.VALIDATED: "requested",
    RefundStatus.PENDING_APPROVAL: "pending_approval",
    # Nothing decided yet for the help desk: the request stands until the goods are back (its note says so).
    RefundStatus.AWAITING_RETURN: "requested",
    RefundStatus.APPROVED: "approved",
    RefundStatus.REJECTED: "rejected",
    RefundStatus.REFUND_SUBMITTED: "processing",
    RefundStatus.REFUND_PENDING: "processing",
    RefundStatus.REFUNDED: "issued",
    RefundStatus.INVOICE_UPDATED: "issued",
    RefundStatus.COMPLETED: "completed",
    RefundStatus.SETTLED: "settled",
    RefundStatus.FAILED: "failed",
    RefundStatus.NEEDS_ATTENTION: "needs_attention",
}
_WORDS: dict[str, str] = {
    "RefundRequested": "Refund requested",
    "RefundValidated": "Refund request checked",
    "RefundApprovalRequested": "Refund waits for approval",
    "RefundApprovalEscalated": "Refund approval escalated",
    "RefundAwaitingReturn": "Refund waits for the returned goods",
    "RefundApproved": "Refund approved",
    "RefundRejected": "Refund rejected",
    "RefundSubmitted": "Refund sent to the payment provider",
    "RefundPending": "Refund pending at the payment provider",
    "RefundIssued": "Refund issued",
    "InvoiceUpdated": "Credit note booked",
    "RefundCompleted": "Refund completed",
    "RefundSettled": "Refund settled",
    "RefundFailed": "Refund failed",
    "RefundNeedsAttention": "Refund needs attention from the finance team",
    "ReconciliationMismatch": "Refund does not match the settlement",
    "RefundAcquirerReference": "Refund traceable at the customer's bank",
    RETURN_UPDATED: "Returned goods received",
}
# Of a return's steps, the ticket is told one: the goods are back (``received``), once per refund, however often
# and in whatever order the returns system reports it (a later ``received`` at another moment says nothing new).
TICKET_RETURN_STEPS = frozenset({"received"})


def write_once_key(event: RefundEvent) -> str | None:
    """What a ticket is told once for: the event (its ``event_id``), or for a return step the refund's step
    (``<refund id>#return-<status>``); None: an event the ticket is not told of."""
    if event.detail_type != RETURN_UPDATED:
        return event.event_id
    status = str(event.details.get("status", ""))
    return f"{event.refund_id}#return-{status}" if status in TICKET_RETURN_STEPS else None


def ticket_update(event: RefundEvent, refund: Refund) -> TicketUpdate:
    """The note and label a refund event makes on its ticket (no contact details, card numbers masked)."""
    amount = event.amount or refund.amount or refund.requested_amount
    words = _WORDS.get(event.detail_type, event.detail_type)
    if refund.origin is RefundOrigin.EXTERNAL and event.status is RefundStatus.REFUNDED:
        # Someone refunded the payment in the provider's dashboard (or another tool): the agent learns it here.
        words = f"Refund made outside refundflow, at {refund.payment.provider.value}"
    parts = [f"{words}: {amount if amount else 'the full amount'}."]
    if event.detail_type == RETURN_UPDATED:
        parts.append(
            f"Return {event.details.get('status')} at {event.details.get('occurred_at')}, "
            f"reported by {event.details.get('source')}."
        )
    parts.append(f"Refund {refund.refund_id}, status {event.status.value}.")
    if refund.provider_refund_id:
        parts.append(f"{refund.payment.provider.value} refund {refund.provider_refund_id}.")
    if refund.acquirer_reference:
        parts.append(
            f"Acquirer reference (ARN) {refund.acquirer_reference}: the customer's bank traces the refund with it."
        )
    parts.extend(legs_note(refund))
    if refund.credit_document is not None:
        parts.append(f"Credit document {refund.credit_document.document_id}.")
    if event.status in (RefundStatus.FAILED, RefundStatus.REJECTED, RefundStatus.NEEDS_ATTENTION):
        reason = refund.failure.message if refund.failure else refund.attention_reason
        if reason:
            parts.append(f"Why: {carddata.mask_text(reason)[:400]}")
        parts.extend(failed_legs_note(refund))
    marker = f"refundflow:{write_once_key(event) or event.event_id}"
    parts.append(f"[{marker}]")
    return TicketUpdate(
        marker=marker,
        refund_id=refund.refund_id,
        event=event.detail_type,
        status=event.status,
        label=LABELS[refund.status],
        text=" ".join(parts)[:2000],
        amount=amount,
        provider_refund_id=refund.provider_refund_id,
    )


# A split refund's parts of the note are bounded, so the note (at most 2000 characters) always ends with its marker.
LEGS_NOTE_LENGTH = 700
FAILED_LEGS_NOTE_LENGTH = 500


def legs_note(refund: Refund) -> list[str]:
    """A split-tender parent's legs for the agents, each with its status, its provider refund id and acquirer
    reference where known (empty for a refund of one payment)."""
    if not refund.legs:
        return []
    described = []
    for leg in sorted(refund.legs, key=lambda leg: leg.index):
        what = "store credit" if leg.payment is None else f"{leg.kind.value} {leg.payment.provider.value}"
        text = f"{leg.index + 1}) {leg.amount} {what} {leg.status.value}"
        if leg.provider_refund_id:
            text += f", refund {leg.provider_refund_id}"
        if leg.acquirer_reference:
            text += f", ARN {leg.acquirer_reference}"
        if leg.replaces is not None:
            text += f", replaces leg {leg.replaces + 1}"
        described.append(text)
    return [_cut(f"Legs: {'; '.join(described)}.", LEGS_NOTE_LENGTH)]


def failed_legs_note(refund: Refund) -> list[str]:
    """Which legs of a split-tender parent failed, why, and the proposed remedies (none yet: a person decides)."""
    notes = []
    replaced = {leg.replaces for leg in refund.legs if leg.replaces is not None}
    for leg in sorted(refund.legs, key=lambda leg: leg.index):
        if leg.status is not LegStatus.FAILED or leg.index in replaced:
            continue
        why = f": {carddata.mask_text(leg.failure)[:200]}" if leg.failure else ""
        remedies = "; ".join(carddata.mask_text(remedy) for remedy in leg.remedies) or "none proposed yet"
        notes.append(
            f"Leg {leg.index + 1} ({leg.amount}, {leg.payment.provider.value if leg.payment else 'store credit'}) "
            f"failed{why}. Remedies: {remedies}."
        )
    return [_cut(" ".join(notes), FAILED_LEGS_NOTE_LENGTH)] if notes else []


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_back(
    event: RefundEvent, *, platform: str, tickets: TicketPlatform, repository: RefundStore, public_reply: bool = False
) -> bool:
    """Write ``event`` to its refund's ticket, once. Returns False when nothing was due (not this platform's
    ticket, or written before). The label is the refund's status now, so a late event never winds the ticket's
    status back. With ``public_reply`` (the desk's catalog ``ticket.writes`` lists it), the customer's one message
    about the refund (issued, or failed) follows the internal note as a public reply, once per refund and kind
    (:func:`public_reply_update`); the note comes first, so a retry after a refused reply writes no second note.

    Raises:
        TransientError: retry (the queue redelivers, after the platform's Retry-After where it said one).
        RejectedError: a final refusal (parked in the queue's DLQ for ops).
        NotFound: the refund or the ticket is gone.
    """
    key = write_once_key(event)
    if event.source.platform != platform or not event.source.ticket_id or key is None:
        return False
    written = False
    refund: Refund | None = None
    if repository.delivery_refund_id(WRITTEN.format(platform=platform), key) is None:
        refund = repository.get(event.refund_id)
        written = _write_once(
            key,
            event.source.ticket_id,
            ticket_update(event, refund),
            platform=platform,
            tickets=tickets,
            repository=repository,
        )
    kind = notifications.CUSTOMER_MESSAGES.get(event.detail_type)
    if not public_reply or kind is None or event.parent_refund_id is not None:
        return written  # a split-tender refund's leg never replies to the customer: its parent's reply lists it
    reply_key = f"reply:{notifications.message_key(event, kind)}"
    if repository.delivery_refund_id(WRITTEN.format(platform=platform), reply_key) is not None:
        return written
    refund = refund or repository.get(event.refund_id)
    if refund.origin is RefundOrigin.EXTERNAL:
        return written  # refunded outside refundflow: whoever made it told the customer
    update = public_reply_update(event, refund, kind)
    return _write_once(
        reply_key, event.source.ticket_id, update, platform=platform, tickets=tickets, repository=repository
    )


def public_reply_update(event: RefundEvent, refund: Refund, kind: notifications.MessageKind) -> TicketUpdate:
    """The customer's message as the ticket's public reply: what the e-mail would have said, and a reference that
    is also the marker a reply whose answer was lost is found by."""
    marker = f"refundflow:reply:{notifications.message_key(event, kind)}"
    text = notifications.event_message(kind, event, refund)
    return TicketUpdate(
        marker=marker[:200],
        refund_id=refund.refund_id,
        event=event.detail_type,
        status=event.status,
        text=f"{text} (Reference: {marker})"[:2000],
        amount=notifications.message_amount(event, refund),
        provider_refund_id=refund.provider_refund_id,
        kind="public_reply",
    )


def refusal_update(news: TicketNews, refused: RefundflowError) -> TicketUpdate:
    """The internal note that tells the agent why the ticket's request was refused (nothing was stored): the
    refusal in words and the fields it names, never their values. No state label: whatever refund the ticket
    already has keeps its state."""
    fields = sorted({str(item.get("field")) for item in getattr(refused, "errors", None) or [] if item.get("field")})
    parts = [f"Refund request not taken: {carddata.mask_text(refused.message).rstrip('.')[:600]}."]
    if fields:
        parts.append(f"Check: {', '.join(fields)[:600]}.")
    parts.append("Nothing was refunded. Correct the ticket and trigger it again.")
    marker = f"refundflow:refused:{news.event_id}"
    parts.append(f"[{marker}]")
    return TicketUpdate(marker=marker[:200], event="RefundRequestRefused", text=" ".join(parts)[:2000])


def write_refusal(
    news: TicketNews, refused: RefundflowError, *, tickets: TicketPlatform, repository: RefundStore
) -> bool:
    """Tell the ticket why its delivery was refused, once per delivery (a redelivery writes nothing new).

    Raises:
        TransientError, RejectedError, NotFound: as :meth:`TicketPlatform.write_back`.
    """
    key = f"refused:{news.event_id}"
    if repository.delivery_refund_id(WRITTEN.format(platform=news.platform), key) is not None:
        return False
    update = refusal_update(news, refused)
    return _write_once(key, news.ticket_id, update, platform=news.platform, tickets=tickets, repository=repository)


def _write_once(
    key: str, ticket_id: str, update: TicketUpdate, *, platform: str, tickets: TicketPlatform, repository: RefundStore
) -> bool:
    written, attempted = WRITTEN.format(platform=platform), ATTEMPTED.format(platform=platform)
    owner = update.refund_id or ""
    # An earlier attempt may have written it and lost the answer: look on the ticket before writing again.
    if repository.delivery_refund_id(attempted, key) is not None and tickets.has_update(ticket_id, update.marker):
        repository.mark_delivery(written, key, owner)
        return False
    repository.mark_delivery(attempted, key, owner)
    tickets.write_back(ticket_id, update)
    repository.mark_delivery(written, key, owner)
    return True
