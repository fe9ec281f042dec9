"""`forge`: the command line of the Forge API. `forge --help` lists the commands;
`forge --install-completion` installs shell completion."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from forge_client._proto.forge.agents import v1 as agents
from forge_client._proto.forge.auth import v1 as auth
from forge_client.credentials import Credentials
from forge_client.sync import Forge

from . import agent_commands, artifact_commands, config, project_commands, sandbox_commands
from .session import JsonOption, Options, client, console, handles_errors, print_json, to_data
from .session import server_address as chosen_server

app = typer.Typer(
    name="forge",
    help="Forge from the command line: projects, tasks, chat, agent runs, sandboxes, artifacts.",
    no_args_is_help=True,
)
app.add_typer(project_commands.projects, name="projects")
app.add_typer(project_commands.tasks, name="tasks")
app.add_typer(agent_commands.runs, name="run")
app.add_typer(sandbox_commands.sandbox, name="sandbox")
app.add_typer(artifact_commands.artifacts, name="artifacts")
app.command("chat")(agent_commands.chat)


@app.callback()
def options(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="FORGE_SERVER",
            help="Server address, host:port (https://host for TLS). Default: the one "
            "`forge login` stored, else localhost:50051.",
        ),
    ] = None,
) -> None:
    ctx.obj = Options(server=server)


@app.command()
@handles_errors
def login(
    ctx: typer.Context,
    email: Annotated[str | None, typer.Option(help="Account email (prompted if missing).")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (prompted, hidden, if missing).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="FORGE_API_KEY", help="Sign in with an API key instead."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Sign in and store the session (or API key) in the user's config dir, mode 0600."""
    server = chosen_server(ctx)
    profile = config.Profile(server=server)
    with Forge.connect(server, credentials=Credentials(api_key=api_key)) as forge:
        if api_key:
            user = forge.auth.get_current_user(auth.GetCurrentUserRequest())
            profile.api_key = api_key
        else:
            email = email or typer.prompt("Email")
            password = password or typer.prompt("Password", hide_input=True)
            user = forge.login(email, password)
            profile.access_token = forge.credentials.access_token
            profile.refresh_token = forge.credentials.refresh_token
    profile.email = user.email
    path = config.save(profile)
    if json:
        print_json({"user": to_data(user), "server": server, "config": str(path)})
    else:
        console().print(f"Signed in to {server} as {user.email} (stored in {path})")


@app.command()
@handles_errors
def logout(ctx: typer.Context) -> None:
    """End the stored session and forget it."""
    profile = config.load()
    if profile.refresh_token:
        with client(ctx) as forge:
            forge.auth.logout(auth.LogoutRequest(refresh_token=profile.refresh_token))
    config.forget()
    console().print("Signed out.")


@app.command()
@handles_errors
def whoami(ctx: typer.Context, json: JsonOption = False) -> None:
    """The signed-in account."""
    with client(ctx) as forge:
        user = forge.auth.get_current_user(auth.GetCurrentUserRequest())
    if json:
        print_json(to_data(user))
    else:
        console().print(f"{user.display_name or user.email} <{user.email}> ({user.id})")


@app.command()
@handles_errors
def usage(
    ctx: typer.Context,
    start_day: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "",
    end_day: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD.")] = "",
    json: JsonOption = False,
) -> None:
    """Tokens used per day and model, today's quota, and cost."""
    with client(ctx) as forge:
        found = forge.agents.get_usage(agents.GetUsageRequest(start_day=start_day, end_day=end_day))
    if json:
        print_json(to_data(found))
        return
    table = Table("day", "model", "input tokens", "output tokens", title="Usage")
    for record in found.records:
        table.add_row(record.day, record.model, str(record.input_tokens), str(record.output_tokens))
    out = console()
    out.print(table)
    out.print(
        f"total: {found.input_tokens} in, {found.output_tokens} out; "
        f"today {found.tokens_used_today} of {found.daily_token_quota or 'unlimited'}; "
        f"cost ${found.cost_usd:.4f}"
    )


def main() -> None:
    app(prog_name="forge")
