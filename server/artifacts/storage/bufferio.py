"""A read-only, seekable file over a bytes-like buffer, without copying it.

aiobotocore hands a file body to aiohttp, which reads it in 64 KiB pieces on a worker
thread and streams them; a `bytes`/`bytearray` body instead goes to the socket in one
write, and asyncio copies whatever the socket does not take at once into its own buffer
(a second copy of a multi-MiB part, and a ResourceWarning from aiohttp).
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


class BufferReader(io.RawIOBase):
    """Reads `data` in place. Close it to release the buffer (a bytearray cannot be
    resized while a reader holds it)."""

    def __init__(self, data: ReadableBuffer) -> None:
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._pos + size
        data = bytes(self._view[self._pos : end])
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        data = self._view[self._pos : self._pos + len(target)]
        target[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            # A read cancelled mid-way may still hold a slice: then the view goes with it.
            with contextlib.suppress(BufferError):
                self._view.release()
        super().close()
