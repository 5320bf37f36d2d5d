"""The HTTP API's shared plumbing: one resolver factory with RFC 9457 problem answers for every
error, body limits and content-type checks, and JSON answers from models."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ValidationError

from refundflow import carddata
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


# Deeper than any body refundflow takes; checked before parsing, so the parser never recurses far.
MAX_JSON_DEPTH = 32
# Integers beyond what every JSON parser reads exactly (RFC 8259, section 6) are refused, not rounded.
MAX_JSON_INTEGER = 2**53 - 1
DEFAULT_MAX_BODY_BYTES = 65_536
_BYTE_ORDER_MARKS = (b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_DELIVERY_ID = re.compile(r"^[\x21-\x7e]{1,256}$")


class _Refused(ValueError):
    """Raised inside the JSON parser's hooks: the body is refused with this code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _invalid(message: str, code: str, errors: list[dict[str, Any]] | None = None) -> InvalidRequest:
    invalid = InvalidRequest(message, code=code)
    if errors is not None:
        invalid.errors = errors  # type: ignore[attr-defined]
    return invalid


def _json_depth_exceeds(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for char in _NOT_A_BRACKET.sub("", _STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = carddata.mask_text(key)[:64]
                raise _Refused(f"the key {shown!r} appears twice in one object", "duplicate_key")
            seen.add(key)
    return document


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 16 or abs(value := int(text)) > MAX_JSON_INTEGER:
        raise _Refused("an integer is out of range (at most 2**53 - 1 either way)", "number_out_of_range")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("a number is out of range", "number_out_of_range")
    return value


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON value (RFC 8259)", "invalid_json")


def _strings(document: Any) -> Iterator[str]:
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from value.keys()
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def decode_json(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, read as RFC 8259 says: UTF-8 without a byte order mark, no
    NaN or Infinity, unique keys, numbers every parser reads the same, no lone surrogates, and no
    deeper than ``MAX_JSON_DEPTH``.

    Raises:
        InvalidRequest: with the precise code (invalid_encoding, invalid_json, json_too_deep,
            duplicate_key, number_out_of_range).
    """
    if raw.startswith(_BYTE_ORDER_MARKS):
        raise _invalid("JSON must be UTF-8 without a byte order mark (RFC 8259)", "invalid_encoding")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid(f"the body is not UTF-8: {error.reason} at byte {error.start}", "invalid_encoding") from error
    if "\x00" in text:
        raise _invalid("the body holds NUL characters: JSON must be UTF-8, not UTF-16 or UTF-32", "invalid_encoding")
    if _json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise _invalid(f"the body nests deeper than {MAX_JSON_DEPTH} levels", "json_too_deep")
    try:
        document = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except _Refused as error:
        raise _invalid(str(error), error.code) from error
    except RecursionError as error:  # unreachable after the depth check; never a 500 if it were not
        raise _invalid(f"the body nests deeper than {MAX_JSON_DEPTH} levels", "json_too_deep") from error
    except ValueError as error:
        raise _invalid(f"the body is not valid JSON: {error}", "invalid_json") from error
    if not isinstance(document, dict):
        raise _invalid("the body must be a JSON object", "invalid_json")
    if any(_SURROGATE.search(value) for value in _strings(document)):
        raise _invalid("the body holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)", "invalid_encoding")
    return document


refuse_card_data = carddata.refuse_card_data
"""Re-exported: the intake refuses card data in a body before any model sees it (``errors.CardDataRefused``)."""


def parse_body(model: type[M], raw: bytes) -> M:
    """Parse a JSON body into ``model``: strict JSON (:func:`decode_json`), then the card check on the
    whole document (so no field escapes it), then the model.

    Raises:
        InvalidRequest: not strict JSON, card data, or not the model's shape (field-level problems attached).
    """
    document = decode_json(raw)
    refuse_card_data(document)
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise _invalid(
            f"the body does not match {model.__name__}",
            "validation_failed",
            field_problems(error.errors(include_url=False, include_input=False)),
        ) from error


def delivery_id(value: str) -> str:
    """A delivery id (``webhook-id``) fit to be a key: printable ASCII, at most 256 characters.

    Raises:
        InvalidRequest: otherwise (code invalid_delivery_id).
    """
    if not _DELIVERY_ID.match(value):
        raise _invalid("the delivery id must be 1 to 256 printable ASCII characters", "invalid_delivery_id")
    return value


def raw_body(
    event: APIGatewayProxyEventV2,
    *,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
    json_only: bool = True,
    allow_empty: bool = False,
) -> bytes:
    """The request body exactly as sent (signatures are computed over it), after size and type checks.
    Bytes, never decoded here: what they encode is the parser's question, after the signature's.

    ``allow_empty`` leaves an empty body to the signature check of a signed route: a forged delivery
    is then refused as unauthenticated (401), whatever its body.

    Raises:
        PayloadTooLarge, UnsupportedMediaType, InvalidRequest (empty body, unless allowed).
    """
    content_type = (event.headers or {}).get("content-type", "")
    if json_only and content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(f"content-type must be application/json, got {content_type or 'none'}")
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidRequest("the body is not valid base64", code="invalid_encoding") from error
    else:
        # A text body arrives as a str; surrogates a proxy let through stay bytes the parser refuses.
        data = body.encode("utf-8", "surrogatepass")
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

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(error: Exception) -> Response[str]:
        # Powertools' own HTTP errors keep their status; anything else is a bug: a 500 that tells nothing.
        if isinstance(error, ServiceError) and 400 <= error.status_code < 500:
            return problem(error.status_code, "request_refused", HTTPStatus(error.status_code).phrase, str(error.msg))
        logger.exception("unhandled error", extra={"error_type": type(error).__name__})
        return problem(500, "internal_error", "Internal Server Error", "internal error")

    return app
