"""Fakes for the domain's ports, moto tables built from template.yaml, and test-data builders.

Fakes record what they were asked and behave like the platforms they stand in for where it matters
to the domain: the provider replays a known idempotency key, the workflow starter starts one
execution per name, a task token resumes a workflow only once.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws
from pydantic import ValidationError

from local.cfn import Stack
from refundflow.adapters.dynamodb import RefundRepository
from refundflow.api import RefundRequestBody
from refundflow.audit import AuditKeys
from refundflow.connectors.standard_webhooks import VerifiedSource
from refundflow.currencies import CurrencyProfile
from refundflow.domain.inbound import apply_news, forward_delivery
from refundflow.domain.intake import Accepted, WorkflowTiming, accept_refund_request
from refundflow.domain.payments import look_up_payment, reserve_amount
from refundflow.domain.recorder import RefundRecorder
from refundflow.domain.validation import validate_refund
from refundflow.errors import (
    AlreadyDoneError,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from refundflow.events import RefundEvent
from refundflow.ids import derive_refund_id
from refundflow.models import CreditDocument, CreditDocumentKind, PaymentProvider, PaymentReference, Refund
from refundflow.money import Money
from refundflow.ports import (
    BooksCapabilities,
    BooksConnector,
    CreditBooking,
    EventPublisher,
    IdempotencySupport,
    InboundDelivery,
    Mailer,
    NewsForwarder,
    PaymentCapabilities,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    ProviderRefundRequest,
    ProviderRefundStatus,
    RefundProvider,
    StoreCreditEntry,
    StoreCreditLedger,
    TaskCallbacks,
    WorkflowStarter,
)
from refundflow.status import RefundStatus

REGION = "us-east-1"
STACK_NAME = "refundflow-test"

# ---------------------------------------------------------------------------- DynamoDB from template.yaml


@dataclass(frozen=True)
class Tables:
    client: Any
    refunds_table: str
    idempotency_table: str


def create_tables(client: Any, stack: Stack | None = None) -> Tables:
    """Create RefundsTable and IdempotencyTable with the template's own properties."""
    stack = stack or Stack.from_template(STACK_NAME)
    for logical_id in ("RefundsTable", "IdempotencyTable"):
        properties = stack.resolve(stack.resources[logical_id]["Properties"])
        arguments = {
            key: properties[key]
            for key in (
                "AttributeDefinitions",
                "KeySchema",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "BillingMode",
            )
            if key in properties
        }
        name = stack.physical_name(logical_id)
        client.create_table(TableName=name, **arguments)
        if properties.get("TimeToLiveSpecification"):
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=properties["TimeToLiveSpecification"])
    return Tables(client, stack.physical_name("RefundsTable"), stack.physical_name("IdempotencyTable"))


@functools.cache
def _stack() -> Stack:
    return Stack.from_template(STACK_NAME)


@functools.cache
def _session() -> boto3.session.Session:
    # One session for the whole run: building a client from a fresh session costs 50-150 ms.
    return boto3.session.Session(region_name=REGION)


@contextmanager
def moto_tables() -> Iterator[Tables]:
    """In-memory DynamoDB (moto) holding the template's tables; every use starts empty."""
    with mock_aws():
        yield create_tables(_session().client("dynamodb"), _stack())


class SerializedClient:
    """A DynamoDB client whose calls run one at a time.

    DynamoDB applies each request (a TransactWriteItems included) atomically; moto's in-memory backend
    does not under threads (a failed transaction restores a snapshot of the whole table). Serialising
    each call restores the service's per-request atomicity while threads still race between their
    reads and their conditional writes, which is the race the guards exist for.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def serialized(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return serialized


class UnreachableDynamoDB:
    """A DynamoDB client for a store that cannot be reached: every call fails to connect."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def unreachable(**kwargs: Any) -> Any:
            self.calls.append(name)
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

        return unreachable


