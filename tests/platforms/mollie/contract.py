"""Mollie's official spec (``mollie.yaml``, mollie/openapi ``specs.yaml``) as a validator for tests.

Requests the simulator recorded go through openapi-core against the spec as they would have gone to
``https://api.mollie.com`` (the spec's server); next-gen webhook events are validated with jsonschema against the
spec's ``entity-webhook-event``. The spec holds one unquoted invalid date (``2024-04-31T12:50:14+00:00``, see
SOURCES.md), so it is loaded with timestamps kept as strings.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from tests.conftest import CONTRACTS
from tests.contract.conftest import require_contracts

SPEC = "mollie.yaml"
SERVER = "https://api.mollie.com"


class _Loader(yaml.CSafeLoader):
    """YAML 1.1 safe loading with timestamps left as the strings they are in the spec."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def contracts() -> Path:
    """The specs' folder; skips outside CI when it is missing, fails in CI."""
    return require_contracts(CONTRACTS, os.environ, SPEC)


@cache
def document() -> dict[str, Any]:
    with open(contracts() / SPEC, encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=_Loader)  # noqa: S506 - a safe loader
    return loaded


@cache
def _spec() -> OpenAPI:
    return OpenAPI.from_dict(document(), config=Config(spec_validator_cls=None))


def as_mollie_request(seen: dict[str, Any]) -> requests.Request:
    """A request the simulator recorded (path below its mount), as it would have gone to Mollie."""
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in {"host", "content-length"}}
    body = seen["body"].encode() if seen["body"] else None
    query = f"?{seen['query']}" if seen.get("query") else ""
    return requests.Request(seen["method"], f"{SERVER}{seen['path']}{query}", headers=headers, data=body)


def validate_request(seen: dict[str, Any]) -> None:
    """Raises: an openapi-core validation error when a request breaks the spec."""
    _spec().validate_request(RequestsOpenAPIRequest(as_mollie_request(seen)))


def validate_exchange(request: requests.Request, answer: requests.Response) -> None:
    """Raises: an openapi-core validation error when the answer breaks the spec for that request."""
    _spec().validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer))


def event_errors(event: dict[str, Any]) -> list[str]:
    """What is wrong with a next-gen webhook event for the spec's ``entity-webhook-event``."""
    schema = {"$ref": "#/components/schemas/entity-webhook-event", "components": document()["components"]}
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(event)
    ]
