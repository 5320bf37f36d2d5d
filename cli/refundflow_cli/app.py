"""The ``refundflow`` command: global options (where to work), then one module per command group.

Command groups live in ``refundflow_cli/commands/``; each module has ``register(app)`` and is listed
in ``refundflow_cli.commands.MODULES``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from refundflow_cli import commands
from refundflow_cli.errors import Exit
from refundflow_cli.target import Settings, Target

app = typer.Typer(
    name="refundflow",
    help="Send, follow, list, approve and repair refunds; look after the queues and the event archive. Works on "
    "the local stack (make local) unless --stack names a deployed one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def configure(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            envvar="REFUNDFLOW_API_URL",
            help="The API's base URL (default: the local stack's, http://127.0.0.1:$REFUNDFLOW_PORT or 3000; with "
            "--stack its ApiUrl output).",
        ),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(
            envvar="REFUNDFLOW_STACK_NAME", help="A deployed stack's name: its outputs say where everything is."
        ),
    ] = None,
    region: Annotated[str | None, typer.Option(envvar="AWS_REGION", help="AWS region of --stack.")] = None,
    profile: Annotated[str | None, typer.Option(envvar="AWS_PROFILE", help="AWS profile.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP call.")] = 30.0,
) -> None:
    ctx.obj = Target(
        Settings.from_environment(api_url=api_url, stack_name=stack, region=region, profile=profile, timeout=timeout)
    )


commands.register(app)


def main() -> None:
    """The console script: usage errors are one line too (``error[usage]: ...``, exit 2)."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("error[interrupted]: interrupted", err=True)
        sys.exit(int(Exit.ERROR))
    except typer.TyperException as error:  # Typer's usage errors (bad options, unknown commands, bad values)
        context = getattr(error, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        typer.echo(f"error[usage]: {message}{hint}", err=True)
        sys.exit(int(getattr(error, "exit_code", Exit.USAGE)))
    sys.exit(code if isinstance(code, int) else 0)
