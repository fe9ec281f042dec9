"""Queries on the artifact tables. Callers own the session and the transaction, and check
the caller's project role before calling (see access.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ScalarSelect, delete, exists, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts.kinds import Kind, Origin
from server.artifacts.storage import BlobInfo
from server.artifacts.views import FileView
from server.core.pagination import Page, keyset
from server.db.artifact_models import ArtifactFileRow, ArtifactRow, ArtifactVersionRow
from server.db.build_models import BuildFileRow, BuildRow

# Advisory lock namespace (the first key of the two-key form) of chat extraction.
_CONVERSATION_LOCKS = 0x41525446  # "ARTF"


@dataclass(frozen=True)
class ArtifactFilters:
    conversation_id: uuid.UUID | None = None
    language: str = ""
    kind: Kind | None = None
    run_id: uuid.UUID | None = None


@dataclass(frozen=True)
class NewArtifact:
    """A new artifact's metadata (already validated)."""

    project_id: uuid.UUID
    title: str
    filename: str
    language: str
    kind: Kind
    content_type: str
    origin: Origin
    creator_id: uuid.UUID | None
    conversation_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None


async def get(
    db: AsyncSession, artifact_id: uuid.UUID, *, lock: bool = False
) -> ArtifactRow | None:
    query = select(ArtifactRow).where(ArtifactRow.id == artifact_id)
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def list_page(
    db: AsyncSession, project_id: uuid.UUID, filters: ArtifactFilters, page: Page
) -> Sequence[ArtifactRow]:
    """Newest first; one row more than the page holds."""
    query = select(ArtifactRow).where(ArtifactRow.project_id == project_id)
    if filters.conversation_id is not None:
        query = query.where(ArtifactRow.conversation_id == filters.conversation_id)
    if filters.language:
        query = query.where(ArtifactRow.language == filters.language)
    if filters.kind is not None:
        query = query.where(ArtifactRow.kind == filters.kind.value)
    if filters.run_id is not None:
        query = query.where(ArtifactRow.run_id == filters.run_id)
    query = keyset(query, ArtifactRow.id, page, descending=True)
    return (await db.execute(query)).scalars().all()


async def find_in_conversation(
    db: AsyncSession, project_id: uuid.UUID, conversation_id: uuid.UUID, filename: str
) -> ArtifactRow | None:
    """The conversation's newest artifact named `filename`, locked for update (never a tree:
    a file's content must not become a tree's version)."""
    query = (
        select(ArtifactRow)
        .where(
            ArtifactRow.conversation_id == conversation_id,
            ArtifactRow.filename == filename,
            ArtifactRow.project_id == project_id,
            ArtifactRow.kind != Kind.TREE.value,
        )
        .order_by(ArtifactRow.id.desc())
        .limit(1)
        .with_for_update()
    )
    return (await db.execute(query)).scalar_one_or_none()


async def find_in_project(
    db: AsyncSession, project_id: uuid.UUID, filename: str
) -> ArtifactRow | None:
    """The project's newest artifact named `filename`, locked for update (never a tree)."""
    query = (
        select(ArtifactRow)
        .where(
            ArtifactRow.project_id == project_id,
            ArtifactRow.filename == filename,
            ArtifactRow.kind != Kind.TREE.value,
        )
        .order_by(ArtifactRow.id.desc())
        .limit(1)
        .with_for_update()
    )
    return (await db.execute(query)).scalar_one_or_none()


async def find_tree_in_project(
    db: AsyncSession, project_id: uuid.UUID, name: str
) -> ArtifactRow | None:
    """The project's newest tree artifact named `name`, locked for update."""
    query = (
        select(ArtifactRow)
        .where(
            ArtifactRow.project_id == project_id,
            ArtifactRow.filename == name,
            ArtifactRow.kind == Kind.TREE.value,
        )
        .order_by(ArtifactRow.id.desc())
        .limit(1)
        .with_for_update()
    )
    return (await db.execute(query)).scalar_one_or_none()


