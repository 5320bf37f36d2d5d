"""Invoked by API Gateway (HTTP API) for POST /refund-requests and POST /webhooks/{platform}: verifies, never
calls a platform's API (it holds no API credentials), starts workflows and forwards platform news.

A thin receiver (refundflow.receiver): loading this module imports its own router and nothing heavier (no
Powertools resolver, no pydantic, no X-Ray); the first request loads what requests need (refundflow.intake_routes:
models, adapters, the domain's intake) and the one Logger, Tracer and Metrics, before anything is verified or
stored. README, Cost per refund, "Cold import" gives both figures. Where Lambda initialises the environment ahead
of any request (provisioned concurrency, SnapStart: AWS_LAMBDA_INITIALIZATION_TYPE), all of it loads at init.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

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
    return _routes().refund_request(request)  # type: ignore[no-any-return]


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
    return _routes().delivery_failure(request)  # type: ignore[no-any-return]


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
    return _routes().return_update(request)  # type: ignore[no-any-return]


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
    return _routes().platform_webhook(request, platform)  # type: ignore[no-any-return]


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _observed()(event, context)


@cache
def _routes() -> ModuleType:
    """What the routes do (verify, check, store, start, forward): loaded with the first request."""
    from refundflow import intake_routes

    return intake_routes


@cache
def _observed() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The receiver wrapped in the one Logger (JSON, the request id as correlation id), Tracer (X-Ray, patching
    botocore before any client exists) and Metrics (EMF), loaded with the first request."""
    from refundflow.observability import logger, metrics, tracer

    _routes()

    @logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return receiver.resolve(event)

    return handle


# Lambda's initialization type (its reserved variable): on-demand, provisioned-concurrency or snap-start. An
# environment made ready before its first request loads everything then: no request pays for it.
INITIALIZED_AHEAD = frozenset({"provisioned-concurrency", "snap-start"})
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") in INITIALIZED_AHEAD:
    _observed()


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
