"""Bad bytes (R18): a generated corpus of malformed bodies driven through the real API handlers in-process
(moto, tables from template.yaml), signed with a configured source's secret so they get past the
signature. Every answer is a 4xx problem document, none is a 5xx, and nothing is stored."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from local.cfn import Stack
from local.lambdas import LambdaContext, load_handler_module
from local.stack import forget_process_caches
from refundflow import http_api
from refundflow.errors import InvalidRequest
from tests.support.api_events import http_api_event, standard_webhook_headers, stripe_signature_header
from tests.support.fakes import REGION, create_tables, refund_request_body

SOURCE = "returns-portal"
SECRET = "whsec_" + base64.b64encode(b"malformed-bodies-test-signing-secret").decode()
STRIPE_WEBHOOK_SECRET = "whsec_malformedBodiesTestStripeEndpointSecret"
REFUND_ID = "rf_" + "0123456789abcdef" * 2
APPROVER = {"sub": "lee", "jti": "jti-malformed", "refundflow:role": "finance", "iss": "t", "aud": "t"}


@dataclass
class Api:
    stack: Stack
    dynamodb: Any
    table: str
    receive: ModuleType
    decide: ModuleType

    def _call(self, module: ModuleType, logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(
            function_name=self.stack.physical_name(logical_id), invoked_function_arn=self.stack.arn(logical_id)
        )
        answer: dict[str, Any] = module.lambda_handler(event, context)
        return answer

    def refund_request(self, body: bytes, *, signed: bool = True, delivery_id: str | None = None) -> dict[str, Any]:
        headers = standard_webhook_headers(body, SECRET, delivery_id=delivery_id) if signed else {}
        return self._call(
            self.receive, "ReceiveWebhookFunction", http_api_event("POST", "/refund-requests", body, headers)
        )

    def stripe_webhook(self, body: bytes) -> dict[str, Any]:
        headers = stripe_signature_header(body, STRIPE_WEBHOOK_SECRET)
        event = http_api_event(
            "POST",
            "/webhooks/stripe",
            body,
            headers,
            route="/webhooks/{platform}",
            path_parameters={"platform": "stripe"},
        )
        return self._call(self.receive, "ReceiveWebhookFunction", event)

    def approval(self, body: bytes) -> dict[str, Any]:
        path = f"/refunds/{REFUND_ID}/approval"
        event = http_api_event(
            "POST",
            path,
            body,
            route="/refunds/{refund_id}/approval",
            path_parameters={"refund_id": REFUND_ID},
            claims=APPROVER,
        )
        return self._call(self.decide, "DecideApprovalFunction", event)

    def stored_items(self) -> int:
        count: int = self.dynamodb.scan(TableName=self.table, Select="COUNT")["Count"]
        return count


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    stack = Stack.from_template("refundflow-malformed")
    before = dict(os.environ)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        tables = create_tables(session.client("dynamodb"), stack)
        environment = {
            **stack.function_environment("ReceiveWebhookFunction"),
            **stack.function_environment("DecideApprovalFunction"),
        }
        session.client("secretsmanager").create_secret(
            Name=environment["REFUND_REQUESTS_SECRET_NAME"],
            SecretString=json.dumps({"sources": {SOURCE: {"signing_secrets": [SECRET]}}}),
        )
        # Intake reads only the verification secret; it never calls Stripe (a verified event is forwarded).
        session.client("secretsmanager").create_secret(
            Name=f"{environment['SECRETS_PREFIX']}webhooks/stripe",
            SecretString=json.dumps({"webhook_secrets": [STRIPE_WEBHOOK_SECRET]}),
        )
        os.environ.update(environment)
        forget_process_caches()
        try:
            yield Api(
                stack=stack,
                dynamodb=session.client("dynamodb"),
                table=tables.refunds_table,
                receive=load_handler_module(stack.function_folder("ReceiveWebhookFunction"), "malformed_receive"),
                decide=load_handler_module(stack.function_folder("DecideApprovalFunction"), "malformed_decide"),
            )
        finally:
            os.environ.clear()
            os.environ.update(before)
            forget_process_caches()


def problem_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer's problem document, after checking it is one (4xx, application/problem+json)."""
    assert 400 <= answer["statusCode"] < 500, answer
    assert answer["headers"]["Content-Type"] == "application/problem+json", answer
    body = answer["body"]
    document: dict[str, Any] = json.loads(base64.b64decode(body) if answer.get("isBase64Encoded") else body)
    assert document["status"] == answer["statusCode"]
    return document


