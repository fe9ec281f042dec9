"""Artifacts and their versions: create, read, list, update (new content is a new version,
under optimistic concurrency) and delete (with the blobs nothing references any more).

Content in hand (CreateArtifact, UpdateArtifact) is stored before the transaction that
records it, and removed again if that transaction fails (see blobrefs.py). A tree artifact
(trees.py) takes files where others take content, and stays a tree.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts import store, trees, validation
from server.artifacts.access import artifact_for
from server.artifacts.core import ArtifactsCore, check_sources, version_conflict
from server.artifacts.kinds import TREE_CONTENT_TYPE, Kind, Origin
from server.artifacts.storage import BlobInfo
from server.artifacts.storage.errors import upload_too_large
from server.artifacts.storage.upload import finish_cleanup
from server.artifacts.trees import CheckedFile, NewFile, StoredTree
from server.artifacts.validation import CheckedFields, Fields
from server.artifacts.views import ArtifactView, VersionView
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument, Violations
from server.core.pagination import Listed, Page, listed
from server.db.artifact_models import ArtifactRow

MUTABLE_FIELDS = ("title", "filename", "language", "kind", "content_type")
SANDBOX_UNAVAILABLE = "SANDBOX_UNAVAILABLE"


@dataclass(frozen=True)
class Sources:
    """Where a new artifact came from, as ids in text (validated here)."""

    conversation_id: str = ""
    message_id: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class SandboxDirectory:
    """A sandbox directory a tree is made of, as the request names it (validated here)."""

    sandbox_id: str
    path: str = ""


@dataclass(frozen=True)
class ListFilters:
    conversation_id: str = ""
    language: str = ""
    kind: Kind | None = None
    run_id: str = ""


@dataclass(frozen=True)
class ArtifactQuery:
    """A checked ListArtifacts request: whose artifacts, filtered how."""

    project_id: uuid.UUID
    filters: store.ArtifactFilters


def artifact_query(project_id: str, filters: ListFilters) -> ArtifactQuery:
    """Checks a ListArtifacts request's project and filters (before its page token)."""
    violations = Violations()
    pid = validation.required_id(project_id, "project_id", violations)
    conversation = validation.optional_id(filters.conversation_id, "conversation_id", violations)
    run = validation.optional_id(filters.run_id, "run_id", violations)
    language = validation.language(filters.language, "language", violations)
    violations.raise_if_any()
    assert pid is not None
    return ArtifactQuery(pid, store.ArtifactFilters(conversation, language, filters.kind, run))


def checked_artifact_id(value: str) -> uuid.UUID:
    """The `artifact_id` of a request, parsed (INVALID_ARGUMENT when it is not an id)."""
    violations = Violations()
    parsed = validation.required_id(value, "artifact_id", violations)
    violations.raise_if_any()
    assert parsed is not None
    return parsed


