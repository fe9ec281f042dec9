"""Blobs are shared by every version with the same content, so a blob may be removed only
when no version references it, and never while a writer is about to reference it.

A writer stores the bytes first (the hash is known only then), then, in the transaction
that inserts the version rows, takes a shared advisory lock on each blob and checks that
the blob is still there: a concurrent delete may have removed it between the two steps.
A remover takes the exclusive lock, and removes the blob only if no version references it,
before its transaction ends. So a blob that a committed version references always exists.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.artifacts import store
from server.artifacts.storage import BlobInfo, BlobStore
from server.artifacts.storage.upload import finish_cleanup
from server.core.errors import Aborted, Unavailable

log = logging.getLogger(__name__)

CONTENT_REMOVED = "CONTENT_REMOVED"

Restore = Callable[[str], Awaitable[object]]


class BlobKeeper:
    def __init__(self, blobs: BlobStore, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.blobs = blobs
        self._sessions = sessions

    async def hold(
        self, db: AsyncSession, sha256s: Iterable[str], restore: Restore | None = None
    ) -> None:
        """In a writing transaction: keeps the blobs from removal until it ends, and makes
        sure they still exist (`restore` stores a missing one again, when the writer still
        has its bytes; without it a missing blob is ABORTED CONTENT_REMOVED)."""
        for sha256 in sorted(set(sha256s)):
            await store.lock_blob_shared(db, sha256)
            if await self.blobs.exists(sha256):
                continue
            if restore is None:
                raise Aborted(
                    "the content was removed while it was being stored; send it again",
                    CONTENT_REMOVED,
                )
            await restore(sha256)

    async def release(self, sha256s: Iterable[str]) -> None:
        """Removes each of the blobs that no version references any more. Failures are
        logged, not raised: the rows are gone already, and a leftover blob is only space."""
        for sha256 in sorted(set(sha256s)):
            try:
                async with self._sessions() as db, db.begin():
                    await store.lock_blob_exclusive(db, sha256)
                    if not await store.is_referenced(db, sha256):
                        await self.blobs.delete(sha256)
            except Unavailable as error:  # an outage, logged where it was found
                log.warning("could not remove an unreferenced blob: %s", error.reason)
            except Exception:
                log.exception("could not remove an unreferenced blob")

    @asynccontextmanager
    async def releasing_on_failure(self, blobs: Iterable[BlobInfo]) -> AsyncIterator[None]:
        """Removes the blobs stored for a write if the write fails or is cancelled (those
        it did not create belong to someone else already)."""
        try:
            yield
        except BaseException:
            created = [blob.sha256 for blob in blobs if blob.created]
            if created:
                await finish_cleanup(self.release(created))
            raise
