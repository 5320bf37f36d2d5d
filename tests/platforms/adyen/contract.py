"""Adyen's official specs (``adyen-checkout-v71.json``, ``adyen-webhooks-v1.json``) as validators for tests.

Checkout requests and answers go through openapi-core against the spec, rebuilt with Adyen's real server
URL; notification items are validated with jsonschema against the request schema of their event code's
webhook (``webhooks["/REFUND"]`` etc.), one item at a time, since a batch may mix event codes.
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

CHECKOUT = "adyen-checkout-v71.json"
WEBHOOKS = "adyen-webhooks-v1.json"
SERVER = "https://checkout-test.adyen.com/v71"
LOCAL_PREFIX = "/checkout/v71"


def contracts() -> Path:
    """The specs' folder; skips outside CI when they are missing, fails in CI."""
    return require_contracts(CONTRACTS, os.environ, CHECKOUT, WEBHOOKS)


@cache
def checkout_document(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document


@cache
def checkout_spec(path: str) -> OpenAPI:
    return OpenAPI.from_file_path(path, config=Config(spec_validator_cls=None))


@cache
def webhooks_document(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document


def as_adyen_request(seen: dict[str, Any]) -> requests.Request:
    """A request the simulator recorded, as it would have gone to checkout-test.adyen.com."""
    assert seen["path"].startswith(LOCAL_PREFIX), seen["path"]
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in {"host", "content-length"}}
    body = seen["body"].encode() if seen["body"] else None
    return requests.Request(seen["method"], f"{SERVER}{seen['path'][len(LOCAL_PREFIX) :]}", headers=headers, data=body)


def validate_request(seen: dict[str, Any]) -> None:
    """Raises: an openapi-core validation error when the request breaks the Checkout spec."""
    checkout_spec(str(contracts() / CHECKOUT)).validate_request(RequestsOpenAPIRequest(as_adyen_request(seen)))


def validate_exchange(request: requests.Request, answer: requests.Response) -> None:
    """Raises: an openapi-core validation error when the answer breaks the spec for that request."""
    checkout_spec(str(contracts() / CHECKOUT)).validate_response(
        RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer)
    )


def item_errors(item: dict[str, Any]) -> list[str]:
    """What is wrong with one ``NotificationRequestItem`` for the webhook of its event code."""
    document = webhooks_document(str(contracts() / WEBHOOKS))
    webhook = document["webhooks"].get(f"/{item.get('eventCode')}")
    if webhook is None:
        return [f"no webhook for event code {item.get('eventCode')!r}"]
    reference = webhook["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = {"$ref": reference, "components": document["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    body = {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<body>'}: {error.message}"
        for error in validator.iter_errors(body)
    ]
