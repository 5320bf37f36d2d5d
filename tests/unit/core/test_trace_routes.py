"""The trace routes' query values become DynamoDB keys, whose limits are bytes, not characters: a value that cannot
be a key is a 422 naming the field, never a call DynamoDB refuses (a 503). Driven through the real handler
in-process (moto, tables from template.yaml)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from moto import mock_aws

from local.cfn import Stack
from local.lambdas import LambdaContext, load_handler_module
from local.stack import forget_process_caches
from tests.support.api_events import http_api_event
from tests.support.fakes import REGION, create_tables

FUNCTION = "GetRefundFunction"
STATEMENT = "settlement/bank/camt053/"


@pytest.fixture(scope="module")
def get_api() -> Iterator[tuple[Stack, ModuleType]]:
    stack = Stack.from_template("refundflow-trace-routes")
    before = dict(os.environ)
    with mock_aws():
        create_tables(boto3.session.Session(region_name=REGION).client("dynamodb"), stack)
        os.environ.update(stack.function_environment(FUNCTION))
        forget_process_caches()
        try:
            yield stack, load_handler_module(stack.function_folder(FUNCTION), "trace_routes_get")
        finally:
            os.environ.clear()
            os.environ.update(before)
            forget_process_caches()


def get(api: tuple[Stack, ModuleType], path: str, route: str, query: dict[str, str], **path_parameters: str) -> Any:
    stack, module = api
    event = http_api_event("GET", path, None, route=route, path_parameters=path_parameters or None)
    event["rawQueryString"] = urlencode(query)
    event["queryStringParameters"] = query
    context = LambdaContext(function_name=stack.physical_name(FUNCTION), invoked_function_arn=stack.arn(FUNCTION))
    answer: dict[str, Any] = module.lambda_handler(event, context)
    return answer["statusCode"], json.loads(answer["body"])


def fields(document: dict[str, Any]) -> set[str]:
    return {problem["field"] for problem in document.get("errors", [])}


def test_a_statement_key_longer_than_s3_allows_in_bytes_is_refused_by_name(
    get_api: tuple[Stack, ModuleType],
) -> None:
    # 300 characters (within the pattern's 900) of a four-byte script: 1,200 bytes, no S3 key, no DynamoDB key
    status, document = get(
        get_api, "/bank-lines/trace", "/bank-lines/trace", {"file": STATEMENT + "😀" * 300, "line": "1"}
    )
    assert (status, fields(document)) == (422, {"query.file"})
    # a key of the same length in characters that fits in 1,024 bytes is looked up: no such line
    status, document = get(
        get_api, "/bank-lines/trace", "/bank-lines/trace", {"file": STATEMENT + "é" * 300, "line": "1"}
    )
    assert (status, document["code"]) == (404, "not_found")


def test_an_after_that_cannot_be_a_line_key_is_refused_by_name(get_api: tuple[Stack, ModuleType]) -> None:
    forged = "😀" * 300  # 300 characters (within 1,024), 1,200 bytes: no sort key holds it
    status, document = get(
        get_api, "/payouts/po_1/trace", "/payouts/{payout_id}/trace", {"after": forged}, payout_id="po_1"
    )
    assert (status, fields(document)) == (422, {"query.after"})
    query = {"file": STATEMENT + "a.xml", "line": "2", "after": forged}
    status, document = get(get_api, "/bank-lines/trace", "/bank-lines/trace", query)
    assert (status, fields(document)) == (422, {"query.after"})
    # one that fits is a page of a payout nobody knows: 404
    status, document = get(
        get_api, "/payouts/po_1/trace", "/payouts/{payout_id}/trace", {"after": "é" * 300}, payout_id="po_1"
    )
    assert (status, document["code"]) == (404, "not_found")


def test_the_character_rules_still_hold(get_api: tuple[Stack, ModuleType]) -> None:
    for query in (
        {"file": STATEMENT + "a\x00b", "line": "1"},
        {"file": "settlement/stripe/a.csv", "line": "1"},
        {"file": STATEMENT + "a" * 901, "line": "1"},
        {"file": STATEMENT + "a.xml", "line": "1", "after": "a" * 1025},
    ):
        status, document = get(get_api, "/bank-lines/trace", "/bank-lines/trace", query)
        assert status == 422, (query, document)