class SteppingClock:
    """A clock for the repository that can be set, and otherwise advances 1 ms per reading."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def set(self, moment: datetime) -> None:
        self.current = moment

    def __call__(self) -> datetime:
        with self._lock:
            self.current += timedelta(milliseconds=1)
            return self.current


# ---------------------------------------------------------------------------- payment provider


class Outcome(StrEnum):
    """What the fake provider does with the next ``create_refund`` call."""

    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"
    TRANSIENT = "transient"  # 503 before anything happened: nothing created
    UNKNOWN_AFTER_CREATE = "unknown_after_create"  # read timeout after the provider created the refund
    UNKNOWN_BEFORE_CREATE = "unknown_before_create"  # read timeout, the request never got processed
    ALREADY_DONE = "already_done"  # the payment is already fully refunded
    REJECTED = "rejected"  # a final 4xx


@dataclass
class ProviderCall:
    method: str
    arguments: dict[str, Any]


class Shape(StrEnum):
    """The shapes of payment platform the domain must handle (ports v2 capabilities)."""

    SYNCHRONOUS = "synchronous"  # Stripe-like: idempotency key, find by our reference, pollable
    WEBHOOK_ONLY = "webhook_only"  # Adyen-like: idempotency key, no find, outcome only by webhook
    FIND_FIRST = "find_first"  # no idempotency key: find by our reference before any resend
    VOID_FIRST = "void_first"  # Braintree-like: an unsettled payment is voided instead of refunded


def capabilities_of(shape: Shape) -> PaymentCapabilities:
    header = IdempotencySupport(carrier="header", name="Idempotency-Key", key_lifetime_hours=24)
    return {
        Shape.SYNCHRONOUS: PaymentCapabilities(idempotency=header, find_by_reference=True, outcome="pollable"),
        Shape.WEBHOOK_ONLY: PaymentCapabilities(
            idempotency=header.model_copy(update={"key_lifetime_hours": 744}),
            find_by_reference=False,
            outcome="webhook_only",
        ),
        Shape.FIND_FIRST: PaymentCapabilities(
            idempotency=IdempotencySupport(carrier="none"), find_by_reference=True, outcome="pollable"
        ),
        Shape.VOID_FIRST: PaymentCapabilities(
            idempotency=header, find_by_reference=True, outcome="pollable", void_before_settlement=True
        ),
    }[shape]


class FakeRefundProvider(RefundProvider):
    """A recording payment provider of a given ``shape``. With an idempotency key it replays a known key
    and refuses the same key with other parameters (Stripe-like); without one every create is a new refund.
    A webhook-only provider answers every create with a pending refund and cannot be polled or searched."""

    name = "stripe"
    provider = PaymentProvider.STRIPE

    def __init__(self, outcomes: list[Outcome] | None = None, *, shape: Shape = Shape.SYNCHRONOUS) -> None:
        self.shape = shape
        self._capabilities = capabilities_of(shape)
        self.outcomes: list[Outcome] = list(outcomes or [])
        self.payments: dict[str, ProviderPayment] = {}
        self.refunds: dict[str, ProviderRefund] = {}
        self.calls: list[ProviderCall] = []
        self._by_key: dict[str, tuple[ProviderRefundRequest, str]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    @property
    def capabilities(self) -> PaymentCapabilities:
        return self._capabilities

    # -------------------------------------------------------------- setup and inspection

    def add_payment(
        self,
        payment_id: str,
        captured: Money,
        refunded: Money | None = None,
        *,
        settled: bool = True,
        captured_at: datetime | None = None,
    ) -> None:
        self.payments[payment_id] = ProviderPayment(
            provider=self.provider,
            payment_id=payment_id,
            captured=captured,
            refunded=refunded or Money.zero(captured.currency),
            status="succeeded",
            settled=settled,
            captured_at=captured_at,
        )

    def calls_to(self, method: str) -> list[ProviderCall]:
        return [call for call in self.calls if call.method == method]

    @property
    def method_sequence(self) -> list[str]:
        return [call.method for call in self.calls]

    @property
    def idempotency_keys(self) -> list[str]:
        return [call.arguments["request"].idempotency_key for call in self.calls_to("create_refund")]

    def settle(
        self, provider_refund_id: str, status: ProviderRefundStatus, failure_reason: str | None = None
    ) -> ProviderRefund:
        """The refund changes state at the provider (what a later webhook or poll reports)."""
        with self._lock:
            updated = self.refunds[provider_refund_id].model_copy(
                update={"status": status, "failure_reason": failure_reason}
            )
            self.refunds[provider_refund_id] = updated
            return updated

    def only_refund(self) -> ProviderRefund:
        assert len(self.refunds) == 1, f"expected exactly one refund at the provider, found {len(self.refunds)}"
        return next(iter(self.refunds.values()))

    # -------------------------------------------------------------- the port

    def _record(self, method: str, **arguments: Any) -> None:
        self.calls.append(ProviderCall(method, arguments))

    def refund_outside(self, payment_id: str, amount: Money) -> ProviderRefund:
        """Someone refunds the payment at the provider, outside refundflow (the dashboard, another tool)."""
        with self._lock:
            made = ProviderRefund(
                provider=self.provider,
                provider_refund_id=f"re_outside_{next(self._ids):04d}",
                payment_id=payment_id,
                amount=amount,
                status=ProviderRefundStatus.SUCCEEDED,
            )
            self.refunds[made.provider_refund_id] = made
            return made

    def _refunded(self, payment_id: str) -> Money:
        """What the provider counts as refunded on the payment: every refund that did not fail, by anyone."""
        payment = self.payments[payment_id]
        live = {ProviderRefundStatus.SUCCEEDED, ProviderRefundStatus.PENDING}
        made = sum(
            refund.amount.minor_units
            for refund in self.refunds.values()
            if refund.payment_id == payment_id and refund.status in live
        )
        return Money.of(payment.refunded.minor_units + made, payment.captured.currency)

    def get_payment(self, payment: PaymentReference) -> ProviderPayment:
        with self._lock:
            payment_id = payment.payment_id
            self._record("get_payment", payment_id=payment_id)
            if payment_id not in self.payments:
                raise NotFound(f"no payment {payment_id}", platform="stripe")
            return self.payments[payment_id].model_copy(update={"refunded": self._refunded(payment_id)})

    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        with self._lock:
            self._record("create_refund", request=request)
            keyed = self._capabilities.idempotency.supported
            replay = self._by_key.get(request.idempotency_key) if keyed else None
            if replay is not None:
                first, provider_refund_id = replay
                if first.amount != request.amount or first.payment_id != request.payment_id:
                    raise RejectedError("idempotency key reused with other parameters", code="idempotency_error")
                return self.refunds[provider_refund_id]
            outcome = self.outcomes.pop(0) if self.outcomes else Outcome.SUCCEEDED
            if outcome is Outcome.TRANSIENT:
                raise TransientError("503 service unavailable", platform="stripe")
            if outcome is Outcome.UNKNOWN_BEFORE_CREATE:
                raise OutcomeUnknownError("read timed out", platform="stripe")
            if outcome is Outcome.ALREADY_DONE:
                raise AlreadyDoneError("charge already refunded", code="charge_already_refunded", platform="stripe")
            if outcome is Outcome.REJECTED:
                raise RejectedError("amount exceeds refundable", code="invalid_request", platform="stripe")
            method = "refund"
            if request.payment_id in self.payments:
                payment = self.payments[request.payment_id]
                left = payment.captured.minor_units - self._refunded(request.payment_id).minor_units
                if left <= 0:
                    raise AlreadyDoneError("charge already refunded", code="charge_already_refunded", platform="stripe")
                if request.amount.minor_units > left:
                    raise RejectedError(
                        "amount exceeds refundable", code="amount_exceeds_refundable", platform="stripe"
                    )
                if self._capabilities.void_before_settlement and not payment.settled:
                    method = "void"
            status = {
                Outcome.SUCCEEDED: ProviderRefundStatus.SUCCEEDED,
                Outcome.PENDING: ProviderRefundStatus.PENDING,
                Outcome.FAILED: ProviderRefundStatus.FAILED,
                Outcome.UNKNOWN_AFTER_CREATE: ProviderRefundStatus.SUCCEEDED,
            }[outcome]
            if self._capabilities.outcome == "webhook_only" and status is not ProviderRefundStatus.FAILED:
                status = ProviderRefundStatus.PENDING  # the outcome only ever comes by webhook
            created = ProviderRefund(
                provider=self.provider,
                provider_refund_id=f"re_{next(self._ids):04d}",
                payment_id=request.payment_id,
                amount=request.amount,
                status=status,
                refund_id=request.refund_id,
                failure_reason="declined" if status is ProviderRefundStatus.FAILED else None,
                method=method,
            )
            self.refunds[created.provider_refund_id] = created
            if keyed:
                self._by_key[request.idempotency_key] = (request, created.provider_refund_id)
            if outcome is Outcome.UNKNOWN_AFTER_CREATE:
                raise OutcomeUnknownError("read timed out after sending", platform="stripe")
            return created

    def get_refund(self, provider_refund_id: str, payment: PaymentReference) -> ProviderRefund:
        with self._lock:
            self._record("get_refund", provider_refund_id=provider_refund_id)
            if self._capabilities.outcome != "pollable":
                raise UnsupportedOperation("a webhook-only provider cannot be polled")
            if provider_refund_id not in self.refunds:
                raise NotFound(f"no refund {provider_refund_id}", platform="stripe")
            return self.refunds[provider_refund_id]

    def find_refund(self, refund_id: str, payment: PaymentReference) -> ProviderRefund | None:
        with self._lock:
            payment_id = payment.payment_id
            self._record("find_refund", refund_id=refund_id, payment_id=payment_id)
            if not self._capabilities.find_by_reference:
                raise UnsupportedOperation("this provider cannot find a refund by our reference")
            return next(
                (r for r in self.refunds.values() if r.refund_id == refund_id and r.payment_id == payment_id), None
            )


_event_ids = itertools.count(1)


def provider_event(
    *refunds: ProviderRefund, event_id: str | None = None, payment_id: str | None = None
) -> ProviderEvent:
    """A verified provider webhook carrying ``refunds``."""
    return ProviderEvent(
        provider=PaymentProvider.STRIPE,
        event_id=event_id or f"evt_{next(_event_ids):06d}",
        event_type="refund.updated",
        occurred_at=datetime.now(UTC),
        refunds=list(refunds),
        payment=PaymentReference(provider=PaymentProvider.STRIPE, payment_id=payment_id) if payment_id else None,
    )


# ---------------------------------------------------------------------------- books


class FakeLedger(BooksConnector):
    """Books that record one credit document per external reference; ``failures`` are raised by the next
    calls. ``find_by_reference`` false: books that can only rely on the idempotency key."""

    name = "xero"

    def __init__(self, failures: list[Exception] | None = None, *, find_by_reference: bool = True) -> None:
        self.failures: list[Exception] = list(failures or [])
        self.documents: dict[str, CreditDocument] = {}
        self.record_calls: list[CreditBooking] = []
        self.find_calls: list[CreditBooking] = []
        self._capabilities = BooksCapabilities(
            document_kinds=[CreditDocumentKind.CREDIT_NOTE],
            find_by_reference=find_by_reference,
            idempotency=IdempotencySupport(carrier="header", name="Idempotency-Key", key_lifetime_hours=0.1),
            currencies=CurrencyProfile(),
        )

    @property
    def capabilities(self) -> BooksCapabilities:
        return self._capabilities

    def record_credit(self, booking: CreditBooking) -> CreditDocument:
        self.record_calls.append(booking)
        if self.failures:
            raise self.failures.pop(0)
        existing = self.documents.get(booking.external_reference)
        if existing is not None:
            return existing
        document = CreditDocument(
            system=booking.invoice.system,
            document_id=f"cn-{len(self.documents) + 1}",
            number=f"CN-{len(self.documents) + 1:04d}",
            total=booking.amount,
            allocated_to_invoice=booking.amount,
            cash_refunded=Money.zero(booking.amount.currency),
            external_reference=booking.external_reference,
        )
        self.documents[booking.external_reference] = document
        return document

    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        self.find_calls.append(booking)
        if not self._capabilities.find_by_reference:
            raise UnsupportedOperation("these books cannot find a document by reference")
        return self.documents.get(booking.external_reference)


# ---------------------------------------------------------------------------- AWS-side ports


class RecordingPublisher(EventPublisher):
    def __init__(self) -> None:
        self.events: list[RefundEvent] = []
        self._lock = threading.Lock()

    def publish(self, events: list[RefundEvent]) -> None:
        with self._lock:
            self.events.extend(events)

    @property
    def detail_types(self) -> list[str]:
        return [event.detail_type for event in self.events]

    def for_refund(self, refund_id: str) -> list[str]:
        return [event.detail_type for event in self.events if event.refund_id == refund_id]

    def distinct(self, refund_id: str | None = None) -> list[tuple[str, str]]:
        """(event_id, detail type) once each, in first-published order: what a deduplicating consumer sees."""
        seen: dict[str, str] = {}
        for event in self.events:
            if refund_id is None or event.refund_id == refund_id:
                seen.setdefault(event.event_id, event.detail_type)
        return list(seen.items())


class FakeWorkflowStarter(WorkflowStarter):
    """Step Functions Standard: a name already used does not start a second execution."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.executions: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self, refund_id: str, payload: Mapping[str, Any]) -> str:
        with self._lock:
            self.calls.append((refund_id, dict(payload)))
            self.executions.setdefault(refund_id, dict(payload))
            return f"arn:aws:states:us-east-1:123456789012:execution:refund-workflow:{refund_id}"


