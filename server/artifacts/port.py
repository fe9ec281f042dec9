"""Artifacts as agent runs save them (core/ports.py ArtifactPort): a file of the run becomes
the project's artifact of that file name, or its next version.

As for the other writes, the content is stored before the transaction that records it and
removed again if that fails (blobrefs.py), and the caller's role (editor) is checked before a
byte is stored and again in the recording transaction. The artifact to update is the
project's newest one with the file name, locked while its version is appended, so versions
stay numbered 1, 2, 3 … under concurrent saves. Content equal to the latest version's adds
no version.
"""

from __future__ import annotations

import uuid

from server.artifacts import convert, store, validation
from server.artifacts.core import ArtifactsCore
from server.artifacts.extract import language_of
from server.artifacts.kinds import Origin
from server.artifacts.storage.errors import upload_too_large
from server.artifacts.validation import Fields
from server.artifacts.views import ArtifactView
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import Violations
from server.core.ports import SavedArtifact

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
        view = ArtifactView.of(row)
        return SavedArtifact(
            artifact_id=view.id,
            version=view.latest_version,
            created=created,
            message=convert.artifact_to_proto(view),
        )
