"""Artifacts as agent runs save them (core/ports.py ArtifactPort): a file of the run becomes
the project's artifact of that file name, or its next version.

As for the other writes, the content is stored before the transaction that records it and
removed again if that fails (blobrefs.py), and the caller's role (editor) is checked before a
byte is stored and again in the recording transaction. The artifact to update is the
project's newest one with the file name, locked while its version is appended, so versions
stay numbered 1, 2, 3 … under concurrent saves. Content equal to the latest version's adds
no version. A directory saved by a run is a tree artifact (trees.py), matched by its name the
same way, among trees only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from server.artifacts import convert, runnable, sites, store, trees, validation
from server.artifacts.core import ArtifactsCore
from server.artifacts.extract import language_of
from server.artifacts.kinds import TREE_CONTENT_TYPE, Kind, Origin
from server.artifacts.storage.errors import upload_too_large
from server.artifacts.trees import NewFile
from server.artifacts.validation import Fields
from server.artifacts.views import ArtifactView
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import Violations
from server.core.ports import ArtifactSource, SavedArtifact, SiteFiles, SiteSource
from server.db.artifact_models import ArtifactRow

PREFIX = "artifact"


class ArtifactsForRuns:
    """Offered as `Offers.artifacts`."""

    def __init__(self, core: ArtifactsCore) -> None:
        self._core = core

    async def save_from_run(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        run_id: uuid.UUID,
        filename: str,
        content: bytes,
        title: str = "",
    ) -> SavedArtifact:
        core = self._core
        limits = core.limits
        violations = Violations()
        violations.check(bool(filename.strip()), f"{PREFIX}.filename", "is required")
        fields = Fields(title=title, filename=filename, language=language_of(filename.strip()))
        checked = validation.new_fields(fields, PREFIX, violations)
        validation.allowed_content_type(
            checked.content_type, limits.allowed_content_types, f"{PREFIX}.content_type", violations
        )
        violations.raise_if_any()
        if len(content) > limits.max_upload_bytes:
            raise upload_too_large(limits.max_upload_bytes)
        async with core.sessions() as db:  # refuse before a byte is stored
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)

        blob = await core.blobs.put_bytes(content, checked.content_type)
        async with (
            core.keeper.releasing_on_failure([blob]),
            core.sessions() as db,
            db.begin(),
        ):
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)
            await core.keeper.hold(
                db, [blob.sha256], lambda _: core.blobs.put_bytes(content, checked.content_type)
            )
            row = await store.find_in_project(db, project_id, checked.filename)
            if row is None or row.sha256 != blob.sha256:  # a new version
                await core.shares.check(db, caller.user_id, blob.size)
            created = row is None
            if row is None:
                new = store.NewArtifact(
                    project_id=project_id,
                    title=checked.title,
                    filename=checked.filename,
                    language=checked.language,
                    kind=checked.kind,
                    content_type=checked.content_type,
                    origin=Origin.RUN,
                    creator_id=caller.user_id,
                    run_id=run_id,
                )
                row = await store.insert_artifact(db, new, blob)
            else:
                if title.strip():
                    row.title = checked.title
                if row.sha256 != blob.sha256:
                    await store.append_version(
                        db, row, blob, row.content_type, caller.user_id, run_id=run_id
                    )
                await db.flush()
        return _saved(row, created)

    async def save_tree_from_run(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        run_id: uuid.UUID,
        name: str,
        files: Mapping[str, bytes],
        title: str = "",
    ) -> SavedArtifact:
        core = self._core
        violations = Violations()
        violations.check(bool(name.strip()), f"{PREFIX}.filename", "is required")
        checked_name = validation.filename(name, f"{PREFIX}.filename", violations)
        checked_title = validation.title(title, f"{PREFIX}.title", violations)
        new_files = [NewFile(path, files[path]) for path in sorted(files)]
        checked = trees.required_files(new_files, "files", core.limits, violations)
        violations.raise_if_any()
        async with core.sessions() as db:  # refuse before a byte is stored
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)

        tree = await core.trees.store(checked)
        async with (
            core.keeper.releasing_on_failure(tree.blobs),
            core.sessions() as db,
            db.begin(),
        ):
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)
            await core.trees.hold(db, tree)
            row = await store.find_tree_in_project(db, project_id, checked_name)
            if row is None or row.sha256 != tree.manifest.sha256:  # a new version
                await core.shares.check(db, caller.user_id, tree.total_bytes)
            created = row is None
            if row is None:
                new = store.NewArtifact(
                    project_id=project_id,
                    title=checked_title or checked_name,
                    filename=checked_name,
                    language="",
                    kind=Kind.TREE,
                    content_type=TREE_CONTENT_TYPE,
                    origin=Origin.RUN,
                    creator_id=caller.user_id,
                    run_id=run_id,
                )
                row = await store.insert_artifact(
                    db, new, tree.manifest, size_bytes=tree.total_bytes
                )
                await store.insert_files(db, row.id, 1, tree.files)
            else:
                if checked_title:
                    row.title = checked_title
                if row.sha256 != tree.manifest.sha256:
                    await store.append_version(
                        db,
                        row,
                        tree.manifest,
                        TREE_CONTENT_TYPE,
                        caller.user_id,
                        run_id=run_id,
                        size_bytes=tree.total_bytes,
                    )
                    await store.insert_files(db, row.id, row.latest_version, tree.files)
                await db.flush()
        return _saved(row, created)

    async def site_files(
        self, caller: Caller, project_id: uuid.UUID, source: SiteSource
    ) -> SiteFiles:
        return await sites.site_files(self._core, caller, project_id, source)

    async def source_code(
        self, caller: Caller, project_id: uuid.UUID, artifact_id: uuid.UUID, version: int
    ) -> ArtifactSource:
        return await runnable.source_code(self._core, caller, project_id, artifact_id, version)


def _saved(row: ArtifactRow, created: bool) -> SavedArtifact:
    view = ArtifactView.of(row)
    return SavedArtifact(
        artifact_id=view.id,
        version=view.latest_version,
        created=created,
        message=convert.artifact_to_proto(view),
    )
