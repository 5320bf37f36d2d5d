"""Invoked by API Gateway (HTTP API) for POST /refund-requests and POST /webhooks/{platform}: verifies, never
calls a platform's API (it holds no API credentials), starts workflows and forwards platform news."""

from __future__ import annotations

from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from refundflow import catalog, http_api, settings, wiring
from refundflow.adapters.secrets import get_json_secret, platform_secret_name
from refundflow.api import (
    DeliveryFailureBody,
    RefundAccepted,
    RefundRequestBody,
    ReturnUpdateAccepted,
    ReturnUpdateBody,
    WebhookAck,
)
from refundflow.connectors.standard_webhooks import SigningSources, VerifiedDelivery, verify_source_delivery
from refundflow.domain.delivery_failures import accept_delivery_failure
from refundflow.domain.inbound import forward_delivery, forward_refusal
from refundflow.domain.intake import Accepted, accept_refund_request, timing_from
from refundflow.domain.returns import accept_return_update
from refundflow.errors import CardDataRefused, InvalidRequest, NotFound
from refundflow.observability import logger, metrics, tracer

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
# Verified on the raw body before parsing, so the resolver does not parse them: documented for OpenAPI.
SIGNED_REQUEST_BODIES = {
    "/refund-requests": RefundRequestBody,
    "/triggers/delivery-failures": DeliveryFailureBody,
    "/triggers/return-updates": ReturnUpdateBody,
}
DUPLICATE_HEADER = "Refundflow-Duplicate-Delivery"
M = TypeVar("M", bound=BaseModel)
FORM = "application/x-www-form-urlencoded"
XML = "text/xml"  # Salesforce Outbound Messages (SOAP 1.1)


@router.post(
    "/refund-requests",
    summary="Ask for a refund (Standard Webhooks signed)",
    description="Body: RefundRequestBody. Answers 202 with the refund id; a redelivery answers the same id.",
    responses=http_api.documented(202, "Accepted (or redelivered)", RefundAccepted, 400, 401, 403, 409, 413, 415, 503),
    tags=["triggers"],
)
def create_refund_request() -> Response[RefundAccepted]:
    verified, delivery_id, body = _signed(
        RefundRequestBody, settings.load(settings.IntakeSettings).refund_requests_secret_name
    )
    logger.append_keys(delivery_id=delivery_id, source_reference=body.source.reference)
    accepted = accept_refund_request(
        body,
        source=verified.source,
        delivery_id=delivery_id,
        recorder=wiring.recorder(),
        starter=wiring.workflow(),
        timing=timing_from(settings.load(settings.WorkflowTimingSettings)),
    )
    logger.info(
        "refund request accepted", extra={"refund_id": accepted.refund.refund_id, "duplicate": accepted.duplicate}
    )
    return _accepted(accepted)


@router.post(
    "/triggers/delivery-failures",
    summary="Report a failed delivery: refundflow asks for its refund (Standard Webhooks signed, carriers' secrets)",
    description=(
        "Body: DeliveryFailureBody. A carrier or logistics platform, signing with its own secret from the "
        "DeliveryFailuresSecretName secret (not a refund-request source's), reports a shipment that was not "
        "delivered; refundflow asks for a refund with reason delivery_failed (the policy decides). One refund per "
        "shipment: a later report on the same tracking number answers the same refund id (duplicate true)."
    ),
    responses=http_api.documented(
        202, "Accepted (or reported before)", RefundAccepted, 400, 401, 403, 409, 413, 415, 503
    ),
    tags=["triggers"],
)
def report_delivery_failure() -> Response[RefundAccepted]:
    name = settings.load(settings.IntakeSettings).delivery_failures_secret_name
    if not name:
        raise NotFound("delivery failure reports are not configured (DeliveryFailuresSecretName)")
    verified, delivery_id, body = _signed(DeliveryFailureBody, name)
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


