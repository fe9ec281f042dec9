"""What every benchmark needs: one embedded PostgreSQL for the run and Forge server processes."""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import SERVER_CORE, Measured, spawn, stop
from server.db.embedded import EmbeddedPostgres
from server.db.migrate import upgrade_database

_SERVING = re.compile(rb"forge: serving on port (\d+)")
BENCH_SECRET = "bench-secret-" + "x" * 40


@dataclass
class Infra:
    postgres: EmbeddedPostgres
    workdir: Path
    _databases: int = 0

    async def database(self) -> str:
        """A new database at the newest migration, as a deployment's migration step leaves it:
        the server starting on it does not load Alembic (server/db/migrate.py)."""
        self._databases += 1
        url = await self.postgres.ensure_database(f"bench_{self._databases}")
        await upgrade_database(url)
        return url


@asynccontextmanager
async def infrastructure() -> AsyncIterator[Infra]:
    with tempfile.TemporaryDirectory(prefix="forge-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pgdata", delete_on_stop=True)
        await pg.start()
        try:
            yield Infra(pg, Path(tmp))
        finally:
            await pg.stop()


@dataclass
class ForgeProcess:
    measured: Measured
    port: int
    database_url: str


@asynccontextmanager
async def forge_server(
    infra: Infra,
    env: Mapping[str, str] | None = None,
    *,
    database_url: str | None = None,
    core: str = SERVER_CORE,
) -> AsyncIterator[ForgeProcess]:
    """`python -m server` pinned to the server core (or the cores `core` lists), on a fresh
    database (or on `database_url`, shared with another server process)."""
    url = database_url or await infra.database()
    data_dir = Path(tempfile.mkdtemp(dir=infra.workdir))
    measured, match = await spawn(
        [sys.executable, "-m", "server"],
        core=core,
        env={
            "FORGE_LISTEN_ADDRESS": "127.0.0.1:0",
            "FORGE_DATABASE_URL": url,
            "FORGE_DATA_DIR": str(data_dir),
            "FORGE_JWT_SECRET": BENCH_SECRET,
            "FORGE_LOG_LEVEL": "WARNING",
            # Each server keeps its sandbox containers apart and starts no warm pool unless
            # the benchmark asks for one.
            "FORGE_SANDBOX_NAMESPACE": f"bench-{data_dir.name}",
            "FORGE_SANDBOX_POOL_SIZE": "0",
            # One server process (FORGE_WORKERS), pinned to the server core.
            "FORGE_WORKERS": "1",
            # Benchmarks load one server from a few users on loopback: the fair shares meant
            # for many users would measure the limits, not the server.
            "FORGE_USER_MAX_CONCURRENT_STREAMS": "1000000",
            "FORGE_USER_MAX_CONCURRENT_EXECS": "100000",
            "FORGE_PROJECT_MAX_CONCURRENT_EXECS": "100000",
            "FORGE_REGISTRATIONS_PER_ADDRESS_PER_HOUR": "1000000",
            "FORGE_RUNS_PER_USER": "100000",
            "FORGE_USER_MAX_SANDBOXES": "100000",
            **(env or {}),
        },
        ready=_SERVING,
    )
    assert match is not None
    try:
        yield ForgeProcess(measured, int(match.group(1)), url)
    finally:
        await stop(measured)
        await asyncio.sleep(0)
