"""A failed delivery asks for a refund: a carrier or logistics platform reports that a shipment was not
delivered (attempts exhausted, returned to sender, refused, lost, damaged), and refundflow asks for a refund
with reason ``delivery_failed`` through the same intake as ``POST /refund-requests``. The policy decides it
(the packaged policy approves ``delivery_failed`` automatically within its limits).

One refund per shipment: the refund id is derived from the verified source and the carrier's tracking number,
so a later report on the same shipment (``failed``, then ``returned_to_sender``) lands on the same refund and
pays nothing twice. The request therefore names the shipment but not its status; the status is in the answer
and the logs.
"""

from __future__ import annotations

from refundflow.domain.intake import Accepted, WorkflowTiming, accept_refund_request
from refundflow.domain.recorder import RefundRecorder
from refundflow.models import (
    DeliveryFailureBody,
    RefundReason,
    RefundRequestBody,
    ReturnInfo,
    ReturnStatus,
    SourceReference,
)
from refundflow.ports import VerifiedSource, WorkflowStarter

CHANNEL = "delivery-failures"


def delivery_failure_request(body: DeliveryFailureBody, *, source: VerifiedSource) -> RefundRequestBody:
    """The refund request a failed delivery makes, from ``source`` (the carrier whose secret signed it)."""
    shipment = body.shipment
    return RefundRequestBody(
        payment=body.payment,
        amount=body.amount,
        lines=body.lines,
        reason=RefundReason.DELIVERY_FAILED,
        customer=body.customer,
        order=body.order,
        invoice=body.invoice,
        source=SourceReference(system=source.name, reference=f"{shipment.carrier}:{shipment.tracking_number}"),
        return_info=ReturnInfo(status=ReturnStatus.DELIVERY_FAILED, tracking_reference=shipment.tracking_number),
        note=f"Not delivered by {shipment.carrier} (shipment {shipment.tracking_number}).",
    )


def accept_delivery_failure(
    body: DeliveryFailureBody,
    *,
    source: VerifiedSource,
    delivery_id: str,
    recorder: RefundRecorder,
    starter: WorkflowStarter,
    timing: WorkflowTiming,
) -> Accepted:
    """Store the refund the failed delivery asks for and start its workflow, once per shipment.

    Raises:
        InvalidRequest: the request is not valid (e.g. the reference is too long for an identifier).
        IdempotencyConflict: the shipment was reported before with another payment, amount or customer.
        Forbidden, GuardUnavailable, TransientError: as :func:`accept_refund_request`.
    """
    return accept_refund_request(
        delivery_failure_request(body, source=source),
        source=source,
        delivery_id=delivery_id,
        recorder=recorder,
        starter=starter,
        timing=timing,
        channel=CHANNEL,
    )
