"""Intake's own receiver (refundflow.receiver) answers exactly as the Powertools resolver of the other API functions
(http_api.build_app) does: the same status, headers, body and payload 2.0 shape for every error, no route, a wrong
method, a stage in the path, and success answers; and it looks headers up whatever their case."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from refundflow import http_api
from refundflow.api import RefundAccepted
from refundflow.errors import (
    AuthenticationFailed,
    CardDataRefused,
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
from refundflow.receiver import Headers, Request, RouteDoc, Router, answer, json_answer
from refundflow.status import RefundStatus
from tests.support.api_events import http_api_event

DOC = RouteDoc("s", "d", 200, "ok", "WebhookAck", (400,), ("t",))


def with_errors(errors: list[dict[str, Any]]) -> InvalidRequest:
    invalid = InvalidRequest("the body does not match RefundRequestBody", code="validation_failed")
    invalid.errors = errors  # type: ignore[attr-defined]
    return invalid


ERRORS: list[RefundflowError | Exception] = [
    AuthenticationFailed("no valid signature", code="invalid_signature"),
    Forbidden("source.system 'x' is not the source", code="source_mismatch"),
    NotFound("no such platform: nope", code="platform_not_found"),
    IdempotencyConflict("received before with other content"),
    IllegalTransition("not from COMPLETED"),
    ConcurrentModification("changed meanwhile"),
    InvalidRequest("the body is not valid JSON: Expecting value", code="invalid_json"),
    with_errors([{"field": "payment.payment_id", "problem": "Field required", "type": "missing"}]),
    CardDataRefused("card data is never accepted", errors=[{"field": "note", "problem": "holds a card number"}]),
    http_api.PayloadTooLarge("the body is 70000 bytes; the limit is 65536"),
    http_api.UnsupportedMediaType("content-type must be application/json, got text/plain"),
    GuardUnavailable("the refunds table could not be reached"),
    TransientError("the platform function could not be reached"),
    ConfigurationError("secret x is not JSON"),
    RefundflowError("a refundflow error of no known kind"),
    RuntimeError("a bug"),
    InvalidRequest("non-ASCII détail (10 €) kept as written", code="invalid_json"),
]


def raising(error: Exception, *, receiver: bool = False) -> Callable[..., Any]:
    """A route raising ``error``: the receiver's takes the request, the resolver's nothing (it reads its own)."""

    def receiver_route(request: Request, **_: str) -> Any:
        raise error

    def powertools_route() -> Any:
        raise error

    return receiver_route if receiver else powertools_route


def both(register: Callable[[APIGatewayHttpRouter, Router], None]) -> tuple[Any, Router]:
    powertools_router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
    receiver = Router()
    register(powertools_router, receiver)
    return http_api.build_app(powertools_router), receiver


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_every_error_is_answered_as_the_powertools_resolver_answers_it(error: Exception) -> None:
    # GIVEN the same route raising the same error in the resolver and in the receiver
    def register(powertools_router: APIGatewayHttpRouter, receiver: Router) -> None:
        powertools_router.post("/refund-requests")(raising(error))
        receiver.post("/refund-requests", DOC)(raising(error, receiver=True))

    app, receiver = both(register)
    event = http_api_event("POST", "/refund-requests", b"{}")

    # WHEN each answers the request
    expected = app.resolve(event, None)
    answered = receiver.resolve(event)

    # THEN the answers are the same, byte for byte (a 503 with its Retry-After, a 500 telling nothing)
    assert answered == expected
    assert answered["statusCode"] >= 400


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/no-such-route"), ("GET", "/refund-requests"), ("POST", "/webhooks/a/b"), ("POST", "/webhooks/")],
)
def test_no_route_is_a_404_problem_as_the_resolver_gives_it(method: str, path: str) -> None:
    def register(powertools_router: APIGatewayHttpRouter, receiver: Router) -> None:
        powertools_router.post("/refund-requests")(raising(AssertionError("not this route")))
        powertools_router.post("/webhooks/<platform>")(raising(AssertionError("not this route")))
        receiver.post("/refund-requests", DOC)(raising(AssertionError("not this route"), receiver=True))
        receiver.post("/webhooks/<platform>", DOC)(raising(AssertionError("not this route"), receiver=True))

    app, receiver = both(register)
    event = http_api_event(method, path, b"{}")

    answered = receiver.resolve(event)

    assert answered == app.resolve(event, None)
    assert answered["statusCode"] == 404
    assert json.loads(answered["body"])["code"] == "route_not_found"


def test_a_path_parameter_and_a_stage_are_read_as_the_resolver_reads_them() -> None:
    seen: dict[str, list[str]] = {"powertools": [], "receiver": []}

    def register(powertools_router: APIGatewayHttpRouter, receiver: Router) -> None:
        @powertools_router.post("/webhooks/<platform>")
        def powertools_route(platform: str) -> Response[str]:
            seen["powertools"].append(platform)
            return Response(200, "text/plain", "[accepted]", headers={"Refundflow-Duplicate-Delivery": "false"})

        @receiver.post("/webhooks/<platform>", DOC)
        def receiver_route(request: Request, platform: str) -> dict[str, Any]:
            seen["receiver"].append(platform)
            return answer(200, "[accepted]", "text/plain", {"Refundflow-Duplicate-Delivery": "false"})

    app, receiver = both(register)
    for path, stage in [("/webhooks/amazon_pay", "$default"), ("/live/webhooks/zoho-books.eu", "live")]:
        event = http_api_event("POST", path, b"x")
        event["requestContext"]["stage"] = stage

        assert receiver.resolve(event) == app.resolve(event, None)

    assert seen["receiver"] == seen["powertools"] == ["amazon_pay", "zoho-books.eu"]


def test_a_json_answer_is_written_as_the_resolver_writes_a_model() -> None:
    accepted = RefundAccepted(
        refund_id="rf_" + "ab" * 16,
        status=RefundStatus.RECEIVED,
        duplicate=True,
        links={"self": {"href": "/refunds/rf_x"}},  # type: ignore[dict-item]
    )

    def register(powertools_router: APIGatewayHttpRouter, receiver: Router) -> None:
        @powertools_router.post("/refund-requests")
        def powertools_route() -> Response[RefundAccepted]:
            return http_api.json_response(202, accepted)

        @receiver.post("/refund-requests", DOC)
        def receiver_route(request: Request) -> dict[str, Any]:
            return json_answer(202, accepted.model_dump(mode="json", by_alias=True))

    app, receiver = both(register)
    event = http_api_event("POST", "/refund-requests", b"{}")

    assert receiver.resolve(event) == app.resolve(event, None)


def test_headers_are_found_whatever_their_case() -> None:
    headers = Headers({"Stripe-Signature": "t=1,v1=ab", "content-type": "application/json; charset=utf-8"})

    assert headers["stripe-signature"] == headers.get("STRIPE-SIGNATURE") == "t=1,v1=ab"
    assert "Content-Type" in headers
    assert headers.get("webhook-id") is None
    assert dict(headers) == {"stripe-signature": "t=1,v1=ab", "content-type": "application/json; charset=utf-8"}
    assert Request({"headers": {"Content-Type": "Text/XML; charset=utf-8"}}).media_type == "text/xml"
