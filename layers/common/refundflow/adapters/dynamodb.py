"""The single refunds table: refund state, its keyed audit chain, refundable balances,
first-seen markers for inbound deliveries and the task tokens of waiting workflows.

Audit entries live in their own partition, ``AUDIT#<refund_id>`` / ``EVENT#<at>#<seq>``, so IAM can deny
UpdateItem and DeleteItem on them to every role (``dynamodb:LeadingKeys`` sees partition keys only).

Every status change is one TransactWriteItems: the new state (conditioned on the version we read),
the next audit entry (conditioned on not existing) and any extra items, such as the balance
reservation, so concurrent requests can never over-refund and the trail can never fork.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from refundflow.adapters.aws import client as aws_client
from refundflow.adapters.table_calls import (
    DeliverySeen,
    TransactItem,
    call_dynamodb,
    delivery_marker_put,
    put_if_absent,
    to_item,
    transact,
)
from refundflow.audit import GENESIS_HASH, AuditKeys
from refundflow.errors import (
    ConcurrentModification,
    IdempotencyConflict,
    IllegalTransition,
    InsufficientRefundableAmount,
    NotFound,
    ProviderRefundClaimed,
    RefundflowError,
    ReturnStepExists,
    TransientError,
)
from refundflow.models import (
    AuditEntry,
    CustomerRefundSummary,
    PaymentProvider,
    Refund,
    RefundableBalance,
    ReturnStep,
    VelocityContribution,
    VelocityDay,
)
from refundflow.money import Money
from refundflow.ports import (
    AnnouncedPayout,
    AwaitedReference,
    BankCredit,
    KeptBankLine,
    PayoutMember,
    ProviderPayment,
    ProviderRefundEntry,
    ReconciliationMarker,
    RefundStore,
    RequestedRefund,
    StatusMove,
    StatusQueue,
    StoreWrite,
)
from refundflow.status import RefundStatus, can_transition

_deserializer = TypeDeserializer()

RECONCILIATION_MARKER_RETENTION = timedelta(days=400)
# How long a bank line no payout explained waits for the settlement that announces its payout.
BANK_LINE_RETENTION = timedelta(days=35)
# A customer's velocity counters outlive the longest window (365 days) and then expire.
VELOCITY_RETENTION = timedelta(days=400)
_VELOCITY_AMOUNT_PREFIX = "amount_"
# Short: the STATE item is rewritten (and projected into three indexes) on every change, billed per started KB.
VELOCITY_COUNTED = "vc"
# What the STATE item holds (everything that changes, plus copies its indexes and velocity need);
# the rest of the refund is the REQUEST item, written once.
_STATE_FIELDS = {
    "refund_id",
    "status",
    "version",
    "updated_at",
    "created_at",
    "payment",
    "requested_amount",
    "amount",
    "policy",
    "approval",
    "reservation",
    "provider_refund_id",
    "provider_status",
    "acquirer_reference",
    "acquirer_reference_unavailable",
    "credit_document",
    "attention_reason",
    "books_attempts",
    "lookup_attempts",
    "failure",
    "withdrawn",
    "audit_seq",
    "audit_head",
    "status_seq",
    "return_seq",
    "return_seen_seq",
    "allocation_rule",
    "legs",
}
_REQUEST_FIELDS = {
    "refund_id",
    "created_at",
    "payment",
    "requested_amount",
    "reason",
    "customer",
    "source",
    "source_platform",
    "order",
    "invoice",
    "return_info",
    "lines",
    "note",
    "approved_by",
    "request_fingerprint",
    "correlation_id",
    "origin",
    "tenders",
    "parent_refund_id",
}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; every number we store is an integer."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


# A split-tender refund's lists: empty on every other refund, where they are not stored (a refund of one payment's
# items keep their size: every write of the STATE item is billed by the kilobyte; read back, absent is empty).
_SPLIT_ONLY_FIELDS = ("tenders", "legs")


def _drop_empty(document: dict[str, Any], names: Iterable[str]) -> None:
    for name in names:
        if name in document and not document[name]:
            del document[name]


_to_item = to_item


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def plain_values(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value form) as plain values, numbers as int (what tools reading the
    table, such as the refundflow CLI, see)."""
    return _from_item(item)


def customer_key(email: str) -> str:
    """A pseudonymous key for a customer's refund history (the index never holds the address)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def provider_refund_key(provider_refund_id: str) -> str:
    return f"PROVIDER_REFUND#{provider_refund_id}"


# The statuses the by-status index holds (its keys are sparse: a refund in any other status carries none, so
# the writes of a refund passing through them cost that index nothing). Each is a status something waits on
# and reads by status: people (PENDING_APPROVAL, NEEDS_ATTENTION: the queue gauges and ``refundflow refunds
# list``'s default), the goods or the provider (AWAITING_RETURN, REFUND_PENDING: ops listings) and the
# settlement (COMPLETED: reconciliation's refunds expected in a settlement). Listing another status scans
# the table (``list_by_status``, ``refundflow refunds list``).
INDEXED_STATUSES = frozenset(
    {
        RefundStatus.PENDING_APPROVAL,
        RefundStatus.AWAITING_RETURN,
        RefundStatus.REFUND_PENDING,
        RefundStatus.NEEDS_ATTENTION,
        RefundStatus.COMPLETED,
    }
)


def _moment(value: datetime) -> str:
    """A UTC moment as index sort keys spell it (ISO 8601, "Z"; microseconds only when non-zero)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def refund_id_of(item: dict[str, Any]) -> str:
    """The refund id of an index entry (every index projects the table's keys: ``pk`` is ``REFUND#<id>``)."""
    return str(_from_item({"pk": item["pk"]})["pk"]).removeprefix("REFUND#")


# The statuses in which a refund's outcome at its provider may still be open (what news about a payment settles).
_OPEN_AT_PROVIDER = frozenset(
    {RefundStatus.REFUND_SUBMITTED.value, RefundStatus.REFUND_PENDING.value, RefundStatus.NEEDS_ATTENTION.value}
)
_BATCH_GET_KEYS = 100  # BatchGetItem's limit
_BATCH_GET_ATTEMPTS = 5
# The sort key of the item that names the refund a provider refund id belongs to (reconciliation reads these
# with BatchGetItem, 100 at a time, instead of one index query per settlement line).
PROVIDER_REFUND_SK = "REFUND"


def _provider_refund_entry(provider_refund_id: str, values: dict[str, Any]) -> ProviderRefundEntry:
    amount = values.get("amount") or values.get("requested_amount")
    return ProviderRefundEntry(
        refund_id=str(values["refund_id"]),
        provider_refund_id=provider_refund_id,
        status=RefundStatus(values["status"]),
        amount=Money.model_validate(amount) if amount else None,
    )


def _own(item: StoreWrite) -> TransactItem:
    """A write this store made (the port keeps them opaque); anything else is a programming error."""
    if not isinstance(item, TransactItem):
        raise TypeError(f"not a write of this store: {item!r}")
    return item


@dataclass(frozen=True)
class _Step:
    """One audit entry of a write (and the status it moves to: the same status for a note)."""

    to: RefundStatus
    entry_type: str
    actor: str
    details: dict[str, Any]
    changes: dict[str, Any]
    status_change: bool


@dataclass(frozen=True)
class Change:
    refund: Refund
    entry: AuditEntry


@dataclass(frozen=True)
class CreateOutcome:
    refund: Refund
    created: bool
    duplicate_delivery: bool
    # The refund as after each entry the creation wrote (the first: as created; then one per ``then`` move); empty
    # when nothing was written.
    written: tuple[Refund, ...] = ()


