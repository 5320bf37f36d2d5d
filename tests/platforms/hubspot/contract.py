"""HubSpot's OpenAPI documents as validators of the connector's requests and the simulator's answers (openapi-core;
error bodies, whose media type is ``*/*``, against the ``Error`` schema).

Source: https://github.com/HubSpot/HubSpot-public-api-spec-collection (commit 99893791383254f52aa07662baeb98aad65cc710,
2026-08-21): ``PublicApiSpecs/CRM/Tickets/Rollouts/424/v3/tickets.json``, ``.../Notes/Rollouts/424/v3/notes.json``,
``.../Contacts/Rollouts/424/v3/contacts.json`` and ``.../Associations/Rollouts/130902/v4/associations.json``.

Licence: the repository's README says "These specifications are proprietary to HubSpot and are not licensed for
external use", which is why ``../shared/contracts/SOURCES.md`` left them out and why they are not copied into this
repository either. The tests read them from ``HUBSPOT_SPECS`` (a folder holding ``tickets-v3.json``,
``notes-v3.json``, ``contacts-v3.json`` and ``associations-v4.json``, each the file above unchanged), and skip
without it (in CI too: nothing of HubSpot's may be vendored to make them run).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

SERVER = "https://api.hubapi.com"
SPECS = {
    "/crm/v3/objects/tickets": "tickets-v3.json",
    "/crm/v3/objects/notes": "notes-v3.json",
    "/crm/v3/objects/contacts": "contacts-v3.json",
    "/crm/v4/objects": "associations-v4.json",
}


def specs_dir() -> Path:
    """The folder ``HUBSPOT_SPECS`` names, holding every document; skips the test otherwise."""
    folder = Path(os.environ.get("HUBSPOT_SPECS", "")).expanduser()
    missing = [name for name in SPECS.values() if not (folder / name).is_file()]
    if not os.environ.get("HUBSPOT_SPECS") or missing:
        pytest.skip(f"HubSpot's OpenAPI documents not found (HUBSPOT_SPECS={folder}, missing {missing})")
    return folder


@cache
def _spec(path: str) -> OpenAPI:
    return OpenAPI.from_file_path(path, config=Config(spec_validator_cls=None))


def spec_for(path: str) -> str:
    for prefix, name in SPECS.items():
        if path.startswith(prefix):
            return name
    raise AssertionError(f"no HubSpot document covers {path}")


def as_hubspot_request(seen: dict[str, Any]) -> requests.Request:
    """A request the simulator recorded (path below its mount), as it would have gone to api.hubapi.com."""
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in {"host", "content-length"}}
    body = seen["body"].encode() if seen["body"] else None
    query = f"?{seen['query']}" if seen.get("query") else ""
    return requests.Request(seen["method"], f"{SERVER}{seen['path']}{query}", headers=headers, data=body)


def validate_request(seen: dict[str, Any]) -> None:
    """Raises: an openapi-core validation error when the request breaks HubSpot's document for its path."""
    document = specs_dir() / spec_for(seen["path"])
    _spec(str(document)).validate_request(RequestsOpenAPIRequest(as_hubspot_request(seen)))


def validate_exchange(request: requests.Request, answer: requests.Response) -> None:
    """Raises: an openapi-core validation error when the answer breaks HubSpot's document for that request."""
    from openapi_core.contrib.requests import RequestsOpenAPIResponse

    path = urlsplit(str(request.url)).path
    document = specs_dir() / spec_for(path)
    _spec(str(document)).validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer))


def error_problems(name: str, body: Any) -> list[str]:
    """What is wrong with an error body for the ``Error`` schema of the document ``name`` (the documents give error
    answers the media type ``*/*``, which openapi-core leaves unparsed, so the body is checked against the schema)."""
    import json

    from openapi_schema_validator import OAS30Validator

    with open(specs_dir() / name, encoding="utf-8") as handle:
        document = json.load(handle)
    schema = {"$ref": "#/components/schemas/Error", "components": document["components"]}
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in OAS30Validator(schema, format_checker=OAS30Validator.FORMAT_CHECKER).iter_errors(body)
    ]
