"""Each user's share of this server's streams: Chat, Exec, RunCode, WatchRun,
DownloadArtifact and any other server stream hold a place while they are open, at most
`max_concurrent_streams` per user (core/limits.py) on one server process.

Streams are hot: the limit is read through the limits port (cached by its owner), the
count is a dict in memory.
"""

from __future__ import annotations

import uuid
from types import TracebackType

from server.core.limits import LimitsPort, quota_exceeded

STREAM_LIMIT_REACHED = "STREAM_LIMIT_REACHED"


class Share:
    """One open stream's place; `release` (or leaving the `with` block) gives it back."""

    __slots__ = ("_owner", "_user_id")

    def __init__(self, owner: StreamShares, user_id: uuid.UUID) -> None:
        self._owner: StreamShares | None = owner
        self._user_id = user_id

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._leave(self._user_id)

    def __enter__(self) -> Share:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class StreamShares:
    def __init__(self, limits: LimitsPort) -> None:
        self._limits = limits
        self._open: dict[uuid.UUID, int] = {}

    def open_streams(self, user_id: uuid.UUID) -> int:
        return self._open.get(user_id, 0)

    async def take(self, user_id: uuid.UUID) -> Share:
        """A place for one more of the user's streams, within their share."""
        limits = await self._limits.limits_of(user_id)
        return self.enter(user_id, limits.max_concurrent_streams)

    def enter(self, user_id: uuid.UUID, limit: int) -> Share:
        """A place within `limit`; RESOURCE_EXHAUSTED naming max_concurrent_streams when
        the user's streams already fill it."""
        count = self._open.get(user_id, 0)
        if count >= limit:
            raise quota_exceeded(
                limit="max_concurrent_streams",
                user_id=user_id,
                allowed=limit,
                used=count,
                reason=STREAM_LIMIT_REACHED,
                message=f"you already have {count} streams open on this server (at most "
                f"{limit}): close one (a chat, exec, watch or download) first",
                what="streams open on this server",
            )
        self._open[user_id] = count + 1
        return Share(self, user_id)

    def _leave(self, user_id: uuid.UUID) -> None:
        left = self._open.get(user_id, 0) - 1
        if left > 0:
            self._open[user_id] = left
        else:
            self._open.pop(user_id, None)
