"""The HTTP API's shared plumbing: one resolver factory with RFC 9457 problem answers for every
error, body limits and content-type checks, and JSON answers from models."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ValidationError

from refundflow.api import ProblemDetail
from refundflow.errors import (
    AuthenticationFailed,
    ConcurrentModification,
    ConfigurationError,
    Forbidden,
    GuardUnavailable,
    IdempotencyConflict,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    RefundflowError,
    TransientError,
)
from refundflow.observability import logger

M = TypeVar("M", bound=BaseModel)
PROBLEM_JSON = "application/problem+json"
_STATUS_FOR: list[tuple[type[RefundflowError], int, str]] = [
    (AuthenticationFailed, 401, "Unauthorized"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not Found"),
    (IdempotencyConflict, 409, "Conflict"),
    (IllegalTransition, 409, "Conflict"),
    (ConcurrentModification, 409, "Conflict"),
    (InvalidRequest, 400, "Bad Request"),
    (GuardUnavailable, 503, "Service Unavailable"),
    (TransientError, 503, "Service Unavailable"),
    (ConfigurationError, 500, "Internal Server Error"),
]


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"


_PROBLEM_DESCRIPTIONS = {
    400: "Malformed request (invalid JSON or fields): see errors",
    401: "Missing, stale or invalid signature or credentials",
    403: "Authenticated but not allowed",
    404: "No such refund or route",
    409: "Conflicts with what was received or decided before",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Path or query parameters are not valid",
    503: "Temporarily unavailable: retry with the same request",
}


def documented(success: int, description: str, model: type[BaseModel], *problems: int) -> dict[int, dict[str, Any]]:
    """OpenAPI ``responses`` for a route: its success model and the problem documents it may return."""
    responses: dict[int, dict[str, Any]] = {
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


def field_problems(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's (or the resolver's) validation errors as the problem document's ``errors``."""
    return [
        {
            "field": ".".join(str(part) for part in item.get("loc", ())) or "body",
            "problem": item.get("msg", ""),
            "type": item.get("type", ""),
        }
        for item in items
    ]


def parse_body(model: type[M], raw: bytes) -> M:
    """Parse a JSON body into ``model``.

    Raises:
        InvalidRequest: not JSON, or not the model's shape (field-level problems attached).
    """
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}", code="invalid_json") from error
    if not isinstance(document, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        invalid = InvalidRequest(f"the body does not match {model.__name__}", code="validation_failed")
        invalid.errors = field_problems(error.errors(include_url=False, include_input=False))  # type: ignore[attr-defined]
        raise invalid from error


def raw_body(
    event: APIGatewayProxyEventV2, *, max_bytes: int, json_only: bool = True, allow_empty: bool = False
) -> bytes:
    """The request body exactly as sent (signatures are computed over it), after size and type checks.

    ``allow_empty`` leaves an empty body to the signature check of a signed route: a forged delivery
    is then refused as unauthenticated (401), whatever its body.

    Raises:
        PayloadTooLarge, UnsupportedMediaType, InvalidRequest (empty body, unless allowed).
    """
    content_type = (event.headers or {}).get("content-type", "")
    if json_only and content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(f"content-type must be application/json, got {content_type or 'none'}")
    body = event.decoded_body or ""
    data = body.encode("utf-8") if isinstance(body, str) else body
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the body is {len(data)} bytes; the limit is {max_bytes}")
    if not data and not allow_empty:
        raise InvalidRequest("the body is empty", code="empty_body")
    return data


def build_app(*routers: APIGatewayHttpRouter, enable_validation: bool = True) -> APIGatewayHttpResolver:
    """A resolver with the given routes and problem-document answers for every error."""
    app = APIGatewayHttpResolver(enable_validation=enable_validation)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(RefundflowError)  # type: ignore[untyped-decorator]
    def _known(error: RefundflowError) -> Response[str]:
        for error_type, status, title in _STATUS_FOR:
            if isinstance(error, error_type):
                if status >= 500:
                    logger.exception("request failed", extra={"code": error.code})
                    detail = error.message if status == 503 else "internal error"
                    return problem(status, error.code, title, detail)
                extra = (
                    413
                    if isinstance(error, PayloadTooLarge)
                    else 415
                    if isinstance(error, UnsupportedMediaType)
                    else status
                )
                return problem(
                    extra,
                    error.code,
                    {413: "Payload Too Large", 415: "Unsupported Media Type"}.get(extra, title),
                    error.message,
                    getattr(error, "errors", None),
                )
        logger.exception("unexpected refundflow error")
        return problem(500, error.code, "Internal Server Error", "internal error")

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(error: RequestValidationError) -> Response[str]:
        errors = field_problems(error.errors())
        return problem(422, "validation_failed", "Unprocessable Content", "the request is not valid", errors)

    @app.not_found
    def _not_found(error: Exception) -> Response[str]:
        return problem(404, "route_not_found", "Not Found", "no such route")

    return app