class ArtifactManager:
    def __init__(self, core: ArtifactsCore) -> None:
        self._core = core

    # --- reads ---------------------------------------------------------------------

    async def get(self, caller: Caller, artifact_id: str) -> ArtifactView:
        aid = checked_artifact_id(artifact_id)
        async with self._core.sessions() as db:
            return ArtifactView.of(await artifact_for(db, caller, aid, ProjectRole.VIEWER))

    async def list_artifacts(
        self, caller: Caller, query: ArtifactQuery, page: Page
    ) -> Listed[ArtifactView]:
        """Newest first."""
        async with self._core.sessions() as db:
            await require_project_role(db, caller, query.project_id, ProjectRole.VIEWER)
            rows = await store.list_page(db, query.project_id, query.filters, page)
        result = listed(rows, page, lambda row: [row.id])
        return Listed([ArtifactView.of(row) for row in result.items], result.next_key)

    async def list_versions(
        self, caller: Caller, aid: uuid.UUID, page: Page
    ) -> Listed[VersionView]:
        """Oldest first."""
        after = _version_cursor(page.after)
        async with self._core.sessions() as db:
            await artifact_for(db, caller, aid, ProjectRole.VIEWER)
            rows = await store.list_versions(db, aid, after, page.size + 1)
        result = listed(rows, page, lambda row: [row.version])
        return Listed([VersionView.of(row) for row in result.items], result.next_key)

    # --- writes --------------------------------------------------------------------

    async def create(
        self,
        caller: Caller,
        project_id: str,
        fields: Fields,
        sources: Sources,
        content: bytes,
        files: Sequence[NewFile] = (),
        directory: SandboxDirectory | None = None,
    ) -> ArtifactView:
        """A new artifact: of `content`, or a tree of `files` or of a sandbox `directory`'s
        files (kind TREE, or unset)."""
        limits = self._core.limits
        violations = Violations()
        pid = validation.required_id(project_id, "project_id", violations)
        tree_files: list[CheckedFile] | None = None
        sandbox_id: uuid.UUID | None = None
        if directory is not None:
            if content or files:
                violations.add(
                    "source_directory", "set only one of content, files and source_directory"
                )
            sandbox_id = validation.required_id(
                directory.sandbox_id, "source_directory.sandbox_id", violations
            )
            checked = _tree_fields(fields, violations, "`source_directory` is")
        elif files or fields.kind is Kind.TREE:
            if content:
                violations.add("content", "must be empty when `files` are set (or use `content`)")
            checked = _tree_fields(fields, violations)
            tree_files = trees.required_files(files, "files", limits, violations)
        else:
            checked = validation.new_fields(fields, "artifact", violations)
            validation.allowed_content_type(
                checked.content_type,
                limits.allowed_content_types,
                "artifact.content_type",
                violations,
            )
        conversation = validation.optional_id(
            sources.conversation_id, "artifact.conversation_id", violations
        )
        message = validation.optional_id(sources.message_id, "artifact.message_id", violations)
        run = validation.optional_id(sources.run_id, "artifact.run_id", violations)
        violations.raise_if_any()
        assert pid is not None
        if tree_files is None and len(content) > limits.max_upload_bytes:
            raise upload_too_large(limits.max_upload_bytes)
        async with self._core.sessions() as db:
            await require_project_role(db, caller, pid, ProjectRole.EDITOR)
        await check_sources(self._core, pid, conversation, message, run, "artifact.")
        if directory is not None and sandbox_id is not None:
            tree_files = await self._directory_files(caller, pid, sandbox_id, directory.path)
        new = store.NewArtifact(
            project_id=pid,
            title=checked.title,
            filename=checked.filename,
            language=checked.language,
            kind=checked.kind,
            content_type=checked.content_type,
            origin=Origin.API,
            creator_id=caller.user_id,
            conversation_id=conversation,
            message_id=message,
            run_id=run,
        )
        if tree_files is not None:
            return await self.record_new_tree(caller, new, tree_files)
        return await self.record_new(caller, new, content)

    async def _directory_files(
        self, caller: Caller, project_id: uuid.UUID, sandbox_id: uuid.UUID, path: str
    ) -> list[CheckedFile]:
        limits = self._core.limits
        port = self._core.sandbox
        if port is None or not port.provided:
            raise FailedPrecondition(
                "this server runs no sandboxes to read a directory from", SANDBOX_UNAVAILABLE
            )
        found = await port.get().read_tree(
            caller,
            project_id,
            sandbox_id,
            path,
            max_files=limits.max_tree_files,
            max_bytes=limits.max_upload_bytes,
        )
        violations = Violations()
        new_files = [NewFile(name, found[name]) for name in sorted(found)]
        checked = trees.required_files(new_files, "source_directory", limits, violations)
        violations.raise_if_any()
        return checked

    async def record_new_tree(
        self, caller: Caller, new: store.NewArtifact, files: Sequence[CheckedFile]
    ) -> ArtifactView:
        """Stores `files` and records them as the new tree artifact's first version."""
        core = self._core
        total = sum(len(file.content) for file in files)
        async with core.sessions() as db:
            await core.shares.precheck(db, caller.user_id, total)
        tree = await core.trees.store(files)
        async with (
            core.keeper.releasing_on_failure(tree.blobs),
            core.sessions() as db,
            db.begin(),
        ):
            await require_project_role(db, caller, new.project_id, ProjectRole.EDITOR)
            await core.shares.check(db, caller.user_id, tree.total_bytes)
            await core.trees.hold(db, tree)
            row = await store.insert_artifact(db, new, tree.manifest, size_bytes=tree.total_bytes)
            await store.insert_files(db, row.id, 1, tree.files)
        return ArtifactView.of(row)

    async def record_new(
        self,
        caller: Caller,
        new: store.NewArtifact,
        content: bytes,
        also: Callable[[AsyncSession], Awaitable[None]] | None = None,
    ) -> ArtifactView:
        """Stores `content` and records it as the new artifact's first version (the caller's
        role is checked again in the recording transaction, in which `also` runs too)."""
        blobs = self._core.blobs
        async with self._core.sessions() as db:
            await self._core.shares.precheck(db, caller.user_id, len(content))
        blob = await blobs.put_bytes(content, new.content_type)
        async with (
            self._core.keeper.releasing_on_failure([blob]),
            self._core.sessions() as db,
            db.begin(),
        ):
            await require_project_role(db, caller, new.project_id, ProjectRole.EDITOR)
            await self._core.shares.check(db, caller.user_id, blob.size)
            await self._core.keeper.hold(
                db, [blob.sha256], lambda _: blobs.put_bytes(content, new.content_type)
            )
            row = await store.insert_artifact(db, new, blob)
            if also is not None:
                await also(db)
        return ArtifactView.of(row)

    async def update(
        self,
        caller: Caller,
        artifact_id: str,
        paths: set[str],
        fields: Fields,
        content: bytes | None,
        base_version: int,
        files: Sequence[NewFile] = (),
    ) -> ArtifactView:
        """Metadata changes and/or the next version: `content`, or for a tree `files`."""
        limits = self._core.limits
        violations = Violations()
        aid = validation.required_id(artifact_id, "artifact.id", violations)
        changes = _metadata_changes(paths, fields, limits.allowed_content_types, violations)
        new_version = content is not None or bool(files)
        if new_version and base_version < 1:
            violations.add(
                "base_version", "must be the version the new content is based on (the latest)"
            )
        if not paths and not new_version:
            violations.add("update_mask", "name at least one field to update, or send content")
        if content is not None and files:
            violations.add("content", "must be unset when `files` are set")
        tree_files = trees.checked_files(files, "files", limits, violations) if files else None
        violations.raise_if_any()
        assert aid is not None
        blob: BlobInfo | None = None
        tree: StoredTree | None = None
        content_type = changes.get("content_type")
        if new_version:
            size = len(content) if content is not None else sum(len(f.content) for f in files)
            if size > limits.max_upload_bytes:
                raise upload_too_large(limits.max_upload_bytes)
            async with self._core.sessions() as db:
                current = await artifact_for(db, caller, aid, ProjectRole.EDITOR)
                _check_kind_of_change(current, changes, content is not None, bool(files))
                await self._core.shares.precheck(db, caller.user_id, size)
            if base_version != current.latest_version:  # fail before storing anything
                raise version_conflict(base_version, current.latest_version)
            if tree_files is not None:
                tree = await self._core.trees.store(tree_files)
            elif content is not None:
                content_type = content_type or current.content_type
                blob = await self._core.blobs.put_bytes(content, content_type)
        stored: list[BlobInfo] = [blob] if blob else list(tree.blobs) if tree else []
        async with (
            self._core.keeper.releasing_on_failure(stored),
            self._core.sessions() as db,
            db.begin(),
        ):
            row = await artifact_for(db, caller, aid, ProjectRole.EDITOR, lock=True)
            _check_kind_of_change(row, changes, content is not None, bool(files))
            for name in ("title", "filename", "language", "kind"):
                if name in changes:
                    setattr(row, name, changes[name])
            if blob is not None and content is not None and content_type is not None:
                if base_version != row.latest_version:
                    raise version_conflict(base_version, row.latest_version)
                await self._core.shares.check(db, caller.user_id, blob.size)
                data, kind = content, content_type
                await self._core.keeper.hold(
                    db, [blob.sha256], lambda _: self._core.blobs.put_bytes(data, kind)
                )
                await store.append_version(db, row, blob, content_type, caller.user_id)
            elif tree is not None:
                if base_version != row.latest_version:
                    raise version_conflict(base_version, row.latest_version)
                await self._core.shares.check(db, caller.user_id, tree.total_bytes)
                await self._core.trees.hold(db, tree)
                await store.append_version(
                    db,
                    row,
                    tree.manifest,
                    TREE_CONTENT_TYPE,
                    caller.user_id,
                    size_bytes=tree.total_bytes,
                )
                await store.insert_files(db, row.id, row.latest_version, tree.files)
            elif content_type is not None:
                await store.relabel_latest(db, row, content_type)
            await db.flush()
        return ArtifactView.of(row)

    async def delete(self, caller: Caller, artifact_id: str) -> None:
        aid = checked_artifact_id(artifact_id)
        async with self._core.sessions() as db, db.begin():
            row = await artifact_for(db, caller, aid, ProjectRole.EDITOR, lock=True)
            shas = await store.shas_of_artifact(db, row.id)
            await store.delete_artifact(db, row.id)
        # Runs to the end even if the caller goes away: the rows are gone already.
        await finish_cleanup(self._core.keeper.release(shas))