async def get_version(
    db: AsyncSession, artifact_id: uuid.UUID, version: int
) -> ArtifactVersionRow | None:
    return await db.get(ArtifactVersionRow, (artifact_id, version))


async def list_versions(
    db: AsyncSession, artifact_id: uuid.UUID, after: int, limit: int
) -> Sequence[ArtifactVersionRow]:
    """Oldest first, versions after `after`, at most `limit`."""
    query = (
        select(ArtifactVersionRow)
        .where(ArtifactVersionRow.artifact_id == artifact_id, ArtifactVersionRow.version > after)
        .order_by(ArtifactVersionRow.version)
        .limit(limit)
    )
    return (await db.execute(query)).scalars().all()


async def insert_artifact(
    db: AsyncSession, new: NewArtifact, blob: BlobInfo, *, size_bytes: int | None = None
) -> ArtifactRow:
    """The artifact with its first version (`size_bytes`: a tree's total, else the blob's)."""
    size = blob.size if size_bytes is None else size_bytes
    row = ArtifactRow(
        project_id=new.project_id,
        title=new.title,
        filename=new.filename,
        language=new.language,
        kind=new.kind.value,
        content_type=new.content_type,
        origin=new.origin.value,
        conversation_id=new.conversation_id,
        message_id=new.message_id,
        run_id=new.run_id,
        latest_version=1,
        size_bytes=size,
        sha256=blob.sha256,
        creator_id=new.creator_id,
    )
    db.add(row)
    await db.flush()
    version = ArtifactVersionRow(
        artifact_id=row.id,
        version=1,
        sha256=blob.sha256,
        size_bytes=size,
        content_type=new.content_type,
        message_id=new.message_id,
        run_id=new.run_id,
        creator_id=new.creator_id,
    )
    db.add(version)
    await db.flush()
    return row


async def append_version(
    db: AsyncSession,
    artifact: ArtifactRow,
    blob: BlobInfo,
    content_type: str,
    creator_id: uuid.UUID | None,
    *,
    message_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    size_bytes: int | None = None,
) -> None:
    """Version latest + 1 of `artifact` (locked by the caller), which then describes it
    (`size_bytes`: a tree's total, else the blob's)."""
    size = blob.size if size_bytes is None else size_bytes
    version = ArtifactVersionRow(
        artifact_id=artifact.id,
        version=artifact.latest_version + 1,
        sha256=blob.sha256,
        size_bytes=size,
        content_type=content_type,
        message_id=message_id,
        run_id=run_id,
        creator_id=creator_id,
    )
    db.add(version)
    artifact.latest_version = version.version
    artifact.sha256 = blob.sha256
    artifact.size_bytes = size
    artifact.content_type = content_type
    if message_id is not None:
        artifact.message_id = message_id
    if run_id is not None:
        artifact.run_id = run_id
    await db.flush()


async def relabel_latest(db: AsyncSession, artifact: ArtifactRow, content_type: str) -> None:
    """A metadata-only content type change also relabels the latest version's bytes."""
    latest = await get_version(db, artifact.id, artifact.latest_version)
    if latest is not None:
        latest.content_type = content_type
    artifact.content_type = content_type


async def insert_files(
    db: AsyncSession, artifact_id: uuid.UUID, version: int, files: Sequence[FileView]
) -> None:
    """The files of a tree version (inserted after the version row)."""
    db.add_all(
        ArtifactFileRow(
            artifact_id=artifact_id,
            version=version,
            path=file.path,
            sha256=file.sha256,
            size_bytes=file.size_bytes,
            content_type=file.content_type,
        )
        for file in files
    )
    await db.flush()


async def list_files(
    db: AsyncSession, artifact_id: uuid.UUID, version: int, after: str, limit: int | None
) -> Sequence[ArtifactFileRow]:
    """A tree version's files in path order (byte order, as the manifest's), those after
    `after`, at most `limit` (None: all)."""
    path = ArtifactFileRow.path.collate("C")
    query = (
        select(ArtifactFileRow)
        .where(ArtifactFileRow.artifact_id == artifact_id, ArtifactFileRow.version == version)
        .order_by(path)
        .limit(limit)
    )
    if after:
        query = query.where(path > after)
    return (await db.execute(query)).scalars().all()


