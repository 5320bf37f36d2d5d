"""Mollie's official spec (``mollie.yaml``, mollie/openapi ``specs.yaml``) as a validator for tests.

Requests the simulator recorded go through openapi-core against the spec as they would have gone to
``https://api.mollie.com`` (the spec's server); next-gen webhook events are validated with jsonschema against the
spec's ``entity-webhook-event``. The spec holds one unquoted invalid date (``2024-04-31T12:50:14+00:00``, see
SOURCES.md), so it is loaded with timestamps kept as strings.
"""

from __future__ import annotations

import copy
import json
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


# Mollie answers application/hal+json: JSON, which openapi-core reads only when told.
_CONFIG = Config(spec_validator_cls=None, extra_media_type_deserializers={"application/hal+json": json.loads})


def contracts() -> Path:
    """The specs' folder; skips outside CI when it is missing, fails in CI."""
    return require_contracts(CONTRACTS, os.environ, SPEC)


@cache
def document() -> dict[str, Any]:
    with open(contracts() / SPEC, encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=_Loader)
    return loaded


@cache
def _spec() -> OpenAPI:
    return OpenAPI.from_dict(document(), config=_CONFIG)


@cache
def _request_spec() -> OpenAPI:
    """The spec as a client writes to it: OpenAPI's rule that a required ``readOnly`` property is required in
    responses only, applied where openapi-core does not (``refund-request`` is ``allOf`` the whole refund entity,
    whose ``required`` names ``id``, ``status``, ``_links``... that only Mollie writes); and a parameter typed
    ``[<type>, "null"]`` read as ``<type>`` (openapi-core cannot deserialize a parameter of several types, and a
    query string has no null)."""
    view = copy.deepcopy(document())
    schemas = view["components"]["schemas"]

    def read_only(schema: Any) -> bool:
        if not isinstance(schema, dict):
            return False
        if schema.get("readOnly") is True:
            return True
        if "$ref" in schema:
            return read_only(schemas.get(schema["$ref"].rsplit("/", 1)[-1]))
        return any(read_only(part) for part in schema.get("allOf", []))

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            schema = node.get("schema")
            parameter = node.get("in") in {"query", "path", "header"} and isinstance(schema, dict)
            if parameter and isinstance(schema.get("type"), list):  # ["integer", "null"]: a parameter is never null
                schema["type"] = next(kind for kind in schema["type"] if kind != "null")
            properties = node.get("properties")
            if isinstance(node.get("required"), list) and isinstance(properties, dict):
                node["required"] = [name for name in node["required"] if not read_only(properties.get(name))]
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(view)
    return OpenAPI.from_dict(view, config=_CONFIG)


def as_mollie_request(seen: dict[str, Any]) -> requests.Request:
    """A request the simulator recorded (path below its mount), as it would have gone to Mollie."""
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in {"host", "content-length"}}
    body = seen["body"].encode() if seen["body"] else None
    query = f"?{seen['query']}" if seen.get("query") else ""
    return requests.Request(seen["method"], f"{SERVER}{seen['path']}{query}", headers=headers, data=body)


def validate_request(seen: dict[str, Any]) -> None:
    """Raises: an openapi-core validation error when a request breaks the spec."""
    _request_spec().validate_request(RequestsOpenAPIRequest(as_mollie_request(seen)))


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