class FakeTaskCallbacks(TaskCallbacks):
    """Step Functions task tokens: each resumes its workflow once; later uses are refused (False)."""

    def __init__(self, transient_failures: int = 0) -> None:
        self.succeeded: list[tuple[str, dict[str, Any]]] = []
        self.failed: list[tuple[str, str, str]] = []
        self.attempts: list[str] = []
        self.transient_failures = transient_failures
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def _use(self, task_token: str) -> bool:
        self.attempts.append(task_token)
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientError("states:SendTaskSuccess throttled")
        if task_token in self._used:
            return False
        self._used.add(task_token)
        return True

    def succeed(self, task_token: str, output: Mapping[str, Any]) -> bool:
        with self._lock:
            if not self._use(task_token):
                return False
            self.succeeded.append((task_token, dict(output)))
            return True

    def fail(self, task_token: str, error: str, cause: str) -> bool:
        with self._lock:
            if not self._use(task_token):
                return False
            self.failed.append((task_token, error, cause))
            return True


class FakeMailer(Mailer):
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failures = failures

    def send(self, *, to: str, template: str, data: Mapping[str, Any], idempotency_key: str) -> str:
        if self.failures:
            self.failures -= 1
            raise TransientError("SES throttled")
        self.sent.append({"to": to, "template": template, "data": dict(data), "idempotency_key": idempotency_key})
        return f"msg-{len(self.sent)}"


