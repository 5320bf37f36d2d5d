"""The HTTP API's shared plumbing: one resolver factory with RFC 9457 problem answers for every
error, body limits and content-type checks, and JSON answers from models."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from refundflow.api import ProblemDetail
from refundflow.errors import RefundflowError
from refundflow.json_bodies import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_INTEGER,
    PayloadTooLarge,
    UnsupportedMediaType,
    decode_json,
    delivery_id,
    field_problems,
    parse_body,
    raw_body,
    refuse_card_data,
)
from refundflow.observability import logger
from refundflow.receiver import PROBLEM_JSON, problem_for

M = TypeVar("M", bound=BaseModel)
__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_INTEGER",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "decode_json",
    "delivery_id",
    "field_problems",
    "parse_body",
    "raw_body",
    "refuse_card_data",
]


_PROBLEM_DESCRIPTIONS = {
    400: "Malformed request (invalid JSON or fields): see errors",
    401: "Missing, stale or invalid signature or credentials",
    403: "Authenticated but not allowed",
    404: "No such refund or route",
    409: "Conflicts with what was received or decided before",
    413: "Body too large",
    415: "Content-Type not taken here (JSON; a platform's webhook route takes the media types it posts)",
    422: "Path or query parameters are not valid",
    503: "Temporarily unavailable: retry with the same request",
}


def documented(success: int, description: str, model: type[BaseModel], *problems: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI ``responses`` for a route: its success model and the problem documents it may return."""
    responses: dict[int, OpenAPIResponse] = {
        success: {"description": description, "content": {"application/json": {"model": model}}}
    }
    for status in problems:
        responses[status] = {
            "description": _PROBLEM_DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"model": ProblemDetail}},
        }
    return responses


def problem(
    status: int, code: str, title: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> Response[str]:
    body = ProblemDetail(title=title, status=status, detail=detail, code=code, errors=errors)
    headers = {"Retry-After": "5"} if status == 503 else None
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=headers,
    )


def json_response(status: int, model: M) -> Response[M]:
    """A JSON answer; the resolver serialises (and, with validation on, checks) the model."""
    return Response(status_code=status, content_type="application/json", body=model)


def build_app(*routers: APIGatewayHttpRouter, enable_validation: bool = True) -> APIGatewayHttpResolver:
    """A resolver with the given routes and problem-document answers for every error."""
    app = APIGatewayHttpResolver(enable_validation=enable_validation)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(RefundflowError)  # type: ignore[untyped-decorator]
    def _known(error: RefundflowError) -> Response[str]:
        found = problem_for(error)  # the same answers as intake's own receiver (refundflow.receiver)
        if found.server_error:
            logger.exception("request failed", extra={"code": error.code})
        return problem(found.status, found.code, found.title, found.detail, found.errors)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(error: RequestValidationError) -> Response[str]:
        errors = field_problems(error.errors())
        return problem(422, "validation_failed", "Unprocessable Content", "the request is not valid", errors)

    @app.not_found
    def _not_found(error: Exception) -> Response[str]:
        return problem(404, "route_not_found", "Not Found", "no such route")

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(error: Exception) -> Response[str]:
        # Powertools' own HTTP errors keep their status; anything else is a bug: a 500 that tells nothing.
        if isinstance(error, ServiceError) and 400 <= error.status_code < 500:
            return problem(error.status_code, "request_refused", HTTPStatus(error.status_code).phrase, str(error.msg))
        logger.exception("unhandled error", extra={"error_type": type(error).__name__})
        return problem(500, "internal_error", "Internal Server Error", "internal error")

    return app
