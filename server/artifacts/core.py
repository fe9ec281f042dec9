"""What the artifact domain modules share: the database, the blob store and the limits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.artifacts import store, validation
from server.artifacts.access import version_not_found
from server.artifacts.blobrefs import BlobKeeper
from server.artifacts.byte_shares import ByteShares
from server.artifacts.storage import BlobStore
from server.artifacts.trees import TreeWriter
from server.config import Settings
from server.core.errors import Aborted, FieldViolation, InvalidArgument, Violations
from server.core.hooks import Port
from server.core.ports import AgentRecordsPort, SandboxPort
from server.db.artifact_models import ArtifactRow, ArtifactVersionRow

VERSION_CONFLICT = "VERSION_CONFLICT"

# Room for the protobuf framing around inline content (GetArtifactContent).
_INLINE_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int
    allowed_content_types: tuple[str, ...]
    max_inline_bytes: int
    default_url_ttl: timedelta
    max_tree_files: int = 2000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_upload_bytes=settings.max_upload_bytes,
            allowed_content_types=tuple(settings.upload_allowed_content_types),
            max_inline_bytes=max(settings.max_message_bytes - _INLINE_OVERHEAD, 0),
            default_url_ttl=timedelta(seconds=settings.presign_expiry_seconds),
            max_tree_files=settings.max_tree_files,
        )


@dataclass
class ArtifactsCore:
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    limits: Limits
    shares: ByteShares = field(default_factory=ByteShares)
    """Each user's share of artifact storage (byte_shares.py)."""
    agent_records: Port[AgentRecordsPort] | None = None
    """Whether an artifact's sources (conversation, message, run) are its project's."""
    sandbox: Port[SandboxPort] | None = None
    """Where a tree made of a sandbox directory is read from."""
    keeper: BlobKeeper = field(init=False)
    trees: TreeWriter = field(init=False)

    def __post_init__(self) -> None:
        self.keeper = BlobKeeper(self.blobs, self.sessions)
        self.trees = TreeWriter(self.blobs, self.keeper)


async def check_sources(
    core: ArtifactsCore,
    project_id: uuid.UUID,
    conversation_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    run_id: uuid.UUID | None,
    field_prefix: str = "",
) -> None:
    """INVALID_ARGUMENT naming each source given that is not the project's."""
    port = core.agent_records
    if port is None or not port.provided or not (conversation_id or message_id or run_id):
        return
    foreign = await port.get().foreign_sources(project_id, conversation_id, message_id, run_id)
    if foreign:
        raise InvalidArgument.of(
            [FieldViolation(field_prefix + name, "is not in the project") for name in foreign]
        )


def version_conflict(base_version: int, latest: int) -> Aborted:
    return Aborted(
        f"the artifact is at version {latest}, not {base_version}: "
        "fetch the latest version and apply your change to it",
        VERSION_CONFLICT,
        {"latest_version": str(latest), "base_version": str(base_version)},
    )


async def version_of(db: AsyncSession, artifact: ArtifactRow, number: int) -> ArtifactVersionRow:
    """Version `number` of the artifact (0: the latest)."""
    wanted = number or artifact.latest_version
    row = await store.get_version(db, artifact.id, wanted)
    if row is None:
        raise version_not_found(wanted)
    return row


def checked_version_request(artifact_id: str, version: int) -> uuid.UUID:
    """A read request's `artifact_id` and `version` checked (0 is the latest)."""
    violations = Violations()
    aid = validation.required_id(artifact_id, "artifact_id", violations)
    if version < 0:
        violations.add("version", "must be a version number, or 0 for the latest")
    violations.raise_if_any()
    assert aid is not None
    return aid
