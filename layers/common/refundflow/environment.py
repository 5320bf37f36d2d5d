"""A function's settings read straight from its environment, with the standard library only: for the request
intake, which imports no model (README, Cost per refund, "Cold import"). Every other function reads its settings
through refundflow.settings (pydantic models, the same variable names)."""

from __future__ import annotations

import os

from refundflow.errors import ConfigurationError


def text(name: str, default: str | None = None) -> str:
    """The variable ``name``; ``default`` when it is unset.

    Raises:
        ConfigurationError: unset (or empty) without a default.
    """
    value = os.environ.get(name, "")
    if value:
        return value
    if default is None:
        raise ConfigurationError(f"invalid or missing {name}")
    return default


def integer(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """The variable ``name`` as an integer within its bounds; ``default`` when it is unset.

    Raises:
        ConfigurationError: not a whole number, or out of bounds.
    """
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"invalid or missing {name}: {value!r} is not a whole number") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigurationError(f"invalid or missing {name}: {number} is out of range")
    return number