# ---------------------------------------------------------------- bodies

VALID = refund_request_body(
    order={"order_id": "ORD-1", "delivered_at": "2026-11-20T10:00:00Z"},
    source={"system": SOURCE, "reference": "RMA-1"},
).model_dump(mode="json", by_alias=True, exclude_none=True)
VALID_TEXT = json.dumps(VALID)
APPROVAL_TEXT = json.dumps({"decision": "approve", "note": "looks right"})


def with_value(path: str, literal: str, text: str = VALID_TEXT) -> bytes:
    """``text`` with the JSON value at ``path`` replaced by ``literal`` as written (it may not be JSON)."""
    marker = "\u2603marker\u2603"
    document = json.loads(text)
    target = document
    parts = path.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = marker
    return json.dumps(document, ensure_ascii=False).replace(json.dumps(marker, ensure_ascii=False), literal).encode()


def nested(depth: int, opener: str) -> bytes:
    inner = "[" * depth + "]" * depth if opener == "[" else '{"a":' * depth + "1" + "}" * depth
    return ('{"payment": ' + inner + "}").encode()


truncated = st.builds(
    lambda text, cut: text.encode()[: max(1, int(len(text.encode()) * cut))],
    st.sampled_from([VALID_TEXT, APPROVAL_TEXT]),
    st.floats(0, 0.999),
)
wrong_encodings = st.builds(
    lambda text, encoding: text.replace("Jane Doe", "Zoë Jürgens").encode(encoding),
    st.sampled_from([VALID_TEXT, APPROVAL_TEXT.replace("looks right", "Jane Doe")]),
    st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig", "latin-1", "cp1252"]),
)
deep = st.builds(nested, st.integers(33, 3000), st.sampled_from(["[", "{"]))
duplicate_keys = st.sampled_from(
    [
        VALID_TEXT[:-1] + ', "reason": "goodwill"}',
        VALID_TEXT.replace('"payment": {', '"payment": {"provider": "stripe", ', 1),
        APPROVAL_TEXT[:-1] + ', "decision": "reject"}',
    ]
).map(str.encode)
huge_numbers = st.sampled_from(["1e400", "-1e400", "1" + "0" * 400, "-" + "9" * 4000, "9007199254740993", "1e-400"])
numbers = st.builds(with_value, st.just("amount.minor_units"), huge_numbers)
constants = st.builds(
    with_value,
    st.sampled_from(["amount.minor_units", "order.items", "note"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
)
top_levels = st.sampled_from(["[]", "[1, 2]", '"refund"', "42", "null", "true", "", " ", "{}"]).map(str.encode)
naive_datetimes = st.builds(
    with_value,
    st.sampled_from(["order.delivered_at", "order.placed_at", "return.received_at"]),
    st.sampled_from(['"2026-11-20T10:00:00"', '"2026-11-20 10:00"', '"2026-11-20"', '"20/11/2026"']),
)
surrogates = st.builds(
    with_value,
    st.sampled_from(["note", "customer.name", "source.reference"]),
    st.sampled_from(['"\\ud800"', '"a\\udfffb"']),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
random_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6).map(lambda d: json.dumps(d).encode())
malformed = st.one_of(
    st.binary(max_size=600),
    truncated,
    wrong_encodings,
    deep,
    duplicate_keys,
    numbers,
    constants,
    top_levels,
    naive_datetimes,
    surrogates,
    random_objects,
)


# ---------------------------------------------------------------- the corpus


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=malformed)
def test_no_malformed_refund_request_gets_a_5xx_or_stores_anything(api: Api, body: bytes) -> None:
    # GIVEN a malformed body, correctly signed by a configured source
    # WHEN it is posted to the real handler
    answer = api.refund_request(body)
    # THEN the answer is a 4xx problem document and nothing was stored
    problem_of(answer)
    assert api.stored_items() == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=malformed)