async def get_file(
    db: AsyncSession, artifact_id: uuid.UUID, version: int, path: str
) -> ArtifactFileRow | None:
    return await db.get(ArtifactFileRow, (artifact_id, version, path))


async def shas_of_artifact(db: AsyncSession, artifact_id: uuid.UUID) -> set[str]:
    """Every blob the artifact references: its versions' content, its trees' files and its
    builds' outputs."""
    versions = select(ArtifactVersionRow.sha256).where(
        ArtifactVersionRow.artifact_id == artifact_id
    )
    files = select(ArtifactFileRow.sha256).where(ArtifactFileRow.artifact_id == artifact_id)
    outputs = (
        select(BuildFileRow.sha256)
        .join(BuildRow, BuildRow.id == BuildFileRow.build_id)
        .where(BuildRow.artifact_id == artifact_id)
    )
    return set((await db.execute(union(versions, files, outputs))).scalars())


async def shas_of_project(db: AsyncSession, project_id: uuid.UUID) -> set[str]:
    """Every blob the project's artifacts reference (see `shas_of_artifact`)."""
    versions = (
        select(ArtifactVersionRow.sha256)
        .join(ArtifactRow, ArtifactRow.id == ArtifactVersionRow.artifact_id)
        .where(ArtifactRow.project_id == project_id)
    )
    files = (
        select(ArtifactFileRow.sha256)
        .join(ArtifactRow, ArtifactRow.id == ArtifactFileRow.artifact_id)
        .where(ArtifactRow.project_id == project_id)
    )
    outputs = (
        select(BuildFileRow.sha256)
        .join(BuildRow, BuildRow.id == BuildFileRow.build_id)
        .join(ArtifactRow, ArtifactRow.id == BuildRow.artifact_id)
        .where(ArtifactRow.project_id == project_id)
    )
    return set((await db.execute(union(versions, files, outputs))).scalars())


async def delete_artifact(db: AsyncSession, artifact_id: uuid.UUID) -> None:
    await db.execute(delete(ArtifactRow).where(ArtifactRow.id == artifact_id))


async def delete_project_artifacts(db: AsyncSession, project_id: uuid.UUID) -> None:
    await db.execute(delete(ArtifactRow).where(ArtifactRow.project_id == project_id))


async def is_referenced(db: AsyncSession, sha256: str) -> bool:
    """Whether a version's content, a tree's file or a build's output is the blob."""
    by_version = exists().where(ArtifactVersionRow.sha256 == sha256)
    by_file = exists().where(ArtifactFileRow.sha256 == sha256)
    by_output = exists().where(BuildFileRow.sha256 == sha256)
    return bool(await db.scalar(select(by_version | by_file | by_output)))


def _blob_lock_key(sha256: str) -> int:
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


async def lock_blob_shared(db: AsyncSession, sha256: str) -> None:
    """Held by a transaction that adds references to the blob, until it ends."""
    await db.execute(select(func.pg_advisory_xact_lock_shared(_blob_lock_key(sha256))))


async def lock_blob_exclusive(db: AsyncSession, sha256: str) -> None:
    """Held by the transaction that removes an unreferenced blob, until it ends."""
    await db.execute(select(func.pg_advisory_xact_lock(_blob_lock_key(sha256))))


async def lock_conversation(db: AsyncSession, conversation_id: uuid.UUID) -> None:
    """Serializes chat extraction per conversation (so a file name maps to one artifact)."""
    key = int.from_bytes(conversation_id.bytes[-4:], "big", signed=True)
    await db.execute(select(func.pg_advisory_xact_lock(_CONVERSATION_LOCKS, key)))


def system_counters() -> dict[str, ScalarSelect[int]]:
    """What GetSystemStats counts of artifacts."""
    return {"artifacts": select(func.count()).select_from(ArtifactRow).scalar_subquery()}
