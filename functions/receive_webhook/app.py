"""Invoked by API Gateway (HTTP API) for POST /refund-requests and POST /webhooks/stripe."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import http_api, settings, wiring
from refundflow.adapters.secrets import get_json_secret
from refundflow.api import RefundAccepted, RefundRequestBody, WebhookAck
from refundflow.connectors.standard_webhooks import SigningSources, verify_source_delivery
from refundflow.domain.inbound import accept_provider_event
from refundflow.domain.intake import accept_refund_request, timing_from
from refundflow.observability import logger, metrics, tracer

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
# Verified on the raw body before parsing, so the resolver does not parse them: documented for OpenAPI.
SIGNED_REQUEST_BODIES = {"/refund-requests": RefundRequestBody}


@router.post(
    "/refund-requests",
    summary="Ask for a refund (Standard Webhooks signed)",
    description="Body: RefundRequestBody. Answers 202 with the refund id; a redelivery answers the same id.",
    responses=http_api.documented(202, "Accepted (or redelivered)", RefundAccepted, 400, 401, 403, 409, 413, 415, 503),
    tags=["triggers"],
)
def create_refund_request() -> Response[RefundAccepted]:
    intake = settings.load(settings.IntakeSettings)
    # Signature first: an empty or forged body is unauthenticated (401) before it is malformed (400).
    raw = http_api.raw_body(router.current_event, max_bytes=intake.max_body_bytes, allow_empty=True)
    # Read through the secrets cache (SECRETS_CACHE_SECONDS): a revoked secret stops working without a cold start.
    name = intake.refund_requests_secret_name
    sources = SigningSources.from_secret(name, get_json_secret(name))
    verified = verify_source_delivery(router.current_event.headers, raw, sources)
    delivery_id = http_api.delivery_id(verified.delivery_id)
    body = http_api.parse_body(RefundRequestBody, raw)
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
    refund = accepted.refund
    links: dict[str, Any] = {"self": {"href": f"/refunds/{refund.refund_id}"}}
    return http_api.json_response(
        202, RefundAccepted(refund_id=refund.refund_id, status=refund.status, duplicate=accepted.duplicate, links=links)
    )


@router.post(
    "/webhooks/stripe",
    summary="Stripe webhook endpoint (Stripe-Signature verified)",
    responses=http_api.documented(200, "Processed (or a duplicate delivery)", WebhookAck, 400, 401, 413, 415, 503),
    tags=["provider webhooks"],
)
def stripe_webhook() -> Response[WebhookAck]:
    from refundflow.connectors.stripe import stripe_provider  # only this route pays for the Stripe SDK import

    max_bytes = settings.load(settings.IntakeSettings).max_body_bytes
    raw = http_api.raw_body(router.current_event, max_bytes=max_bytes, allow_empty=True)
    provider = stripe_provider()
    event = provider.parse_webhook(router.current_event.headers, raw)
    http_api.delivery_id(event.event_id)  # the key of its first-seen marker: bounded like a webhook-id
    logger.append_keys(provider_event_id=event.event_id, provider_event_type=event.event_type)
    duplicate = accept_provider_event(
        event, recorder=wiring.recorder(), provider=provider, callbacks=wiring.callbacks()
    )
    return http_api.json_response(200, WebhookAck(duplicate=duplicate))


app = http_api.build_app(router)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
