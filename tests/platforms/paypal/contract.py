"""PayPal's official specs (``paypal-payments-v2.json``, ``paypal-webhooks-v1.json``) as validators for tests.

Payments v2 requests and answers go through openapi-core against the spec, rebuilt with PayPal's sandbox server
URL (``https://api-m.sandbox.paypal.com``); webhook events are validated with jsonschema against the webhooks spec's
``event`` schema, and a v2 refund resource inside one against the payments spec's ``refund`` schema. The OAuth
token endpoint and the legacy v1 calls are outside these specs (v1's spec is not in the contracts folder): the
tests check those by hand against PayPal's documented fields.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from tests.conftest import CONTRACTS
from tests.contract.conftest import require_contracts

PAYMENTS = "paypal-payments-v2.json"
WEBHOOKS = "paypal-webhooks-v1.json"
SERVER = "https://api-m.sandbox.paypal.com"


def contracts() -> Path:
    """The specs' folder; skips outside CI when they are missing, fails in CI."""
    return require_contracts(CONTRACTS, os.environ, PAYMENTS, WEBHOOKS)


@cache
def _spec(path: str) -> OpenAPI:
    return OpenAPI.from_file_path(path, config=Config(spec_validator_cls=None))


@cache
def _document(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document


def is_v2(path: str) -> bool:
    return path.startswith("/v2/payments/")


def as_paypal_request(seen: dict[str, Any]) -> requests.Request:
    """A request the simulator recorded (path below its mount), as it would have gone to PayPal."""
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in {"host", "content-length"}}
    body = seen["body"].encode() if seen["body"] else None
    query = f"?{seen['query']}" if seen.get("query") else ""
    return requests.Request(seen["method"], f"{SERVER}{seen['path']}{query}", headers=headers, data=body)


def validate_request(seen: dict[str, Any]) -> None:
    """Raises: an openapi-core validation error when a Payments v2 request breaks the spec."""
    assert is_v2(seen["path"]), seen["path"]
    _spec(str(contracts() / PAYMENTS)).validate_request(RequestsOpenAPIRequest(as_paypal_request(seen)))


def validate_exchange(request: requests.Request, answer: requests.Response) -> None:
    """Raises: an openapi-core validation error when the answer breaks the spec for that request."""
    _spec(str(contracts() / PAYMENTS)).validate_response(
        RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer)
    )


def event_errors(event: dict[str, Any]) -> list[str]:
    """What is wrong with a webhook event for the webhooks spec's ``event`` (and its v2 refund resource)."""
    webhooks = _document(str(contracts() / WEBHOOKS))
    errors = _errors({"$ref": "#/components/schemas/event", "components": webhooks["components"]}, event)
    if event.get("resource_type") == "refund" and event.get("resource_version") == "2.0":
        payments = _document(str(contracts() / PAYMENTS))
        schema = {"$ref": "#/components/schemas/refund", "components": payments["components"]}
        errors += [f"resource: {error}" for error in _errors(schema, event["resource"])]
    return errors


def _errors(schema: dict[str, Any], value: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(value)
    ]
