"""What intake (functions/receive_webhook) does with a trigger or a platform's webhook once its receiver
(refundflow.receiver) routed it: verify, bound, check, store, start or forward. A refund request's path is
refundflow.request_intake (no model, no X-Ray SDK); this module loads with the first request of another route.

Each function answers a payload 2.0 dict (refundflow.receiver) or raises a refundflow error, which the receiver
answers with its problem document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from refundflow import catalog, json_bodies, settings, wiring
from refundflow.adapters.secrets import get_json_secret, platform_secret_name
from refundflow.api import (
    DeliveryFailureBody,
    RefundAccepted,
    ReturnUpdateAccepted,
    ReturnUpdateBody,
)
from refundflow.connectors.standard_webhooks import SigningSources, VerifiedDelivery, verify_source_delivery
from refundflow.domain.delivery_failures import accept_delivery_failure
from refundflow.domain.inbound import forward_delivery, forward_refusal
from refundflow.domain.intake import Accepted, timing_from
from refundflow.domain.returns import accept_return_update
from refundflow.errors import CardDataRefused, InvalidRequest, NotFound
from refundflow.observability import logger, metrics
from refundflow.receiver import Request, answer, json_answer

DUPLICATE_HEADER = "Refundflow-Duplicate-Delivery"
FORM = "application/x-www-form-urlencoded"
XML = "text/xml"  # Salesforce Outbound Messages (SOAP 1.1)
M = TypeVar("M", bound=BaseModel)


def observed(work: Callable[..., dict[str, Any]], *arguments: Any) -> dict[str, Any]:
    """``work`` with its metrics flushed when it ends. Its AWS calls are traced: X-Ray's SDK patches botocore when
    this module loads, and records each call under the invocation's segment. (Not wrapped in a Tracer method: that
    logs every exception with its traceback, and a refused delivery is an answer here, not a fault.)"""
    try:
        return work(*arguments)
    finally:
        metrics.flush_metrics()


def delivery_failure(request: Request) -> dict[str, Any]:
    name = settings.load(settings.IntakeSettings).delivery_failures_secret_name
    if not name:
        raise NotFound("delivery failure reports are not configured (DeliveryFailuresSecretName)")
    verified, delivery_id, body = _signed(request, DeliveryFailureBody, name)
    shipment = body.shipment
    logger.append_keys(delivery_id=delivery_id, carrier=shipment.carrier, tracking_number=shipment.tracking_number)
    accepted = accept_delivery_failure(
        body,
        source=verified.source,
        delivery_id=delivery_id,
        recorder=wiring.recorder(),
        starter=wiring.workflow(),
        timing=timing_from(settings.load(settings.WorkflowTimingSettings)),
    )
    logger.info(
        "delivery failure accepted",
        extra={
            "refund_id": accepted.refund.refund_id,
            "duplicate": accepted.duplicate,
            "shipment_status": shipment.status.value,
            "occurred_at": shipment.occurred_at.isoformat(),
        },
    )
    return _accepted(accepted)


def return_update(request: Request) -> dict[str, Any]:
    verified, delivery_id, body = _signed(
        request, ReturnUpdateBody, settings.load(settings.IntakeSettings).refund_requests_secret_name
    )
    logger.append_keys(delivery_id=delivery_id, source_reference=body.source.reference)
    accepted = accept_return_update(
        body,
        source=verified.source,
        delivery_id=delivery_id,
        recorder=wiring.recorder(),
        callbacks=wiring.callbacks(),
    )
    logger.info(
        "return update accepted",
        extra={
            "refund_id": accepted.refund_id,
            "duplicate": accepted.duplicate,
            "return_status": accepted.lifecycle.status.value,
            "refund_known": accepted.refund is not None,
        },
    )
    answered = ReturnUpdateAccepted(
        refund_id=accepted.refund_id, return_status=accepted.lifecycle.status, duplicate=accepted.duplicate
    )
    return json_answer(202, answered.model_dump(mode="json", by_alias=True))


def _signed(request: Request, model: type[M], secret_name: str) -> tuple[VerifiedDelivery, str, M]:
    """A Standard Webhooks delivery verified with the sources of ``secret_name``, then read as ``model``.

    The signature first: an empty or forged body is unauthenticated (401) before it is malformed (400). The secret
    is read through the secrets cache (SECRETS_CACHE_SECONDS): a revoked secret stops working without a cold start.
    """
    raw = json_bodies.raw_body(
        request, max_bytes=settings.load(settings.IntakeSettings).max_body_bytes, allow_empty=True
    )
    sources = SigningSources.from_secret(secret_name, get_json_secret(secret_name))
    verified = verify_source_delivery(request.headers, raw, sources)
    return verified, json_bodies.delivery_id(verified.delivery_id), json_bodies.parse_body(model, raw)


def _accepted(accepted: Accepted) -> dict[str, Any]:
    refund = accepted.refund
    answered = RefundAccepted(
        refund_id=refund.refund_id,
        status=refund.status,
        duplicate=accepted.duplicate,
        links={"self": {"href": f"/refunds/{refund.refund_id}"}},  # type: ignore[dict-item]
    )
    return json_answer(202, answered.model_dump(mode="json", by_alias=True))


def platform_webhook(request: Request, platform: str) -> dict[str, Any]:
    try:
        entry = catalog.inbound_platform(platform)
    except InvalidRequest as unknown:
        raise NotFound(unknown.message, code="platform_not_found") from unknown
    max_bytes = settings.load(settings.IntakeSettings).max_body_bytes
    # The media types the platform posts (its catalog entry): JSON by default, Mollie's classic and Braintree's
    # notifications are forms, Amazon Pay's IPN is an SNS message sent as text/plain (JSON inside).
    media = request.media_type
    accepted = entry.inbound.content_types if entry.inbound is not None else ["application/json"]
    if media not in accepted:
        raise json_bodies.UnsupportedMediaType(f"content-type must be {' or '.join(accepted)}, got {media or 'none'}")
    raw = json_bodies.raw_body(request, max_bytes=max_bytes, json_only=False, allow_empty=True)
    # Its verification secret only, through the secrets cache: a revoked secret stops working without a cold start.
    secret = get_json_secret(platform_secret_name(entry.name, verification=True))
    # The query parameters too (Salesforce Outbound Messages carry their token there): never logged.
    delivery = catalog.inbound(entry.name).verify_request(request.headers, raw, secret, request.query_string_parameters)
    # Verified, and still held to intake's JSON rules (UTF-8, unique keys, bounded depth and numbers): a
    # platform's parser and ours must never read one body two ways. A form body is read by its verifier only; an
    # XML body (Salesforce Outbound Messages) too, and a help desk's is card-checked on what its verifier read.
    document: Any = None
    if media == XML:
        document = [news.payload for news in delivery.tickets]
    elif media != FORM:
        document = json_bodies.decode_json(raw)
    if document is not None and entry.ticket is not None:
        # A help desk's delivery carries what people typed into a ticket: never taken with card data in it.
        # The desk's own function still tells the ticket why (from news carrying none of the body).
        try:
            # The tickets the delivery names are the desk's own record ids (its function reads them back).
            json_bodies.refuse_card_data(document, platform_ids={news.ticket_id for news in delivery.tickets})
        except CardDataRefused as refused:
            forward_refusal(delivery, refused, platform=entry.name, forwarder=wiring.news_forwarder())
            raise
    for event in [*delivery.events, *delivery.tickets, *delivery.returns]:
        json_bodies.delivery_id(event.event_id)  # the key of its first-seen marker: bounded like a webhook-id
    logger.append_keys(platform=entry.name, provider_event_ids=[event.event_id for event in delivery.events])
    duplicate = forward_delivery(
        delivery, platform=entry.name, recorder=wiring.recorder(), forwarder=wiring.news_forwarder()
    )
    logger.info("platform webhook accepted", extra={"events": len(delivery.events), "duplicate": duplicate})
    platform_answer = delivery.answer
    # The platform's own answer; whether it was a redelivery is ours to tell, in a header it ignores.
    headers = {DUPLICATE_HEADER: "true" if duplicate else "false"}
    return answer(platform_answer.status, platform_answer.body, platform_answer.content_type, headers)
