"""Invoked by API Gateway (HTTP API) for POST /refund-requests and POST /webhooks/{platform}: verifies, never
calls a platform's API (it holds no API credentials), starts workflows and forwards platform news.

A thin receiver (refundflow.receiver): its own router over the HTTP API event, not Powertools' resolver (whose
package imports every resolver). Loaded at init: the router, the Logger and the refund requests' whole path
(refundflow.request_intake: the standard library and boto3, no model, no X-Ray SDK), so that a cold start costs
little more than boto3's import (README, Cost per refund, "Cold import"). The other routes' work
(refundflow.intake_routes: the models, the domain, X-Ray's Tracer and the Metrics) loads with the first of them,
and a platform's inbound verifier with its first webhook.
"""

from __future__ import annotations

from typing import Any

from refundflow import request_intake
from refundflow.logs import logger
from refundflow.receiver import Request, RouteDoc, Router

receiver = Router()
SIGNED = (400, 401, 403, 409, 413, 415, 503)


@receiver.post(
    "/refund-requests",
    RouteDoc(
        summary="Ask for a refund (Standard Webhooks signed)",
        description="Body: RefundRequestBody. Answers 202 with the refund id; a redelivery answers the same id.",
        success=202,
        success_description="Accepted (or redelivered)",
        model="RefundAccepted",
        returns="RefundAccepted",
        problems=SIGNED,
        tags=("triggers",),
    ),
)
def create_refund_request(request: Request) -> dict[str, Any]:
    return request_intake.refund_request(request)


@receiver.post(
    "/triggers/delivery-failures",
    RouteDoc(
        summary=(
            "Report a failed delivery: refundflow asks for its refund (Standard Webhooks signed, carriers' secrets)"
        ),
        description=(
            "Body: DeliveryFailureBody. A carrier or logistics platform, signing with its own secret from the "
            "DeliveryFailuresSecretName secret (not a refund-request source's), reports a shipment that was not "
            "delivered; refundflow asks for a refund with reason delivery_failed (the policy decides). One refund "
            "per shipment: a later report on the same tracking number answers the same refund id (duplicate true)."
        ),
        success=202,
        success_description="Accepted (or reported before)",
        model="RefundAccepted",
        returns="RefundAccepted",
        problems=SIGNED,
        tags=("triggers",),
    ),
)
def report_delivery_failure(request: Request) -> dict[str, Any]:
    from refundflow import intake_routes  # with the first such request (README, Cost per refund, "Cold import")

    return intake_routes.observed(intake_routes.delivery_failure, request)


@receiver.post(
    "/triggers/return-updates",
    RouteDoc(
        summary="Report a step of a return's lifecycle (Standard Webhooks signed, refund-request sources' secrets)",
        description=(
            "Body: ReturnUpdateBody. The returns system that sent the refund request (POST /refund-requests, "
            "signing with its secret from RefundRequestsSecretName) reports a step of the return: label_created, "
            "in_transit, received, inspected (with an outcome per line), closed, delivery_failed. Steps may come in "
            "any order (the return's status is its highest-ranked step's) and more than once (the same status and "
            "occurred_at is a duplicate: duplicate true, nothing written). A step before the request is kept for "
            "the refund it names. A refund waiting for its return (AWAITING_RETURN) is decided again."
        ),
        success=202,
        success_description="Recorded (or reported before)",
        model="ReturnUpdateAccepted",
        returns="ReturnUpdateAccepted",
        problems=SIGNED,
        tags=("triggers",),
    ),
)
def report_return_update(request: Request) -> dict[str, Any]:
    from refundflow import intake_routes

    return intake_routes.observed(intake_routes.return_update, request)


@receiver.post(
    "/webhooks/<platform>",
    RouteDoc(
        summary="A platform's webhook endpoint (verified with that platform's scheme; the answer is the platform's)",
        description=(
            "One route for every platform of the catalog that sends webhooks (README, Platforms). The delivery is "
            "verified on the raw body with the platform's own scheme and its verification secret; each new event "
            "is forwarded to the platform's own function, which reads the truth from the platform before anything "
            "moves, and only then marked seen (a failed forward is a 503: the platform delivers again). A delivery "
            "is refused whole when any of its items fails verification. The body is the platform's expected "
            "answer; header Refundflow-Duplicate-Delivery says whether every event had been seen before. Unknown "
            "platform: 404."
        ),
        success=200,
        success_description="Accepted (or a duplicate delivery)",
        model="WebhookAck",
        problems=(400, 401, 404, 413, 415, 503),
        tags=("platform webhooks",),
    ),
)
def platform_webhook(request: Request, platform: str) -> dict[str, Any]:
    from refundflow import intake_routes

    return intake_routes.observed(intake_routes.platform_webhook, request, platform)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return receiver.resolve(event)


def __getattr__(name: str) -> Any:
    """For the OpenAPI document only (local.tools openapi): the routes as a Powertools router, and the models the
    signed routes' bodies are read into (verified on the raw body first, so no resolver parses them)."""
    if name == "router":
        return receiver.powertools_router()
    if name == "SIGNED_REQUEST_BODIES":
        from refundflow.api import DeliveryFailureBody, RefundRequestBody, ReturnUpdateBody

        return {
            "/refund-requests": RefundRequestBody,
            "/triggers/delivery-failures": DeliveryFailureBody,
            "/triggers/return-updates": ReturnUpdateBody,
        }
    raise AttributeError(name)
