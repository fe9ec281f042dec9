"""One `docker exec`: its multiplexed output socket read in a thread, handed to the event loop
through a bounded queue (the reader blocks while the queue is full: backpressure). When the
streams end by themselves, the same thread asks the engine for the exit code before it hands
over the end, so the loop has both at once (one thread hop less on every execution's path).

The command is started through a one-line shell wrapper that reports its pid on stderr and
then execs the command. A process started by `docker exec` leads its own session and process
group, so that pid is the group id to kill on timeout or cancel; the wrapper's line is taken
off stderr before any output is passed on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from server.sandbox.backend import OutputBatch, Stream

log = logging.getLogger(__name__)

# `sh -c WRAPPER sh ARGV...`: prints its pid (= its process group id) and becomes ARGV.
WRAPPER = 'echo "$$" >&2 && exec "$@"'
_HEADER = struct.Struct(">BxxxI")
_RECV_BYTES = 256 * 1024
_QUEUE_BATCHES = 32
_MAX_PID_LINE = 16
_PUT_POLL_SECONDS = 0.5


def wrap(argv: list[str]) -> list[str]:
    return ["/bin/sh", "-c", WRAPPER, "sh", *argv]


class _Demuxer:
    """Splits Docker's multiplexed stream into per-stream segments and applies the cap."""

    def __init__(self, output_limit: int) -> None:
        self._buffer = bytearray()
        self._limit = output_limit
        self._kept = {Stream.STDOUT: 0, Stream.STDERR: 0}
        self._pid_line = bytearray()
        self.pid: int | None = None
        self.pid_failed = False

    def feed(self, data: bytes) -> OutputBatch | None:
        self._buffer += data
        segments: list[tuple[Stream, bytes]] = []
        seen = {Stream.STDOUT: 0, Stream.STDERR: 0}
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= _HEADER.size:
            kind, size = _HEADER.unpack_from(buffer, offset)
            end = offset + _HEADER.size + size
            if len(buffer) < end:
                break
            payload = bytes(buffer[offset + _HEADER.size : end])
            offset = end
            stream = Stream.STDERR if kind == 2 else Stream.STDOUT
            if stream is Stream.STDERR and self.pid is None and not self.pid_failed:
                payload = self._take_pid_line(payload)
            if not payload:
                continue
            seen[stream] += len(payload)
            room = self._limit - self._kept[stream]
            kept = payload[: max(room, 0)]
            if kept:
                self._kept[stream] += len(kept)
                if segments and segments[-1][0] is stream:
                    segments[-1] = (stream, segments[-1][1] + kept)
                else:
                    segments.append((stream, kept))
        del buffer[:offset]
        if not segments and not seen[Stream.STDOUT] and not seen[Stream.STDERR]:
            return None
        return OutputBatch(segments, seen[Stream.STDOUT], seen[Stream.STDERR])

    def _take_pid_line(self, payload: bytes) -> bytes:
        newline = payload.find(b"\n")
        if newline < 0:
            self._pid_line += payload
            if len(self._pid_line) > _MAX_PID_LINE:
                self.pid_failed = True
                return bytes(self._pid_line)
            return b""
        self._pid_line += payload[:newline]
        try:
            self.pid = int(self._pid_line)
        except ValueError:
            self.pid_failed = True
            return bytes(self._pid_line) + payload[newline:]
        return payload[newline + 1 :]


class DockerExecProcess:
    """Implements backend.ExecProcess over a hijacked `exec start` connection."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: Any,
        output_limit: int,
        inspect_exit: Callable[[], int | None],
        blocking: concurrent.futures.Executor,
    ) -> None:
        self._loop = loop
        self._response = sock
        self._sock: socket.socket = getattr(sock, "_sock", sock)
        self._queue: asyncio.Queue[OutputBatch | None] = asyncio.Queue(_QUEUE_BATCHES)
        self._demuxer = _Demuxer(output_limit)
        self._inspect_exit = inspect_exit
        self._blocking = blocking
        self._closed = False
        self._ended = False
        self.process_group: asyncio.Future[int | None] = loop.create_future()
        self._reader: asyncio.Future[None] | None = None
        # (exit code, None) or (None, the error reading it), once the reader has it.
        self._exit: tuple[int | None, BaseException | None] | None = None

    def start(self, reader_pool: concurrent.futures.Executor, stdin: bytes | None) -> None:
        self._reader = self._loop.run_in_executor(reader_pool, self._read, stdin)

    # --- reader thread ---------------------------------------------------------------

    def _read(self, stdin: bytes | None) -> None:
        try:
            self._sock.settimeout(None)
            if stdin is not None:
                if stdin:
                    self._sock.sendall(stdin)
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_WR)
            while not self._closed:
                try:
                    data = self._sock.recv(_RECV_BYTES)
                except OSError:
                    break
                if not data:
                    if not self._closed:  # not our own shutdown: the command is done
                        self._read_exit()
                    break
                batch = self._demuxer.feed(data)
                self._report_pid()
                if batch is not None and not self._put(batch):
                    return
        finally:
            self._report_pid(final=True)
            self._put(None)

    def _read_exit(self) -> None:
        """The streams ended by themselves: the command has (or is about to have) exited."""
        try:
            self._exit = (self._inspect_exit(), None)
        except Exception as error:
            self._exit = (None, error)

    def _report_pid(self, final: bool = False) -> None:
        if self.process_group.done():
            return
        demuxer = self._demuxer
        if demuxer.pid is not None or demuxer.pid_failed or final:
            pid = demuxer.pid
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._resolve_pid, pid)

    def _resolve_pid(self, pid: int | None) -> None:
        if not self.process_group.done():
            self.process_group.set_result(pid)

    def _put(self, item: OutputBatch | None) -> bool:
        """Hands `item` to the loop, waiting while the queue is full; False once closed."""
        try:
            future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                future.result(timeout=_PUT_POLL_SECONDS)
                return True
            except concurrent.futures.TimeoutError:
                if self._closed:
                    future.cancel()
                    return False
            except concurrent.futures.CancelledError:
                return False

    # --- event loop side ---------------------------------------------------------------

    async def next_batch(self) -> OutputBatch | None:
        if self._ended:
            return None
        item = await self._queue.get()
        if item is None:
            self._ended = True
        return item

    async def exit_code(self) -> int | None:
        if self._exit is not None:  # written before the end was queued, so visible here
            code, error = self._exit
            if error is not None:
                raise error
            return code
        return await self._loop.run_in_executor(self._blocking, self._inspect_exit)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        # Unblock a reader waiting for room in the queue.
        while not self._queue.empty():
            self._queue.get_nowait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        with contextlib.suppress(Exception):
            self._response.close()
        with contextlib.suppress(OSError):
            self._sock.close()
