"""The ports the domain talks through. Adapters implement them; tests inject fakes or moto-backed ones."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from refundflow.events import RefundEvent
from refundflow.models import (
    CreditDocument,
    CustomerContact,
    InvoiceReference,
    PaymentProvider,
    RefundLine,
    RefundReason,
    StrictModel,
)
from refundflow.money import Money

# ---------------------------------------------------------------- payment providers


class ProviderPayment(StrictModel):
    """A captured payment as the provider sees it."""

    provider: PaymentProvider
    payment_id: str
    captured: Money = Field(description="Amount captured (what can be refunded at most).")
    refunded: Money = Field(description="Amount already refunded at the provider, by anyone.")
    status: str


class ProviderRefundStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"
    CANCELED = "canceled"


class ProviderRefundRequest(StrictModel):
    refund_id: str
    payment_id: str
    amount: Money
    reason: RefundReason
    idempotency_key: str
    metadata: dict[str, str] = Field(default_factory=dict)


class ProviderRefund(StrictModel):
    provider: PaymentProvider
    provider_refund_id: str
    payment_id: str
    amount: Money
    status: ProviderRefundStatus
    refund_id: str | None = Field(default=None, description="Our refund id, when the provider echoes it.")
    failure_reason: str | None = None


class ProviderEvent(StrictModel):
    """A verified inbound provider webhook, reduced to what the domain needs."""

    provider: PaymentProvider
    event_id: str
    event_type: str
    occurred_at: datetime
    refunds: list[ProviderRefund] = Field(
        default_factory=list, description="Refund objects the event carries (may be empty, e.g. charge.refunded)."
    )
    payment_id: str | None = Field(default=None, description="The payment the event is about, when known.")


class RefundProvider(ABC):
    """A payment platform that can refund a captured payment."""

    provider: ClassVar[PaymentProvider]

    @abstractmethod
    def get_payment(self, payment_id: str) -> ProviderPayment:
        """The payment's captured and refunded amounts.

        Raises:
            NotFound: the provider does not know the payment.
            TransientError: the provider could not answer now.
            RejectedError: any other final refusal (e.g. a payment that was never captured).
        """

    @abstractmethod
    def create_refund(self, request: ProviderRefundRequest) -> ProviderRefund:
        """Refund ``request.amount`` of the payment, idempotently under ``request.idempotency_key``.

        Raises:
            TransientError: 429, a concurrent use of the key, or a connection failure before the
                request was sent: retry with the same key.
            OutcomeUnknownError: the request may have been processed (read timeout, or a 5xx the
                provider may have answered after starting the work): call ``find_refund`` before
                any retry.
            AlreadyDoneError: the payment is already fully refunded.
            RejectedError: a final refusal (over-refund, invalid payment, key reused with other
                parameters), with the provider's reason.
        """

    @abstractmethod
    def get_refund(self, provider_refund_id: str) -> ProviderRefund:
        """The refund's current state at the provider.

        Raises:
            NotFound, TransientError, RejectedError.
        """

    @abstractmethod
    def find_refund(self, refund_id: str, payment_id: str) -> ProviderRefund | None:
        """Our refund at the provider, found by our reference, or None if it was never created.

        Raises:
            TransientError.
        """

    @abstractmethod
    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> ProviderEvent:
        """Verify an inbound webhook on its raw body and reduce it to a ProviderEvent.

        Raises:
            AuthenticationFailed: missing, malformed, stale or wrong signature.
            InvalidRequest: a verified body that is not a well-formed event.
        """


# ---------------------------------------------------------------- books


class CreditBooking(StrictModel):
    """What the books must record for one refund."""

    refund_id: str
    invoice: InvoiceReference
    amount: Money
    lines: list[RefundLine] = Field(default_factory=list)
    customer: CustomerContact
    booking_date: date
    reference: str
    payment_provider: PaymentProvider


class BooksConnector(ABC):
    """An accounting system that records a refund as a credit document linked to the invoice."""

    @abstractmethod
    def record_refund(self, booking: CreditBooking) -> CreditDocument:
        """Create (exactly once) the credit note linked to the invoice and the cash refund payment.

        Raises:
            TransientError: the books could not be reached or were rate-limited: retry later.
            RejectedError: the books refuse the document for good (unknown invoice, closed period,
                currency mismatch), with their validation messages.
            NotFound: the invoice does not exist.
        """

    @abstractmethod
    def find_credit_document(self, booking: CreditBooking) -> CreditDocument | None:
        """The credit document already recorded for this refund, found by our reference.

        Raises:
            TransientError.
        """


# ---------------------------------------------------------------- AWS-side ports


class EventPublisher(ABC):
    @abstractmethod
    def publish(self, events: list[RefundEvent]) -> None:
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
