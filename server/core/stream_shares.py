"""Each user's share of the deployment's streams: Chat, Exec, RunCode, WatchRun,
DownloadArtifact and any other server stream hold a place while they are open, at most
`max_concurrent_streams` per user (core/limits.py) across every server process.

The limit is read through the limits port (cached by its owner); the places are counted in
the database (core/holds.py: one round trip to open, one in the background to close).
"""

from __future__ import annotations

import uuid

from server.core.holds import Hold, Holds, Refused
from server.core.limits import LimitsPort, quota_exceeded

STREAM_LIMIT_REACHED = "STREAM_LIMIT_REACHED"
STREAM_KIND = "stream"


class StreamShares:
    def __init__(self, limits: LimitsPort, holds: Holds) -> None:
        self._limits = limits
        self._holds = holds

    async def take(self, user_id: uuid.UUID) -> Hold:
        """A place for one more of the user's streams, or RESOURCE_EXHAUSTED naming
        max_concurrent_streams when the user's streams already fill their share."""
        limit = (await self._limits.limits_of(user_id)).max_concurrent_streams
        taken = await self._holds.take(STREAM_KIND, user_id, limit)
        if isinstance(taken, Refused):
            raise quota_exceeded(
                limit="max_concurrent_streams",
                user_id=user_id,
                allowed=limit,
                used=taken.used,
                reason=STREAM_LIMIT_REACHED,
                message=f"you already have {taken.used} streams open (at most {limit}): close "
                "one (a chat, exec, watch or download) first",
                what="streams open",
            )
        return taken
