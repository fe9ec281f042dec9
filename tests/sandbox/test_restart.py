"""The server is SIGKILLed with sandboxes running; after a restart no orphan container is left
and every row says what became of its container."""

from __future__ import annotations

import asyncio
import secrets
import signal
import uuid
from pathlib import Path

import grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import docker
from server.db.embedded import EmbeddedPostgres
from server.db.engine import make_engine, make_session_factory
from server.db.models import Project, ProjectMember
from server.sandbox import store
from server.sandbox.backend import LABEL_MANAGED, LABEL_NAMESPACE, LABEL_POOL, LABEL_SANDBOX_ID
from tests.sandbox.support import managed_containers, namespace
from tests.support.accounts import Account, register
from tests.support.process import ServerProcess
from tests.support.waiting import eventually


def _labels(container: dict[str, object]) -> dict[str, str]:
    labels = container.get("Labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _plant_orphan(namespace_value: str, image: str) -> str:
    """A labelled container with no row, as a crash in the middle of a create leaves."""
    client = docker.from_env()
    try:
        created = client.api.create_container(
            image,
            labels={
                LABEL_MANAGED: "true",
                LABEL_NAMESPACE: namespace_value,
                LABEL_SANDBOX_ID: str(uuid.uuid4()),
            },
            host_config=client.api.create_host_config(network_mode="none"),
        )
        client.api.start(created["Id"])
        return str(created["Id"])
    finally:
        client.close()


def _remove(container_id: str) -> None:
    client = docker.from_env()
    try:
        client.api.remove_container(container_id, force=True, v=True)
    finally:
        client.close()


async def test_sigkill_with_three_sandboxes_then_restart(
    docker_engine: None, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = await postgres.ensure_database("forge_sandbox_restart")
    ns = namespace("restart")
    env = {
        "FORGE_DATABASE_URL": url,
        "FORGE_DATA_DIR": str(tmp_path),
        "FORGE_JWT_SECRET": secrets.token_hex(32),
        "FORGE_BCRYPT_ROUNDS": "4",
        "FORGE_LOG_FORMAT": "text",
        "FORGE_LOG_LEVEL": "WARNING",
        "FORGE_SANDBOX_NAMESPACE": ns,
        "FORGE_SANDBOX_POOL_SIZE": "1",
        # The second server takes the host's duties over once the first one's lease expires.
        "FORGE_SANDBOX_HOST_LEASE_SECONDS": "2",
    }
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    first = ServerProcess(env)
    second = ServerProcess(env)
    try:
        port = await first.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await register(channel)  # the first account is an admin: take it
            editor = await register(channel)
            project_id = await _project_of(sessions, editor)
            stub = sandbox_pb2_grpc.SandboxServiceStub(channel)
            sandboxes = [
                await stub.CreateSandbox(
                    sandbox_pb2.CreateSandboxRequest(
                        project_id=project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
                    ),
                    metadata=editor.metadata,
                    timeout=30,
                )
                for _ in range(3)
            ]
            # One of them is in the middle of an execution when the server dies.
            request = sandbox_pb2.ExecRequest(sandbox_id=sandboxes[0].id)
            request.shell = "echo started; sleep 600"
            running = stub.Exec(request, metadata=editor.metadata, timeout=60)
            started = await running.read()
            printed = await running.read()
            assert isinstance(started, sandbox_pb2.ExecEvent)
            assert isinstance(printed, sandbox_pb2.ExecEvent)
            execution_id = started.started.execution_id
            assert printed.stdout == b"started\n"

            async def pools_full() -> bool:
                answer = await stub.ListRuntimes(
                    sandbox_pb2.ListRuntimesRequest(), metadata=editor.metadata
                )
                return all(r.warm_pool_ready == 1 for r in answer.runtimes)

            await eventually(pools_full, timeout=60)

            async def group_recorded() -> bool:
                async with sessions() as db:
                    row = await store.get_execution(db, uuid.UUID(execution_id))
                return row is not None and row.process_group is not None

            # The server notes the command's process group a moment after it starts.
            await eventually(group_recorded, timeout=10)
            first.send_signal(signal.SIGKILL)
            assert await first.wait(timeout=10) == -signal.SIGKILL
            running.cancel()

        before = await asyncio.to_thread(managed_containers, ns)
        ours = {s.id for s in sandboxes}
        # Pool containers that nobody claimed (claimed ones keep their pool label).
        old_pool = {
            str(c["Id"])
            for c in before
            if LABEL_POOL in _labels(c) and _labels(c).get(LABEL_SANDBOX_ID) not in ours
        }
        assert len(old_pool) == 2
        by_sandbox = {_labels(c).get(LABEL_SANDBOX_ID): str(c["Id"]) for c in before}
        # While the server is down, one container goes away and an orphan appears.
        await asyncio.to_thread(_remove, by_sandbox[sandboxes[2].id])
        orphan = await asyncio.to_thread(_plant_orphan, ns, "forge-sandbox-python:1")

        port = await second.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = sandbox_pb2_grpc.SandboxServiceStub(channel)

            async def reconciled() -> list[sandbox_pb2.Sandbox] | None:
                found = [
                    await stub.GetSandbox(
                        sandbox_pb2.GetSandboxRequest(sandbox_id=s.id), metadata=editor.metadata
                    )
                    for s in sandboxes
                ]
                lost = found[2].state == sandbox_pb2.SANDBOX_STATE_LOST
                async with sessions() as db:
                    execution = await store.get_execution(db, uuid.UUID(execution_id))
                return found if lost and execution and execution.state == "lost" else None

            states = await eventually(reconciled, timeout=30)
            assert [s.state for s in states] == [
                sandbox_pb2.SANDBOX_STATE_RUNNING,
                sandbox_pb2.SANDBOX_STATE_RUNNING,
                sandbox_pb2.SANDBOX_STATE_LOST,
            ]
            assert states[2].state_message == "container vanished"
            # The survivors work, and what the lost execution left running was killed.
            check = sandbox_pb2.ExecRequest(sandbox_id=sandboxes[0].id, argv=["ps", "-eo", "args="])

            async def leftovers_killed() -> bool:
                events = [e async for e in stub.Exec(check, metadata=editor.metadata, timeout=30)]
                assert events[-1].exit.exit_code == 0
                return b"sleep 600" not in b"".join(e.stdout for e in events)

            # Killed right after the execution is marked lost.
            await eventually(leftovers_killed, timeout=10)

        async with sessions() as db:
            execution = await store.get_execution(db, uuid.UUID(execution_id))
        assert execution is not None
        assert execution.state == "lost"

        # Reconciliation removes stray containers last, after marking what was lost.
        async def orphan_removed() -> set[str] | None:
            after = await asyncio.to_thread(managed_containers, ns)
            ids = {str(c["Id"]) for c in after}
            return ids if orphan not in ids else None

        ids = await eventually(orphan_removed, timeout=30)
        # The warm pool outlives the server that made it: the next one serves it.
        assert old_pool <= ids
        # Every container left is a live sandbox's or the warm pool's.
        live = {by_sandbox[sandboxes[0].id], by_sandbox[sandboxes[1].id]}
        assert ids == live | old_pool
    finally:
        await first.kill()
        if second.proc is not None:
            second.send_signal(signal.SIGTERM)
            await second.wait(timeout=30)
        await engine.dispose()


async def _project_of(sessions: async_sessionmaker[AsyncSession], editor: Account) -> str:
    async with sessions() as db:
        project = Project(name="restart test")
        db.add(project)
        await db.flush()
        db.add(
            ProjectMember(project_id=project.id, user_id=uuid.UUID(editor.user_id), role="editor")
        )
        await db.commit()
        return str(project.id)
