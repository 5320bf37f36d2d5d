"""What a client may send: no mass assignment of amounts, approval or status (R14); malformed,
oversized, empty and wrongly typed bodies answered with a clear 4xx, never a crash (R18)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import ValidationError

from refundflow import http_api
from refundflow.api import RefundRequestBody
from refundflow.errors import (
    AuthenticationFailed,
    ConfigurationError,
    GuardUnavailable,
    IdempotencyConflict,
    InvalidRequest,
    RefundflowError,
)
from refundflow.money import Money
from tests.support.fakes import refund_request_body


def valid_document(**changes: Any) -> dict[str, Any]:
    document = refund_request_body().model_dump(mode="json", by_alias=True, exclude_none=True)
    document.update(changes)
    return document


# ---------------------------------------------------------------- mass assignment (R14)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("approved", True),
        ("refundable", {"minor_units": 999_999, "currency": "EUR"}),
        ("status", "APPROVED"),
        ("refunded", 0),
        ("captured", {"minor_units": 999_999, "currency": "EUR"}),
        ("policy", {"outcome": "approve"}),
        ("approval", {"decision": "approve"}),
        ("reservation", {"state": "HELD"}),
        ("refund_id", "rf_" + "0" * 32),
    ],
)
def test_a_request_cannot_set_what_only_refundflow_decides(field: str, value: Any) -> None:
    # GIVEN a valid request with a field the client must not set
    document = valid_document(**{field: value})
    # WHEN it is parsed THEN it is refused, naming the field
    with pytest.raises(ValidationError) as raised:
        RefundRequestBody.model_validate(document)
    assert any(error["type"] == "extra_forbidden" and error["loc"] == (field,) for error in raised.value.errors())


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("payment", "refundable"),
        ("payment", "captured"),
        ("amount", "approved"),
        ("customer", "approved"),
        ("source", "status"),
    ],
)
def test_nested_objects_cannot_smuggle_fields_either(path: str, field: str) -> None:
    # GIVEN a nested object of the request carrying an extra field
    document = valid_document()
    document[path] = {**document[path], field: True}
    # WHEN parsed THEN it is refused
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RefundRequestBody.model_validate(document)


@pytest.mark.parametrize(
    "amount",
    [
        {"minor_units": 0, "currency": "EUR"},
        {"minor_units": -100, "currency": "EUR"},
        {"minor_units": 25.5, "currency": "EUR"},
        {"minor_units": "2500", "currency": "EUR"},
        {"minor_units": 2500, "currency": "XXX"},
    ],
)
def test_the_requested_amount_must_be_a_positive_integer_in_a_real_currency(amount: dict[str, Any]) -> None:
    # GIVEN a zero, negative, fractional, textual or unknown-currency amount WHEN parsed THEN refused
    with pytest.raises(ValidationError):
        RefundRequestBody.model_validate(valid_document(amount=amount))


def test_lines_must_add_up_to_the_amount_in_one_currency() -> None:
    # GIVEN lines that do not add up to the amount, or that mix currencies
    line = {"description": "Shoes", "amount": {"minor_units": 1_000, "currency": "EUR"}}
    other = {"description": "Socks", "amount": {"minor_units": 1_500, "currency": "USD"}}
    # WHEN parsed THEN both are refused, and lines that add up are accepted
    with pytest.raises(ValidationError, match="add up"):
        RefundRequestBody.model_validate(valid_document(lines=[line]))
    with pytest.raises(ValidationError, match="one currency"):
        RefundRequestBody.model_validate(valid_document(lines=[line, other]))
    body = RefundRequestBody.model_validate(valid_document(lines=[line, {**line, "description": "Belt"}], amount=None))
    assert body.requested_amount == Money.of(2_000, "EUR")


# ---------------------------------------------------------------- raw bodies (R18)


def http_event(
    body: str | bytes, *, content_type: str | None = "application/json", path: str = "/refund-requests"
) -> APIGatewayProxyEventV2:
    encoded = isinstance(body, bytes)
    return APIGatewayProxyEventV2(
        {
            "version": "2.0",
            "routeKey": f"POST {path}",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": content_type} if content_type else {},
            "requestContext": {"http": {"method": "POST", "path": path, "sourceIp": "192.0.2.1"}, "stage": "$default"},
            "body": base64.b64encode(body).decode() if encoded else body,
            "isBase64Encoded": encoded,
        }
    )


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_a_body_that_is_not_declared_json_is_unsupported(content_type: str | None) -> None:
    # GIVEN a request without a JSON content type WHEN its body is read THEN 415
    with pytest.raises(http_api.UnsupportedMediaType):
        http_api.raw_body(http_event("{}", content_type=content_type), max_bytes=1_000)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_content_types_are_accepted_and_the_body_is_returned_exactly(content_type: str) -> None:
    # GIVEN a JSON request (as base64, as API Gateway may pass it) WHEN read THEN the exact bytes come back
    raw = b'{"a": "\xc3\xa9",  "b": 1}'
    assert http_api.raw_body(http_event(raw, content_type=content_type), max_bytes=1_000) == raw


def test_an_oversized_body_is_refused() -> None:
    # GIVEN a limit of 100 bytes
    # WHEN bodies of 100 and 101 bytes arrive THEN the first is read, the second refused (413)
    assert len(http_api.raw_body(http_event("x" * 100), max_bytes=100)) == 100
    with pytest.raises(http_api.PayloadTooLarge):
        http_api.raw_body(http_event("x" * 101), max_bytes=100)


def test_an_empty_body_is_refused() -> None:
    # GIVEN a JSON request with no body WHEN read THEN it is refused with a clear code
    with pytest.raises(InvalidRequest) as raised:
        http_api.raw_body(http_event(""), max_bytes=1_000)
    assert raised.value.code == "empty_body"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"a": 1', "invalid_json"),
        (b"\xff\xfe{}", "invalid_encoding"),
        (b"NaN-ish", "invalid_json"),
    ],
)
def test_invalid_json_is_refused(raw: bytes, code: str) -> None:
    # GIVEN a body that is not JSON (or not UTF-8) WHEN parsed THEN a 400 saying which
    with pytest.raises(InvalidRequest) as raised:
        http_api.parse_body(RefundRequestBody, raw)
    assert raised.value.code == code


@pytest.mark.parametrize("raw", [b"[]", b'"refund"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_refused(raw: bytes) -> None:
    # GIVEN valid JSON that is not an object WHEN parsed THEN refused
    with pytest.raises(InvalidRequest) as raised:
        http_api.parse_body(RefundRequestBody, raw)
    assert raised.value.code == "invalid_json"


def test_a_mass_assigned_field_is_named_in_the_errors() -> None:
    # GIVEN a JSON body that tries to approve itself
    raw = json.dumps(valid_document(approved=True)).encode()
    # WHEN parsed THEN the answer says which field is not allowed
    with pytest.raises(InvalidRequest) as raised:
        http_api.parse_body(RefundRequestBody, raw)
    assert raised.value.code == "validation_failed"
    assert {"field": "approved", "type": "extra_forbidden"}.items() <= raised.value.errors[0].items()  # type: ignore[attr-defined]


def test_a_valid_body_is_parsed() -> None:
    # GIVEN a well-formed request WHEN parsed THEN the model comes back
    body = http_api.parse_body(RefundRequestBody, json.dumps(valid_document()).encode())
    assert body == refund_request_body()


# ---------------------------------------------------------------- problem answers


def answer_for(error: Exception) -> dict[str, Any]:
    router = APIGatewayHttpRouter()

    @router.post("/refund-requests")
    def failing() -> None:
        raise error

    app = http_api.build_app(router, enable_validation=False)
    event = http_event("{}")
    return app.resolve(event.raw_event, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (http_api.PayloadTooLarge("the body is 2 MB"), 413, "payload_too_large"),
        (http_api.UnsupportedMediaType("text/plain"), 415, "unsupported_media_type"),
        (InvalidRequest("bad", code="invalid_json"), 400, "invalid_json"),
        (AuthenticationFailed("no signature", code="signature_missing"), 401, "signature_missing"),
        (IdempotencyConflict("other content"), 409, "idempotency_conflict"),
        (GuardUnavailable("DynamoDB unreachable"), 503, "guard_unavailable"),
    ],
)
def test_errors_are_answered_with_problem_documents(error: RefundflowError, status: int, code: str) -> None:
    # GIVEN a route that fails with one of our errors WHEN the request is resolved
    answer = answer_for(error)
    # THEN the answer is an RFC 9457 problem with the right status and stable code
    assert answer["statusCode"] == status
    assert answer["headers"]["Content-Type"] == "application/problem+json"
    problem = json.loads(answer["body"])
    assert (problem["status"], problem["code"]) == (status, code)
    if status == 503:
        assert answer["headers"]["Retry-After"] == "5"


def test_internal_errors_do_not_leak_their_details() -> None:
    # GIVEN a misconfiguration whose message names a secret WHEN answered THEN a 500 that says nothing more
    answer = answer_for(ConfigurationError("secret arn:aws:secretsmanager:…:stripe-key is missing"))
    assert answer["statusCode"] == 500
    assert "secretsmanager" not in answer["body"]


@pytest.mark.parametrize(
    "error", [RuntimeError("boom at arn:aws:secretsmanager:eu-west-1"), KeyError("x"), RecursionError()]
)
def test_an_unexpected_exception_is_a_500_problem_document_that_tells_nothing(error: Exception) -> None:
    # GIVEN a route that fails with an exception nobody expected WHEN the request is resolved
    answer = answer_for(error)
    # THEN the answer is a problem document like every other error, not Powertools' default, and says nothing more
    assert answer["statusCode"] == 500
    assert answer["headers"]["Content-Type"] == "application/problem+json"
    assert json.loads(answer["body"]) == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "internal error",
        "code": "internal_error",
    }
