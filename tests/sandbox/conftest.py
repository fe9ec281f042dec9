"""Sandbox test fixtures: a real Docker engine (or a skip/fail saying why not), a database of
their own, a SandboxManager on both, and clean-up of every container the run created."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.config import Settings
from server.db.embedded import EmbeddedPostgres
from server.db.engine import make_engine, make_session_factory
from server.db.migrate import upgrade
from server.sandbox.backend import BackendUnavailable
from server.sandbox.docker_backend import DockerBackend
from server.sandbox.manager import BACKEND_UNAVAILABLE, SandboxManager
from tests.conftest import make_settings
from tests.sandbox.support import Team, namespace, new_team, remove_test_containers

POOL_SIZE = 2


def sandbox_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "sandbox_pool_size": POOL_SIZE,
        # Tests drive the reaper themselves (reaper.tick()).
        "sandbox_reaper_interval_seconds": 3600.0,
    }
    values.update(overrides)
    return make_settings(database_url, data_dir, **values)


@pytest.fixture(scope="session")
def _remove_test_containers() -> Iterator[None]:
    yield
    try:
        remove_test_containers()
    except docker.errors.DockerException:
        pass


@pytest.fixture(scope="session")
async def docker_engine(
    tmp_path_factory: pytest.TempPathFactory, _remove_test_containers: None
) -> AsyncIterator[None]:
    """A Docker engine with the sandbox images; without one the sandbox tests skip with
    SANDBOX_BACKEND_UNAVAILABLE, except in CI (CI=true), where they fail."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("docker-probe"))
    problem = ""
    try:
        backend = await DockerBackend.connect(settings)
    except BackendUnavailable as error:
        problem = str(error)
    else:
        try:
            client = docker.from_env()
            try:
                for image in (settings.sandbox_python_image, settings.sandbox_node_image):
                    try:
                        client.images.get(image)
                    except docker.errors.ImageNotFound:
                        problem = f"image {image} is missing: run scripts/build-sandbox-images"
            finally:
                client.close()
        finally:
            await backend.close()
    if problem:
        message = f"{BACKEND_UNAVAILABLE}: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield


@pytest.fixture(scope="session")
async def sandbox_database(postgres: EmbeddedPostgres) -> str:
    return await postgres.ensure_database("forge_sandbox")


@pytest.fixture(scope="session")
async def sandbox_engine(sandbox_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(sandbox_database)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(sandbox_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(sandbox_engine)


@pytest.fixture(scope="session")
async def manager(
    docker_engine: None,
    sandbox_database: str,
    sandbox_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SandboxManager]:
    settings = sandbox_settings(
        sandbox_database,
        tmp_path_factory.mktemp("sandbox-data"),
        sandbox_namespace=namespace("domain"),
    )
    mgr = SandboxManager(settings, sessions)
    await mgr.start()
    assert mgr.available
    yield mgr
    await mgr.stop()


@pytest.fixture
async def team(sessions: async_sessionmaker[AsyncSession]) -> Team:
    return await new_team(sessions)
