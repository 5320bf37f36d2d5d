"""Square's official spec (``square-connect.json``, square/connect-api-specification ``api.json``) as validators.

Requests and answers of the Refunds and Payments APIs go through openapi-core against the spec, rebuilt with
Square's server URL (``https://connect.squareup.com``). Webhook bodies have no schema in the spec (it is OpenAPI
3.0, without ``webhooks``): the refund each one carries is validated against the spec's ``PaymentRefund`` with
the OpenAPI 3.0 schema validator, and the envelope by hand against Square's documented fields.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator

from tests.conftest import CONTRACTS
from tests.contract.conftest import require_contracts

SPEC = "square-connect.json"
SERVER = "https://connect.squareup.com"
ENVELOPE = {"merchant_id", "type", "event_id", "created_at", "data"}


def contracts() -> Path:
    """The specs' folder; skips outside CI when they are missing, fails in CI."""
    return require_contracts(CONTRACTS, os.environ, SPEC)


@cache
def _spec(path: str) -> OpenAPI:
    return OpenAPI.from_file_path(path, config=Config(spec_validator_cls=None))


@cache
def _document(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document


def as_square_request(seen: dict[str, Any]) -> requests.Request:
    """A request the simulator recorded (path below its mount), as it would have gone to Square."""
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in {"host", "content-length"}}
    body = seen["body"].encode() if seen["body"] else None
    query = f"?{seen['query']}" if seen.get("query") else ""
    return requests.Request(seen["method"], f"{SERVER}{seen['path']}{query}", headers=headers, data=body)


def validate_request(seen: dict[str, Any]) -> None:
    """Raises: an openapi-core validation error when the request breaks the spec."""
    _spec(str(contracts() / SPEC)).validate_request(RequestsOpenAPIRequest(as_square_request(seen)))


def validate_exchange(request: requests.Request, answer: requests.Response) -> None:
    """Raises: an openapi-core validation error when the answer breaks the spec for that request."""
    _spec(str(contracts() / SPEC)).validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer))


def schema_errors(name: str, value: Any) -> list[str]:
    """What is wrong with ``value`` for the spec's schema ``name`` (OpenAPI 3.0 rules: nullable, readOnly...)."""
    document = _document(str(contracts() / SPEC))
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in OAS30Validator(schema).iter_errors(value)
    ]


def event_errors(event: dict[str, Any]) -> list[str]:
    """What is wrong with a refund webhook body: the envelope Square documents, and its PaymentRefund."""
    errors = [f"missing {field}" for field in sorted(ENVELOPE - set(event))]
    errors += [f"undocumented {field}" for field in sorted(set(event) - ENVELOPE)]
    data = event.get("data") or {}
    if data.get("type") != "refund" or set(data) != {"type", "id", "object"}:
        errors.append(f"data is not {{type: refund, id, object}}: {sorted(data)}")
    refund = (data.get("object") or {}).get("refund")
    if not isinstance(refund, dict) or refund.get("id") != data.get("id"):
        errors.append("data.object.refund is not the refund data.id names")
    else:
        errors += [f"refund: {error}" for error in schema_errors("PaymentRefund", refund)]
    return errors
