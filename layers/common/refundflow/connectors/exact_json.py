"""JSON with exact amounts, for the books systems (Xero, QuickBooks, NetSuite, Zoho Books, Dynamics 365 Business
Central and Finance) that write money as JSON numbers: ``Decimal`` out as an exact number, every non-integer
number in as a ``Decimal``. The standard library's ``json`` does the rest; no float ever carries money."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


class NotExactJson(TypeError, ValueError):
    """A value with no exact JSON form: a float, a NaN or infinite ``Decimal``, an object of another type."""


def dumps(value: Any, *, platform: str) -> str:
    """JSON text (ASCII) where ``Decimal`` values are exact JSON numbers; ``platform`` names the system in errors.

    Raises:
        NotExactJson: a float (never exact), a NaN or infinite ``Decimal``, or another type with no JSON form.
    """
    if value is None or isinstance(value, bool | str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NotExactJson(f"{value} is not a JSON number")
        return format(value, "f")
    if isinstance(value, Mapping):
        return (
            "{"
            + ",".join(f"{json.dumps(str(key))}:{dumps(item, platform=platform)}" for key, item in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(item, platform=platform) for item in value) + "]"
    raise NotExactJson(f"{type(value).__name__} is not serialisable for {platform} (floats never are)")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(body: bytes) -> Any:
    """JSON with every non-integer number as an exact ``Decimal`` (None for an empty body).

    Raises:
        ValueError: not JSON, or NaN/Infinity where a number should be.
    """
    return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant) if body else None
