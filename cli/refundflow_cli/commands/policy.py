"""``refundflow policy check FILE``: the policy tool of refundflow.policy.cli, under the same command."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer

from refundflow.policy import cli as policy_cli
from refundflow_cli.errors import Exit
from refundflow_cli.output import JsonOption, emit_json, handled

policy = typer.Typer(help="Refund policy files.", no_args_is_help=True)
EXIT_CODES = {
    policy_cli.EXIT_OK: Exit.OK,
    policy_cli.EXIT_INVALID_POLICY: Exit.POLICY_INVALID,
    policy_cli.EXIT_SAMPLES_FAILED: Exit.POLICY_SAMPLES_FAILED,
}


def register(app: typer.Typer) -> None:
    app.add_typer(policy, name="policy")


@policy.command("check")
@handled
def check(
    file: Annotated[Path, typer.Argument(help="The policy YAML file.")],
    samples: Annotated[
        Path | None, typer.Option(help="A folder of sample refunds (*.json), e.g. events/policy.", file_okay=False)
    ] = None,
    expect: Annotated[
        bool, typer.Option("--expect", help="Fail when a decision differs from a sample's expect.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Validate a policy file and show its decisions for the samples (exit 20 invalid policy, 21 a sample failed)."""
    out, err = io.StringIO(), io.StringIO()
    status = policy_cli.check(file, samples, expect=expect, out=out, err=err)
    code = EXIT_CODES.get(status, Exit.ERROR)
    if json_output:
        emit_json(
            {
                "file": str(file),
                "ok": status == policy_cli.EXIT_OK,
                "exit_code": int(code),
                "output": out.getvalue().splitlines(),
                "problems": err.getvalue().splitlines(),
            }
        )
    else:
        typer.echo(out.getvalue(), nl=False)
        typer.echo(err.getvalue(), nl=False, err=True)
    raise typer.Exit(int(code))
