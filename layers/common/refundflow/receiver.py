"""A thin receiver for API Gateway HTTP API events (payload format 2.0): a router of its own, the request's shape
and RFC 9457 problem answers, with nothing but the standard library and ``errors`` imported.

Intake (functions/receive_webhook) answers every request through it instead of Powertools' resolver, whose
package imports every resolver it has (AppSync's and Bedrock's included) for an API that uses one: README, Cost per
refund, "Cold import". The answers are the ones the Powertools resolver gave (``http_api.build_app``, which maps
errors with :func:`problem_for` too): the same status, ``Content-Type``, headers and body, a ``headers``/``cookies``
pair as payload 2.0 expects (tests/unit/core/test_receiver.py).

The OpenAPI document is still Powertools' (``local.tools openapi``): each route carries its :class:`RouteDoc`,
and :meth:`Router.powertools_router` builds the documented router from them, only when the document is made.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from refundflow.json_bodies import PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
STATUS_FOR: list[tuple[type[RefundflowError], int, str]] = [
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
# Powertools' rule for a path parameter (``<name>``): RFC 3986's unreserved and sub-delims characters, and the
# ones API Gateway decodes before the function sees them.
_PARAMETER = re.compile(r"<(\w+)>")
_PARAMETER_VALUE = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"


@dataclass(frozen=True)
class Problem:
    """What an error is answered with: an RFC 9457 problem document and whether it is a server error."""

    status: int
    code: str
    title: str
    detail: str
    errors: list[dict[str, Any]] | None = None

    @property
    def server_error(self) -> bool:
        return self.status >= 500


def problem_for(error: RefundflowError) -> Problem:
    """The problem document of a refundflow error: a client error says what was wrong (with its field problems),
    a 503 says what is unavailable, any other server error tells nothing."""
    for error_type, status, title in STATUS_FOR:
        if isinstance(error, error_type):
            if status >= 500:
                return Problem(status, error.code, title, error.message if status == 503 else "internal error")
            if isinstance(error, PayloadTooLarge):
                status, title = 413, "Payload Too Large"
            elif isinstance(error, UnsupportedMediaType):
                status, title = 415, "Unsupported Media Type"
            return Problem(status, error.code, title, error.message, getattr(error, "errors", None))
    return Problem(500, error.code, "Internal Server Error", "internal error")


def problem_json(problem: Problem) -> str:
    """The document as ``ProblemDetail.model_dump_json(exclude_none=True)`` writes it (refundflow.api)."""
    document: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.errors is not None:
        document["errors"] = problem.errors
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def answer(
    status: int, body: str, content_type: str = JSON, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A payload 2.0 answer, as Powertools' resolver builds it (its ``Content-Type`` unless headers name one)."""
    return {
        "statusCode": status,
        "body": body,
        "isBase64Encoded": False,
        "headers": {**(headers or {}), "Content-Type": (headers or {}).get("Content-Type", content_type)},
        "cookies": [],
    }


def json_answer(status: int, document: Any) -> dict[str, Any]:
    """A JSON answer written as Powertools' resolver writes one (compact, ASCII)."""
    return answer(status, json.dumps(document, separators=(",", ":")))


def problem_answer(problem: Problem) -> dict[str, Any]:
    """The problem's answer; a 503 tells when to try again."""
    return answer(
        problem.status, problem_json(problem), PROBLEM_JSON, {"Retry-After": "5"} if problem.status == 503 else None
    )


