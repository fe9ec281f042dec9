"""What the artifact domain modules share: the database, the blob store and the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.artifacts import store
from server.artifacts.access import version_not_found
from server.artifacts.blobrefs import BlobKeeper
from server.artifacts.byte_shares import ByteShares
from server.artifacts.storage import BlobStore
from server.config import Settings
from server.core.errors import Aborted
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

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_upload_bytes=settings.max_upload_bytes,
            allowed_content_types=tuple(settings.upload_allowed_content_types),
            max_inline_bytes=max(settings.max_message_bytes - _INLINE_OVERHEAD, 0),
            default_url_ttl=timedelta(seconds=settings.presign_expiry_seconds),
        )


@dataclass
class ArtifactsCore:
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    limits: Limits
    shares: ByteShares = field(default_factory=ByteShares)
    """Each user's share of artifact storage (byte_shares.py)."""
    keeper: BlobKeeper = field(init=False)

    def __post_init__(self) -> None:
        self.keeper = BlobKeeper(self.blobs, self.sessions)


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
