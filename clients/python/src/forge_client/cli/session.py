"""What every command shares: the client built from the stored profile and the
environment, JSON output, and errors shown as one line with their reason."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

import betterproto2
import typer
from rich.console import Console
from rich.markup import escape

from forge_client._address import DEFAULT_ADDRESS
from forge_client.credentials import Credentials, Tokens
from forge_client.errors import ForgeError
from forge_client.sync import Forge

from . import config

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


@dataclass
class Options:
    server: str | None = None


def server_address(ctx: typer.Context) -> str:
    options = ctx.find_object(Options)
    chosen = options.server if options is not None else None
    return chosen or config.load().server or DEFAULT_ADDRESS


def client(ctx: typer.Context) -> Forge:
    """A client of the chosen server, signed in with FORGE_API_KEY or the stored profile;
    renewed tokens are stored again."""
    profile = config.load()
    api_key = os.environ.get("FORGE_API_KEY") or profile.api_key

    def store(tokens: Tokens) -> None:
        current = config.load()
        current.access_token, current.refresh_token = tokens.access_token, tokens.refresh_token
        config.save(current)

    credentials = Credentials(
        token=profile.access_token,
        refresh_token=profile.refresh_token,
        api_key=api_key,
        on_tokens=store,
    )
    return Forge.connect(server_address(ctx), credentials=credentials)


def to_data(message: betterproto2.Message) -> dict[str, Any]:
    return message.to_dict(include_default_values=True)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def console() -> Console:
    return Console(highlight=False)


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A ForgeError ends the command with its message and reason on stderr, exit code 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ForgeError as error:
            Console(stderr=True, highlight=False).print(f"[red]error:[/red] {escape(str(error))}")
            raise typer.Exit(1) from None

    return run
