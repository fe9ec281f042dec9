"""Artifacts as static sites, for deployments (the artifact port's `site_files`): a succeeded
build's outputs with the page that loads them, a tree's files, or an HTML page."""

from __future__ import annotations

import uuid

from server.artifacts import build_store, store
from server.artifacts.access import artifact_in_project, build_for, build_not_found
from server.artifacts.builds import is_buildable
from server.artifacts.core import ArtifactsCore, version_of
from server.artifacts.kinds import Kind
from server.artifacts.previews import INDEX, PAGE_CONTENT_TYPE, preview_page
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import FailedPrecondition
from server.core.ports import SiteFiles, SiteSource
from server.db.engine import reading

NOT_A_SITE = "NOT_A_SITE"
BUILD_FAILED = "BUILD_FAILED"


async def site_files(
    core: ArtifactsCore, caller: Caller, project_id: uuid.UUID, source: SiteSource
) -> SiteFiles:
    if source.build_id is not None:
        return await _build_site(core, caller, project_id, source.build_id)
    assert source.artifact_id is not None
    blobs = core.blobs
    async with reading(core.sessions) as db:
        artifact = await artifact_in_project(
            db, caller, source.artifact_id, project_id, ProjectRole.VIEWER
        )
        version = await version_of(db, artifact, source.version)
        number = version.version
        if artifact.kind == Kind.TREE.value:
            rows = await store.list_files(db, artifact.id, number, "", core.limits.max_tree_files)
            files = {row.path: (await blobs.read(row.sha256), row.content_type) for row in rows}
        elif artifact.kind == Kind.HTML.value:
            files = {INDEX: (await blobs.read(version.sha256), version.content_type)}
        else:
            raise _not_a_site(artifact.kind, is_buildable(artifact))
    return SiteFiles(artifact.id, number, None, files)


async def _build_site(
    core: ArtifactsCore, caller: Caller, project_id: uuid.UUID, build_id: uuid.UUID
) -> SiteFiles:
    async with reading(core.sessions) as db:
        build, artifact = await build_for(db, caller, build_id, ProjectRole.VIEWER)
        if artifact.project_id != project_id:
            raise build_not_found()
        if build.status != "succeeded":
            raise FailedPrecondition(
                "the build failed, so it has nothing to publish; fix the errors and build again",
                BUILD_FAILED,
            )
        outputs = await build_store.files_of(db, [build.id])
        files = {row.path: (await core.blobs.read(row.sha256), row.content_type) for row in outputs}
    if INDEX not in files:
        page = preview_page(artifact.title, [row.path for row in outputs])
        files[INDEX] = (page, PAGE_CONTENT_TYPE)
    return SiteFiles(artifact.id, build.version, build.id, files)


def _not_a_site(kind: str, buildable: bool) -> FailedPrecondition:
    hint = "; build it and deploy the build" if buildable else ""
    return FailedPrecondition(
        f"a {kind} artifact is not a static site (a tree with an index.html, or an HTML "
        f"page){hint}",
        NOT_A_SITE,
    )