class RefundRepository(RefundStore):
    """Typed access to the refunds table. Raises GuardUnavailable when the store cannot be reached."""

    def __init__(
        self,
        table_name: str,
        dynamodb: Any | None = None,
        now: Callable[[], datetime] | None = None,
        audit_keys: Callable[[], AuditKeys] | None = None,
    ):
        self.table_name = table_name
        self._dynamodb = dynamodb
        self._now = now or (lambda: datetime.now(UTC))
        self._audit_keys = audit_keys

    def audit_keys(self) -> AuditKeys:
        """The keys audit entries are signed and verified with (Secrets Manager, cached, unless injected).

        Raises:
            ConfigurationError: no audit key secret, or a malformed one.
        """
        if self._audit_keys is None:
            from refundflow.adapters.audit_keys import audit_keys_from_secret

            self._audit_keys = audit_keys_from_secret
        return self._audit_keys()

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws_client("dynamodb")
        return self._dynamodb

    # ------------------------------------------------------------------ calls

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return call_dynamodb(self.dynamodb, operation, **kwargs)

    def _transact(self, items: Sequence[TransactItem], token: str | None = None) -> None:
        transact(self.dynamodb, items, token)

    # ------------------------------------------------------------------ refunds

    @staticmethod
    def _state_item(refund: Refund) -> dict[str, Any]:
        """The ``STATE`` item: what changes over the refund's life, kept small (every status change
        rewrites it in a transaction, billed per started KB: a straight-through refund's stays under 1 KB up to
        ``REFUNDED``), plus the keys of its indexes.

        Every index key is stable between status changes, and every index projects only keys or attributes
        that never change (template.yaml), so a write re-puts no index entry unless it changes the status into
        or out of ``INDEXED_STATUSES`` (by-status), or records the provider refund id (by-provider-refund).
        by-status's sort key is the moment the refund entered its status (``status_since``)."""
        # Only what differs from the model's defaults, at every level (zero counters, nulls inside maps, empty
        # lists and maps, a credit note's default kind and state): the model restores them on read, and items
        # stored with them read the same. Nothing a condition, a projection or an index reads has a default.
        document = refund.model_dump(mode="json", include=_STATE_FIELDS, exclude_defaults=True)
        if document.get("policy"):
            document["policy"].pop("explanation", None)  # kept in the policy's audit entry
        created = _moment(refund.created_at)
        indexed = refund.status in INDEXED_STATUSES
        since = _moment(refund.status_since or refund.updated_at)
        index = {
            "pk": f"REFUND#{refund.refund_id}",
            "sk": "STATE",
            "gsi1pk": f"STATUS#{refund.status.value}" if indexed else None,
            "gsi1sk": f"{since}#{refund.refund_id}" if indexed else None,
            "gsi2pk": f"PAYMENT#{refund.payment.provider.value}#{refund.payment.payment_id}",
            "gsi2sk": f"{created}#{refund.refund_id}",
            # A split-tender leg is not one of the customer's refunds (its parent is): velocity never sees it.
            "gsi4pk": f"CUSTOMER#{customer_key(refund.customer.email)}" if refund.parent_refund_id is None else None,
            "gsi4sk": f"{created}#{refund.refund_id}" if refund.parent_refund_id is None else None,
            "gsi5pk": provider_refund_key(refund.provider_refund_id) if refund.provider_refund_id else None,
            "gsi5sk": refund.refund_id if refund.provider_refund_id else None,
            "entity": "refund",
            # What the refund contributes is in its customer's velocity counters (refunds stored before the
            # counters existed lack this until their next write, or ``count_in_velocity``, adds them).
            VELOCITY_COUNTED: True,
        }
        return _to_item({**document, **index})

    @staticmethod
    def _request_item(refund: Refund) -> dict[str, Any]:
        """The ``REQUEST`` item: what was asked for, written once when the refund is created. (It carried the keys
        of a by-ticket index that nothing read; the index is gone.)"""
        document = refund.model_dump(mode="json", include=_REQUEST_FIELDS)
        _drop_empty(document, _SPLIT_ONLY_FIELDS)
        index = {"pk": f"REFUND#{refund.refund_id}", "sk": "REQUEST", "entity": "refund_request"}
        return _to_item({**document, **index})

    @staticmethod
    def _refund_from(items: Iterable[dict[str, Any]]) -> Refund:
        values: dict[str, Any] = {}
        for item in sorted(items, key=lambda item: item["sk"]["S"]):  # REQUEST first, STATE wins
            values.update(_from_item(item))
        if values.get("gsi1sk"):  # by-status's sort key: <the moment the refund entered its status>#<refund id>
            values["status_since"] = str(values["gsi1sk"]).split("#", 1)[0]
        return Refund.model_validate({key: values[key] for key in Refund.model_fields if key in values})

    def _audit_entry(
        self,
        refund: Refund,
        *,
        entry_type: str,
        actor: str,
        at: datetime,
        from_status: RefundStatus | None,
        details: dict[str, Any],
    ) -> AuditEntry:
        prev_hash = refund.audit_head or GENESIS_HASH
        fields = {
            "refund_id": refund.refund_id,
            "seq": refund.audit_seq + 1,
            "at": at,
            "type": entry_type,
            "actor": actor,
            "from_status": from_status,
            "to_status": refund.status,
            "details": details,
            "prev_hash": prev_hash,
        }
        return self.audit_keys().seal(fields)

    def _entry_put(self, entry: AuditEntry) -> TransactItem:
        document = entry.model_dump(mode="json")
        return TransactItem(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _to_item(
                        {
                            **document,
                            "pk": f"AUDIT#{entry.refund_id}",
                            "sk": f"EVENT#{document['at']}#{entry.seq:06d}",
                            "entity": "audit",
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            lambda: ConcurrentModification("audit entry already written"),
        )

    def _timestamp(self, refund: Refund | None) -> datetime:
        now = self._now()
        # Audit timestamps never go backwards, even across Lambdas with skewed clocks.
        if refund is not None and refund.updated_at >= now:
            return refund.updated_at + timedelta(milliseconds=1)
        return now

    @staticmethod
    def _status_since(before: Refund | None, to: RefundStatus, at: datetime) -> datetime | None:
        """When a refund written at ``at`` in status ``to`` entered it, as the store keeps it: only for the
        statuses the by-status index holds (its sort key), unchanged by a write that keeps the status."""
        if to not in INDEXED_STATUSES:
            return None
        if before is not None and before.status is to:
            # A refund read without the moment (stored by code that keyed the index by its last change): that change.
            return before.status_since or before.updated_at
        return at

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
    ) -> CreateOutcome:
        """Store a new refund with its first audit entry (``entry_type``), the delivery's first-seen marker
        and ``extra`` items, in one transaction; ``then``: status changes (and notes) made in the same write, one
        audit entry each, chained after the first as if written one by one (``transition_through``).

        A delivery seen before, or a refund that already exists, returns the stored refund with
        ``created=False``: nothing is written twice. A refund created with a provider refund id claims it:
        if another refund already holds that id, ``ProviderRefundClaimed`` is raised and nothing is written.

        ``request_stored``: the refund's ``REQUEST`` item is there already (the request intake wrote it with the
        delivery's marker, :meth:`find_refund_or_request` read it back); the refund keeps its ``created_at``, the
        moment the request was stored.
        """
        at = self._timestamp(None)
        draft = refund.model_copy(
            update={
                "created_at": refund.created_at if request_stored else at,
                "updated_at": at,
                "status_since": self._status_since(None, refund.status, at),
                "version": 1,
                "audit_seq": 0,
            }
        )
        entry = self._audit_entry(
            draft, entry_type=entry_type, actor=actor, at=at, from_status=None, details=details or {}
        )
        created = draft.model_copy(update={"audit_seq": 1, "audit_head": entry.hash, "status_seq": 1})
        moved = self._chain(created, self._steps(created, then))
        stored = moved[-1].refund if moved else created
        # The delivery marker goes first: when both conditions fail, a redelivery is what happened.
        items = [self._delivery_marker(delivery[0], delivery[1], refund.refund_id, at)] if delivery else []
        items += [
            TransactItem(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._state_item(stored),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                lambda: _RefundExists(),
            ),
            *(
                []
                if request_stored
                else [
                    TransactItem(
                        {
                            "Put": {
                                "TableName": self.table_name,
                                "Item": self._request_item(stored),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        lambda: _RefundExists(),
                    )
                ]
            ),
            self._entry_put(entry),
            *(self._entry_put(change.entry) for change in moved),
        ]
        if stored.provider_refund_id:
            items.append(self._provider_refund_put(stored, claim=True))
        counted = self._velocity_update(None, stored)
        items += [counted] if counted else []
        items += [_own(item) for item in extra]
        try:
            self._transact(items)
        except DeliverySeen:
            assert delivery is not None
            first_refund_id = self.delivery_refund_id(*delivery)
            if first_refund_id != refund.refund_id:
                raise IdempotencyConflict(
                    f"delivery id {delivery[1]} was already used for another refund request"
                ) from None
            return CreateOutcome(self.get(refund.refund_id), created=False, duplicate_delivery=True)
        except _RefundExists:
            if delivery is not None:
                self.mark_delivery(delivery[0], delivery[1], refund.refund_id)
            return CreateOutcome(self.get(refund.refund_id), created=False, duplicate_delivery=False)
        written = (created, *(change.refund for change in moved))
        return CreateOutcome(stored, created=True, duplicate_delivery=False, written=written)

    def get(self, refund_id: str) -> Refund:
        """Raises: NotFound."""
        found = self.find(refund_id)
        if found is None:
            raise NotFound(f"refund {refund_id} does not exist")
        return found

    def find(self, refund_id: str) -> Refund | None:
        items = self._refund_items(refund_id)
        if not any(item["sk"]["S"] == "STATE" for item in items):
            return None
        return self._refund_from(items)

    def find_refund_or_request(self, refund_id: str) -> Refund | RequestedRefund | None:
        """The refund, else the request the request intake stored for it (``refundflow.request_intake``) as the
        RECEIVED refund it becomes, with what intake verified: from one read, so that a reader never misses a
        refund created between two. (A stored request the models refuse is a fault of intake's, never an answer:
        the model's error is raised, the execution fails and alarms.)"""
        items = self._refund_items(refund_id)
        if any(item["sk"]["S"] == "STATE" for item in items):
            return self._refund_from(items)
        return self._requested_from(items[0]) if items else None

    def _refund_items(self, refund_id: str) -> list[dict[str, Any]]:
        # REQUEST and STATE are the only items of a refund whose sort keys lie between those two.
        response = self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :request AND :state",
            ExpressionAttributeValues=_to_item(
                {":pk": f"REFUND#{refund_id}", ":request": "REQUEST", ":state": "STATE"}
            ),
            ConsistentRead=True,
        )
        return list(response.get("Items", []))

    @staticmethod
    def _requested_from(item: dict[str, Any]) -> RequestedRefund:
        values = _from_item(item)
        fields = {key: values[key] for key in Refund.model_fields if key in values}
        # No audit entry yet: its trail is the empty chain (verified intact with no entries).
        fields.update(status=RefundStatus.RECEIVED, version=1, updated_at=values["created_at"], audit_head=GENESIS_HASH)
        refund = Refund.model_validate(fields)
        return RequestedRefund(
            refund=refund,
            delivery_id=str(values.get("delivery_id", "")),
            verified_source=str(values.get("verified_source", refund.source.system)),
        )

    def transition(
        self,
        refund: Refund,
        to: RefundStatus,
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        changes: dict[str, Any] | None = None,
        extra: Iterable[StoreWrite] = (),
    ) -> Change:
        """Move ``refund`` to ``to`` atomically with its audit entry and ``extra`` items.

        Raises:
            IllegalTransition: the state model does not allow this change.
            ConcurrentModification: the refund changed since it was read.
            GuardUnavailable, TransientError: the store could not be written.
        """
        if not can_transition(refund.status, to):
            raise IllegalTransition(f"{refund.refund_id}: {refund.status} -> {to} is not allowed")
        return self._write(
            refund, to, f"StatusChanged:{to.value}", actor, details or {}, changes or {}, extra, status_change=True
        )

    def record(
        self,
        refund: Refund,
        entry_type: str,
        *,
        actor: str,
        details: dict[str, Any] | None = None,
        changes: dict[str, Any] | None = None,
        extra: Iterable[StoreWrite] = (),
    ) -> Change:
        """Append an audit entry (and apply ``changes``) without changing the status."""
        return self._write(refund, refund.status, entry_type, actor, details or {}, changes or {}, extra)

    def transition_through(
        self, refund: Refund, moves: Sequence[StatusMove], *, extra: Iterable[StoreWrite] = ()
    ) -> list[Change]:
        """Several status changes in one transaction: the STATE item as after the last move and one audit entry
        per move, chained as if written one by one (one STATE write and one index update instead of one per move).

        Raises:
            IllegalTransition: the state model does not allow one of the changes.
            ConcurrentModification, GuardUnavailable, TransientError: as ``transition``.
        """
        return self._write_steps(refund, self._steps(refund, moves), extra)

    @staticmethod
    def _steps(refund: Refund, moves: Sequence[StatusMove]) -> list[_Step]:
        """The audit entries of ``moves`` from ``refund``'s status. Raises IllegalTransition."""
        steps = []
        status = refund.status
        for move in moves:
            if move.note is not None:
                if move.to is not status:
                    raise IllegalTransition(f"{refund.refund_id}: a note keeps the status {status}, not {move.to}")
                steps.append(_Step(status, move.note, move.actor, move.details, move.changes, False))
                continue
            if not can_transition(status, move.to):
                raise IllegalTransition(f"{refund.refund_id}: {status} -> {move.to} is not allowed")
            steps.append(_Step(move.to, f"StatusChanged:{move.to.value}", move.actor, move.details, move.changes, True))
            status = move.to
        return steps

    def _write(
        self,
        refund: Refund,
        to: RefundStatus,
        entry_type: str,
        actor: str,
        details: dict[str, Any],
        changes: dict[str, Any],
        extra: Iterable[StoreWrite],
        *,
        status_change: bool = False,
    ) -> Change:
        (change,) = self._write_steps(refund, [_Step(to, entry_type, actor, details, changes, status_change)], extra)
        return change

    def _chain(self, refund: Refund, steps: Sequence[_Step]) -> list[Change]:
        """``refund`` as after each of ``steps``, with its audit entry chained to the one before: one write's worth
        (every step's version is the one after ``refund``'s)."""
        changes: list[Change] = []
        current = refund
        for step in steps:
            frozen = set(step.changes) - _STATE_FIELDS
            if frozen:
                raise IllegalTransition(
                    f"{refund.refund_id}: {sorted(frozen)} were fixed when the refund was requested"
                )
            at = self._timestamp(current)
            moved = current.evolve(
                **step.changes, status=step.to, updated_at=at, status_since=self._status_since(current, step.to, at)
            )
            entry = self._audit_entry(
                moved,
                entry_type=step.entry_type,
                actor=step.actor,
                at=at,
                from_status=current.status,
                details=step.details,
            )
            current = moved.evolve(
                version=refund.version + 1,
                audit_seq=entry.seq,
                audit_head=entry.hash,
                status_seq=entry.seq if step.status_change else current.status_seq,
            )
            changes.append(Change(current, entry))
        return changes

    def _write_steps(self, refund: Refund, steps: Sequence[_Step], extra: Iterable[StoreWrite]) -> list[Change]:
        """The STATE item as after ``steps``, conditioned on the version read, and one audit entry per step, in one
        transaction with ``extra``."""
        changes = self._chain(refund, steps)
        stored = changes[-1].refund
        entries = [self._entry_put(change.entry) for change in changes]
        renamed = stored.provider_refund_id and stored.provider_refund_id != refund.provider_refund_id
        named = [self._provider_refund_put(stored)] if renamed else []
        extras = [_own(item) for item in extra]
        counted = self._velocity_update(refund, stored)
        try:
            self._transact(
                [self._state_put(stored, refund, counted=True), *entries, *named]
                + ([counted] if counted else [])
                + extras
            )
        except _StateChanged:
            if not self._stored_before_counters(refund):
                raise ConcurrentModification(
                    f"refund {refund.refund_id} changed since version {refund.version}"
                ) from None
            # Stored before the velocity counters existed: it joins them now, with what it contributes after.
            joined = self._velocity_update(None, stored)
            try:
                self._transact(
                    [self._state_put(stored, refund, counted=False), *entries, *named]
                    + ([joined] if joined else [])
                    + extras
                )
            except _StateChanged:
                raise ConcurrentModification(
                    f"refund {refund.refund_id} changed since version {refund.version}"
                ) from None
        return changes

    def _state_put(self, stored: Refund, read: Refund, *, counted: bool) -> TransactItem:
        """The new STATE item, conditioned on the version ``read`` and on whether that version is in the
        velocity counters (``counted``) or was stored before they existed."""
        marker = f"attribute_exists({VELOCITY_COUNTED})" if counted else f"attribute_not_exists({VELOCITY_COUNTED})"
        return TransactItem(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._state_item(stored),
                    "ConditionExpression": f"version = :version AND {marker}",
                    "ExpressionAttributeValues": _to_item({":version": read.version}),
                }
            },
            lambda: _StateChanged(),
        )

    def _stored_before_counters(self, refund: Refund) -> bool:
        """Whether the STATE item is still the version ``refund`` was read at, stored before the counters.

        A Query on the one key, as ``find`` reads the refund: every function that changes a refund may Query the
        table, not all may GetItem (ValidateRefund's IAM), and it costs the same read unit."""
        items = self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk = :state",
            ExpressionAttributeValues=_to_item({":pk": f"REFUND#{refund.refund_id}", ":state": "STATE"}),
            ConsistentRead=True,
        ).get("Items", [])
        if not items:
            return False
        item = items[0]
        return int(item["version"]["N"]) == refund.version and VELOCITY_COUNTED not in item

    def count_in_velocity(self, refund: Refund) -> bool:
        """Add a refund stored before the velocity counters existed to them (a one-off backfill over old refunds
        that are never written again): its STATE item is marked in the same transaction, conditioned on the
        version read, so it is counted exactly once. False when it was counted already (or changed meanwhile:
        its write then counted it)."""
        if not self._stored_before_counters(refund):
            return False
        joined = self._velocity_update(None, refund)
        try:
            self._transact([self._state_put(refund, refund, counted=False), *([joined] if joined else [])])
        except _StateChanged:
            return False
        return True

    def _provider_refund_put(self, refund: Refund, *, claim: bool = False) -> TransactItem:
        """The item naming ``refund`` under its provider refund id (written when the id is recorded). ``claim``:
        only if no refund holds the id yet (a refund recorded from the provider's news, never one of ours)."""
        assert refund.provider_refund_id is not None
        item = {
            "pk": provider_refund_key(refund.provider_refund_id),
            "sk": PROVIDER_REFUND_SK,
            "refund_id": refund.refund_id,
            "entity": "provider_refund",
        }
        put: dict[str, Any] = {"TableName": self.table_name, "Item": _to_item(item)}
        if claim:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
            return TransactItem(
                {"Put": put}, lambda: ProviderRefundClaimed(f"provider refund {refund.provider_refund_id} is taken")
            )
        return TransactItem(
            {"Put": put}, lambda: ConcurrentModification(f"provider refund id {refund.provider_refund_id}")
        )

    def provider_refund_owner(self, provider_refund_id: str) -> str | None:
        """The refund that holds ``provider_refund_id`` (a consistent read of the item naming it), or None."""
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_to_item({"pk": provider_refund_key(provider_refund_id), "sk": PROVIDER_REFUND_SK}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return str(_from_item(item)["refund_id"]) if item else None

    def timeline(self, refund_id: str) -> list[AuditEntry]:
        return self.audit_trail(refund_id)[0]

    def audit_trail(self, refund_id: str) -> tuple[list[AuditEntry], int | None]:
        """The refund's audit entries in order, and the first sequence number stored in its ``AUDIT#``
        partition (from there on every entry must be keyed: only the keyed scheme writes there).

        One Query on ``AUDIT#<id>``, plus the refund's own partition when the trail began before audit entries
        moved (its first entries are still under ``REFUND#``)."""
        keyed_partition = self._entries(f"AUDIT#{refund_id}")
        entries = list(keyed_partition)
        if not any(entry.seq == 1 for entry in entries):
            entries += self._entries(f"REFUND#{refund_id}")
        first_keyed = min((entry.seq for entry in keyed_partition), default=None)
        return sorted(entries, key=lambda entry: entry.seq), first_keyed

    def _entries(self, partition: str) -> list[AuditEntry]:
        entries: list[AuditEntry] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _to_item({":pk": partition, ":prefix": "EVENT#"}),
            "ConsistentRead": True,
        }
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                values = _from_item(item)
                entries.append(
                    AuditEntry.model_validate({k: values[k] for k in AuditEntry.model_fields if k in values})
                )
            if "LastEvaluatedKey" not in response:
                return entries
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _refunds(self, entries: Iterable[dict[str, Any]]) -> list[Refund]:
        """The refunds of index entries (each read in full, consistently; an entry names its refund by ``pk``)."""
        refunds = [self.find(refund_id) for refund_id in dict.fromkeys(refund_id_of(item) for item in entries)]
        return [refund for refund in refunds if refund is not None]

    def list_by_status(self, status: RefundStatus, limit: int = 50) -> list[Refund]:
        """Up to ``limit`` refunds in ``status``: the newest arrivals in it from the by-status index, or, for a
        status that index leaves out (``INDEXED_STATUSES``), the first found by a paginated Scan of the table
        (every item read: for tools and tests, never for the workflow)."""
        if status not in INDEXED_STATUSES:
            return self._refunds(self._scan_for_status(status, limit))
        response = self._call(
            "query",
            TableName=self.table_name,
            IndexName="by-status",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues=_to_item({":pk": f"STATUS#{status.value}"}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return self._refunds(response.get("Items", []))

    def _scan_for_status(self, status: RefundStatus, limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "sk = :state AND #status = :status",
            "ProjectionExpression": "pk",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _to_item({":state": "STATE", ":status": status.value}),
        }
        while len(found) < limit:
            response = self._call("scan", **kwargs)
            found += response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found[:limit]

    def status_queue(self, status: RefundStatus) -> StatusQueue:
        """Every page of the status's partition of the by-status index, reading only ``created_at``."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by-status",
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": _to_item({":pk": f"STATUS#{status.value}"}),
            "ProjectionExpression": "#created",
            "ExpressionAttributeNames": {"#created": "created_at"},
        }
        count = 0
        oldest: datetime | None = None
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                created = datetime.fromisoformat(str(_from_item(item)["created_at"]).replace("Z", "+00:00"))
                count += 1
                oldest = created if oldest is None or created < oldest else oldest
            if "LastEvaluatedKey" not in response:
                return StatusQueue(status=status, count=count, oldest_created_at=oldest)
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # ------------------------------------------------------------------ customer velocity

    @staticmethod
    def _velocity_key(email: str, day: date) -> dict[str, Any]:
        return _to_item({"pk": f"CUSTOMER#{customer_key(email)}", "sk": f"DAY#{day.isoformat()}"})

    def _velocity_update(self, before: Refund | None, after: Refund) -> TransactItem | None:
        """The change of the customer's day counter that a refund's write makes (None when it changes nothing):
        what the refund contributes after the write less what it contributed before. It goes into the write's
        own transaction, conditioned on the refund's version, so a retried write never counts twice."""
        old = VelocityContribution.of(before) if before is not None else None
        new = VelocityContribution.of(after)
        if old == new:
            return None
        day = (new or old).day  # type: ignore[union-attr]  # one of them is set: they differ
        count = (1 if new else 0) - (1 if old else 0)
        amounts: dict[str, int] = {}
        for contribution, sign in ((old, -1), (new, 1)):
            if contribution is not None:
                currency = contribution.amount.currency
                amounts[currency] = amounts.get(currency, 0) + sign * contribution.amount.minor_units
        names = {f"#a{index}": f"{_VELOCITY_AMOUNT_PREFIX}{currency}" for index, currency in enumerate(amounts)}
        values = {f":a{index}": delta for index, delta in enumerate(amounts.values())}
        adds = ", ".join(["#refunds :count", *(f"{name} {name.replace('#', ':')}" for name in names)])
        expires = int(datetime.combine(day, datetime.min.time(), UTC).timestamp() + VELOCITY_RETENTION.total_seconds())
        return TransactItem(
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._velocity_key(after.customer.email, day),
                    "UpdateExpression": f"ADD {adds} SET #entity = :entity, #expires = :expires",
                    "ExpressionAttributeNames": {
                        "#refunds": "refunds",
                        "#entity": "entity",
                        "#expires": "expires_at",
                        **names,
                    },
                    "ExpressionAttributeValues": _to_item(
                        {":count": count, ":entity": "velocity_day", ":expires": expires, **values}
                    ),
                }
            }
        )

    def velocity_days(self, email: str, first: date, last: date) -> list[VelocityDay]:
        """The customer's day counters from ``first`` to ``last`` (UTC days; days without refunds are absent):
        one Query on the customer's partition, eventually consistent like the index it replaces. At most one
        small item a day, so its cost is bounded by the span, not by how many refunds the customer had."""
        days: list[VelocityDay] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": _to_item(
                {
                    ":pk": f"CUSTOMER#{customer_key(email)}",
                    ":first": f"DAY#{first.isoformat()}",
                    ":last": f"DAY#{last.isoformat()}",
                }
            ),
        }
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                values = _from_item(item)
                days.append(
                    VelocityDay(
                        day=date.fromisoformat(str(values["sk"]).removeprefix("DAY#")),
                        # Refunds stored before the counters existed never added to them: never below zero.
                        count=max(0, int(values.get("refunds", 0))),
                        amounts={
                            name.removeprefix(_VELOCITY_AMOUNT_PREFIX): int(value)
                            for name, value in values.items()
                            if name.startswith(_VELOCITY_AMOUNT_PREFIX) and int(value)
                        },
                    )
                )
            if "LastEvaluatedKey" not in response:
                return days
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def customer_history(self, email: str, since: datetime) -> list[CustomerRefundSummary]:
        """The customer's refunds created at or after ``since``, from the index alone: status, amount and time
        are on the STATE item. (The workflow reads counters instead: ``velocity_days``, ``customer_refunds_on``.)"""
        # Sort keys hold UTC with "Z" and, when non-zero, microseconds: compare in UTC with all six
        # fraction digits ("." sorts before "Z", so a bare second would skip that second's refunds).
        moment = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)
        return self._customer_refunds(email, "gsi4sk >= :since", {":since": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})

    def customer_refunds_on(self, email: str, day: date) -> list[CustomerRefundSummary]:
        """The customer's refunds created on ``day`` (UTC), one by one, from the index: what a velocity window
        that starts or ends inside that day needs."""
        # Every sort key of the day starts with "<day>T" and a digit: all of them lie between these two.
        return self._customer_refunds(
            email, "gsi4sk BETWEEN :first AND :last", {":first": f"{day.isoformat()}T", ":last": f"{day.isoformat()}T~"}
        )

    def _customer_refunds(self, email: str, condition: str, values: dict[str, str]) -> list[CustomerRefundSummary]:
        """The by-customer index projects keys only (its entries never change after the refund's creation): the
        refunds it names are read from their STATE items (BatchGetItem, eventually consistent like the index)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by-customer",
            "KeyConditionExpression": f"gsi4pk = :pk AND {condition}",
            "ExpressionAttributeValues": _to_item({":pk": f"CUSTOMER#{customer_key(email)}", **values}),
        }
        refund_ids = self._index_refund_ids(kwargs)
        states = self._states(refund_ids, "refund_id, #status, created_at, amount, requested_amount", consistent=False)
        summaries: list[CustomerRefundSummary] = []
        for refund_id in refund_ids:
            fields = states.get(refund_id)
            amount = (fields.get("amount") or fields.get("requested_amount")) if fields else None
            if fields is None or amount is None:
                continue  # gone, or asked for "everything left" and not looked up yet: no amount to count
            summaries.append(
                CustomerRefundSummary(
                    refund_id=refund_id,
                    status=fields["status"],
                    created_at=fields["created_at"],
                    amount=Money.model_validate(amount),
                )
            )
        return summaries

    def _index_refund_ids(self, query: dict[str, Any]) -> list[str]:
        """The refunds an index Query names, in its order, every page followed."""
        refund_ids: list[str] = []
        kwargs = dict(query)
        while True:
            response = self._call("query", **kwargs)
            refund_ids += [refund_id_of(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return list(dict.fromkeys(refund_ids))
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _states(self, refund_ids: Iterable[str], projection: str, *, consistent: bool) -> dict[str, dict[str, Any]]:
        """The named attributes of the refunds' STATE items (BatchGetItem), by refund id; missing refunds absent."""
        keys = [{"pk": f"REFUND#{refund_id}", "sk": "STATE"} for refund_id in dict.fromkeys(refund_ids)]
        return {str(values["refund_id"]): values for values in self._batch_get(keys, projection, consistent=consistent)}

    # ------------------------------------------------------------------ refundable balances

    @staticmethod
    def _balance_key(provider: PaymentProvider, payment_id: str) -> dict[str, Any]:
        return _to_item({"pk": f"PAYMENT#{provider.value}#{payment_id}", "sk": "REFUNDABLE"})

    def get_balance(self, provider: PaymentProvider, payment_id: str) -> RefundableBalance | None:
        response = self._call(
            "get_item", TableName=self.table_name, Key=self._balance_key(provider, payment_id), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        values = _from_item(item)
        currency = values["currency"]
        return RefundableBalance(
            provider=provider,
            payment_id=payment_id,
            captured=Money.of(values["captured"], currency),
            refunded=Money.of(values["refunded"], currency),
            reserved=Money.of(values["reserved"], currency),
            remaining=Money.of(values["remaining"], currency),
        )

    def open_balance(self, payment: ProviderPayment) -> RefundableBalance:
        """The payment's balance, created from the provider's figures the first time it is seen.

        Refunds made at the provider outside refundflow before that moment are not refundable again.
        """
        existing = self.get_balance(payment.provider, payment.payment_id)
        if existing is not None:
            return existing
        remaining = max(payment.captured.minor_units - payment.refunded.minor_units, 0)
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item=_to_item(
                    {
                        "pk": f"PAYMENT#{payment.provider.value}#{payment.payment_id}",
                        "sk": "REFUNDABLE",
                        "entity": "balance",
                        "currency": payment.captured.currency,
                        "captured": payment.captured.minor_units,
                        "refunded": payment.refunded.minor_units,
                        "reserved": 0,
                        "remaining": remaining,
                        "outside": payment.refunded.minor_units,
                        "opened_at": self._now().isoformat(),
                    }
                ),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError:  # opened concurrently: the stored figures win
            balance = self.get_balance(payment.provider, payment.payment_id)
            assert balance is not None
            return balance
        # Stored as put (no read back: a consistent read unit per new payment).
        currency = payment.captured.currency
        return RefundableBalance(
            provider=payment.provider,
            payment_id=payment.payment_id,
            captured=payment.captured,
            refunded=payment.refunded,
            reserved=Money.of(0, currency),
            remaining=Money.of(remaining, currency),
        )

    def record_payment_news(self, payment: ProviderPayment) -> RefundableBalance:
        """Open the balance from a platform's payment news, or raise its captured amount to the news (under a
        condition on the value read); then bound ``remaining`` by what the news counts as refunded.

        Raises:
            ConcurrentModification: the balance kept changing while it was being updated.
        """
        for _ in range(5):
            balance = self.open_balance(payment)
            if balance.captured.currency != payment.captured.currency:
                return balance  # a look-up refuses the currency mismatch
            missing = payment.captured.minor_units - balance.captured.minor_units
            if missing <= 0:
                # Older news of a smaller capture changes nothing; its refunded count still bounds what is left.
                return self.limit_to_provider(payment.model_copy(update={"captured": balance.captured}))
            try:
                self._call(
                    "update_item",
                    TableName=self.table_name,
                    Key=self._balance_key(payment.provider, payment.payment_id),
                    UpdateExpression="SET captured = captured + :missing, remaining = remaining + :missing",
                    ConditionExpression="captured = :seen AND currency = :currency",
                    ExpressionAttributeValues=_to_item(
                        {
                            ":missing": missing,
                            ":seen": balance.captured.minor_units,
                            ":currency": balance.captured.currency,
                        }
                    ),
                )
            except ClientError:
                continue
        raise ConcurrentModification(f"balance of {payment.provider}/{payment.payment_id} kept changing")

    def limit_to_provider(self, payment: ProviderPayment) -> RefundableBalance:
        """The payment's balance (opened if new), never above what the provider still holds.

        ``captured - refunded at the provider`` bounds what anyone can still refund. When less is left
        there than ``remaining`` says, the difference was refunded outside refundflow: it moves from
        ``remaining`` to ``refunded`` (under a condition on the value read, so concurrent look-ups
        count it once). Our own refunds in flight are counted by the provider too, which can only make
        the bound higher than what is truly left, never lower.

        Raises:
            ConcurrentModification: the balance kept changing while it was being limited.
        """
        for _ in range(5):
            balance = self.open_balance(payment)
            ceiling = max(payment.captured.minor_units - payment.refunded.minor_units, 0)
            excess = balance.remaining.minor_units - ceiling
            if excess <= 0:
                return balance
            try:
                self._call(
                    "update_item",
                    TableName=self.table_name,
                    Key=self._balance_key(payment.provider, payment.payment_id),
                    UpdateExpression="SET remaining = :ceiling, refunded = refunded + :excess, "
                    "outside = if_not_exists(outside, :zero) + :excess",
                    ConditionExpression="remaining = :seen AND currency = :currency",
                    ExpressionAttributeValues=_to_item(
                        {
                            ":ceiling": ceiling,
                            ":excess": excess,
                            ":zero": 0,
                            ":seen": balance.remaining.minor_units,
                            ":currency": balance.captured.currency,
                        }
                    ),
                )
            except ClientError:
                continue  # changed since read: read again
        raise ConcurrentModification(f"balance of {payment.provider}/{payment.payment_id} kept changing")

    def count_external_refund(self, refund: Refund, amount: Money, *, held: bool) -> TransactItem:
        """The write that counts a refund made outside refundflow on its payment's balance, for the transaction
        that records it (so it is counted exactly once): ``held`` (pending at the provider) moves ``amount`` to
        ``reserved``, otherwise to ``refunded``.

        What a look-up already counted as refunded outside (``outside``: the provider's refunded figure when the
        balance opened, and any excess ``limit_to_provider`` found since) is taken first, so a refund seen by
        both is counted once; the rest comes out of ``remaining``, which may go below zero while a refund of
        ours holds a reservation the provider can no longer honour (its failure gives it back). Without a
        balance (refundflow never looked the payment up) nothing is counted now: the look-up that opens it reads
        the provider's figures, which hold the refund; the write then checks that no balance appeared meanwhile.
        The write is conditioned on the figures read: ``ConcurrentModification`` if they changed.
        """
        key = self._balance_key(refund.payment.provider, refund.payment.payment_id)
        item = self._call("get_item", TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
        changed = lambda: ConcurrentModification(  # noqa: E731
            f"balance of {refund.payment.provider}/{refund.payment.payment_id} changed"
        )
        if not item:
            return TransactItem(
                {
                    "ConditionCheck": {
                        "TableName": self.table_name,
                        "Key": key,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                changed,
            )
        seen = _from_item(item)
        if seen["currency"] != amount.currency:
            raise IllegalTransition(f"a refund in {amount.currency} on a payment in {seen['currency']}")
        figures = {name: int(seen.get(name, 0)) for name in ("outside", "remaining", "refunded", "reserved")}
        from_outside = min(figures["outside"], amount.minor_units)
        new = dict(figures)
        new["outside"] -= from_outside
        new["remaining"] -= amount.minor_units - from_outside
        if held:
            new["refunded"] -= from_outside
            new["reserved"] += amount.minor_units
        else:
            new["refunded"] += amount.minor_units - from_outside
        condition = " AND ".join(f"#{name} = :seen_{name}" for name in ("remaining", "refunded", "reserved"))
        outside = "#outside = :seen_outside" if "outside" in seen else "attribute_not_exists(#outside)"
        return TransactItem(
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": key,
                    "UpdateExpression": "SET " + ", ".join(f"#{name} = :{name}" for name in new),
                    "ConditionExpression": f"{condition} AND {outside}",
                    "ExpressionAttributeNames": {f"#{name}": name for name in new},
                    "ExpressionAttributeValues": _to_item(
                        {
                            **{f":{name}": value for name, value in new.items()},
                            **{f":seen_{name}": value for name, value in figures.items() if name in seen},
                        }
                    ),
                }
            },
            changed,
        )

    def open_refunds_for_payment(self, provider: PaymentProvider, payment_id: str) -> list[Refund]:
        """Our refunds of the payment whose provider outcome may still be open (submitted, pending, or needing a
        person), read consistently: the payment's refunds from the by-payment index (keys only: its entries
        never change after a refund's creation), the status of each from its STATE item (one consistent
        BatchGetItem, 1 read unit a refund), and one full read of each open one. A payment has few refunds;
        those long done cost one read unit each, and no index write on any of their changes."""
        refund_ids = self._index_refund_ids(self._payment_query(provider, payment_id))
        states = self._states(refund_ids, "refund_id, #status", consistent=True)
        open_ids = [
            refund_id for refund_id in refund_ids if states.get(refund_id, {}).get("status") in _OPEN_AT_PROVIDER
        ]
        refunds = [self.find(refund_id) for refund_id in open_ids]
        return [refund for refund in refunds if refund is not None and refund.status.value in _OPEN_AT_PROVIDER]

    def _payment_query(self, provider: PaymentProvider, payment_id: str) -> dict[str, Any]:
        return {
            "TableName": self.table_name,
            "IndexName": "by-payment",
            "KeyConditionExpression": "gsi2pk = :pk",
            "ExpressionAttributeValues": _to_item({":pk": f"PAYMENT#{provider.value}#{payment_id}"}),
        }

    def _balance_update(
        self, refund: Refund, expression: str, condition: str, amount: Money, error: Callable[[], RefundflowError]
    ) -> TransactItem:
        return TransactItem(
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._balance_key(refund.payment.provider, refund.payment.payment_id),
                    "UpdateExpression": expression,
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": _to_item(
                        {":amount": amount.minor_units, ":currency": amount.currency}
                    ),
                }
            },
            error,
        )

    def reserve(self, refund: Refund, amount: Money) -> TransactItem:
        """Take ``amount`` out of the remaining balance; fails if less remains (no arithmetic in
        conditions, hence ``remaining`` kept as its own attribute)."""
        return self._balance_update(
            refund,
            "SET remaining = remaining - :amount, reserved = reserved + :amount",
            "attribute_exists(pk) AND remaining >= :amount AND currency = :currency",
            amount,
            lambda: InsufficientRefundableAmount(
                f"{amount} exceeds what remains refundable on {refund.payment.provider}/{refund.payment.payment_id}"
            ),
        )

    def release(self, refund: Refund, amount: Money) -> TransactItem:
        """Give a held reservation back (exactly once: the refund's own state guards it)."""
        return self._balance_update(
            refund,
            "SET remaining = remaining + :amount, reserved = reserved - :amount",
            "reserved >= :amount AND currency = :currency",
            amount,
            lambda: IllegalTransition("releasing more than is reserved"),
        )

    def consume(self, refund: Refund, amount: Money) -> TransactItem:
        """Turn a held reservation into a refunded amount once the provider confirmed the refund."""
        return self._balance_update(
            refund,
            "SET refunded = refunded + :amount, reserved = reserved - :amount",
            "reserved >= :amount AND currency = :currency",
            amount,
            lambda: IllegalTransition("consuming more than is reserved"),
        )

    def unconsume(self, refund: Refund, amount: Money) -> TransactItem:
        """A refund that had succeeded was reversed by the provider: the amount is refundable again."""
        return self._balance_update(
            refund,
            "SET refunded = refunded - :amount, remaining = remaining + :amount",
            "refunded >= :amount AND currency = :currency",
            amount,
            lambda: IllegalTransition("reversing more than was refunded"),
        )

    def refunds_for_payment(self, provider: PaymentProvider, payment_id: str) -> list[Refund]:
        """Every refund of the payment (the by-payment index, every page), each read in full."""
        return [
            refund
            for refund in map(self.find, self._index_refund_ids(self._payment_query(provider, payment_id)))
            if refund is not None
        ]

    # ------------------------------------------------------------------ daily totals (per-day caps)

    @staticmethod
    def _daily_key(currency: str, day: date) -> dict[str, Any]:
        return _to_item({"pk": f"TOTALS#{currency}", "sk": f"DAY#{day.isoformat()}"})

    def daily_total(self, currency: str, day: date) -> Money:
        """What was reserved for refunds on ``day`` (UTC) in ``currency``, releases deducted."""
        response = self._call("get_item", TableName=self.table_name, Key=self._daily_key(currency, day))
        item = response.get("Item")
        return Money.of(int(_from_item(item).get("reserved", 0)) if item else 0, currency)

    def add_to_daily_total(self, amount: Money, day: date) -> TransactItem:
        return TransactItem(
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._daily_key(amount.currency, day),
                    "UpdateExpression": "ADD reserved :amount SET entity = :entity, expires_at = :expires",
                    "ExpressionAttributeValues": _to_item(
                        {
                            ":amount": amount.minor_units,
                            ":entity": "daily_total",
                            ":expires": int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) + 400 * 86_400,
                        }
                    ),
                }
            }
        )

    # ------------------------------------------------------------------ inbound deliveries

    def spend_once(
        self, platform: str, event_id: str, refund_id: str, error: Callable[[], RefundflowError]
    ) -> TransactItem:
        """A first-seen marker to write in the same transaction as what it guards (a single-use token):
        if the transaction fails, nothing is spent; if the marker exists, ``error`` is raised."""
        marker = self._delivery_marker(platform, event_id, refund_id, self._now())
        return TransactItem(marker.operation, error)

    def _delivery_marker(self, platform: str, event_id: str, refund_id: str, at: datetime) -> TransactItem:
        return TransactItem(
            delivery_marker_put(self.table_name, platform, event_id, refund_id, at), lambda: DeliverySeen()
        )

    def mark_delivery(self, platform: str, event_id: str, refund_id: str) -> bool:
        """Record an inbound delivery id; False if it was seen before (a redelivery or replay)."""
        return self._put_if_absent(self._delivery_marker(platform, event_id, refund_id, self._now()))

    def _put_if_absent(self, marker: TransactItem) -> bool:
        """Put a first-seen marker on its own (its condition: not there yet); False if it was there."""
        return put_if_absent(self.dynamodb, marker.operation["Put"])

    def delivery_refund_id(self, platform: str, event_id: str) -> str | None:
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_to_item({"pk": f"SOURCE#{platform}#{event_id}", "sk": "SOURCE"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return str(_from_item(item)["refund_id"]) if item else None

    # ------------------------------------------------------------------ return steps

    @staticmethod
    def _return_step_key(refund_id: str, step: ReturnStep) -> dict[str, str]:
        status, occurred = step.key
        return {"pk": f"RETURN#{refund_id}", "sk": f"STEP#{occurred.isoformat()}#{status.value}"}

    def return_step_put(self, refund_id: str, step: ReturnStep, *, noted: bool = True) -> TransactItem:
        """The step's own item in the refund's ``RETURN#`` partition (stored also before the refund exists),
        put only if absent: the same step delivered again is never written twice. ``noted``: written with its audit
        entry (:meth:`return_step_noted` then refuses to record it again)."""
        document = step.model_dump(mode="json")
        return TransactItem(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _to_item(
                        {
                            **document,
                            **self._return_step_key(refund_id, step),
                            "entity": "return_step",
                            "noted": True if noted else None,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            lambda: ReturnStepExists(f"return step {step.status.value} at {step.occurred_at} is already stored"),
        )

    def put_return_step(self, refund_id: str, step: ReturnStep) -> bool:
        return self._put_if_absent(self.return_step_put(refund_id, step, noted=False))

    def return_step_noted(self, refund_id: str, step: ReturnStep) -> TransactItem:
        return TransactItem(
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": _to_item(self._return_step_key(refund_id, step)),
                    "UpdateExpression": "SET noted = :noted",
                    "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(noted)",
                    "ExpressionAttributeValues": {":noted": {"BOOL": True}},
                }
            },
            lambda: ReturnStepExists(f"return step {step.status.value} at {step.occurred_at} is already in the trail"),
        )

    def return_steps(self, refund_id: str) -> list[ReturnStep]:
        steps: list[ReturnStep] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _to_item({":pk": f"RETURN#{refund_id}", ":prefix": "STEP#"}),
            "ConsistentRead": True,
        }
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                values = _from_item(item)
                steps.append(ReturnStep.model_validate({k: values[k] for k in ReturnStep.model_fields if k in values}))
            if "LastEvaluatedKey" not in response:
                return steps
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # ------------------------------------------------------------------ task tokens of waiting workflows

    def put_wait_token(self, refund_id: str, kind: str, token: str) -> None:
        self._call(
            "put_item",
            TableName=self.table_name,
            Item=_to_item(
                {
                    "pk": f"REFUND#{refund_id}",
                    "sk": f"WAIT#{kind}",
                    "entity": "wait",
                    "token": token,
                    "stored_at": self._now().isoformat(),
                }
            ),
        )

    def take_wait_token(self, refund_id: str, kind: str) -> str | None:
        """Remove and return the stored token: only one caller ever gets it.

        Looked for first (a consistent Query, 1 read unit): a DeleteItem of an item that is not there still costs a
        write unit, and most callers (the provider's news of a refund no workflow waits on) find none. A token put
        after the look finds the refund moved on: ``register_wait`` reads the refund after putting its token."""
        key = {":pk": f"REFUND#{refund_id}", ":sk": f"WAIT#{kind}"}
        found = self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk = :sk",
            ExpressionAttributeValues=_to_item(key),
            ConsistentRead=True,
        ).get("Items")
        if not found:
            return None
        try:
            response = self._call(
                "delete_item",
                TableName=self.table_name,
                Key=_to_item({"pk": f"REFUND#{refund_id}", "sk": f"WAIT#{kind}"}),
                ReturnValues="ALL_OLD",
            )
        except ClientError:
            return None
        item = response.get("Attributes")
        return str(_from_item(item)["token"]) if item else None

    def peek_wait_token(self, refund_id: str, kind: str) -> str | None:
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_to_item({"pk": f"REFUND#{refund_id}", "sk": f"WAIT#{kind}"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return str(_from_item(item)["token"]) if item else None

    # ------------------------------------------------------------------ reconciliation

    def refunds_by_provider_refund_id(self, provider_refund_ids: Iterable[str]) -> dict[str, ProviderRefundEntry]:
        """Our refunds whose provider refund id is one of ``provider_refund_ids``, in batches: BatchGetItem on
        the items naming each id's refund, then BatchGetItem on those refunds' ``STATE`` items (100 keys a
        request). An id with no such item (a refund recorded before they were written, or not ours) is looked
        up on the ``by-provider-refund`` index."""
        wanted = list(dict.fromkeys(provider_refund_ids))
        named = {
            str(values["pk"]).removeprefix(provider_refund_key("")): str(values["refund_id"])
            for values in self._batch_get(
                [{"pk": provider_refund_key(pid), "sk": PROVIDER_REFUND_SK} for pid in wanted], "pk, refund_id"
            )
        }
        projection = "refund_id, provider_refund_id, #status, amount, requested_amount"
        states = self._states(named.values(), projection, consistent=False)
        found: dict[str, ProviderRefundEntry] = {}
        unnamed: dict[str, list[str]] = {}
        for provider_refund_id in wanted:
            values = states.get(named.get(provider_refund_id, ""))
            if values is not None and values.get("provider_refund_id") == provider_refund_id:
                found[provider_refund_id] = _provider_refund_entry(provider_refund_id, values)
                continue
            # The index projects keys only (an entry is written once, when the id is recorded): its refunds'
            # status and amount are read from their STATE items below, in one batch for every such id.
            unnamed[provider_refund_id] = self._index_refund_ids(
                {
                    "TableName": self.table_name,
                    "IndexName": "by-provider-refund",
                    "KeyConditionExpression": "gsi5pk = :pk",
                    "ExpressionAttributeValues": _to_item({":pk": provider_refund_key(provider_refund_id)}),
                }
            )
        indexed = self._states((rid for ids in unnamed.values() for rid in ids), projection, consistent=False)
        for provider_refund_id, refund_ids in unnamed.items():
            for refund_id in refund_ids:
                values = indexed.get(refund_id)
                if values is not None and values.get("provider_refund_id") == provider_refund_id:
                    found[provider_refund_id] = _provider_refund_entry(provider_refund_id, values)
        return found

    def _batch_get(
        self, keys: list[dict[str, str]], projection: str, *, consistent: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The items of ``keys`` that exist (BatchGetItem, 100 keys a request, unprocessed keys asked again)."""
        for start in range(0, len(keys), _BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [_to_item(key) for key in keys[start : start + _BATCH_GET_KEYS]],
                    "ProjectionExpression": projection,
                    **({"ConsistentRead": True} if consistent else {}),
                    **({"ExpressionAttributeNames": {"#status": "status"}} if "#status" in projection else {}),
                }
            }
            for attempt in range(_BATCH_GET_ATTEMPTS):
                response = self._call("batch_get_item", RequestItems=request)
                yield from (_from_item(item) for item in response.get("Responses", {}).get(self.table_name, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                if attempt == _BATCH_GET_ATTEMPTS - 1:
                    raise TransientError("DynamoDB BatchGetItem left keys unprocessed", code="store_busy")
                time.sleep(0.05 * 2**attempt)

    def refunds_in_status(self, status: RefundStatus, *, updated_before: datetime) -> Iterator[Refund]:
        """Every refund that entered ``status`` before ``updated_before`` and is still in it, page by page (the
        by-status index's sort key is the moment of that change: writes that keep the status do not move it; a
        refund stored before that key existed counts from its last change). ``status`` must be one of
        ``INDEXED_STATUSES``."""
        if status not in INDEXED_STATUSES:
            raise ValueError(f"the by-status index does not hold {status.value}")
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by-status",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk < :before",
            "ExpressionAttributeValues": _to_item(
                {":pk": f"STATUS#{status.value}", ":before": _moment(updated_before)}
            ),
        }
        while True:
            response = self._call("query", **kwargs)
            yield from self._refunds(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def awaiting_acquirer_reference(self, since: datetime) -> list[AwaitedReference]:
        """The COMPLETED refunds that entered COMPLETED at or after ``since`` and have neither an ARN nor a reason
        why none will come: one Query of by-status's COMPLETED partition from ``since`` (keys only), then the
        few attributes it takes of their STATE items (BatchGetItem). Nothing is written on the way to COMPLETED
        for it: the index entry exists already (reconciliation reads it)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by-status",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk >= :since",
            "ExpressionAttributeValues": _to_item(
                {":pk": f"STATUS#{RefundStatus.COMPLETED.value}", ":since": _moment(since)}
            ),
        }
        refund_ids = self._index_refund_ids(kwargs)
        projection = "refund_id, payment, acquirer_reference, acquirer_reference_unavailable, gsi1sk, #status"
        states = self._states(refund_ids, projection, consistent=False)
        awaited: list[AwaitedReference] = []
        for refund_id in refund_ids:
            values = states.get(refund_id)
            if values is None or values.get("status") != RefundStatus.COMPLETED.value:
                continue
            if values.get("acquirer_reference") or values.get("acquirer_reference_unavailable"):
                continue
            completed = datetime.fromisoformat(str(values["gsi1sk"]).split("#", 1)[0].replace("Z", "+00:00"))
            awaited.append(
                AwaitedReference(
                    refund_id=refund_id, provider=str(values["payment"]["provider"]), completed_at=completed
                )
            )
        return awaited

    @staticmethod
    def _marker_key(key: str) -> dict[str, Any]:
        return {"pk": f"RECON#{key}", "sk": "MARKER"}

    def reconciliation_marker(self, marker: ReconciliationMarker, error: Callable[[], RefundflowError]) -> StoreWrite:
        """A first-seen marker for ``marker.key`` to write with what it records; ``error`` if it exists."""
        return self._reconciliation_marker(marker, error)

    def _reconciliation_marker(
        self, marker: ReconciliationMarker, error: Callable[[], RefundflowError]
    ) -> TransactItem:
        item = {
            **self._marker_key(marker.key),
            "entity": "reconciliation_marker",
            "file": marker.file,
            "line_no": marker.line_no,
            "match_class": marker.match_class,
            "refund_id": marker.refund_id,
            "line_key": marker.line_key,
            "recorded_at": self._now().isoformat(),
            "expires_at": int((self._now() + RECONCILIATION_MARKER_RETENTION).timestamp()),
        }
        return TransactItem(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _to_item({key: value for key, value in item.items() if value is not None}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            error,
        )

    def put_reconciliation_marker(self, marker: ReconciliationMarker) -> bool:
        """Write the marker on its own; False if one was there already."""
        return self._put_if_absent(self._reconciliation_marker(marker, DeliverySeen))

    def seen_in_settlement(self, refund_id: str) -> StoreWrite:
        at = self._now()
        item = {
            **self._marker_key(f"SEEN#{refund_id}"),
            "entity": "reconciliation_seen",
            "refund_id": refund_id,
            "recorded_at": at.isoformat(),
            "expires_at": int((at + RECONCILIATION_MARKER_RETENTION).timestamp()),
        }
        return TransactItem({"Put": {"TableName": self.table_name, "Item": _to_item(item)}})

    def was_seen_in_settlement(self, refund_id: str) -> bool:
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_to_item(self._marker_key(f"SEEN#{refund_id}")),
            ConsistentRead=True,
        )
        return bool(response.get("Item"))

    # One partition holds the payouts settlements announced (a few a day per provider account).
    _PAYOUTS = "RECON#PAYOUTS"

    def announce_payout(self, payout: AnnouncedPayout) -> None:
        item = {
            "pk": self._PAYOUTS,
            "sk": f"PAYOUT#{payout.reference}",
            "entity": "announced_payout",
            "reference": payout.reference,
            "amount": payout.amount,
            "currency": payout.currency,
            "booked_on": payout.booked_on.isoformat() if payout.booked_on else None,
            "file": payout.file,
            "expires_at": int((self._now() + RECONCILIATION_MARKER_RETENTION).timestamp()),
        }
        self._call("put_item", TableName=self.table_name, Item=_to_item(item))

    def announced_payouts(self) -> list[AnnouncedPayout]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": _to_item({":pk": self._PAYOUTS}),
            "ConsistentRead": True,
        }
        payouts: list[AnnouncedPayout] = []
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                values = _from_item(item)
                booked = values.get("booked_on")
                payouts.append(
                    AnnouncedPayout(
                        reference=str(values["reference"]),
                        amount=int(values["amount"]),
                        currency=str(values["currency"]),
                        booked_on=date.fromisoformat(str(booked)) if booked else None,
                        file=str(values["file"]),
                    )
                )
            if "LastEvaluatedKey" not in response:
                return payouts
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # One partition holds the bank lines no payout explained yet (a statement that landed before its
    # settlement); each expires after BANK_LINE_RETENTION.
    _BANK_LINES = "RECON#BANK"

    def keep_bank_line(self, line: KeptBankLine) -> None:
        item = {
            "pk": self._BANK_LINES,
            "sk": f"LINE#{line.key}",
            "entity": "kept_bank_line",
            "key": line.key,
            "file": line.file,
            "record": line.record,
            "expires_at": int((self._now() + BANK_LINE_RETENTION).timestamp()),
        }
        self._call("put_item", TableName=self.table_name, Item=_to_item(item))

    def kept_bank_lines(self) -> list[KeptBankLine]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": _to_item({":pk": self._BANK_LINES}),
            "ConsistentRead": True,
        }
        lines: list[KeptBankLine] = []
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                values = _from_item(item)
                lines.append(KeptBankLine(str(values["key"]), str(values["file"]), dict(values["record"])))
            if "LastEvaluatedKey" not in response:
                return lines
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def forget_bank_line(self, key: str) -> None:
        self._call(
            "delete_item", TableName=self.table_name, Key=_to_item({"pk": self._BANK_LINES, "sk": f"LINE#{key}"})
        )

    def announced_payout(self, reference: str) -> AnnouncedPayout | None:
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_to_item({"pk": self._PAYOUTS, "sk": f"PAYOUT#{reference}"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        values = _from_item(item)
        booked = values.get("booked_on")
        return AnnouncedPayout(
            reference=str(values["reference"]),
            amount=int(values["amount"]),
            currency=str(values["currency"]),
            booked_on=date.fromisoformat(str(booked)) if booked else None,
            file=str(values["file"]),
        )

    # A payout's lines of our refunds: one partition per payout (RECON#PAYOUT#<id>), one item per line, written in
    # the transaction that records the line on the refund.
    @staticmethod
    def _payout_partition(payout_id: str) -> str:
        return f"RECON#PAYOUT#{payout_id}"

    def payout_member(self, member: PayoutMember) -> StoreWrite:
        item = {
            "pk": self._payout_partition(member.payout_id),
            "sk": f"LINE#{member.line_key}",
            "entity": "payout_member",
            "payout_id": member.payout_id,
            "refund_id": member.refund_id,
            "line_key": member.line_key,
            "file": member.file,
            "line_no": member.line_no,
            "match_class": member.match_class,
            "amount": member.amount,
            "currency": member.currency,
            "expires_at": int((self._now() + RECONCILIATION_MARKER_RETENTION).timestamp()),
        }
        present = {key: value for key, value in item.items() if value is not None}
        return TransactItem({"Put": {"TableName": self.table_name, "Item": _to_item(present)}})

    def payout_members(
        self, payout_id: str, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[PayoutMember], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": _to_item({":pk": self._payout_partition(payout_id)}),
            "ConsistentRead": True,
            "Limit": limit,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = _to_item({"pk": self._payout_partition(payout_id), "sk": f"LINE#{after}"})
        members: list[PayoutMember] = []
        while len(members) < limit:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                values = _from_item(item)
                line_no = values.get("line_no")
                members.append(
                    PayoutMember(
                        payout_id=str(values["payout_id"]),
                        refund_id=str(values["refund_id"]),
                        line_key=str(values["line_key"]),
                        file=str(values["file"]),
                        line_no=int(line_no) if line_no is not None else None,
                        match_class=str(values["match_class"]),
                        amount=int(values["amount"]),
                        currency=str(values["currency"]),
                    )
                )
            if "LastEvaluatedKey" not in response:
                return members, None
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            kwargs["Limit"] = limit - len(members)
        return members, members[-1].line_key

    # The bank line that credited a payout, twice: in the payout's "credited" marker (RECON#payout#<id>#credited,
    # what reconciliation checks) and under the statement's file and line number (RECON#BANKLINE#<file>).
    @staticmethod
    def _credited_key(payout_id: str) -> str:
        return f"payout#{payout_id}#credited"

    @staticmethod
    def _bank_line_key(file: str, line_no: int) -> dict[str, Any]:
        return {"pk": f"RECON#BANKLINE#{file}", "sk": f"LINE#{line_no:09d}"}

    @staticmethod
    def _credit_values(credit: BankCredit) -> dict[str, Any]:
        return {
            "payout_id": credit.payout_id,
            "file": credit.file,
            "line_no": credit.line_no,
            "line_key": credit.line_key,
            "credit_class": credit.match_class,
            "amount": credit.amount,
            "currency": credit.currency,
            "direction": credit.direction,
            "booked_on": credit.booked_on.isoformat() if credit.booked_on else None,
        }

    @staticmethod
    def _credit_from(values: dict[str, Any]) -> BankCredit:
        booked = values.get("booked_on")
        return BankCredit(
            payout_id=str(values["payout_id"]),
            file=str(values["file"]),
            line_no=int(values["line_no"]),
            line_key=str(values["line_key"]),
            match_class=str(values["credit_class"]),
            amount=int(values["amount"]),
            currency=str(values["currency"]),
            direction=str(values["direction"]),
            booked_on=date.fromisoformat(str(booked)) if booked else None,
        )

    def record_bank_credit(self, credit: BankCredit) -> bool:
        # The line's look-up first, then the payout's marker (first one wins): a retry after a crash in between
        # writes both; the line of a second credit of the payout keeps its look-up too (it did carry the payout).
        expires = int((self._now() + RECONCILIATION_MARKER_RETENTION).timestamp())
        values = {key: value for key, value in self._credit_values(credit).items() if value is not None}
        line = {**self._bank_line_key(credit.file, credit.line_no), "entity": "bank_credit", "expires_at": expires}
        self._call("put_item", TableName=self.table_name, Item=_to_item({**line, **values}))
        marker = {
            **self._marker_key(self._credited_key(credit.payout_id)),
            "entity": "reconciliation_marker",
            "match_class": "credited",
            "recorded_at": self._now().isoformat(),
            "expires_at": expires,
            **values,
        }
        condition = "attribute_not_exists(pk)"
        put = {"TableName": self.table_name, "Item": _to_item(marker), "ConditionExpression": condition}
        return self._put_if_absent(TransactItem({"Put": put}, DeliverySeen))

    def bank_credit_for_payout(self, payout_id: str) -> BankCredit | None:
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_to_item(self._marker_key(self._credited_key(payout_id))),
            ConsistentRead=True,
        )
        values = _from_item(response["Item"]) if response.get("Item") else None
        # A marker written before the credit kept the bank line's details names only its file and line number.
        if values is None or "credit_class" not in values:
            return None
        return self._credit_from(values)

    def bank_credit_at(self, file: str, line_no: int) -> BankCredit | None:
        response = self._call(
            "get_item", TableName=self.table_name, Key=_to_item(self._bank_line_key(file, line_no)), ConsistentRead=True
        )
        return self._credit_from(_from_item(response["Item"])) if response.get("Item") else None

    def get_reconciliation_marker(self, key: str) -> ReconciliationMarker | None:
        response = self._call(
            "get_item", TableName=self.table_name, Key=_to_item(self._marker_key(key)), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        values = _from_item(item)
        line_no = values.get("line_no")
        return ReconciliationMarker(
            key=key,
            file=str(values["file"]),
            line_no=int(line_no) if line_no is not None else None,
            match_class=str(values["match_class"]),
            refund_id=str(values["refund_id"]) if values.get("refund_id") else None,
            line_key=str(values["line_key"]) if values.get("line_key") else None,
        )


class _StateChanged(RefundflowError):
    code = "state_changed"

    def __init__(self) -> None:
        super().__init__("the refund's state item is not the version read, or not in the velocity counters")


class _RefundExists(RefundflowError):
    code = "refund_exists"

    def __init__(self) -> None:
        super().__init__("refund exists")
