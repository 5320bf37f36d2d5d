"""One trace per refund, from the ticket to the bank line, and from a bank line (or a payout) back to its refunds.

A refund's trace is its hops in order, each with its ids, when and who (the audit entry it comes from):

1. ``request``: the source system and its reference, the ticket, the platform; who approved at the source
   (``approved_by``) and the approval given in refundflow (approver, role, channel, when);
2. ``policy``: the decision (outcome, rule, policy version);
3. ``provider_refund``: the provider's refund (id, status) and its acquirer reference (ARN) once it came;
4. ``credit_document``: the books system's credit document (kind, id, number, allocation and payment ids);
5. ``settlement_line``: the provider's settlement line reconciliation matched (file, line, provider line id,
   payout id), from the refund's own ``RefundSettled`` / ``SettlementLineMatched`` / ``ReconciliationMismatch``
   audit entries (``reconciliation.apply._details``);
6. ``payout``: the payout that line went out in, as a settlement announced it (amount, settlement date);
7. ``bank_line``: the bank statement line that credited the payout (file, line, booking date, amount).

A hop that is not there yet (or never will be) is ``present: false`` with a stable ``missing.code`` saying why
(:class:`MissingCode`); a hop that is there but disagrees (a mismatch) carries ``missing`` too, with the class.
Everything but the payout and its bank line comes from the refund and its audit trail, which is verified here
as in ``GET /refunds/{id}`` (``refundflow.audit``): the answer says whether the timeline is intact.

A split-tender refund (``Refund.legs``) traces as its own request, policy and credit document hops, with each
leg's provider, settlement, payout and bank hops nested under the leg; a leg's own trace names its parent.

From the other end, :func:`payout_trace` lists the refunds a payout carried (``PayoutMember`` items written by
reconciliation with each line it records), each with its trace summary, and :func:`bank_line_trace` starts from
a bank statement's line: the payout it credited, then that payout's refunds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from refundflow.audit import LEGACY_SCHEME, ChainVerification, verify_chain
from refundflow.domain.views import readable_refund
from refundflow.errors import NotFound
from refundflow.models import AuditEntry, Refund, RefundOrigin, SplitLeg
from refundflow.money import Money
from refundflow.ports import AnnouncedPayout, BankCredit, PayoutMember, RefundStore
from refundflow.status import RefundStatus

RECONCILIATION_ACTOR = "reconciliation"  # reconciliation.apply.ACTOR (not imported: the API does not load it)
ACQUIRER_REFERENCE_ENTRY = "RefundAcquirerReference"  # domain.payments.ACQUIRER_REFERENCE
SETTLEMENT_LINE_MATCHED = "SettlementLineMatched"
_DUPLICATE_LINE = "duplicate_line"
_MATCHED = "matched"
_MISSING_IN_SETTLEMENT = "missing_in_settlement"


class HopName(StrEnum):
    REQUEST = "request"
    POLICY = "policy"
    PROVIDER_REFUND = "provider_refund"
    CREDIT_DOCUMENT = "credit_document"
    SETTLEMENT_LINE = "settlement_line"
    PAYOUT = "payout"
    BANK_LINE = "bank_line"


class MissingCode(StrEnum):
    """Why a hop is missing (or, with ``mismatch``, why it disagrees): stable, for scripts and dashboards."""

    NOT_YET_DECIDED = "not_yet_decided"  # no policy decision yet (or a refund made outside refundflow)
    NOT_REFUNDED = "not_refunded"  # rejected, failed or withdrawn: no money moves
    NOT_YET_REFUNDED = "not_yet_refunded"  # the provider has not refunded it (yet)
    NO_INVOICE = "no_invoice"  # completed with nothing to book
    BOOKS_PENDING = "books_pending"  # refunded, the credit document not booked yet
    NOT_YET_SETTLED = "not_yet_settled"  # refunded, no settlement file has named it yet
    NOT_RECONCILED = "not_reconciled"  # a line matched it before it completed: a later file settles it
    MISMATCH = "mismatch"  # with its class (amount_differs, late_failure, missing_in_settlement...)
    NO_PAYOUT_NAMED = "no_payout_named"  # the settlement line names no payout (PayPal's lines)
    PAYOUT_NOT_ANNOUNCED = "payout_not_announced"  # the line names a payout no settlement has announced yet
    PAYOUT_NOT_CREDITED = "payout_not_credited"  # a statement past the payout's grace period did not credit it
    NO_BANK_STATEMENT_YET = "no_bank_statement_yet"  # no statement has credited the payout yet
    AUDIT_BROKEN = "audit_broken"  # the hop comes from an audit entry at or after where the chain breaks


class MissingHop(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: MissingCode
    reason: str
    match_class: str | None = Field(default=None, description="The reconciliation class of a mismatch.")


class TraceHop(BaseModel):
    """One hop: ``facts`` holds its ids and amounts (names per hop, see the README), ``at`` and ``actor`` say when
    and who, ``audit_seq`` the timeline entry it comes from (None for the payout and the bank line, which are
    reconciliation's records, not the refund's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hop: HopName
    present: bool
    at: datetime | date | None = None
    actor: str | None = None
    audit_seq: int | None = None
    facts: dict[str, Any] = Field(default_factory=dict)
    missing: MissingHop | None = None

    @property
    def complete(self) -> bool:
        return self.present and self.missing is None


class LegTrace(BaseModel):
    """A split-tender refund's leg: its own refund's money hops (provider refund to bank line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    kind: str
    amount: Money
    status: str
    refund_id: str | None
    hops: list[TraceHop]
    audit: ChainVerification | None = None


class RefundTrace(BaseModel):
    """``GET /refunds/{refund_id}/trace``."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    refund_id: str
    status: RefundStatus
    amount: Money | None
    parent_refund_id: str | None = Field(default=None, description="A split-tender leg's parent refund.")
    complete: bool = Field(description="Every hop (and every leg's) is present and agrees.")
    missing: list[str] = Field(description="The missing hops as '<hop>: <code>', in order (legs too).")
    hops: list[TraceHop]
    legs: list[LegTrace] = Field(default_factory=list)
    audit: ChainVerification


class PayoutRefund(BaseModel):
    """A refund a payout carried: its line in the payout and its trace summary."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refund_id: str
    status: RefundStatus | None
    amount: Money
    match_class: str
    line: dict[str, Any]
    source: dict[str, Any]
    parent_refund_id: str | None = None
    complete: bool
    missing: list[str]
    audit_intact: bool | None


class PayoutTrace(BaseModel):
    """``GET /payouts/{payout_id}/trace``: the payout, the bank line that credited it, and its refunds."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    payout_id: str
    payout: TraceHop
    bank_line: TraceHop
    refunds: list[PayoutRefund]
    next: str | None = Field(default=None, description="Pass as ?after= for the payout's next refunds.")


class BankLineTrace(BaseModel):
    """``GET /bank-lines/trace?file=...&line=...``: a bank statement line, the payout it credited, its refunds."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    file: str
    line_no: int
    payout: PayoutTrace


# ---------------------------------------------------------------------------------------------- one refund


def _missing(hop: HopName, code: MissingCode, reason: str, match_class: str | None = None) -> TraceHop:
    return TraceHop(hop=hop, present=False, missing=MissingHop(code=code, reason=reason, match_class=match_class))


def _after(hop: HopName, earlier: TraceHop) -> TraceHop:
    """A hop that waits for an earlier missing one: the same code, and which hop it waits for."""
    assert earlier.missing is not None
    reason = f"waits for the {earlier.hop.value.replace('_', ' ')}: {earlier.missing.reason}"
    return _missing(hop, earlier.missing.code, reason, earlier.missing.match_class)


def _first(timeline: Sequence[AuditEntry], wanted: Callable[[AuditEntry], bool]) -> AuditEntry | None:
    return next((entry for entry in timeline if wanted(entry)), None)


def _last(timeline: Sequence[AuditEntry], wanted: Callable[[AuditEntry], bool]) -> AuditEntry | None:
    return next((entry for entry in reversed(timeline) if wanted(entry)), None)


def _money(value: Money | None) -> dict[str, Any] | None:
    return value.model_dump(mode="json") if value is not None else None


def request_hop(refund: Refund, timeline: Sequence[AuditEntry]) -> TraceHop:
    entry = timeline[0] if timeline else None
    approved_by = refund.approved_by.model_dump(mode="json") if refund.approved_by else None
    approval = refund.approval.model_dump(mode="json", exclude={"note"}) if refund.approval else None
    return TraceHop(
        hop=HopName.REQUEST,
        present=True,
        at=entry.at if entry else refund.created_at,
        actor=entry.actor if entry else None,
        audit_seq=entry.seq if entry else None,
        facts={
            "source_system": refund.source.system,
            "source_reference": refund.source.reference,
            "ticket_id": refund.source.ticket_id,
            "platform": refund.source_platform,
            "origin": refund.origin.value,
            "order_id": refund.order.order_id if refund.order else None,
            "requested_amount": _money(refund.requested_amount),
            "approved_by": approved_by,
            "approval": approval,
        },
    )


def policy_hop(refund: Refund, timeline: Sequence[AuditEntry]) -> TraceHop:
    policy = refund.policy
    if policy is None:
        reason = (
            "a refund made outside refundflow: no policy decided it"
            if refund.origin is not RefundOrigin.REFUNDFLOW
            else f"no policy decision yet (the refund is {refund.status.value})"
        )
        return _missing(HopName.POLICY, MissingCode.NOT_YET_DECIDED, reason)
    entry = _last(timeline, lambda e: e.details.get("rule_id") == policy.rule_id)
    return TraceHop(
        hop=HopName.POLICY,
        present=True,
        at=entry.at if entry else None,
        actor=entry.actor if entry else None,
        audit_seq=entry.seq if entry else None,
        facts={
            "outcome": policy.outcome,
            "rule_id": policy.rule_id,
            "policy_version": policy.policy_version,
            "reason_code": policy.reason_code,
            "required_role": policy.required_role,
        },
    )


_NO_MONEY = frozenset({RefundStatus.REJECTED, RefundStatus.FAILED})


def provider_hop(refund: Refund, timeline: Sequence[AuditEntry]) -> TraceHop:
    provider_refund_id = refund.provider_refund_id
    if provider_refund_id is None:
        if refund.status in _NO_MONEY or refund.withdrawn is not None:
            why = "withdrawn" if refund.withdrawn is not None else refund.status.value
            return _missing(HopName.PROVIDER_REFUND, MissingCode.NOT_REFUNDED, f"the refund was {why}: no money moved")
        reason = f"the provider has not refunded it yet (the refund is {refund.status.value})"
        return _missing(HopName.PROVIDER_REFUND, MissingCode.NOT_YET_REFUNDED, reason)
    entry = _first(timeline, lambda e: e.details.get("provider_refund_id") == provider_refund_id) or _first(
        timeline, lambda e: e.to_status is RefundStatus.REFUNDED
    )
    arn = _first(timeline, lambda e: e.type == ACQUIRER_REFERENCE_ENTRY)
    return TraceHop(
        hop=HopName.PROVIDER_REFUND,
        present=True,
        at=entry.at if entry else None,
        actor=entry.actor if entry else f"provider:{refund.payment.provider.value}",
        audit_seq=entry.seq if entry else None,
        facts={
            "provider": refund.payment.provider.value,
            "payment_id": refund.payment.payment_id,
            "provider_refund_id": provider_refund_id,
            "provider_status": refund.provider_status,
            "amount": _money(refund.amount),
            "acquirer_reference": refund.acquirer_reference,
            "acquirer_reference_at": arn.at.isoformat() if arn and refund.acquirer_reference else None,
        },
    )


_BOOKED = frozenset({RefundStatus.COMPLETED, RefundStatus.SETTLED})
_EXTERNAL_REFUND_UNBOOKED = "external_refund_unbooked"  # domain.recorder.EXTERNAL_REFUND_UNBOOKED (not imported)


def credit_document_hop(refund: Refund, timeline: Sequence[AuditEntry], provider: TraceHop | None) -> TraceHop:
    document = refund.credit_document
    if document is None:
        if provider is not None and not provider.present:
            return _after(HopName.CREDIT_DOCUMENT, provider)
        if refund.attention_reason == _EXTERNAL_REFUND_UNBOOKED:
            # Refunded outside refundflow with no invoice known: not "nothing to book", a person books it by hand.
            reason = "refunded outside refundflow and no invoice is known: a person books the credit by hand"
            return _missing(HopName.CREDIT_DOCUMENT, MissingCode.BOOKS_PENDING, reason)
        if refund.status in _BOOKED or refund.invoice is None:
            reason = "nothing to book: the refund names no invoice" if refund.invoice is None else "nothing booked"
            return _missing(HopName.CREDIT_DOCUMENT, MissingCode.NO_INVOICE, reason)
        reason = f"the {refund.invoice.system.value} credit document is not booked yet ({refund.status.value})"
        return _missing(HopName.CREDIT_DOCUMENT, MissingCode.BOOKS_PENDING, reason)
    entry = _first(timeline, lambda e: e.details.get("document_id") == document.document_id)
    return TraceHop(
        hop=HopName.CREDIT_DOCUMENT,
        present=True,
        at=entry.at if entry else None,
        actor=entry.actor if entry else f"books:{document.system.value}",
        audit_seq=entry.seq if entry else None,
        facts={
            "system": document.system.value,
            "kind": document.kind.value,
            "state": document.state.value,
            "document_id": document.document_id,
            "number": document.number,
            "invoice_id": refund.invoice.invoice_id if refund.invoice else None,
            "allocation_id": document.allocation_id,
            "payment_id": document.payment_id,
            "total": _money(document.total),
        },
    )


def _reconciliation_entry(timeline: Sequence[AuditEntry]) -> AuditEntry | None:
    """The refund's latest reconciliation record that is about its own line (a duplicate repeats another)."""
    return _last(
        timeline,
        lambda e: (
            e.actor == RECONCILIATION_ACTOR
            and isinstance(e.details.get("match_class"), str)
            and e.details["match_class"] != _DUPLICATE_LINE
        ),
    )


def settlement_hop(refund: Refund, timeline: Sequence[AuditEntry], provider: TraceHop) -> TraceHop:
    entry = _reconciliation_entry(timeline)
    if entry is None:
        if not provider.present:
            return _after(HopName.SETTLEMENT_LINE, provider)
        reason = "the refund is done at the provider; no settlement file has named it yet"
        return _missing(HopName.SETTLEMENT_LINE, MissingCode.NOT_YET_SETTLED, reason)
    details = entry.details
    match_class = str(details["match_class"])
    if match_class == _MISSING_IN_SETTLEMENT:
        reason = f"{details.get('file')} should have settled it and has no line for it"
        return _missing(HopName.SETTLEMENT_LINE, MissingCode.MISMATCH, reason, match_class)
    missing: MissingHop | None = None
    if match_class != _MATCHED:
        detail = details.get("detail") or match_class.replace("_", " ")
        missing = MissingHop(code=MissingCode.MISMATCH, reason=str(detail), match_class=match_class)
    elif entry.type == SETTLEMENT_LINE_MATCHED and refund.status is not RefundStatus.SETTLED:
        reason = "the line matched before the refund completed: a later settlement naming it settles it"
        missing = MissingHop(code=MissingCode.NOT_RECONCILED, reason=reason, match_class=match_class)
    return TraceHop(
        hop=HopName.SETTLEMENT_LINE,
        present=True,
        at=entry.at,
        actor=entry.actor,
        audit_seq=entry.seq,
        facts={
            "file": details.get("file"),
            "line_no": details.get("line_no"),
            "line": details.get("line"),
            "reference": details.get("reference"),
            "payout_id": details.get("payout_id"),
            "match_class": match_class,
            "settled_amount": details.get("settled_amount"),
            "difference_minor_units": details.get("difference_minor_units"),
        },
        missing=missing,
    )


def payout_hop_of(payout_id: str, announced: AnnouncedPayout | None, credit: BankCredit | None) -> TraceHop:
    if announced is None:
        reason = f"the settlement line names payout {payout_id}; no settlement has announced its total yet"
        hop = _missing(HopName.PAYOUT, MissingCode.PAYOUT_NOT_ANNOUNCED, reason)
        return hop.model_copy(update={"facts": {"payout_id": payout_id}})
    return TraceHop(
        hop=HopName.PAYOUT,
        present=True,
        at=announced.booked_on,
        actor=f"provider:{_provider_of(announced.file)}",
        facts={
            "payout_id": payout_id,
            "amount": {"minor_units": announced.amount, "currency": announced.currency},
            "settled_on": announced.booked_on.isoformat() if announced.booked_on else None,
            "arrived_on": credit.booked_on.isoformat() if credit and credit.booked_on else None,
            "settlement_file": announced.file,
        },
    )


def _provider_of(file: str) -> str:
    parts = file.split("/")
    return parts[1] if len(parts) > 2 else file


def bank_hop_of(payout: TraceHop, credit: BankCredit | None, *, not_credited: bool) -> TraceHop:
    if credit is None:
        if not payout.present:
            return _after(HopName.BANK_LINE, payout)
        if not_credited:
            reason = "a bank statement past the payout's grace period does not credit it (payout_not_found)"
            return _missing(HopName.BANK_LINE, MissingCode.PAYOUT_NOT_CREDITED, reason)
        reason = "no bank statement reconciled so far credits the payout"
        return _missing(HopName.BANK_LINE, MissingCode.NO_BANK_STATEMENT_YET, reason)
    missing = None
    if credit.match_class != _MATCHED:
        missing = MissingHop(
            code=MissingCode.MISMATCH,
            reason="the bank line's amount differs from the payout's",
            match_class=credit.match_class,
        )
    return TraceHop(
        hop=HopName.BANK_LINE,
        present=True,
        at=credit.booked_on,
        actor=f"bank:{_bank_format(credit.file)}",
        facts={
            "file": credit.file,
            "line_no": credit.line_no,
            "line": credit.line_key,
            "booked_on": credit.booked_on.isoformat() if credit.booked_on else None,
            "amount": {"minor_units": credit.amount, "currency": credit.currency},
            "direction": credit.direction,
            "payout_id": credit.payout_id,
        },
        missing=missing,
    )


def _bank_format(file: str) -> str:
    parts = file.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "bank" else "statement"


def _payout_not_credited(repository: RefundStore, payout_id: str) -> bool:
    # reconciliation.apply._marker_key of a PAYOUT_NOT_FOUND finding (key payout#<id>): once per payout.
    return repository.get_reconciliation_marker(f"payout#{payout_id}#not_found") is not None


def payout_and_bank_hops(payout_id: str, *, repository: RefundStore) -> tuple[TraceHop, TraceHop]:
    announced = repository.announced_payout(payout_id)
    credit = repository.bank_credit_for_payout(payout_id)
    payout = payout_hop_of(payout_id, announced, credit)
    if credit is None and payout.present:
        # A "credited" marker written before the marker kept the bank line whole names only its file and number.
        marker = repository.get_reconciliation_marker(f"payout#{payout_id}#credited")
        if marker is not None:
            facts = {"file": marker.file, "line_no": marker.line_no, "payout_id": payout_id}
            return payout, TraceHop(
                hop=HopName.BANK_LINE, present=True, actor=f"bank:{_bank_format(marker.file)}", facts=facts
            )
    not_credited = credit is None and payout.present and _payout_not_credited(repository, payout_id)
    return payout, bank_hop_of(payout, credit, not_credited=not_credited)


class PayoutHops:
    """The payout and bank hops of each payout, read once (a payout's trace lists many refunds of one payout)."""

    def __init__(self, repository: RefundStore) -> None:
        self.repository = repository
        self._known: dict[str, tuple[TraceHop, TraceHop]] = {}

    def __call__(self, payout_id: str) -> tuple[TraceHop, TraceHop]:
        if payout_id not in self._known:
            self._known[payout_id] = payout_and_bank_hops(payout_id, repository=self.repository)
        return self._known[payout_id]


def money_hops(
    refund: Refund, timeline: Sequence[AuditEntry], *, repository: RefundStore, payouts: PayoutHops | None = None
) -> list[TraceHop]:
    """The provider refund, its settlement line, payout and bank line."""
    provider = provider_hop(refund, timeline)
    settlement = settlement_hop(refund, timeline, provider)
    payout_id = settlement.facts.get("payout_id")
    if not settlement.present:
        return [provider, settlement, _after(HopName.PAYOUT, settlement), _after(HopName.BANK_LINE, settlement)]
    if not payout_id:
        reason = f"{settlement.facts.get('file')} line {settlement.facts.get('line_no')} names no payout"
        payout = _missing(HopName.PAYOUT, MissingCode.NO_PAYOUT_NAMED, reason)
        return [provider, settlement, payout, _after(HopName.BANK_LINE, payout)]
    payout, bank = (payouts or PayoutHops(repository))(str(payout_id))
    return [provider, settlement, payout, bank]


def _verified(refund: Refund, *, repository: RefundStore) -> tuple[list[AuditEntry], ChainVerification]:
    """The refund's timeline up to the state read, and its chain's verification (as ``views.refund_view``)."""
    timeline, keyed_from_seq = repository.audit_trail(refund.refund_id)
    timeline = [entry for entry in timeline if entry.seq <= refund.audit_seq]
    keys = repository.audit_keys() if any(entry.scheme != LEGACY_SCHEME for entry in timeline) else None
    audit = verify_chain(timeline, expected_head=refund.audit_head, keys=keys, keyed_from_seq=keyed_from_seq)
    return timeline, audit


def _verified_hops(hops: list[TraceHop], audit: ChainVerification) -> list[TraceHop]:
    """A hop read from an audit entry at or after where the chain breaks keeps its facts (they are what is stored)
    but says they are not verified: ``missing.code`` ``audit_broken`` (an edited entry can name any file or line)."""
    broken_at = audit.broken_at_seq
    if audit.intact or broken_at is None:
        return hops
    reason = f"comes from audit entry {{seq}}; the chain breaks at entry {broken_at} ({audit.problem}): not verified"
    return [
        hop.model_copy(
            update={
                "missing": MissingHop(
                    code=MissingCode.AUDIT_BROKEN,
                    reason=reason.format(seq=hop.audit_seq),
                    match_class=hop.missing.match_class if hop.missing else None,
                )
            }
        )
        if hop.audit_seq is not None and hop.audit_seq >= broken_at
        else hop
        for hop in hops
    ]


def _missing_list(hops: Sequence[TraceHop], prefix: str = "") -> list[str]:
    return [f"{prefix}{hop.hop.value}: {hop.missing.code.value}" for hop in hops if hop.missing is not None]


def _leg_trace(leg: SplitLeg, *, repository: RefundStore, payouts: PayoutHops) -> LegTrace:
    def traced(hops: list[TraceHop], audit: ChainVerification | None = None) -> LegTrace:
        return LegTrace(
            index=leg.index,
            kind=leg.kind.value,
            amount=leg.amount,
            status=leg.status.value,
            refund_id=leg.refund_id,
            hops=hops,
            audit=audit,
        )

    if leg.refund_id is None:
        # Store credit, issued in refundflow: no provider refund, settlement or bank line.
        note = "store credit: issued in refundflow, no provider refund, settlement or bank line"
        return traced(
            [TraceHop(hop=HopName.PROVIDER_REFUND, present=True, facts={"tender": leg.kind.value, "note": note})]
        )
    leg_refund = repository.find(leg.refund_id)
    if leg_refund is None:
        reason = f"the leg's refund {leg.refund_id} is not recorded yet"
        provider = _missing(HopName.PROVIDER_REFUND, MissingCode.NOT_YET_REFUNDED, reason)
        rest = [_after(name, provider) for name in (HopName.SETTLEMENT_LINE, HopName.PAYOUT, HopName.BANK_LINE)]
        return traced([provider, *rest])
    timeline, audit = _verified(leg_refund, repository=repository)
    return traced(
        _verified_hops(money_hops(leg_refund, timeline, repository=repository, payouts=payouts), audit), audit
    )


def refund_trace(refund_id: str, *, repository: RefundStore) -> RefundTrace:
    """The refund's trace (see the module docstring).

    Raises:
        NotFound: no such refund.
    """
    return trace_of(readable_refund(refund_id, repository=repository), repository=repository)


def trace_of(refund: Refund, *, repository: RefundStore, payouts: PayoutHops | None = None) -> RefundTrace:
    """The trace of a refund already read (``payouts``: payout hops already read, shared between traces)."""
    payouts = payouts or PayoutHops(repository)
    timeline, audit = _verified(refund, repository=repository)
    request = request_hop(refund, timeline)
    policy = policy_hop(refund, timeline)
    legs: list[LegTrace] = []
    if refund.legs:
        legs = [
            _leg_trace(leg, repository=repository, payouts=payouts)
            for leg in sorted(refund.legs, key=lambda leg: leg.index)
        ]
        # The money moved in the legs: the parent's provider hop lists them, each traced under ``legs``.
        in_legs = TraceHop(
            hop=HopName.PROVIDER_REFUND,
            present=True,
            facts={"split_across_legs": [leg.refund_id for leg in legs], "tenders": len(refund.tenders)},
        )
        hops = [request, policy, in_legs, credit_document_hop(refund, timeline, None)]
    else:
        money = money_hops(refund, timeline, repository=repository, payouts=payouts)
        hops = [request, policy, money[0], credit_document_hop(refund, timeline, money[0]), *money[1:]]
    hops = _verified_hops(hops, audit)
    missing = _missing_list(hops)
    if not audit.intact:
        missing.append("audit: broken")
    for leg in legs:
        missing += _missing_list(leg.hops, prefix=f"leg {leg.index} ")
        if leg.audit is not None and not leg.audit.intact:
            missing.append(f"leg {leg.index} audit: broken")
    return RefundTrace(
        refund_id=refund.refund_id,
        status=refund.status,
        amount=refund.amount,
        parent_refund_id=refund.parent_refund_id,
        complete=not missing and audit.intact,
        missing=missing,
        hops=hops,
        legs=legs,
        audit=audit,
    )


# ---------------------------------------------------------------------------------------------- the other end

MAX_PAYOUT_REFUNDS = 200


def _payout_refund(member: PayoutMember, *, repository: RefundStore, payouts: PayoutHops) -> PayoutRefund:
    line = {"file": member.file, "line_no": member.line_no, "line": member.line_key}
    amount = Money.of(member.amount, member.currency)
    refund = repository.find(member.refund_id)
    if refund is None:  # pragma: no cover - a member is written with its refund's own audit entry
        return PayoutRefund(
            refund_id=member.refund_id,
            status=None,
            amount=amount,
            match_class=member.match_class,
            line=line,
            source={},
            complete=False,
            missing=["refund: not found"],
            audit_intact=None,
        )
    trace = trace_of(refund, repository=repository, payouts=payouts)
    return PayoutRefund(
        refund_id=member.refund_id,
        status=trace.status,
        amount=amount,
        match_class=member.match_class,
        line=line,
        source={
            "system": refund.source.system,
            "reference": refund.source.reference,
            "ticket_id": refund.source.ticket_id,
            "platform": refund.source_platform,
        },
        parent_refund_id=refund.parent_refund_id,
        complete=trace.complete,
        missing=trace.missing,
        audit_intact=trace.audit.intact,
    )


def payout_trace(
    payout_id: str, *, repository: RefundStore, after: str | None = None, limit: int = MAX_PAYOUT_REFUNDS
) -> PayoutTrace:
    """The payout, the bank line that credited it and the refunds it carried (``limit`` at a time, after the line
    key ``after``), each with its trace summary.

    Raises:
        NotFound: no settlement announced the payout and no line of ours names it.
    """
    payouts = PayoutHops(repository)
    payout, bank = payouts(payout_id)
    members, next_key = repository.payout_members(payout_id, after=after, limit=max(1, min(limit, MAX_PAYOUT_REFUNDS)))
    # An empty page of a payout nobody announced is a payout nobody knows unless an earlier page had lines: a forged
    # ``after`` (one past the last line, or any value) must not make an unknown payout look known.
    if not payout.present and not members and (after is None or not repository.payout_members(payout_id, limit=1)[0]):
        raise NotFound(f"no settlement announced payout {payout_id} and no line of our refunds names it")
    return PayoutTrace(
        payout_id=payout_id,
        payout=payout,
        bank_line=bank,
        refunds=[_payout_refund(member, repository=repository, payouts=payouts) for member in members],
        next=next_key,
    )


def bank_line_trace(
    file: str, line_no: int, *, repository: RefundStore, after: str | None = None, limit: int = MAX_PAYOUT_REFUNDS
) -> BankLineTrace:
    """Which refunds are in this bank line: the payout it credited, then that payout's refunds.

    Raises:
        NotFound: the line credited no payout reconciliation knows (or the statement was not reconciled).
    """
    credit = repository.bank_credit_at(file, line_no)
    if credit is None:
        raise NotFound(f"{file} line {line_no} credited no payout reconciliation knows")
    return BankLineTrace(
        file=file,
        line_no=line_no,
        payout=payout_trace(credit.payout_id, repository=repository, after=after, limit=limit),
    )
