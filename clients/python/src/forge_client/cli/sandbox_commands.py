"""`forge sandbox …`: create, list, and exec with live output whose exit code becomes the
command's own."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from forge_client._proto.forge.sandbox import v1 as sandbox_v1
from forge_client.streams import kind

from .session import JsonOption, client, console, handles_errors, print_json, to_data

sandbox = typer.Typer(help="Sandboxes: create, list, exec.", no_args_is_help=True)

SandboxOption = Annotated[
    str, typer.Option("--sandbox", "-s", envvar="FORGE_SANDBOX", help="Sandbox id.")
]


@sandbox.command("create")
@handles_errors
def create(
    ctx: typer.Context,
    project_id: str,
    runtime: Annotated[str, typer.Option(help="Runtime (python, node).")] = "python",
    json: JsonOption = False,
) -> None:
    """Create a sandbox (a container) for a project."""
    with client(ctx) as forge:
        made = forge.sandbox.create_sandbox(
            sandbox_v1.CreateSandboxRequest(
                project_id=project_id, sandbox=sandbox_v1.Sandbox(runtime=runtime)
            )
        )
    if json:
        print_json(to_data(made))
    else:
        console().print(f"Created sandbox {made.id} ({made.runtime}, {made.state.name.lower()})")


@sandbox.command("list")
@handles_errors
def list_sandboxes(ctx: typer.Context, project_id: str, json: JsonOption = False) -> None:
    """A project's sandboxes."""
    with client(ctx) as forge:
        found = forge.sandbox.list_sandboxes(
            sandbox_v1.ListSandboxesRequest(project_id=project_id, page_size=100)
        ).sandboxes
    if json:
        print_json([to_data(item) for item in found])
        return
    table = Table("id", "runtime", "state", title="Sandboxes")
    for item in found:
        table.add_row(item.id, item.runtime, item.state.name.lower())
    console().print(table)


@sandbox.command(
    "exec", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)
@handles_errors
def exec_command(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(help="The command, after `--`.")],
    sandbox_id: SandboxOption,
    workdir: Annotated[str, typer.Option(help="Working directory.")] = "",
    json: JsonOption = False,
) -> None:
    """Run a command in a sandbox, printing its output live; exits with its exit code."""
    stdout: list[bytes] = []
    stderr: list[bytes] = []
    code, reason = 1, ""
    with client(ctx) as forge:
        for event in forge.exec(sandbox_id, command, working_dir=workdir):
            what = kind(event)
            if what == "stdout":
                stdout.append(event.stdout or b"")
                if not json:
                    sys.stdout.buffer.write(event.stdout or b"")
                    sys.stdout.flush()
            elif what == "stderr":
                stderr.append(event.stderr or b"")
                if not json:
                    sys.stderr.buffer.write(event.stderr or b"")
                    sys.stderr.flush()
            elif what == "exit" and event.exit is not None:
                done = event.exit
                code = done.exit_code if not done.signal else 128 + done.signal
                reason = done.reason.name.lower()
            elif what == "error" and event.error is not None:
                reason = event.error.message
                if not json:
                    typer.echo(f"error: {event.error.message}", err=True)
    if json:
        print_json(
            {
                "exit_code": code,
                "reason": reason,
                "stdout": b"".join(stdout).decode(errors="replace"),
                "stderr": b"".join(stderr).decode(errors="replace"),
            }
        )
    raise typer.Exit(code)