def _tree_fields(
    fields: Fields, violations: Violations, source: str = "`files` are"
) -> CheckedFields:
    """A new tree's fields: its content type is its manifest's, its kind TREE."""
    if fields.kind not in (None, Kind.TREE):
        violations.add("artifact.kind", f"must be unset or TREE when {source} set")
    if fields.content_type and fields.content_type.strip().lower() != TREE_CONTENT_TYPE:
        violations.add("artifact.content_type", f"a tree's content type is {TREE_CONTENT_TYPE}")
    name = validation.filename(fields.filename, "artifact.filename", violations)
    title = validation.title(fields.title, "artifact.title", violations)
    return CheckedFields(
        title=title or name or "Untitled",
        filename=name,
        language=validation.language(fields.language, "artifact.language", violations),
        kind=Kind.TREE,
        content_type=TREE_CONTENT_TYPE,
    )


def _check_kind_of_change(
    row: ArtifactRow, changes: dict[str, str], has_content: bool, has_files: bool
) -> None:
    """A tree takes files and stays a tree; any other artifact takes content and never
    becomes one (INVALID_ARGUMENT saying what to send instead)."""
    is_tree = row.kind == Kind.TREE.value
    violations = Violations()
    if is_tree and has_content:
        violations.add("content", "the artifact is a tree: send its files in `files`")
    if not is_tree and has_files:
        violations.add("files", "the artifact is not a tree: send its bytes in `content`")
    if "kind" in changes and (changes["kind"] == Kind.TREE.value) != is_tree:
        violations.add(
            "artifact.kind",
            "a tree stays a tree and other artifacts never become one: create a new artifact",
        )
    if is_tree and "content_type" in changes:
        violations.add("artifact.content_type", f"a tree's content type is {TREE_CONTENT_TYPE}")
    violations.raise_if_any()


def _version_cursor(after: Sequence[str] | None) -> int:
    if not after:
        return 0
    try:
        return int(after[0])
    except ValueError:
        raise InvalidArgument.of(
            [FieldViolation("page_token", "not a page token issued by this API")],
            reason="INVALID_PAGE_TOKEN",
        ) from None


def _metadata_changes(
    paths: set[str], fields: Fields, allowed: Sequence[str], violations: Violations
) -> dict[str, str]:
    changes: dict[str, str] = {}
    if "title" in paths:
        changes["title"] = validation.title(fields.title, "artifact.title", violations)
        if not changes["title"]:
            violations.add("artifact.title", "must not be empty")
    if "filename" in paths:
        changes["filename"] = validation.filename(fields.filename, "artifact.filename", violations)
    if "language" in paths:
        changes["language"] = validation.language(fields.language, "artifact.language", violations)
    if "kind" in paths:
        if fields.kind is None:
            violations.add("artifact.kind", "must be set")
        else:
            changes["kind"] = fields.kind.value
    if "content_type" in paths:
        content_type = validation.content_type(
            fields.content_type, "artifact.content_type", violations
        )
        validation.allowed_content_type(content_type, allowed, "artifact.content_type", violations)
        changes["content_type"] = content_type
    return changes