def test_no_malformed_approval_gets_a_5xx_or_stores_anything(api: Api, body: bytes) -> None:
    # GIVEN a malformed approval body from an authenticated approver WHEN posted THEN a 4xx, nothing stored
    problem_of(api.approval(body))
    assert api.stored_items() == 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=malformed)
def test_no_malformed_stripe_webhook_gets_a_5xx_or_stores_anything(api: Api, body: bytes) -> None:
    # GIVEN a malformed body signed with the Stripe endpoint's secret WHEN posted THEN a 4xx, nothing stored
    problem_of(api.stripe_webhook(body))
    assert api.stored_items() == 0


@settings(max_examples=60, deadline=None)
@given(body=malformed)
def test_an_unsigned_malformed_body_is_unauthenticated_first(api: Api, body: bytes) -> None:
    # GIVEN any malformed body without a signature WHEN posted THEN 401: the signature is checked first
    assert api.refund_request(body, signed=False)["statusCode"] == 401
    assert api.stored_items() == 0


# ---------------------------------------------------------------- the cases found, one by one


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"note": "\xff\xfe caf\xe9"}', "invalid_encoding"),
        (VALID_TEXT.encode("utf-16"), "invalid_encoding"),
        (VALID_TEXT.encode("utf-16-le"), "invalid_encoding"),
        (VALID_TEXT.encode("utf-32"), "invalid_encoding"),
        (b"\xef\xbb\xbf" + VALID_TEXT.encode(), "invalid_encoding"),
        (with_value("note", '"\\ud800"'), "invalid_encoding"),
        (nested(1_000, "["), "json_too_deep"),
        (nested(10_000, "{"), "json_too_deep"),
        (VALID_TEXT[:-1].encode() + b', "reason": "goodwill"}', "duplicate_key"),
        (with_value("amount.minor_units", "1e400"), "number_out_of_range"),
        (with_value("amount.minor_units", "1" + "0" * 400), "number_out_of_range"),
        (with_value("amount.minor_units", "NaN"), "invalid_json"),
        (with_value("amount.minor_units", "Infinity"), "invalid_json"),
        (with_value("order.delivered_at", '"2026-11-20T10:00:00"'), "validation_failed"),
        (with_value("return", '{"status": "received", "received_at": "2026-11-25T09:00:00"}'), "validation_failed"),
    ],
)
def test_each_kind_of_bad_bytes_is_a_400_with_its_code(api: Api, body: bytes, code: str) -> None:
    # GIVEN a signed body that is not UTF-8 JSON as RFC 8259 has it, or has a date-time without an offset
    # WHEN it is posted
    problem = problem_of(api.refund_request(body))
    # THEN it is refused with a 400 naming what is wrong, and nothing is stored
    assert (problem["status"], problem["code"]) == (400, code), problem
    assert api.stored_items() == 0


def test_a_date_time_without_an_offset_is_named_in_the_errors(api: Api) -> None:
    # GIVEN a delivery date without a UTC offset WHEN posted THEN the field is named
    problem = problem_of(api.refund_request(with_value("order.delivered_at", '"2026-11-20T10:00:00"')))
    assert [error["field"] for error in problem["errors"]] == ["order.delivered_at"]
    assert problem["errors"][0]["type"] == "timezone_aware"


def test_invalid_utf8_without_a_signature_is_a_401(api: Api) -> None:
    # GIVEN bytes that are not UTF-8 and no signature WHEN posted THEN unauthenticated, not a crash
    assert problem_of(api.refund_request(b"\xff\xfe\xfd", signed=False))["status"] == 401


