"""FORGE_WORKERS=N > 1: `python -m server` supervises N worker processes serving one port.

The supervisor starts the embedded PostgreSQL (unless FORGE_DATABASE_URL is given), runs the
migrations and makes the development JWT secret, once; then it starts the workers (the spawn
context: each a fresh interpreter with its own event loop), each serving the same address
with SO_REUSEPORT, so the kernel spreads new connections over them (grpc's Python
multiprocessing example). When every worker serves, it prints the line tooling reads
("forge: serving on port P"). A port of 0 is chosen first, and kept reserved by a bound socket
that never listens, so every worker binds the same one.

SIGTERM/SIGINT are forwarded to the workers, which drain as a single server does
(ForgeServer.stop); the supervisor waits for them, then stops the embedded PostgreSQL last.
A worker that exits while the supervisor is not stopping is replaced: at once when it exited
cleanly or had served a while, so a rolling restart is one SIGTERM per worker pid, else
after a wait doubling with each quick failure. A worker whose supervisor dies stops too.

Metrics: with FORGE_METRICS_ADDRESS host:P, worker i serves them on host:P+i (port 0: each
any free port); every worker's log lines carry its index as `worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from multiprocessing.process import BaseProcess

from pydantic import SecretStr

from server.config import Settings
from server.core.keys import server_secret
from server.core.logging import configure_logging
from server.core.module import ModuleBuilder
from server.db.embedded import EmbeddedPostgres, open_database
from server.db.migrate import upgrade_database

log = logging.getLogger("forge.workers")

SPAWN = multiprocessing.get_context("spawn")
"""The embedded database's name (as server/app.py names it for a single process)."""
RESTART_FIRST_WAIT_SECONDS = 0.5
STABLE_SECONDS = 10.0
"""A worker that served this long before it exited is replaced at once."""
STOP_MARGIN_SECONDS = 10.0
"""On stop, how long past their drain and grace workers get before they are killed."""


class WorkerFailed(RuntimeError):
    """A worker exited before it served: the supervisor does not start."""


