"""The HTTP API's request and response models (the OpenAPI document is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from refundflow.audit import ChainVerification
from refundflow.models import (
    ApprovalRecord,
    AuditEntry,
    CreditDocument,
    CustomerContact,
    FailureRecord,
    InvoiceReference,
    OrderInfo,
    PaymentReference,
    PolicyDecisionRecord,
    RefundLine,
    RefundReason,
    ReturnInfo,
    SourceApprover,
    SourceReference,
)
from refundflow.money import Money
from refundflow.status import RefundStatus


class RefundRequestBody(BaseModel):
    """``POST /refund-requests``: ask for a refund. Amounts are minor units; nothing here sets what is refundable."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    payment: PaymentReference
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

    @model_validator(mode="after")
    def _consistent_amounts(self) -> RefundRequestBody:
        if self.amount is not None and self.amount.minor_units <= 0:
            raise ValueError("amount.minor_units must be positive")
        currencies = {line.amount.currency for line in self.lines}
        if self.amount is not None:
            currencies.add(self.amount.currency)
        if len(currencies) > 1:
            raise ValueError(f"lines and amount must share one currency, got {sorted(currencies)}")
        if any(line.amount.minor_units <= 0 for line in self.lines):
            raise ValueError("every line amount must be positive")
        if self.lines and self.amount is not None:
            total = sum(line.amount.minor_units for line in self.lines)
            if total != self.amount.minor_units:
                raise ValueError(f"lines add up to {total} minor units but amount is {self.amount.minor_units}")
        return self

    @property
    def requested_amount(self) -> Money | None:
        if self.amount is not None:
            return self.amount
        if self.lines:
            return Money.of(sum(line.amount.minor_units for line in self.lines), self.lines[0].amount.currency)
        return None


class Link(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    href: str


class RefundAccepted(BaseModel):
    """The answer to an accepted (or redelivered) refund request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refund_id: str
    status: RefundStatus
    duplicate: bool = Field(description="True when this request was seen before: nothing new was started.")
    links: dict[str, Link]


class ApprovalRequestBody(BaseModel):
    """``POST /refunds/{refund_id}/approval``: an authorised approver's decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Literal["approve", "reject"]
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ApprovalResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    refund_id: str
    status: RefundStatus
    decision: Literal["approve", "reject"]
    approver: str
    role: str


class WebhookAck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    received: bool = True
    duplicate: bool = False


class ProblemDetail(BaseModel):
    """An RFC 9457 problem document: every 4xx/5xx answer of the API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code.")
    errors: list[dict[str, Any]] | None = Field(default=None, description="Field-level problems, when any.")


class RefundView(BaseModel):
    """``GET /refunds/{refund_id}``: status, amounts, references and the verified audit timeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refund_id: str
    status: RefundStatus
    created_at: datetime
    updated_at: datetime
    requested_amount: Money | None
    amount: Money | None
    reason: RefundReason
    payment: PaymentReference
    source: SourceReference
    order_id: str | None
    invoice: InvoiceReference | None
    return_info: ReturnInfo | None
    customer: CustomerContact
    policy: PolicyDecisionRecord | None
    approval: ApprovalRecord | None
    provider_refund_id: str | None
    provider_status: str | None
    credit_document: CreditDocument | None
    attention_reason: str | None
    failure: FailureRecord | None
    timeline: list[AuditEntry]
    audit: ChainVerification
