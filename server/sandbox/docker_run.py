"""Short helper commands in a container over Docker's exec API, with stdin and separate
stdout/stderr (the file helper and the exec clean-up run this way), and the pause holds
that keep a paused container paused while the archive API works on it."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from server.sandbox.backend import HelperResult

_HEADER = struct.Struct(">BxxxI")
_RECV_BYTES = 256 * 1024
_SEND_BYTES = 256 * 1024


def run_helper(
    api: Any,
    container_id: str,
    argv: list[str],
    *,
    user: str,
    stdin: bytes,
    env: dict[str, str],
    max_output: int,
    wait_exit: Callable[[str], int | None],
    timeout: float,
) -> HelperResult:
    """Runs `argv` to its end (blocking): stdin is sent whole, then closed; stdout is kept up
    to `max_output` bytes (reading stops beyond, which ends the command with SIGPIPE)."""
    created = api.exec_create(container_id, argv, stdin=True, user=user, environment=env)
    exec_id = str(created["Id"])
    response = api.exec_start(exec_id, socket=True)
    sock: socket.socket = getattr(response, "_sock", response)
    out = bytearray()
    err = bytearray()
    truncated = False
    try:
        sock.setblocking(False)
        pending = memoryview(stdin)
        if not pending:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        buffer = bytearray()
        deadline = time.monotonic() + timeout
        # Send and receive together: the command may answer (and stop reading) before it
        # has read all of stdin, e.g. when the disk is full.
        while (left := deadline - time.monotonic()) > 0:
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], left)
            if writable:
                try:
                    pending = pending[sock.send(pending[:_SEND_BYTES]) :]
                except (BrokenPipeError, ConnectionResetError):
                    pending = memoryview(b"")
                except BlockingIOError:
                    pass
                if not pending:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
            if not readable:
                continue
            try:
                data = sock.recv(_RECV_BYTES)
            except BlockingIOError:
                continue
            if not data:
                break
            buffer += data
            while len(buffer) >= _HEADER.size:
                kind, size = _HEADER.unpack_from(buffer)
                if len(buffer) < _HEADER.size + size:
                    break
                payload = buffer[_HEADER.size : _HEADER.size + size]
                del buffer[: _HEADER.size + size]
                (err if kind == 2 else out).extend(payload)
            if len(out) > max_output:
                truncated = True
                break
    finally:
        with contextlib.suppress(Exception):
            response.close()
        with contextlib.suppress(OSError):
            sock.close()
    code = None if truncated else wait_exit(exec_id)
    return HelperResult(code, bytes(out), bytes(err[:4096]), truncated)


@dataclass
class _Holds:
    count: int = 0
    resuming: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class PauseHolds:
    """Per container: archive calls that rely on it staying paused, and resumes waiting for
    them. A hold taken while a resume is under way does not count as paused."""

    def __init__(self) -> None:
        self._holds: dict[str, _Holds] = {}

    @contextlib.asynccontextmanager
    async def hold(self, container_id: str, is_paused: Callable[[], Any]) -> AsyncIterator[bool]:
        holds = self._holds.setdefault(container_id, _Holds())
        holds.count += 1
        holds.idle.clear()
        try:
            yield holds.resuming == 0 and bool(await is_paused())
        finally:
            holds.count -= 1
            if holds.count == 0:
                holds.idle.set()
                if holds.resuming == 0:
                    self._holds.pop(container_id, None)

    @contextlib.asynccontextmanager
    async def resuming(self, container_id: str) -> AsyncIterator[None]:
        holds = self._holds.setdefault(container_id, _Holds())
        holds.resuming += 1
        try:
            while holds.count:
                await holds.idle.wait()
            yield
        finally:
            holds.resuming -= 1
            if holds.resuming == 0 and holds.count == 0:
                self._holds.pop(container_id, None)


@dataclass
class _Gate:
    starts: int = 0
    pausing: bool = False
    # Callers inside `starting` or `pausing`, waiting or not: the gate is dropped at zero.
    users: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class StartGate:
    """Per container: starting a command and pausing never overlap. The engine (Docker
    20.10, runc 1.1, cgroup v1) wedges a container frozen while an exec is being set up in
    it: every later call on it hangs. Only this server's own calls are kept apart."""

    def __init__(self) -> None:
        self._gates: dict[str, _Gate] = {}

    @contextlib.asynccontextmanager
    async def _use(self, container_id: str) -> AsyncIterator[_Gate]:
        gate = self._gates.setdefault(container_id, _Gate())
        gate.users += 1
        try:
            yield gate
        finally:
            gate.users -= 1
            if not gate.users:
                del self._gates[container_id]

    @contextlib.asynccontextmanager
    async def starting(self, container_id: str) -> AsyncIterator[None]:
        async with self._use(container_id) as gate:
            async with gate.changed:
                await gate.changed.wait_for(lambda: not gate.pausing)
                gate.starts += 1
            try:
                yield
            finally:
                async with gate.changed:
                    gate.starts -= 1
                    gate.changed.notify_all()

    @contextlib.asynccontextmanager
    async def pausing(self, container_id: str) -> AsyncIterator[None]:
        async with self._use(container_id) as gate:
            async with gate.changed:
                await gate.changed.wait_for(lambda: not gate.pausing and not gate.starts)
                gate.pausing = True
            try:
                yield
            finally:
                async with gate.changed:
                    gate.pausing = False
                    gate.changed.notify_all()