class WorkerLink:
    """A worker's end of its pipe to the supervisor: tells it the worker serves, and sees
    the supervisor go (the pipe reads end-of-file)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def serving(self, port: int) -> None:
        self._connection.send(port)

    def on_supervisor_gone(self, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        fd = self._connection.fileno()

        def readable() -> None:  # the supervisor never writes: this is its end closing
            loop.remove_reader(fd)
            callback()

        loop.add_reader(fd, readable)


def worker_main(settings: Settings, builders: Sequence[ModuleBuilder], link: Connection) -> None:
    """A worker process: `python -m server`'s serve() on the supervisor's port."""
    # Ctrl-C on a terminal reaches the supervisor alone, which forwards it once.
    os.setpgrp()
    from server.__main__ import loop_factory, serve

    configure_logging(settings.log_level, settings.log_format, settings.worker_index)
    with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
        runner.run(serve(settings, builders, WorkerLink(link)))


async def _readable(*fds: int) -> None:
    """Returns once any of `fds` can be read (data, end-of-file or a process's exit)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    for fd in fds:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        for fd in fds:
            loop.remove_reader(fd)


class Worker:
    """One worker slot: the process serving it now, replaced when it exits."""

    def __init__(self, index: int, settings: Settings, builders: Sequence[ModuleBuilder]):
        self.index = index
        self._settings = settings
        self._builders = builders
        self.process: BaseProcess | None = None
        self._connection: Connection | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def spawn(self) -> None:
        if self._connection is not None:
            self._connection.close()
        ours, theirs = SPAWN.Pipe()
        process = SPAWN.Process(
            target=worker_main,
            args=(self._settings, self._builders, theirs),
            name=f"forge-worker-{self.index}",
        )
        process.start()
        theirs.close()  # the worker holds the only other end: it sees ours close
        self.process, self._connection = process, ours

    async def until_serving(self) -> bool:
        """True once the worker serves; False when it exited first."""
        assert self.process is not None
        assert self._connection is not None
        await _readable(self._connection.fileno(), self.process.sentinel)
        try:
            self._connection.recv()
        except (EOFError, OSError):
            return False
        return True

    async def exited(self) -> int:
        """Waits for the process to exit; its exit code (negative: the signal)."""
        assert self.process is not None
        if not wait_any([self.process.sentinel], timeout=0):
            await _readable(self.process.sentinel)
        self.process.join()
        return self.process.exitcode if self.process.exitcode is not None else -1

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.exitcode is None and self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class Supervisor:
    def __init__(self, settings: Settings, builders: Sequence[ModuleBuilder]) -> None:
        self._settings = settings
        self._builders = builders
        self._workers: list[Worker] = []
        self._stop = asyncio.Event()
        self._postgres: EmbeddedPostgres | None = None
        self._reserved: socket.socket | None = None
        self._signalled = False

    async def run(self) -> None:
        """Serves until SIGTERM/SIGINT; `WorkerFailed` when a worker cannot start."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            url = await self._open_database()
            server_secret(self._settings)  # made here once, before the workers read it
            host, port = self._address()
            self._workers = [
                Worker(index, self._worker_settings(index, url, host, port), self._builders)
                for index in range(self._settings.workers)
            ]
            for worker in self._workers:
                worker.spawn()
            started = await asyncio.gather(*(w.until_serving() for w in self._workers))
            if not self._stop.is_set():
                failed = [
                    w for w, serving in zip(self._workers, started, strict=True) if not serving
                ]
                if failed:
                    raise WorkerFailed(
                        f"worker {failed[0].index} exited before serving (see its log above)"
                    )
                log.info(
                    "serving",
                    extra={
                        "address": f"{host}:{port}",
                        "workers": {w.index: w.pid for w in self._workers},
                    },
                )
                print(f"forge: serving on port {port}", file=sys.stderr, flush=True)
            await self._supervise()
        finally:
            await self._stop_all()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        log.info("stopped")

    def _on_signal(self, signum: int) -> None:
        # A second signal is forwarded too: the workers end their drain delay.
        self._stop.set()
        self._signalled = True
        for worker in self._workers:
            worker.signal(signum)

    async def _supervise(self) -> None:
        """Keeps every worker slot filled until the supervisor stops; returns when every
        worker has exited."""
        await asyncio.gather(*(self._keep(worker) for worker in self._workers))

    async def _keep(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            served_at = loop.time()
            code = await worker.exited()
            if self._stop.is_set():
                return
            if code == 0 or loop.time() - served_at >= STABLE_SECONDS:
                failures = 0
            else:
                failures += 1
            wait = 0.0
            if failures:
                wait = min(
                    RESTART_FIRST_WAIT_SECONDS * 2 ** (failures - 1),
                    self._settings.worker_restart_max_seconds,
                )
            log.warning(
                "worker exited; replacing it",
                extra={
                    "worker": worker.index,
                    "pid": worker.pid,
                    "exit_code": code,
                    "restart_in_seconds": wait,
                },
            )
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait)
            if self._stop.is_set():
                return
            worker.spawn()  # (no await since the check: a signal cannot slip in between)
            if await worker.until_serving():
                log.info("worker serving", extra={"worker": worker.index, "pid": worker.pid})

    async def _stop_all(self) -> None:
        """Stops the workers still running (they drain), kills any past their time, then
        stops the embedded PostgreSQL."""
        self._stop.set()
        running = [w for w in self._workers if w.process is not None and w.process.is_alive()]
        if not self._signalled:  # (a second one would cut their drain short)
            for worker in running:
                worker.signal(signal.SIGTERM)
        settings = self._settings
        limit = settings.shutdown_drain_seconds + settings.shutdown_grace_seconds
        try:
            await asyncio.wait_for(
                asyncio.gather(*(w.exited() for w in running)), limit + STOP_MARGIN_SECONDS
            )
        except TimeoutError:
            for worker in running:
                log.error("worker did not stop; killing it", extra={"worker": worker.index})
                worker.signal(signal.SIGKILL)
            await asyncio.gather(*(w.exited() for w in running))
        for worker in self._workers:
            worker.close()
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if self._postgres is not None:
            await self._postgres.stop()
            self._postgres = None

    async def _open_database(self) -> str:
        """The database URL the workers use, migrated to head (when migrate_on_start)."""
        settings = self._settings
        url, self._postgres = await open_database(settings)
        if settings.migrate_on_start:
            await upgrade_database(url)
        return url

    def _address(self) -> tuple[str, int]:
        """The host and port every worker binds; port 0 becomes a free port, held by a
        bound (never listening) SO_REUSEPORT socket until the supervisor stops."""
        host, port = self._settings.listen_host_port
        if port == 0:
            bare = host.strip("[]")
            family = socket.AF_INET6 if ":" in bare else socket.AF_INET
            reserved = socket.socket(family, socket.SOCK_STREAM)
            reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            reserved.bind((bare, 0))
            self._reserved = reserved
            port = int(reserved.getsockname()[1])
        return host, port

    def _worker_settings(self, index: int, url: str, host: str, port: int) -> Settings:
        settings = self._settings
        metrics = settings.metrics_address
        if metrics:
            metrics_host, _, metrics_port = metrics.rpartition(":")
            base = int(metrics_port)
            metrics = f"{metrics_host}:{base + index if base else 0}"
        return settings.model_copy(
            update={
                "database_url": SecretStr(url),
                "migrate_on_start": False,
                "listen_address": f"{host}:{port}",
                "metrics_address": metrics,
                "workers": 1,
                "worker_index": index,
            }
        )


def supervise(settings: Settings, builders: Sequence[ModuleBuilder]) -> None:
    """Runs the supervisor until it is stopped."""
    asyncio.run(Supervisor(settings, builders).run())
