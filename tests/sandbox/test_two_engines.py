"""Two Docker engines behind one server (FORGE_DOCKER_HOSTS): the machine's engine over its
unix socket and a second one the test starts, reached over TCP with mutual TLS. Sandboxes
are placed on both by free capacity, each served on its own engine with its own warm pool;
stopping the second engine reports its sandboxes lost and new ones go to the first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import docker
from server.db.embedded import EmbeddedPostgres
from server.db.engine import make_engine, make_session_factory
from server.db.models import Project, ProjectMember
from server.db.sandbox_models import SandboxRow
from server.sandbox.host_connection import HOST_DOWN_MESSAGE
from tests.sandbox.conftest import sandbox_settings, start_server
from tests.sandbox.support import namespace
from tests.support.accounts import Account, register
from tests.support.metrics import scrape, value
from tests.support.second_dockerd import (
    SecondEngine,
    close_second_engine,
    main_engine_url,
    start_second_engine,
)
from tests.support.waiting import eventually

PYTHON_IMAGE = "forge-sandbox-python:1"


@pytest.fixture
async def second_engine(docker_engine: None) -> AsyncIterator[SecondEngine]:
    engine = await start_second_engine([PYTHON_IMAGE])
    try:
        yield engine
    finally:
        await close_second_engine(engine)


async def _host_of(sessions: async_sessionmaker[AsyncSession], sandbox_id: str) -> str:
    async with sessions() as db:
        host = await db.scalar(
            select(SandboxRow.host_id).where(SandboxRow.id == uuid.UUID(sandbox_id))
        )
    assert host is not None
    return host


async def _echo(
    stub: sandbox_pb2_grpc.SandboxServiceAsyncStub, account: Account, sandbox_id: str
) -> bytes:
    request = sandbox_pb2.ExecRequest(sandbox_id=sandbox_id, argv=["echo", sandbox_id])
    events = [e async for e in stub.Exec(request, metadata=account.metadata, timeout=30)]
    assert events[-1].exit.exit_code == 0
    return b"".join(e.stdout for e in events)


def _running_containers(client_url: str, ns: str) -> set[str]:
    client = docker.DockerClient(base_url=client_url)
    try:
        found = client.containers.list(filters={"label": f"forge.namespace={ns}"})
        return {str(c.labels.get("forge.sandbox_id")) for c in found}
    finally:
        client.close()


async def test_sandboxes_spread_over_two_engines_and_a_stopped_one_loses_its_own(
    second_engine: SecondEngine, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = await postgres.ensure_database("forge_sandbox_two_engines")
    ns = namespace("engines")
    hosts = [
        main_engine_url(),
        {"url": second_engine.tcp_url, "tls_dir": str(second_engine.tls_dir)},
    ]
    settings = sandbox_settings(
        url,
        tmp_path,
        sandbox_namespace=ns,
        docker_hosts=hosts,
        sandbox_pool_size=1,
        sandbox_pool_sizes={"node": 0},
        sandbox_reaper_interval_seconds=0.5,
        sandbox_host_down_after_seconds=1.0,
        metrics_address="127.0.0.1:0",
    )
    app = await start_server(settings)
    db_engine = make_engine(url)
    sessions = make_session_factory(db_engine)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await register(channel)  # the first account is an admin: take it
            editor = await register(channel)
            async with sessions() as db:
                project = Project(name="two engines")
                db.add(project)
                await db.flush()
                db.add(
                    ProjectMember(
                        project_id=project.id, user_id=uuid.UUID(editor.user_id), role="editor"
                    )
                )
                await db.commit()
                project_id = str(project.id)
            stub = sandbox_pb2_grpc.SandboxServiceStub(channel)

            async def python_ready() -> int:
                answer = await stub.ListRuntimes(
                    sandbox_pb2.ListRuntimesRequest(), metadata=editor.metadata
                )
                return next(r.warm_pool_ready for r in answer.runtimes if r.name == "python")

            async def both_pools_full() -> bool:
                return await python_ready() == 2  # one warm container on each engine

            await eventually(both_pools_full, timeout=90)

            async def create() -> str:
                made = await stub.CreateSandbox(
                    sandbox_pb2.CreateSandboxRequest(
                        project_id=project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
                    ),
                    metadata=editor.metadata,
                    timeout=60,
                )
                return made.id

            made = [await create() for _ in range(4)]
            by_host: dict[str, list[str]] = {}
            for sandbox_id in made:
                by_host.setdefault(await _host_of(sessions, sandbox_id), []).append(sandbox_id)
            # Placed by free capacity: two identical engines share them evenly.
            assert sorted(len(ids) for ids in by_host.values()) == [2, 2]
            for sandbox_id in made:
                assert await _echo(stub, editor, sandbox_id) == f"{sandbox_id}\n".encode()
            on_first = set(await asyncio.to_thread(_running_containers, main_engine_url(), ns))
            on_second = set(
                await asyncio.to_thread(_running_containers, second_engine.unix_url, ns)
            )
            assert len(on_first & set(made)) == 2
            assert len(on_second & set(made)) == 2
            second_ids = sorted(on_second & set(made))
            first_ids = sorted(on_first & set(made))
            first_host = await _host_of(sessions, first_ids[0])
            second_host = await _host_of(sessions, second_ids[0])

            async def counted_on_both() -> bool:
                samples = await scrape(app)
                return all(
                    value(samples, "forge_sandboxes", host=host, state="running") == 2
                    and value(samples, "forge_sandbox_pool_ready", host=host, runtime="python") == 1
                    and value(samples, "forge_docker_engine_up", host=host) == 1
                    for host in (first_host, second_host)
                )

            # The operator sees both engines up, two sandboxes running on each and their pools.
            await eventually(counted_on_both, timeout=30)

            # The second engine stops answering (it dies; its containers run on unseen).
            await asyncio.to_thread(second_engine.kill)

            async def second_lost() -> list[sandbox_pb2.Sandbox] | None:
                found = [
                    await stub.GetSandbox(
                        sandbox_pb2.GetSandboxRequest(sandbox_id=i), metadata=editor.metadata
                    )
                    for i in second_ids
                ]
                lost = all(s.state == sandbox_pb2.SANDBOX_STATE_LOST for s in found)
                return found if lost else None

            lost = await eventually(second_lost, timeout=60)
            assert {s.state_message for s in lost} == {HOST_DOWN_MESSAGE}
            samples = await scrape(app)
            assert value(samples, "forge_docker_engine_up", host=second_host) == 0
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _echo(stub, editor, second_ids[0])
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            # The first engine's sandboxes are untouched, and new ones all go there.
            for sandbox_id in first_ids:
                assert await _echo(stub, editor, sandbox_id) == f"{sandbox_id}\n".encode()
            for _ in range(2):
                sandbox_id = await create()
                assert await _host_of(sessions, sandbox_id) == first_host
                assert await _echo(stub, editor, sandbox_id) == f"{sandbox_id}\n".encode()
            # Only the first engine's warm pool is offered now.
            assert await python_ready() <= 1
            health = health_pb2_grpc.HealthStub(channel)
            serving = await health.Check(
                health_pb2.HealthCheckRequest(service="forge.sandbox.v1.SandboxService")
            )
            assert serving.status == health_pb2.HealthCheckResponse.SERVING

            # The engine comes back: what its lost sandboxes left is removed, its pool is
            # filled again, and it takes new sandboxes.
            await second_engine.start()

            async def second_back() -> bool:
                left = await asyncio.to_thread(_running_containers, second_engine.unix_url, ns)
                return not left & set(second_ids) and await python_ready() == 2

            await eventually(second_back, timeout=90)
            # It has the most room now (no live sandbox), so both go there.
            placed = {await _host_of(sessions, await create()) for _ in range(2)}
            assert placed == {second_host}
    finally:
        await app.stop(grace=0)
        await db_engine.dispose()
