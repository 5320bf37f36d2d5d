"""``refundflow events replay --from --to``: send the archived refund events of a time range to the bus again.

EventBridge replays to the bus's rules (the notification queues; consumers deduplicate on ``event_id``, so a
replay never e-mails twice). On the local stack moto implements archives and replays: every event put on the
bus is archived, ``StartReplay`` re-sends the matching ones at once (its state is COMPLETED when it answers)
with a ``replay-name`` field, and replayed events are not archived again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import botocore.exceptions
import typer

from refundflow_cli.commands._shared import parse_moment, target_of
from refundflow_cli.errors import CliError, Exit
from refundflow_cli.output import JsonOption, console, emit_json, handled
from refundflow_cli.target import aws_error

events = typer.Typer(help="The refund events' archive: replay a time range.", no_args_is_help=True)
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def register(app: typer.Typer) -> None:
    app.add_typer(events, name="events")


@events.command("replay")
@handled
def replay(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="Start: 30m, 6h, 7d (ago) or an ISO 8601 date-time.")],
    end: Annotated[str, typer.Option("--to", help="End: now, 30m, ... or an ISO 8601 date-time.")] = "now",
    name: Annotated[str | None, typer.Option(help="Replay name (default refundflow-cli-<time>).")] = None,
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", help="How long to wait for the replay.")] = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Replay the archived events from --from to --to onto the refunds bus, and wait until it is done."""
    target = target_of(ctx)
    began = parse_moment(start, option="--from")
    ended = parse_moment(end, option="--to")
    assert began is not None
    assert ended is not None
    if began >= ended:
        raise CliError(
            "invalid_range", f"--from {began.isoformat()} is not before --to {ended.isoformat()}", Exit.USAGE
        )
    client = target.client("events")
    archive = target.output("EventArchiveName")
    bus_arn = target.output("EventBusArn")
    replay_name = name or f"refundflow-cli-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    try:
        archive_arn = client.describe_archive(ArchiveName=archive)["ArchiveArn"]
        client.start_replay(
            ReplayName=replay_name,
            EventSourceArn=archive_arn,
            EventStartTime=began,
            EventEndTime=ended,
            Destination={"Arn": bus_arn},
        )
    except botocore.exceptions.ClientError as error:
        raise aws_error(error, f"replay from archive {archive}") from error
    described = _wait(client, replay_name, wait_seconds, quiet=json_output)
    result = {
        "replay": replay_name,
        "state": described["State"],
        "from": began.isoformat(),
        "to": ended.isoformat(),
        "archive": archive,
        "reason": described.get("StateReason"),
        "last_replayed": str(described.get("EventLastReplayedTime") or "") or None,
    }
    if json_output:
        emit_json(result)
    else:
        console().print(
            f"replay {replay_name} {result['state']}: events of {result['from']} .. {result['to']} from {archive}"
        )
    if described["State"] != "COMPLETED":
        raise typer.Exit(int(Exit.UNAVAILABLE if described["State"] in FINAL else Exit.TIMED_OUT))


def _wait(client: Any, name: str, wait_seconds: float, *, quiet: bool) -> dict[str, Any]:
    deadline = time.monotonic() + wait_seconds
    spinner = console().status(f"replaying ({name})", spinner="dots")
    if not quiet:
        spinner.start()
    try:
        while True:
            described: dict[str, Any] = client.describe_replay(ReplayName=name)
            if described["State"] in FINAL or time.monotonic() > deadline:
                return described
            time.sleep(2)
    finally:
        if not quiet:
            spinner.stop()