class Headers(Mapping[str, str]):
    """A request's headers, looked up whatever the case (HTTP API sends them lower-case; verifiers ask for
    ``Stripe-Signature``)."""

    def __init__(self, headers: Mapping[str, str] | None) -> None:
        self._headers = {name.lower(): value for name, value in (headers or {}).items()}

    def __getitem__(self, name: str) -> str:
        return self._headers[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._headers

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


class Request:
    """An HTTP API (payload 2.0) event: what a route reads of it."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.event = event
        context = event.get("requestContext") or {}
        self.method = str((context.get("http") or {}).get("method", "")).upper()
        path = str(event.get("rawPath") or "")
        stage = context.get("stage", "$default")
        self.path = path[len(f"/{stage}") :] if stage != "$default" else path
        self.headers = Headers(event.get("headers"))
        self.body: str | None = event.get("body")
        self.is_base64_encoded: bool | None = event.get("isBase64Encoded")
        self.query_string_parameters: dict[str, str] = event.get("queryStringParameters") or {}

    @property
    def media_type(self) -> str:
        """The ``Content-Type`` without its parameters, lower-case ("" when none)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class RouteDoc:
    """A route's OpenAPI documentation: ``returns`` names the success model of refundflow.api (None: any body)."""

    summary: str
    description: str
    success: int
    success_description: str
    model: str
    problems: tuple[int, ...]
    tags: tuple[str, ...]
    returns: str | None = None


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    handler: Callable[..., dict[str, Any]]
    doc: RouteDoc
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = _PARAMETER.sub(lambda match: f"(?P<{match.group(1)}>{_PARAMETER_VALUE})", self.rule)
        object.__setattr__(self, "pattern", re.compile(f"^{pattern}$"))


class Router:
    """Routes by method and path (``<name>`` is a path parameter, passed to the route by name); each route is
    called with the :class:`Request` and answers a payload 2.0 dict. A refundflow error is answered with its problem
    document, anything else with a 500 that tells nothing; no route, a 404."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def post(self, rule: str, doc: RouteDoc) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., Any]]:
        def register(handler: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
            self.routes.append(Route("POST", rule, handler, doc))
            return handler

        return register

    def resolve(self, event: Mapping[str, Any]) -> dict[str, Any]:
        request = Request(event)
        for route in self.routes:
            matched = route.pattern.match(request.path) if route.method == request.method else None
            if matched is None:
                continue
            try:
                return route.handler(request, **matched.groupdict())
            except RefundflowError as error:
                problem = problem_for(error)
                if problem.server_error:
                    _log_exception("request failed", {"code": error.code})
                return problem_answer(problem)
            except Exception as error:  # a bug: a 500 that tells nothing, logged with its type
                _log_exception("unhandled error", {"error_type": type(error).__name__})
                return problem_answer(Problem(500, "internal_error", "Internal Server Error", "internal error"))
        return problem_answer(Problem(404, "route_not_found", "Not Found", "no such route"))

    def powertools_router(self) -> APIGatewayHttpRouter:
        """The routes as a Powertools router with their documentation, for the OpenAPI document only: each route
        under its handler's name (the operation id), with its path parameters and success model."""
        from aws_lambda_powertools.event_handler import Response
        from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

        from refundflow import api, http_api

        router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
        for route in self.routes:
            doc = route.doc
            returns: Any = getattr(api, doc.returns) if doc.returns else Any
            parameters = [
                inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)
                for name in _PARAMETER.findall(route.rule)
            ]

            def documented_only(**_: str) -> None:
                raise NotImplementedError("documentation only: the receiver answers this route")

            documented_only.__name__ = route.handler.__name__
            documented_only.__qualname__ = route.handler.__name__
            documented_only.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
                parameters,
                return_annotation=Response[returns],
            )
            router.route(
                route.rule,
                route.method,
                summary=doc.summary,
                description=doc.description,
                responses=http_api.documented(
                    doc.success, doc.success_description, getattr(api, doc.model), *doc.problems
                ),
                tags=list(doc.tags),
            )(documented_only)
        return router


def _log_exception(message: str, extra: dict[str, Any]) -> None:
    """Logged through the one Logger (loaded here if nothing loaded it yet: a server error is rare)."""
    from refundflow.logs import logger

    logger.exception(message, extra=extra)


__all__ = ["Headers", "Problem", "Request", "RouteDoc", "Router", "answer", "problem_for"]
