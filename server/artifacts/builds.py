"""Builds: an artifact version bundled with esbuild in a node sandbox (server/builds), its
outputs kept like artifact content (blobs by SHA-256) and linked to the version.

What builds: a tree artifact (its files), or one JavaScript, TypeScript, JSX/TSX (React) or
CSS artifact (its content, under its filename). Editors build; members read builds. A
version built before, for the same entry point, answers with that build at once (`cached`)
unless a rebuild is asked for: a version never changes, so neither does its bundle.

A build runs while its caller streams it; a caller that goes away stops it (the bundler
kills it and removes its sandbox), and nothing is stored. A bundle that fails is a build
like any other, FAILED with its diagnostics.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts import build_store, store
from server.artifacts.access import artifact_for, artifact_not_found, build_for, build_not_found
from server.artifacts.build_views import (
    BuildCompleted,
    BuildStarted,
    BuildStreamEvent,
    BuildView,
    diagnostic_document,
)
from server.artifacts.core import ArtifactsCore, checked_version_request, version_of
from server.artifacts.kinds import Kind
from server.artifacts.storage import BlobInfo
from server.builds.bundler import bundle
from server.builds.events import BuildResult
from server.builds.limits import BuildLimits
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.core.ports import ScratchSandboxPort
from server.db.artifact_models import ArtifactRow, ArtifactVersionRow
from server.db.build_models import BuildFileRow, BuildRow
from server.db.engine import reading

NOT_BUILDABLE = "NOT_BUILDABLE"
BUILDABLE_LANGUAGES = frozenset({"javascript", "typescript", "jsx", "tsx", "css"})
MAX_ENTRY_POINT = 1024


def is_buildable(artifact: ArtifactRow) -> bool:
    return (
        artifact.kind in (Kind.TREE.value, Kind.REACT.value)
        or artifact.language in BUILDABLE_LANGUAGES
    )


def check_buildable(artifact: ArtifactRow) -> None:
    if is_buildable(artifact):
        return
    raise FailedPrecondition(
        "only tree artifacts and JavaScript, TypeScript, JSX/TSX or CSS artifacts can be built "
        f"(this one is {artifact.kind}{', ' + artifact.language if artifact.language else ''})",
        NOT_BUILDABLE,
    )


async def build_view(db: AsyncSession, row: BuildRow) -> BuildView:
    return BuildView.of(row, await build_store.files_of(db, [row.id]))


class Builds:
    def __init__(self, core: ArtifactsCore, limits: BuildLimits) -> None:
        self._core = core
        self._limits = limits

    async def build(
        self, caller: Caller, artifact_id: str, version: int, entry_point: str, rebuild: bool
    ) -> AsyncGenerator[BuildStreamEvent, None]:
        """BuildStarted, then the bundler's log lines and diagnostics, then BuildCompleted."""
        aid = checked_version_request(artifact_id, version)
        if len(entry_point) > MAX_ENTRY_POINT:
            raise InvalidArgument.of(
                [FieldViolation("entry_point", f"must be at most {MAX_ENTRY_POINT} characters")]
            )
        async with reading(self._core.sessions) as db:
            artifact = await artifact_for(db, caller, aid, ProjectRole.EDITOR)
            row = await version_of(db, artifact, version)
            number = row.version
            check_buildable(artifact)
            cached = None if rebuild else await build_store.latest(db, aid, number, entry_point)
            cached_view = await build_view(db, cached) if cached is not None else None
            if cached_view is None:
                files = await self._sources(db, artifact, row)
        if cached_view is not None:
            yield BuildStarted(aid, number, cached=True)
            yield BuildCompleted(cached_view, cached=True)
            return
        yield BuildStarted(aid, number, cached=False)
        assert self._core.sandbox is not None
        sandbox = cast(ScratchSandboxPort, self._core.sandbox.get())
        bundler = bundle(
            sandbox,
            caller,
            artifact.project_id,
            files,
            entry=entry_point or None,
            limits=self._limits,
        )
        async with aclosing(bundler) as events:
            async for event in events:
                if isinstance(event, BuildResult):
                    stored = await self._store(caller, artifact, number, entry_point, event)
                    yield BuildCompleted(stored, cached=False)
                else:
                    yield event

    async def _sources(
        self, db: AsyncSession, artifact: ArtifactRow, version: ArtifactVersionRow
    ) -> dict[str, bytes]:
        """The version's files by path: a tree's, or the one file under its filename."""
        blobs = self._core.blobs
        if artifact.kind != Kind.TREE.value:
            return {artifact.filename or "index.js": await blobs.read(version.sha256)}
        rows = await store.list_files(
            db, artifact.id, version.version, "", self._limits.max_input_files + 1
        )
        return {row.path: await blobs.read(row.sha256) for row in rows}

    async def _store(
        self,
        caller: Caller,
        artifact: ArtifactRow,
        version: int,
        requested_entry: str,
        result: BuildResult,
    ) -> BuildView:
        """Keeps the outputs as blobs and records the build (succeeded or failed)."""
        blobs = self._core.blobs
        infos: list[BlobInfo] = []
        contents: dict[str, tuple[bytes, str]] = {}
        async with self._core.keeper.releasing_on_failure(infos):
            for output in result.outputs:
                info = await blobs.put_bytes(output.content, output.content_type)
                infos.append(info)
                contents[info.sha256] = (output.content, output.content_type)

            async def restore(sha256: str) -> None:
                await blobs.put_bytes(*contents[sha256])

            row = BuildRow(
                artifact_id=artifact.id,
                version=version,
                requested_entry=requested_entry,
                entry_point=result.entry,
                status=result.status.value,
                diagnostics=[diagnostic_document(d) for d in result.diagnostics],
                duration_ms=int(result.duration.total_seconds() * 1000),
                creator_id=caller.user_id,
            )
            files = [
                BuildFileRow(
                    path=output.path,
                    sha256=info.sha256,
                    size_bytes=info.size,
                    content_type=output.content_type,
                )
                for output, info in zip(result.outputs, infos, strict=True)
            ]
            try:
                async with self._core.sessions() as db, db.begin():
                    await self._core.keeper.hold(db, contents, restore)
                    await build_store.insert(db, row, files)
            except IntegrityError:  # the artifact (or version) was deleted meanwhile
                raise artifact_not_found() from None
        return BuildView.of(row, files)

    async def get(self, caller: Caller, build_id: str) -> BuildView:
        bid = parse_id(build_id)
        if bid is None:
            raise build_not_found()
        async with reading(self._core.sessions) as db:
            row, _ = await build_for(db, caller, bid, ProjectRole.VIEWER)
            return await build_view(db, row)

    async def list(self, caller: Caller, artifact_id: uuid.UUID, page: Page) -> Listed[BuildView]:
        async with reading(self._core.sessions) as db:
            await artifact_for(db, caller, artifact_id, ProjectRole.VIEWER)
            rows = list(await build_store.list_page(db, artifact_id, page))
            files = await build_store.files_of(db, [row.id for row in rows])
        by_build: dict[uuid.UUID, list[BuildFileRow]] = {row.id: [] for row in rows}
        for file in files:
            by_build[file.build_id].append(file)
        views = [BuildView.of(row, by_build[row.id]) for row in rows]
        return listed(views, page, lambda view: [view.id])
