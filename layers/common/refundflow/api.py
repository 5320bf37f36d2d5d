"""The HTTP API's request and response models (the OpenAPI document is generated from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from refundflow.domain.views import RefundView
from refundflow.models import DeliveryFailureBody, RefundRequestBody, ReturnStatus, ReturnUpdateBody
from refundflow.status import RefundStatus

# Defined where the domain reads and builds them (the domain never imports the HTTP layer); served from here.
__all__ = [
    "ApprovalRequestBody",
    "ApprovalResult",
    "DeliveryFailureBody",
    "Link",
    "ProblemDetail",
    "RefundAccepted",
    "RefundRequestBody",
    "RefundView",
    "RemedyRequestBody",
    "RemedyResult",
    "ReturnUpdateAccepted",
    "ReturnUpdateBody",
    "WebhookAck",
]


class Link(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")
    href: str


class RefundAccepted(BaseModel):
    """The answer to an accepted (or redelivered) refund request."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    refund_id: str
    status: RefundStatus
    duplicate: bool = Field(description="True when this request was seen before: nothing new was started.")
    links: dict[str, Link]


class ReturnUpdateAccepted(BaseModel):
    """The answer to a return step (new, or delivered before)."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    refund_id: str = Field(description="The refund the source's reference names (it may not exist yet).")
    return_status: ReturnStatus = Field(description="The return's status now: its highest-ranked step's.")
    duplicate: bool = Field(description="True when this step was reported before: nothing was written.")


class ApprovalRequestBody(BaseModel):
    """``POST /refunds/{refund_id}/approval``: an authorised approver's decision."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    decision: Literal["approve", "reject"]
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ApprovalResult(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    refund_id: str
    status: RefundStatus
    decision: Literal["approve", "reject"]
    approver: str
    role: str


class RemedyRequestBody(BaseModel):
    """``POST /refunds/{refund_id}/legs/{leg}/remedy``: what an approver does with a split-tender leg that failed
    after others paid (refundflow.domain.split_remedies)."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    action: Literal["retry", "move_to_tender", "store_credit"]
    tender: int | None = Field(
        default=None, ge=0, le=7, description="move_to_tender: which of the refund's tenders (0-based) takes it."
    )
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class RemedyResult(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    refund_id: str
    status: RefundStatus
    action: Literal["retry", "move_to_tender", "store_credit"]
    leg: int = Field(description="The new leg's number (it replaces the failed one).")
    leg_refund_id: str = Field(description="The new leg's own refund; empty for a store-credit leg (no refund).")
    approver: str


class WebhookAck(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")
    received: bool = True
    duplicate: bool = False


class ProblemDetail(BaseModel):
    """An RFC 9457 problem document: every 4xx/5xx answer of the API."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code.")
    errors: list[dict[str, Any]] | None = Field(default=None, description="Field-level problems, when any.")
