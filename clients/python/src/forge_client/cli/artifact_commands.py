"""`forge artifacts …`: list, push (upload a file, or a directory as a tree), pull
(download), files (a version's files) and archive (a version's files as a zip or tar.gz), with
progress bars."""

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

artifacts = typer.Typer(help="Artifacts: list, push, pull, files, archive.", no_args_is_help=True)

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
    file: Annotated[Path, typer.Argument(exists=True, readable=True)],
    artifact_id: Annotated[
        str, typer.Option("--artifact", help="Add a version to this artifact instead.")
    ] = "",
    title: Annotated[str, typer.Option(help="Title of a new artifact.")] = "",
    json: JsonOption = False,
) -> None:
    """Upload a file as a new artifact (or a new version of one); a directory becomes a
    tree artifact of its files (symbolic links are skipped)."""
    if file.is_dir():
        push_tree(ctx, project_id, file, artifact_id, title, json)
        return
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


def _tree_files(root: Path) -> list[artifacts_v1.ArtifactFile]:
    """The regular files under `root` (links not followed), by their paths relative to it."""
    found = [path for path in sorted(root.rglob("*")) if path.is_file() and not path.is_symlink()]
    found = [path for path in found if not any(p.is_symlink() for p in path.parents)]
    return [
        artifacts_v1.ArtifactFile(path=path.relative_to(root).as_posix(), content=path.read_bytes())
        for path in found
    ]


def push_tree(
    ctx: typer.Context, project_id: str, root: Path, artifact_id: str, title: str, json: bool
) -> None:
    files = _tree_files(root)
    with client(ctx) as forge:
        if artifact_id:
            latest = forge.artifacts.get_artifact(
                artifacts_v1.GetArtifactRequest(artifact_id=artifact_id)
            )
            made = forge.artifacts.update_artifact(
                artifacts_v1.UpdateArtifactRequest(
                    artifact=artifacts_v1.Artifact(id=artifact_id),
                    files=files,
                    base_version=latest.latest_version,
                )
            )
        else:
            made = forge.artifacts.create_artifact(
                artifacts_v1.CreateArtifactRequest(
                    project_id=project_id,
                    artifact=artifacts_v1.Artifact(
                        filename=root.resolve().name, title=title or root.resolve().name
                    ),
                    files=files,
                )
            )
    if json:
        print_json(to_data(made))
    else:
        console().print(
            f"Pushed {len(files)} files of {root} as {made.id} version {made.latest_version}"
        )


@artifacts.command("files")
@handles_errors
def list_files(
    ctx: typer.Context,
    artifact_id: str,
    version: Annotated[int, typer.Option(help="Version (default: the latest).")] = 0,
    json: JsonOption = False,
) -> None:
    """A version's files (a tree's; any other artifact has one)."""
    found: list[artifacts_v1.ArtifactFile] = []
    token = ""
    with client(ctx) as forge:
        while True:
            page = forge.artifacts.list_artifact_files(
                artifacts_v1.ListArtifactFilesRequest(
                    artifact_id=artifact_id, version=version, page_size=1000, page_token=token
                )
            )
            found += page.files
            token = page.next_page_token
            if not token:
                break
    if json:
        print_json([to_data(item) for item in found])
        return
    table = Table("path", "bytes", "type", title="Files")
    for item in found:
        table.add_row(item.path, str(item.size_bytes), item.content_type)
    console().print(table)


@artifacts.command("archive")
@handles_errors
def archive(
    ctx: typer.Context,
    artifact_id: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: by its name).")
    ] = None,
    version: Annotated[int, typer.Option(help="Version (default: the latest).")] = 0,
    tar: Annotated[bool, typer.Option("--tar", help="A .tar.gz instead of a .zip.")] = False,
    json: JsonOption = False,
) -> None:
    """Download a version's files as one archive (zip, or tar.gz with --tar)."""
    archive_format = artifacts_v1.ArchiveFormat.TAR_GZ if tar else artifacts_v1.ArchiveFormat.ZIP
    with client(ctx) as forge:
        if output is None:
            found = forge.artifacts.get_artifact(
                artifacts_v1.GetArtifactRequest(artifact_id=artifact_id)
            )
            name = (found.filename.rsplit("/", 1)[-1] or found.title or artifact_id).strip()
            output = Path(f"{name}.{'tar.gz' if tar else 'zip'}")
        written = 0
        with progress(json) as bars, output.open("wb") as sink:
            task = bars.add_task(f"archive {output.name}", total=None)
            for part in forge.artifacts.download_artifact_archive(
                artifacts_v1.DownloadArtifactArchiveRequest(
                    artifact_id=artifact_id, version=version, format=archive_format
                )
            ):
                sink.write(part.data)
                written += len(part.data)
                bars.advance(task, len(part.data))
    if json:
        print_json({"path": str(output), "bytes": written})
    else:
        console().print(f"Wrote {written} bytes to {output}")