@pytest.mark.parametrize(
    "delivery_id",
    ["m" * 5_000, "m" * 257, "msg with spaces", "msg_\u00e9t\u00e9", "msg\x01ctl"],
)
def test_an_oversized_or_unprintable_delivery_id_is_a_400_never_a_503(api: Api, delivery_id: str) -> None:
    # GIVEN a correctly signed delivery whose webhook-id is huge, or not printable ASCII
    answer = api.refund_request(VALID_TEXT.encode(), delivery_id=delivery_id)
    # THEN it is refused as such, with no Retry-After (retrying cannot help), and nothing is stored
    problem = problem_of(answer)
    assert (problem["status"], problem["code"]) == (400, "invalid_delivery_id")
    assert "Retry-After" not in answer["headers"]
    assert api.stored_items() == 0


def test_a_bad_approval_body_is_a_400_like_every_body_problem(api: Api) -> None:
    # GIVEN approval bodies with an unknown field, a wrong decision and a duplicate key
    for body in (
        b'{"decision": "approve", "approved": true}',
        b'{"decision": "maybe"}',
        b'{"decision": "reject", "decision": "approve"}',
    ):
        # WHEN posted THEN each is a 400 (422 is kept for path and query parameters)
        assert problem_of(api.approval(body))["status"] == 400


def test_a_malformed_path_parameter_is_a_422(api: Api) -> None:
    # GIVEN a refund id that is not one WHEN an approval is posted for it THEN 422 (a parameter problem)
    event = http_api_event(
        "POST",
        "/refunds/not-a-refund/approval",
        APPROVAL_TEXT.encode(),
        route="/refunds/{refund_id}/approval",
        path_parameters={"refund_id": "not-a-refund"},
        claims=APPROVER,
    )
    answer = api._call(api.decide, "DecideApprovalFunction", event)
    assert problem_of(answer)["status"] == 422


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    # GIVEN a body 32 levels deep whose strings hold many brackets and escaped quotes
    body = '{"a": ' * 31 + '{"note": "[[[[{{{{\\"[[[[' + "[" * 100 + '"}' + "}" * 31
    # WHEN decoded THEN it is read (only real nesting counts), and one more level is refused
    assert http_api.decode_json(body.encode())
    with pytest.raises(InvalidRequest) as raised:
        http_api.decode_json(('{"a": ' * 32 + '{"b": 1}' + "}" * 32).encode())
    assert raised.value.code == "json_too_deep"


@pytest.mark.parametrize("body", [b"{}", b"\xff\xfe{", ("[" * 5_000).encode(), b'{"id": "evt_1", "id": "evt_2"}'])
def test_a_signed_stripe_event_that_is_no_event_is_a_400(api: Api, body: bytes) -> None:
    # GIVEN bytes that are not a Stripe event, signed with the endpoint's secret WHEN posted THEN 400, not 401 or 5xx
    assert problem_of(api.stripe_webhook(body))["status"] == 400


def test_a_signed_stripe_event_with_an_oversized_id_is_a_400(api: Api) -> None:
    # GIVEN a well-formed Stripe event whose id (the key of its first-seen marker) is 5,000 characters long
    event = json.loads((Path(__file__).parents[3] / "events" / "stripe_refund_updated.json").read_text())
    event["id"] = "evt_" + "x" * 5_000
    # WHEN it is posted, signed THEN it is refused as a bad delivery id, never a 5xx, nothing stored
    problem = problem_of(api.stripe_webhook(json.dumps(event).encode()))
    assert (problem["status"], problem["code"]) == (400, "invalid_delivery_id")
    assert api.stored_items() == 0


def test_a_signed_platform_event_read_two_ways_is_a_400(api: Api) -> None:
    # GIVEN a real Stripe event, validly signed, whose refund carries "status" twice (a parser that keeps the
    # first and one that keeps the last would read different news)
    text = (Path(__file__).parents[3] / "events" / "stripe_refund_updated.json").read_text()
    twice = text.replace('"status": "succeeded",', '"status": "failed", "status": "succeeded",', 1)
    assert twice != text
    # WHEN it is posted THEN intake's JSON rules refuse it after the signature, and nothing is stored
    problem = problem_of(api.stripe_webhook(twice.encode()))
    assert (problem["status"], problem["code"]) == (400, "duplicate_key")
    assert api.stored_items() == 0
