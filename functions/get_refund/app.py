"""Invoked by API Gateway (HTTP API, IAM-authorised) for GET /refunds/{refund_id} and the traces: GET
/refunds/{refund_id}/trace (ticket to bank line), GET /payouts/{payout_id}/trace and GET /bank-lines/trace (a bank
line or a payout back to its refunds)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.typing import LambdaContext

from refundflow import http_api, wiring
from refundflow.api import RefundView
from refundflow.domain.trace import BankLineTrace, PayoutTrace, RefundTrace, bank_line_trace, payout_trace, refund_trace
from refundflow.domain.views import refund_view
from refundflow.observability import logger, metrics, tracer

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
REFUND_ID = r"^rf_[0-9a-f]{32}$"


@router.get(
    "/refunds/<refund_id>",
    summary="A refund's status, amounts, references and verified audit timeline",
    responses=http_api.documented(200, "The refund", RefundView, 404, 422),
    tags=["refunds"],
)
def get_refund(refund_id: Annotated[str, Path(pattern=REFUND_ID)]) -> Response[RefundView]:
    logger.append_keys(refund_id=refund_id)
    return http_api.json_response(200, refund_view(refund_id, repository=wiring.repository()))


@router.get(
    "/refunds/<refund_id>/trace",
    summary="A refund's trace: ticket, policy, provider refund and ARN, credit document, settlement line, payout, bank "
    "line; a missing hop says which and why",
    responses=http_api.documented(200, "The refund's trace", RefundTrace, 404, 422),
    tags=["refunds"],
)
def get_refund_trace(refund_id: Annotated[str, Path(pattern=REFUND_ID)]) -> Response[RefundTrace]:
    logger.append_keys(refund_id=refund_id)
    return http_api.json_response(200, refund_trace(refund_id, repository=wiring.repository()))


# A provider's payout id (Stripe po_..., Adyen's batch, ...): what settlement reports name; no slashes.
PAYOUT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
AFTER = "The ``next`` of the previous page: the payout's refunds after it."
# The values become DynamoDB keys, whose limits are in bytes (a sort key at most 1,024, a partition key 2,048:
# docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html) while a query's lengths count
# characters: 900 characters of a four-byte script are 3,600 bytes, which DynamoDB refuses (ValidationException, a
# 503 here). A statement's key is an S3 object key, at most 1,024 bytes of UTF-8; ``after`` is a line key we
# answered as ``next``, stored after ``LINE#`` in a sort key.
STATEMENT_KEY_BYTES = 1024
AFTER_BYTES = 1024 - len("LINE#")


def _at_most_bytes(**limits: tuple[str | None, int]) -> None:
    """422 for a query value longer than its key can be, in bytes (checked here rather than by a validator in the
    parameter's type, which would drop the parameter's pattern and length from the OpenAPI document).

    Raises:
        RequestValidationError: naming each field too long (``query.<name>``), as the parameters' own checks do.
    """
    errors = [
        {"loc": ("query", name), "msg": f"String should have at most {limit} bytes of UTF-8", "type": "string_too_long"}
        for name, (value, limit) in limits.items()
        if value is not None and len(value.encode("utf-8", "surrogatepass")) > limit
    ]
    if errors:
        raise RequestValidationError(errors)


@router.get(
    "/payouts/<payout_id>/trace",
    summary="Which refunds a payout carried: the payout, the bank line that credited it, each refund's trace summary",
    responses=http_api.documented(200, "The payout's trace", PayoutTrace, 404, 422),
    tags=["reconciliation"],
)
def get_payout_trace(
    payout_id: Annotated[str, Path(pattern=PAYOUT_ID)],
    after: Annotated[str | None, Query(max_length=1024, description=AFTER)] = None,
) -> Response[PayoutTrace]:
    logger.append_keys(payout_id=payout_id)
    _at_most_bytes(after=(after, AFTER_BYTES))
    return http_api.json_response(200, payout_trace(payout_id, repository=wiring.repository(), after=after))


@router.get(
    "/bank-lines/trace",
    summary="Which refunds are in a bank statement line: the payout it credited and that payout's refunds",
    responses=http_api.documented(200, "The bank line's trace", BankLineTrace, 404, 422),
    tags=["reconciliation"],
)
def get_bank_line_trace(
    file: Annotated[
        str,
        Query(
            pattern=r"^settlement/bank/[a-z0-9]+/[^\x00-\x1f]{1,900}$",
            description="The statement's key in the settlement drop (settlement/bank/<format>/<file>).",
        ),
    ],
    line: Annotated[int, Query(ge=1, le=10_000_000, description="The line's number in the statement (1 = first).")],
    after: Annotated[str | None, Query(max_length=1024, description=AFTER)] = None,
) -> Response[BankLineTrace]:
    logger.append_keys(bank_statement=file, bank_line=line)
    _at_most_bytes(file=(file, STATEMENT_KEY_BYTES), after=(after, AFTER_BYTES))
    return http_api.json_response(200, bank_line_trace(file, line, repository=wiring.repository(), after=after))


app = http_api.build_app(router)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
