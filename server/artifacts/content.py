"""The bytes of artifact versions: inline reads, chunked downloads, streamed uploads and
presigned download URLs; with a path, one file of a version (files.py). Large content is
never held whole: uploads stream into the blob store as they arrive, downloads stream out of
it in 64 KiB chunks."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from server.artifacts import store, validation
from server.artifacts.access import artifact_for
from server.artifacts.core import (
    ArtifactsCore,
    checked_version_request,
    version_conflict,
    version_of,
)
from server.artifacts.files import file_at, single_file
from server.artifacts.kinds import Kind, Origin
from server.artifacts.storage import BlobStream
from server.artifacts.storage.base import normalize_sha256
from server.artifacts.storage.errors import upload_too_large
from server.artifacts.validation import Fields
from server.artifacts.views import ArtifactView, FileView, VersionView
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Violations,
)
from server.core.timestamps import utcnow
from server.db.artifact_models import ArtifactRow, ArtifactVersionRow

CONTENT_TOO_LARGE = "CONTENT_TOO_LARGE"
MAX_URL_TTL = timedelta(days=7)  # SigV4's limit


@dataclass(frozen=True)
class UploadSpec:
    """The first message of an upload (fields as sent; validated here)."""

    project_id: str = ""
    fields: Fields = field(default_factory=Fields)
    artifact_id: str = ""
    base_version: int = 0
    size_bytes: int = 0
    """0: not announced (the limit still applies)."""
    sha256: str = ""


@dataclass(frozen=True)
class Download:
    version: VersionView
    """The version, its size, SHA-256 and content type those of the bytes streamed."""
    stream: BlobStream


def _describing(version: ArtifactVersionRow, file: FileView) -> VersionView:
    """The version, with the size, hash and content type of the bytes sent for it."""
    return dataclasses.replace(
        VersionView.of(version),
        size_bytes=file.size_bytes,
        sha256=file.sha256,
        content_type=file.content_type,
    )


class ArtifactContent:
    def __init__(self, core: ArtifactsCore) -> None:
        self._core = core

    async def read(
        self, caller: Caller, artifact_id: str, version: int, path: str = ""
    ) -> tuple[VersionView, bytes]:
        """A version's bytes in one piece (for content that fits in one message): its
        content (a tree's manifest), or with `path` one of its files."""
        aid = checked_version_request(artifact_id, version)
        async with self._core.sessions() as db:
            artifact = await artifact_for(db, caller, aid, ProjectRole.VIEWER)
            row = await version_of(db, artifact, version)
            file = await file_at(db, artifact, row, path) if path else None
        if file is None and artifact.kind == Kind.TREE.value:
            manifest = await self._core.blobs.read(row.sha256)
            self._check_inline(len(manifest))
            return dataclasses.replace(VersionView.of(row), size_bytes=len(manifest)), manifest
        file = file or single_file(artifact, row)
        self._check_inline(file.size_bytes)
        return _describing(row, file), await self._core.blobs.read(file.sha256)

    def _check_inline(self, size: int) -> None:
        limit = self._core.limits.max_inline_bytes
        if size > limit:
            raise FailedPrecondition(
                f"the content has {size} bytes, more than fit in one response "
                f"({limit}): use DownloadArtifact or GetDownloadUrl",
                CONTENT_TOO_LARGE,
                {"size_bytes": str(size), "max_bytes": str(limit)},
            )

    async def open(
        self, caller: Caller, artifact_id: str, version: int, offset: int, path: str = ""
    ) -> Download:
        """A version's bytes (or with `path` one of its files' bytes) from `offset` as 64 KiB
        chunks. Close the stream when done."""
        aid = checked_version_request(artifact_id, version)
        if offset < 0:
            raise InvalidArgument.of([FieldViolation("offset", "must not be negative")])
        async with self._core.sessions() as db:
            artifact = await artifact_for(db, caller, aid, ProjectRole.VIEWER)
            row = await version_of(db, artifact, version)
            file = await file_at(db, artifact, row, path) if path else None
        if file is None and artifact.kind == Kind.TREE.value:
            stream = await self._core.blobs.open(row.sha256, offset)
            return Download(
                dataclasses.replace(VersionView.of(row), size_bytes=stream.size), stream
            )
        file = file or single_file(artifact, row)
        return Download(_describing(row, file), await self._core.blobs.open(file.sha256, offset))

    async def download_url(
        self, caller: Caller, artifact_id: str, version: int, ttl: timedelta | None
    ) -> tuple[str, datetime]:
        aid = checked_version_request(artifact_id, version)
        lifetime = ttl if ttl is not None else self._core.limits.default_url_ttl
        if not timedelta(seconds=1) <= lifetime <= MAX_URL_TTL:
            raise InvalidArgument.of([FieldViolation("ttl", "must be between 1 second and 7 days")])
        async with self._core.sessions() as db:
            artifact = await artifact_for(db, caller, aid, ProjectRole.VIEWER)
            row = await version_of(db, artifact, version)
        expire_time = utcnow() + lifetime
        url = await self._core.blobs.presign_get(
            row.sha256,
            expires=lifetime,
            filename=_download_name(artifact),
            content_type=row.content_type,
        )
        return url, expire_time

    async def upload(
        self, caller: Caller, spec: UploadSpec, chunks: AsyncIterable[bytes]
    ) -> ArtifactView:
        """Stores the chunks as a new artifact, or as the next version of `artifact_id`.
        A failed, oversized or cancelled upload leaves neither rows nor bytes behind."""
        limits = self._core.limits
        violations = Violations()
        existing_id: uuid.UUID | None = None
        project_id: uuid.UUID | None = None
        checked: validation.CheckedFields | None = None
        declared_type = ""
        if spec.artifact_id:
            existing_id = validation.required_id(
                spec.artifact_id, "metadata.artifact_id", violations
            )
            if spec.base_version < 1:
                violations.add("metadata.base_version", "must be the latest version's number")
            if spec.fields.content_type:
                declared_type = validation.content_type(
                    spec.fields.content_type, "metadata.artifact.content_type", violations
                )
        else:
            project_id = validation.required_id(spec.project_id, "metadata.project_id", violations)
            checked = validation.new_fields(spec.fields, "metadata.artifact", violations)
            declared_type = checked.content_type
        validation.allowed_content_type(
            declared_type,
            limits.allowed_content_types,
            "metadata.artifact.content_type",
            violations,
        )
        if spec.size_bytes < 0:
            violations.add("metadata.size_bytes", "must not be negative")
        expected_sha = None
        if spec.sha256:
            try:
                expected_sha = normalize_sha256(spec.sha256, "metadata.sha256")
            except InvalidArgument as error:
                for violation in error.violations:
                    violations.add(violation.field, violation.description)
        violations.raise_if_any()
        if spec.size_bytes > limits.max_upload_bytes:
            raise upload_too_large(limits.max_upload_bytes)

        if checked is not None and checked.kind is Kind.TREE:
            raise _upload_not_for_trees("metadata.artifact.kind")
        # Refuse before a byte is stored; the recording transaction checks again.
        async with self._core.sessions() as db:
            if existing_id is not None:
                current = await artifact_for(db, caller, existing_id, ProjectRole.EDITOR)
                if current.kind == Kind.TREE.value:
                    raise _upload_not_for_trees("metadata.artifact_id")
                if spec.base_version != current.latest_version:
                    raise version_conflict(spec.base_version, current.latest_version)
                content_type = declared_type or current.content_type
            else:
                assert project_id is not None
                await require_project_role(db, caller, project_id, ProjectRole.EDITOR)
                content_type = declared_type
            await self._core.shares.precheck(db, caller.user_id, spec.size_bytes)

        blob = await self._core.blobs.put_stream(
            chunks,
            max_bytes=limits.max_upload_bytes,
            expected_sha256=expected_sha,
            expected_size=spec.size_bytes or None,
            content_type=content_type,
        )
        creator = caller.user_id
        async with (
            self._core.keeper.releasing_on_failure([blob]),
            self._core.sessions() as db,
            db.begin(),
        ):
            await self._core.shares.check(db, creator, blob.size)
            if existing_id is not None:
                row = await artifact_for(db, caller, existing_id, ProjectRole.EDITOR, lock=True)
                if spec.base_version != row.latest_version:
                    raise version_conflict(spec.base_version, row.latest_version)
                await self._core.keeper.hold(db, [blob.sha256])
                await store.append_version(db, row, blob, content_type, creator)
                return ArtifactView.of(row)
            assert project_id is not None
            assert checked is not None
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)
            await self._core.keeper.hold(db, [blob.sha256])
            new = store.NewArtifact(
                project_id=project_id,
                title=checked.title,
                filename=checked.filename,
                language=checked.language,
                kind=checked.kind,
                content_type=content_type,
                origin=Origin.UPLOAD,
                creator_id=creator,
            )
            row = await store.insert_artifact(db, new, blob)
            return ArtifactView.of(row)


def _upload_not_for_trees(field_path: str) -> InvalidArgument:
    return InvalidArgument.of(
        [
            FieldViolation(
                field_path,
                "a tree artifact takes files, not uploaded content: use CreateArtifact or "
                "UpdateArtifact with `files`",
            )
        ]
    )


def _download_name(artifact: ArtifactRow) -> str:
    name = artifact.filename.rsplit("/", 1)[-1]
    return name or artifact.title or "artifact"