# ---------------------------------------------------------------------------- the domain's wiring in tests

TIMING = WorkflowTiming(
    refund_outcome_wait_seconds=3600, books_retry_wait_seconds=900, approval_escalation_seconds=86_400
)


class FakeStoreCreditLedger(StoreCreditLedger):
    """Store credit in memory, as strict as the DynamoDB ledger: one entry per id, ever; the same id with other
    content is a conflict; only positive credits (the shared contract tests run both)."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))
        self.by_id: dict[str, StoreCreditEntry] = {}
        self.calls = 0

    def credit(
        self, customer_key: str, amount: Money, entry_id: str, refund_id: str, note: str = ""
    ) -> StoreCreditEntry:
        self.calls += 1
        if not amount.is_positive():
            raise InvalidRequest(f"store credit is credited in positive amounts, not {amount}")
        try:
            entry = StoreCreditEntry(
                entry_id=entry_id,
                customer_key=customer_key,
                amount=amount,
                refund_id=refund_id,
                note=note,
                created_at=self._now(),
            )
        except ValidationError as error:
            raise InvalidRequest(f"not a store-credit entry: {error.errors()[0]['msg']}") from error
        earlier = self.by_id.get(entry_id)
        if earlier is None:
            self.by_id[entry_id] = entry
            return entry
        if not earlier.same_credit(entry):
            raise IdempotencyConflict(f"store-credit entry {entry_id} was written with other content")
        return earlier

    def balance(self, customer_key: str, currency: str) -> Money:
        total = sum(
            entry.amount.minor_units
            for entry in self.by_id.values()
            if entry.customer_key == customer_key and entry.amount.currency == currency
        )
        return Money.of(total, currency)

    def entries(self, customer_key: str) -> list[StoreCreditEntry]:
        mine = [entry for entry in self.by_id.values() if entry.customer_key == customer_key]
        return sorted(mine, key=lambda entry: (entry.created_at, entry.entry_id))


@dataclass
class World:
    """A repository on moto plus fakes for every other port."""

    repository: RefundRepository
    tables: Tables
    clock: SteppingClock
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    provider: FakeRefundProvider = field(default_factory=FakeRefundProvider)
    books: FakeLedger = field(default_factory=FakeLedger)
    starter: FakeWorkflowStarter = field(default_factory=FakeWorkflowStarter)
    callbacks: FakeTaskCallbacks = field(default_factory=FakeTaskCallbacks)
    mailer: FakeMailer = field(default_factory=FakeMailer)
    store_credit: FakeStoreCreditLedger = field(default_factory=FakeStoreCreditLedger)
    # The domain's tests follow a refund by its events, so they see every status event (PublishAllStatusEvents);
    # tests/unit/domain/test_status_events.py checks what the default publishes.
    publish_all_status_events: bool = True

    @property
    def recorder(self) -> RefundRecorder:
        return RefundRecorder(self.repository, self.publisher, publish_all=self.publish_all_status_events)

    # -------------------------------------------------------------- driving the workflow's steps

    def accept(self, body: RefundRequestBody, delivery_id: str = "dlv-1") -> Accepted:
        return accept_refund_request(
            body,
            source=VerifiedSource(body.source.system),
            delivery_id=delivery_id,
            recorder=self.recorder,
            starter=self.starter,
            timing=TIMING,
        )

    def approve(self, refund_id: str, amount: Money | None = None) -> Refund:
        """What the policy step (not under test here) does when it approves: APPROVED with the amount."""
        refund = self.repository.get(refund_id)
        return self.recorder.move(
            refund, RefundStatus.APPROVED, actor="tests:policy", changes={"amount": amount or refund.amount}
        )

    def reserved(self, body: RefundRequestBody, delivery_id: str = "dlv-1", amount: Money | None = None) -> str:
        """Accept, validate, look up the payment, approve and reserve: the refund is ready to be paid."""
        refund_id = self.accept(body, delivery_id).refund.refund_id
        validate_refund(refund_id, recorder=self.recorder)
        look_up_payment(refund_id, recorder=self.recorder, provider=self.provider)
        self.approve(refund_id, amount)
        reserve_amount(refund_id, recorder=self.recorder)
        return refund_id

    def deliver(self, event: ProviderEvent) -> bool:
        """A verified webhook through both halves: intake dedupes and forwards it, the platform function
        (here in process) reads the truth and applies it. True when it was a duplicate."""
        provider, recorder, callbacks = self.provider, self.recorder, self.callbacks

        class InProcess(NewsForwarder):
            def forward(self, platform: str, forwarded: ProviderEvent) -> None:
                apply_news(forwarded, recorder=recorder, provider=provider, callbacks=callbacks)

        return forward_delivery(
            InboundDelivery(events=[event]), platform=event.provider.value, recorder=recorder, forwarder=InProcess()
        )

    def balance(self, payment_id: str) -> dict[str, int]:
        found = self.repository.get_balance(PaymentProvider.STRIPE, payment_id)
        assert found is not None
        return {
            "captured": found.captured.minor_units,
            "refunded": found.refunded.minor_units,
            "reserved": found.reserved.minor_units,
            "remaining": found.remaining.minor_units,
        }


# The audit MAC key the tests sign and verify with (the stacks read theirs from Secrets Manager).
TEST_AUDIT_KEYS = AuditKeys(keys={"test-1": bytes(range(32))}, current="test-1")


@contextmanager
def world(*, serialized: bool = False) -> Iterator[World]:
    with moto_tables() as tables:
        client = SerializedClient(tables.client) if serialized else tables.client
        clock = SteppingClock()
        repository = RefundRepository(
            tables.refunds_table, dynamodb=client, now=clock, audit_keys=lambda: TEST_AUDIT_KEYS
        )
        yield World(repository=repository, tables=tables, clock=clock)


# ---------------------------------------------------------------------------- test data


def refund_request_body(
    *,
    reference: str = "RMA-1001",
    payment_id: str = "pi_3Pabc",
    amount: int | None = 2_500,
    currency: str = "EUR",
    email: str = "jane.doe@example.com",
    invoice_id: str | None = "inv-1001",
    ticket_id: str | None = "T-77",
    **overrides: Any,
) -> RefundRequestBody:
    document: dict[str, Any] = {
        "payment": {"provider": "stripe", "payment_id": payment_id},
        "reason": "product_return",
        "customer": {"email": email, "name": "Jane Doe"},
        "source": {"system": "returns-portal", "reference": reference, "ticket_id": ticket_id},
        "order": {"order_id": f"ORD-{reference}"},
    }
    if amount is not None:
        document["amount"] = {"minor_units": amount, "currency": currency}
    if invoice_id is not None:
        document["invoice"] = {"system": "xero", "invoice_id": invoice_id}
    document.update(overrides)
    return RefundRequestBody.model_validate(document)


def today() -> date:
    return datetime.now(UTC).date()


def a_refund(
    source_reference: str = "RMA-1",
    *,
    payment_id: str = "pi_1",
    email: str = "jane.doe@example.com",
    amount: Money | None = None,
    ticket_id: str | None = "T-1",
) -> Refund:
    """A RECEIVED refund as intake would store it (the repository sets times and version)."""
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    return Refund.model_validate(
        {
            "refund_id": derive_refund_id("tests", source_reference),
            "status": "RECEIVED",
            "version": 1,
            "created_at": moment,
            "updated_at": moment,
            "payment": {"provider": "stripe", "payment_id": payment_id},
            "requested_amount": amount.model_dump() if amount else None,
            "reason": "product_return",
            "customer": {"email": email},
            "source": {"system": "returns-portal", "reference": source_reference, "ticket_id": ticket_id},
            "source_platform": "tests",
            "request_fingerprint": "f" * 64,
            "correlation_id": "corr-1",
        }
    )


class FailingStateWrites:
    """A DynamoDB client whose next ``failures`` transactions that write a refund's state fail with ``code``
    (before anything is applied, as DynamoDB does); every other call goes through."""

    def __init__(self, client: Any, failures: int = 1, code: str = "ThrottlingException") -> None:
        self._client = client
        self.failures = failures
        self.code = code

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != "transact_write_items":
            return method

        def transact(**kwargs: Any) -> Any:
            writes_state = any(
                item.get("Put", {}).get("Item", {}).get("sk") == {"S": "STATE"} for item in kwargs["TransactItems"]
            )
            if self.failures and writes_state:
                # A local import keeps this later addition from touching the import block above.
                from botocore.exceptions import ClientError

                self.failures -= 1
                raise ClientError({"Error": {"Code": self.code, "Message": "injected"}}, "TransactWriteItems")
            return method(**kwargs)

        return transact


@pytest.fixture
def env() -> Iterator[World]:
    """The refunds table on moto (built from template.yaml) with fakes for every other port."""
    with world() as built:
        yield built


@pytest.fixture
def threaded_env() -> Iterator[World]:
    """For tests with threads: each DynamoDB request is applied atomically, as the service does."""
    with world(serialized=True) as built:
        yield built
