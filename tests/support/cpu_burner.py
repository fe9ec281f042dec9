"""Keeping a core busy outside the event loop, as gRPC's own threads do under load."""

from __future__ import annotations

import hashlib
import threading

from server.core.loop_load import cores_allowed


class CpuBurner:
    """Threads hashing large buffers until the block ends, one per core the process may use:
    hashing releases the GIL, so the process keeps its cores busy while its event loop's
    thread stays idle."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._burn, name="cpu-burner", daemon=True)
            for _ in range(cores_allowed())
        ]

    def _burn(self) -> None:
        block = b"x" * (1 << 20)
        while not self._stop.is_set():
            hashlib.sha256(block).digest()

    def __enter__(self) -> CpuBurner:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
