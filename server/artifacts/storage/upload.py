"""The checks every upload makes as its bytes arrive: size limit, expected size and hash."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from server.artifacts.storage.base import normalize_sha256
from server.artifacts.storage.errors import sha256_mismatch, size_mismatch, upload_too_large


class UploadGuard:
    """Counts the bytes of one upload and fails as soon as they break a rule.

    Declared values are checked before any byte is stored: an `expected_size` above
    `max_bytes` fails at once, so an honest client learns it before sending anything.
    """

    def __init__(
        self, *, max_bytes: int, expected_sha256: str | None, expected_size: int | None
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self.expected_sha256 = (
            None if expected_sha256 is None else normalize_sha256(expected_sha256, "sha256")
        )
        self.expected_size = expected_size
        self.size = 0
        if expected_size is not None:
            if expected_size < 0:
                raise size_mismatch(expected_size, 0)
            if expected_size > max_bytes:
                raise upload_too_large(max_bytes)

    def add(self, count: int) -> None:
        """Accounts for `count` more bytes, before they are stored."""
        self.size += count
        if self.size > self.max_bytes:
            raise upload_too_large(self.max_bytes)
        if self.expected_size is not None and self.size > self.expected_size:
            raise size_mismatch(self.expected_size, self.size, at_least=True)

    def verify(self, sha256: str) -> None:
        """Checks the finished upload against what the client declared."""
        if self.expected_size is not None and self.size != self.expected_size:
            raise size_mismatch(self.expected_size, self.size)
        if self.expected_sha256 is not None and sha256 != self.expected_sha256:
            raise sha256_mismatch(self.expected_sha256, sha256)


async def finish_cleanup(cleanup: Awaitable[None]) -> None:
    """Waits for `cleanup` to end, even through repeated cancellation (which is then
    re-raised): when a failed upload's error reaches the caller, nothing is left behind."""
    future = asyncio.ensure_future(cleanup)
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    future.result()
    if cancelled:
        raise asyncio.CancelledError
