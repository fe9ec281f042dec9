"""Sandbox test fixtures: a real Docker engine (or a skip/fail saying why not), a database of
their own, the sandbox parts on both, and clean-up of every container the run created."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from forge.sandbox.v1 import sandbox_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import docker
from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from server.config import Settings
from server.db.embedded import EmbeddedPostgres
from server.db.engine import make_engine, make_session_factory
from server.db.migrate import upgrade
from server.db.models import Project, ProjectMember
from server.sandbox.backend import BackendUnavailable
from server.sandbox.docker_connect import connect_docker
from server.sandbox.failures import BACKEND_UNAVAILABLE
from server.sandbox.parts import SandboxParts, assemble
from tests.conftest import DESCRIPTOR, make_settings
from tests.sandbox.support import Team, namespace, new_team, remove_test_containers
from tests.support.accounts import Account, register
from tests.support.testing_service import TEST_MODULES

POOL_SIZE = 2
# Test containers this old belong to a run that was killed before cleaning up.
STALE_TEST_CONTAINERS = timedelta(minutes=30)


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
    with contextlib.suppress(docker.errors.DockerException):
        remove_test_containers(older_than=STALE_TEST_CONTAINERS)
    yield
    with contextlib.suppress(docker.errors.DockerException):
        remove_test_containers()


@pytest.fixture(scope="session")
async def docker_engine(
    tmp_path_factory: pytest.TempPathFactory, _remove_test_containers: None
) -> None:
    """A Docker engine with the sandbox images; without one the sandbox tests skip with
    SANDBOX_BACKEND_UNAVAILABLE, except in CI (CI=true), where they fail."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("docker-probe"))
    problem = ""
    try:
        backend = await connect_docker(settings, None)
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
async def sandboxes(
    docker_engine: None,
    sandbox_database: str,
    sandbox_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SandboxParts]:
    """The sandbox domain on Docker, as module.build wires it, without a server."""
    settings = sandbox_settings(
        sandbox_database,
        tmp_path_factory.mktemp("sandbox-data"),
        sandbox_namespace=namespace("domain"),
    )
    parts = assemble(settings, sessions)
    await parts.connection.start()
    assert parts.connection.available
    yield parts
    await parts.connection.stop()


@pytest.fixture
async def team(sessions: async_sessionmaker[AsyncSession]) -> Team:
    return await new_team(sessions)


# --- a whole server with SandboxService, for RPC, REST and restart tests -----------------


@dataclass
class RpcWorld:
    app: ForgeServer
    settings: Settings
    channel: grpc.aio.Channel
    stub: sandbox_pb2_grpc.SandboxServiceAsyncStub
    sessions: async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class RpcTeam:
    project_id: str
    owner: Account
    editor: Account
    viewer: Account
    stranger: Account


async def start_server(settings: Settings) -> ForgeServer:
    app = ForgeServer(settings, TEST_MODULES)
    await app.start()
    return app


@pytest.fixture(scope="session")
async def rpc(
    docker_engine: None, postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RpcWorld]:
    url = await postgres.ensure_database("forge_sandbox_rpc")
    settings = sandbox_settings(
        url, tmp_path_factory.mktemp("sandbox-rpc"), sandbox_namespace=namespace("rpc")
    )
    app = await start_server(settings)
    engine = make_engine(url)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            # The first account of an empty database becomes admin: take it here, so the
            # accounts tests make are plain users.
            await register(channel, display_name="First Admin")
            yield RpcWorld(
                app,
                settings,
                channel,
                sandbox_pb2_grpc.SandboxServiceStub(channel),
                make_session_factory(engine),
            )
    finally:
        await app.stop(grace=0)
        await engine.dispose()


@pytest.fixture
async def rpc_team(rpc: RpcWorld) -> RpcTeam:
    owner, editor, viewer, stranger = [await register(rpc.channel) for _ in range(4)]
    async with rpc.sessions() as db:
        project = Project(name="rpc sandbox test")
        db.add(project)
        await db.flush()
        for account, role in ((owner, "owner"), (editor, "editor"), (viewer, "viewer")):
            db.add(
                ProjectMember(project_id=project.id, user_id=uuid.UUID(account.user_id), role=role)
            )
        await db.commit()
        return RpcTeam(str(project.id), owner, editor, viewer, stranger)


@pytest.fixture(scope="session")
async def rpc_envoy(rpc: RpcWorld) -> AsyncIterator[EnvoyProcess]:
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=rpc.app.port,
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
    )
    async with EnvoyProcess(config) as proc:
        yield proc
