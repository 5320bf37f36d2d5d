"""What several command groups use: the target from the context."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import typer

from refundflow_cli.api import Api
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.target import Target

_RELATIVE = re.compile(r"^(\d+)([mhd])$")


def target_of(ctx: typer.Context) -> Target:
    target = ctx.find_object(Target)
    assert target is not None, "the refundflow callback sets the target"
    return target


def api_of(ctx: typer.Context) -> Api:
    return Api(target_of(ctx))


def parse_moment(value: str | None, *, option: str, now: datetime | None = None) -> datetime | None:
    """``30m``, ``6h``, ``7d`` ago, ``now``, or an ISO 8601 date-time (UTC when it has no offset)."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    if value == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[relative[2]]
        return now - timedelta(**{unit: int(relative[1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise CliError(
            "invalid_time", f"{option} {value!r}: give 30m, 6h, 7d, now or an ISO 8601 date-time", Exit.USAGE
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
