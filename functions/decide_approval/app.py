"""Invoked by API Gateway (HTTP API, JWT-authorised) for POST /refunds/{refund_id}/approval and, for a split-tender
refund whose leg failed after others paid, POST /refunds/{refund_id}/legs/{leg}/remedy."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from refundflow import http_api, settings, wiring
from refundflow.api import ApprovalRequestBody, ApprovalResult, RemedyRequestBody, RemedyResult
from refundflow.domain.approval import ApproverIdentity, decide_approval
from refundflow.observability import logger, metrics, tracer
from refundflow.policy import active_policy

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
# Parsed by the handler (strict JSON, card check, then the model), so documented for OpenAPI here.
REQUEST_BODIES: dict[str, type[BaseModel]] = {
    "/refunds/{refund_id}/approval": ApprovalRequestBody,
    "/refunds/{refund_id}/legs/{leg}/remedy": RemedyRequestBody,
}


@router.post(
    "/refunds/<refund_id>/approval",
    summary="Approve or reject a refund that waits for a person (JWT: approver role claim, single-use jti)",
    description="Body: ApprovalRequestBody.",
    responses=http_api.documented(200, "Decision recorded", ApprovalResult, 400, 401, 403, 404, 409, 413, 415, 422),
    tags=["approvals"],
)
def approve_refund(refund_id: Annotated[str, Path(pattern=r"^rf_[0-9a-f]{32}$")]) -> Response[ApprovalResult]:
    body = http_api.parse_body(ApprovalRequestBody, http_api.raw_body(router.current_event))
    approver = _approver()
    logger.append_keys(refund_id=refund_id, approver=approver.subject, approver_role=approver.role)
    refund = decide_approval(
        refund_id,
        body.decision,
        body.note,
        approver,
        recorder=wiring.recorder(),
        policy=active_policy().select().policy,
        callbacks=wiring.callbacks(),
    )
    result = ApprovalResult(
        refund_id=refund_id,
        status=refund.status,
        decision=body.decision,
        approver=approver.subject,
        role=str(approver.role),
    )
    return http_api.json_response(200, result)


@router.post(
    "/refunds/<refund_id>/legs/<leg>/remedy",
    summary="Choose a remedy for a split-tender leg that failed after others paid (JWT as for approvals)",
    description="Body: RemedyRequestBody. retry the leg, move its amount to another tender with room, or store "
    "credit; the new leg is a refund of its own and the parent waits for it again.",
    responses=http_api.documented(200, "Remedy recorded", RemedyResult, 400, 401, 403, 404, 409, 413, 415, 422),
    tags=["approvals"],
)
def remedy_leg(
    refund_id: Annotated[str, Path(pattern=r"^rf_[0-9a-f]{32}$")], leg: Annotated[int, Path(ge=0, le=63)]
) -> Response[RemedyResult]:
    body = http_api.parse_body(RemedyRequestBody, http_api.raw_body(router.current_event))
    approver = _approver()
    logger.append_keys(refund_id=refund_id, leg=leg, approver=approver.subject, approver_role=approver.role)
    # Imported here: only a remedy creates legs and starts workflows (the approval path stays as light as it was).
    from refundflow.domain.intake import timing_from
    from refundflow.domain.split_remedies import choose_remedy

    parent = choose_remedy(
        refund_id,
        leg,
        body.action,
        body.tender,
        approver,
        recorder=wiring.recorder(),
        policy=active_policy().select().policy,
        starter=wiring.workflow(),
        timing=timing_from(settings.load(settings.WorkflowTimingSettings)),
        note=body.note,
    )
    new_leg = parent.legs[-1]
    result = RemedyResult(
        refund_id=refund_id,
        status=parent.status,
        action=body.action,
        leg=new_leg.index,
        leg_refund_id=new_leg.refund_id or "",
        approver=approver.subject,
    )
    return http_api.json_response(200, result)


def _approver() -> ApproverIdentity:
    """Who is deciding, from the claims the JWT authorizer verified."""
    config = settings.load(settings.ApprovalSettings)
    claims = router.current_event.request_context.authorizer.jwt_claim or {}
    return ApproverIdentity(
        subject=str(claims.get("sub", "")),
        role=claims.get(config.role_claim),
        token_id=claims.get("jti"),
        bound_refund_id=claims.get(config.refund_claim),
    )


app = http_api.build_app(router)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
