"""Build test fixtures: one real server (real Docker, its own database and container
namespace) whose sandbox port the bundler drives, and helpers to run a build to its end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import docker
from server.app import ForgeServer
from server.builds.bundler import bundle
from server.builds.events import BuildEvent, BuildResult
from server.builds.limits import BuildLimits
from server.core.context import Caller
from server.db.embedded import EmbeddedPostgres
from server.db.engine import make_engine, make_session_factory
from server.db.sandbox_models import LIVE_SANDBOX_STATES, SandboxRow
from server.sandbox.backend import LABEL_SANDBOX_ID
from server.sandbox.port import SandboxForRuns
from tests.sandbox import conftest as sandbox_fixtures
from tests.sandbox.conftest import sandbox_settings, start_server
from tests.sandbox.support import Team, namespace, new_team

# A Docker engine with the sandbox images (or a skip saying why not), and removal of this
# run's containers at the end: as for the sandbox tests.
docker_engine = sandbox_fixtures.docker_engine
_remove_test_containers = sandbox_fixtures._remove_test_containers


# Enough code that esbuild is still at work when the test leaves (about 2 MB to parse).
SLOW_FILES = {
    "index.jsx": b'import { rows } from "./rows.js";\ndocument.title = rows.join(",");\n',
    "rows.js": b"export const rows = [\n"
    + b"".join(b'  "row %d of some generated data",\n' % n for n in range(60_000))
    + b"];\n",
}


@dataclass
class BuildWorld:
    app: ForgeServer
    port: SandboxForRuns
    sessions: async_sessionmaker[AsyncSession]
    limits: BuildLimits

    async def build(
        self,
        caller: Caller,
        project_id: str,
        files: Mapping[str, bytes],
        *,
        entry: str | None = None,
        limits: BuildLimits | None = None,
    ) -> list[BuildEvent]:
        """Every event of a build run to its end; the result is the last one, alone."""
        events = bundle(
            self.port,
            caller,
            uuid.UUID(project_id),
            files,
            entry=entry,
            limits=limits or self.limits,
        )
        async with aclosing(events) as stream:
            seen = [event async for event in stream]
        assert [isinstance(event, BuildResult) for event in seen][-1:] == [True]
        assert sum(isinstance(event, BuildResult) for event in seen) == 1
        return seen

    async def sandboxes_of(self, project_id: str) -> list[SandboxRow]:
        async with self.sessions() as db:
            rows = await db.scalars(
                select(SandboxRow).where(SandboxRow.project_id == uuid.UUID(project_id))
            )
            return list(rows)

    async def live_sandboxes(self, project_id: str) -> list[SandboxRow]:
        rows = await self.sandboxes_of(project_id)
        return [row for row in rows if row.state in LIVE_SANDBOX_STATES]


def result_of(events: list[BuildEvent]) -> BuildResult:
    last = events[-1]
    assert isinstance(last, BuildResult)
    return last


async def containers_of(sandbox_id: uuid.UUID) -> list[str]:
    """Ids of the Docker containers (running or not) of a sandbox."""

    def listing() -> list[str]:
        client = docker.from_env()
        try:
            found = client.api.containers(
                all=True, filters={"label": f"{LABEL_SANDBOX_ID}={sandbox_id}"}
            )
            return [str(row["Id"]) for row in found]
        finally:
            client.close()

    return await asyncio.to_thread(listing)


@pytest.fixture(scope="session")
async def world(
    docker_engine: None, postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BuildWorld]:
    url = await postgres.ensure_database("forge_builds")
    settings = sandbox_settings(
        url,
        tmp_path_factory.mktemp("builds"),
        sandbox_namespace=namespace("builds"),
        # Builds take node sandboxes from the warm pool.
        sandbox_pool_sizes={"python": 0, "node": 1},
    )
    app = await start_server(settings)
    engine = make_engine(url)
    try:
        module = next(module for module in app.modules if module.name == "sandbox")
        port = module.offers.sandbox
        assert isinstance(port, SandboxForRuns)
        yield BuildWorld(
            app, port, make_session_factory(engine), BuildLimits.from_settings(settings)
        )
    finally:
        await app.stop(grace=0)
        await engine.dispose()


@pytest.fixture
async def team(world: BuildWorld) -> Team:
    return await new_team(world.sessions)
