"""What the help desks' inbound deliveries share where the platform cannot sign them (Freshdesk, Zoho CRM,
Dynamics 365 Customer Service, a Salesforce callout, ServiceNow): the per-endpoint secret their automation sends in
a header we gave it, a UTF-8 JSON object body, and the record's modification time when it carries an offset."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from refundflow.connectors.shared_secrets import one_of
from refundflow.errors import AuthenticationFailed, InvalidRequest


def require_header_secret(headers: Mapping[str, str], configured: Any, *, header: str, title: str) -> None:
    """The ``header`` (any case) holds one of the ``configured`` secrets (a list, ``shared_secrets.one_of``).

    Raises:
        AuthenticationFailed: ``signature_missing``, no such header; ``signature_invalid``, no secret is configured
            for ``title`` or the header matches none.
    """
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    sent = lowered.get(header.lower(), "")
    if not sent:
        raise AuthenticationFailed(f"the {header} header is missing", code="signature_missing")
    if not isinstance(configured, list) or not configured:
        raise AuthenticationFailed(f"no {title} is configured", code="signature_invalid")
    if not one_of(sent, configured):
        raise AuthenticationFailed(f"the {header} header does not match", code="signature_invalid")


def json_object(raw_body: bytes, *, what: str) -> dict[str, Any]:
    """The delivery's body, a UTF-8 JSON object.

    Raises:
        InvalidRequest: ``invalid_json``, naming ``what`` ("the Freshdesk delivery").
    """
    try:
        body = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest(f"{what} is not UTF-8 JSON", code="invalid_json") from error
    if not isinstance(body, dict):
        raise InvalidRequest(f"{what} must be a JSON object", code="invalid_json")
    return body


def aware_time(value: Any) -> datetime | None:
    """An ISO 8601 time with an offset (``Z``, ``+01:00``; a space for the ``T`` too), or None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
