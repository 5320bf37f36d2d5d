"""Invoked by API Gateway (HTTP API, IAM-authorised) for GET /refunds/{refund_id}."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import http_api, wiring
from refundflow.api import RefundView
from refundflow.domain.views import refund_view
from refundflow.observability import logger, metrics, tracer

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]


@router.get(
    "/refunds/<refund_id>",
    summary="A refund's status, amounts, references and verified audit timeline",
    responses=http_api.documented(200, "The refund", RefundView, 404, 422),
    tags=["refunds"],
)
def get_refund(refund_id: Annotated[str, Path(pattern=r"^rf_[0-9a-f]{32}$")]) -> Response[RefundView]:
    logger.append_keys(refund_id=refund_id)
    return http_api.json_response(200, refund_view(refund_id, repository=wiring.repository()))


app = http_api.build_app(router)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
