"""`forge artifacts …`: list, push (upload) and pull (download), with progress bars."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from forge_client._proto.forge.artifacts import v1 as artifacts_v1
from forge_client.streams import kind

from .session import JsonOption, client, console, handles_errors, print_json, to_data

artifacts = typer.Typer(help="Artifacts: list, push, pull.", no_args_is_help=True)

CHUNK = 64 * 1024


def progress(json: bool) -> Progress:
    """Progress bars on stderr (stdout stays clean for --json), hidden with --json."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        disable=json,
    )


@artifacts.command("list")
@handles_errors
def list_artifacts(ctx: typer.Context, project_id: str, json: JsonOption = False) -> None:
    """A project's artifacts."""
    with client(ctx) as forge:
        found = forge.artifacts.list_artifacts(
            artifacts_v1.ListArtifactsRequest(project_id=project_id, page_size=100)
        ).artifacts
    if json:
        print_json([to_data(item) for item in found])
        return
    table = Table("id", "filename", "version", "bytes", title="Artifacts")
    for item in found:
        table.add_row(item.id, item.filename, str(item.latest_version), str(item.size_bytes))
    console().print(table)


@artifacts.command("push")
@handles_errors
def push(
    ctx: typer.Context,
    project_id: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    artifact_id: Annotated[
        str, typer.Option("--artifact", help="Add a version to this artifact instead.")
    ] = "",
    title: Annotated[str, typer.Option(help="Title of a new artifact.")] = "",
    json: JsonOption = False,
) -> None:
    """Upload a file as a new artifact (or a new version of one)."""
    size = file.stat().st_size
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    metadata = artifacts_v1.UploadArtifactMetadata(
        project_id=project_id,
        artifact_id=artifact_id,
        size_bytes=size,
        sha256=digest,
        artifact=None
        if artifact_id
        else artifacts_v1.Artifact(
            filename=file.name, title=title or file.name, content_type=content_type
        ),
    )
    with progress(json) as bars:
        task = bars.add_task(f"push {file.name}", total=size)

        def messages() -> Iterator[artifacts_v1.UploadArtifactRequest]:
            yield artifacts_v1.UploadArtifactRequest(metadata=metadata)
            with file.open("rb") as source:
                while chunk := source.read(CHUNK):
                    yield artifacts_v1.UploadArtifactRequest(chunk=chunk)
                    bars.advance(task, len(chunk))

        with client(ctx) as forge:
            made = forge.artifacts.upload_artifact(messages())
    if json:
        print_json(to_data(made))
    else:
        console().print(f"Pushed {made.filename} as {made.id} version {made.latest_version}")


@artifacts.command("pull")
@handles_errors
def pull(
    ctx: typer.Context,
    artifact_id: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: its name).")
    ] = None,
    version: Annotated[int, typer.Option(help="Version (default: the latest).")] = 0,
    json: JsonOption = False,
) -> None:
    """Download an artifact's content to a file."""
    with client(ctx) as forge:
        if output is None:
            found = forge.artifacts.get_artifact(
                artifacts_v1.GetArtifactRequest(artifact_id=artifact_id)
            )
            output = Path(found.filename or artifact_id)
        written = 0
        about: artifacts_v1.ArtifactVersion | None = None
        with progress(json) as bars, output.open("wb") as sink:
            task = bars.add_task(f"pull {output.name}", total=None)
            for part in forge.artifacts.download_artifact(
                artifacts_v1.DownloadArtifactRequest(artifact_id=artifact_id, version=version)
            ):
                if kind(part, "payload") == "metadata" and part.metadata is not None:
                    about = part.metadata
                    bars.update(task, total=about.size_bytes)
                elif part.chunk:
                    sink.write(part.chunk)
                    written += len(part.chunk)
                    bars.advance(task, len(part.chunk))
    if json:
        print_json(
            {"path": str(output), "bytes": written, "version": to_data(about) if about else None}
        )
    else:
        console().print(f"Pulled {written} bytes to {output}")