@router.post(
    "/triggers/return-updates",
    summary="Report a step of a return's lifecycle (Standard Webhooks signed, refund-request sources' secrets)",
    description=(
        "Body: ReturnUpdateBody. The returns system that sent the refund request (POST /refund-requests, signing "
        "with its secret from RefundRequestsSecretName) reports a step of the return: label_created, in_transit, "
        "received, inspected (with an outcome per line), closed, delivery_failed. Steps may come in any order (the "
        "return's status is its highest-ranked step's) and more than once (the same status and occurred_at is a "
        "duplicate: duplicate true, nothing written). A step before the request is kept for the refund it names. "
        "A refund waiting for its return (AWAITING_RETURN) is decided again."
    ),
    responses=http_api.documented(
        202, "Recorded (or reported before)", ReturnUpdateAccepted, 400, 401, 403, 409, 413, 415, 503
    ),
    tags=["triggers"],
)
def report_return_update() -> Response[ReturnUpdateAccepted]:
    verified, delivery_id, body = _signed(
        ReturnUpdateBody, settings.load(settings.IntakeSettings).refund_requests_secret_name
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
    answer = ReturnUpdateAccepted(
        refund_id=accepted.refund_id, return_status=accepted.lifecycle.status, duplicate=accepted.duplicate
    )
    return http_api.json_response(202, answer)


def _signed(model: type[M], secret_name: str) -> tuple[VerifiedDelivery, str, M]:
    """A Standard Webhooks delivery verified with the sources of ``secret_name``, then read as ``model``.

    The signature first: an empty or forged body is unauthenticated (401) before it is malformed (400). The secret
    is read through the secrets cache (SECRETS_CACHE_SECONDS): a revoked secret stops working without a cold start.
    """
    raw = http_api.raw_body(
        router.current_event, max_bytes=settings.load(settings.IntakeSettings).max_body_bytes, allow_empty=True
    )
    sources = SigningSources.from_secret(secret_name, get_json_secret(secret_name))
    verified = verify_source_delivery(router.current_event.headers, raw, sources)
    return verified, http_api.delivery_id(verified.delivery_id), http_api.parse_body(model, raw)


def _accepted(accepted: Accepted) -> Response[RefundAccepted]:
    refund = accepted.refund
    links: dict[str, Any] = {"self": {"href": f"/refunds/{refund.refund_id}"}}
    return http_api.json_response(
        202, RefundAccepted(refund_id=refund.refund_id, status=refund.status, duplicate=accepted.duplicate, links=links)
    )


@router.post(
    "/webhooks/<platform>",
    summary="A platform's webhook endpoint (verified with that platform's scheme; the answer is the platform's)",
    description=(
        "One route for every platform of the catalog that sends webhooks (README, Platforms). The delivery is "
        "verified on the raw body with the platform's own scheme and its verification secret; each new event is "
        "forwarded to the platform's own function, which reads the truth from the platform before anything moves, "
        "and only then marked seen (a failed forward is a 503: the platform delivers again). A delivery is refused "
        "whole when any of its items fails verification. The body is the platform's expected answer; header "
        "Refundflow-Duplicate-Delivery says whether every event had been seen before. Unknown platform: 404."
    ),
    responses=http_api.documented(200, "Accepted (or a duplicate delivery)", WebhookAck, 400, 401, 404, 413, 415, 503),
    tags=["platform webhooks"],
)
def platform_webhook(platform: str) -> Response[Any]:
    try:
        entry = catalog.inbound_platform(platform)
    except InvalidRequest as unknown:
        raise NotFound(unknown.message, code="platform_not_found") from unknown
    max_bytes = settings.load(settings.IntakeSettings).max_body_bytes
    # The media types the platform posts (its catalog entry): JSON by default, Mollie's classic and Braintree's
    # notifications are forms, Amazon Pay's IPN is an SNS message sent as text/plain (JSON inside).
    media = (router.current_event.headers or {}).get("content-type", "").split(";")[0].strip().lower()
    accepted = entry.inbound.content_types if entry.inbound is not None else ["application/json"]
    if media not in accepted:
        raise http_api.UnsupportedMediaType(f"content-type must be {' or '.join(accepted)}, got {media or 'none'}")
    raw = http_api.raw_body(router.current_event, max_bytes=max_bytes, json_only=False, allow_empty=True)
    # Its verification secret only, through the secrets cache: a revoked secret stops working without a cold start.
    secret = get_json_secret(platform_secret_name(entry.name, verification=True))
    # The query parameters too (Salesforce Outbound Messages carry their token there): never logged.
    query = router.current_event.query_string_parameters or {}
    delivery = catalog.inbound(entry.name).verify_request(router.current_event.headers, raw, secret, query)
    # Verified, and still held to intake's JSON rules (UTF-8, unique keys, bounded depth and numbers): a
    # platform's parser and ours must never read one body two ways. A form body is read by its verifier only; an
    # XML body (Salesforce Outbound Messages) too, and a help desk's is card-checked on what its verifier read.
    document: Any = None
    if media == XML:
        document = [news.payload for news in delivery.tickets]
    elif media != FORM:
        document = http_api.decode_json(raw)
    if document is not None and entry.ticket is not None:
        # A help desk's delivery carries what people typed into a ticket: never taken with card data in it.
        # The desk's own function still tells the ticket why (from news carrying none of the body).
        try:
            # The tickets the delivery names are the desk's own record ids (its function reads them back).
            http_api.refuse_card_data(document, platform_ids={news.ticket_id for news in delivery.tickets})
        except CardDataRefused as refused:
            forward_refusal(delivery, refused, platform=entry.name, forwarder=wiring.news_forwarder())
            raise
    for event in [*delivery.events, *delivery.tickets, *delivery.returns]:
        http_api.delivery_id(event.event_id)  # the key of its first-seen marker: bounded like a webhook-id
    logger.append_keys(platform=entry.name, provider_event_ids=[event.event_id for event in delivery.events])
    duplicate = forward_delivery(
        delivery, platform=entry.name, recorder=wiring.recorder(), forwarder=wiring.news_forwarder()
    )
    logger.info("platform webhook accepted", extra={"events": len(delivery.events), "duplicate": duplicate})
    answer = delivery.answer
    # The platform's own answer; whether it was a redelivery is ours to tell, in a header it ignores.
    headers = {DUPLICATE_HEADER: "true" if duplicate else "false"}
    return Response(status_code=answer.status, content_type=answer.content_type, body=answer.body, headers=headers)


app = http_api.build_app(router)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
