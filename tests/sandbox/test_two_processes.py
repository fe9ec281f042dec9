"""Two server processes on one database and one Docker engine, in the same namespace: either
serves any sandbox; one at a time runs the host's duties (reconciliation, reaper, warm pool,
container ends), and when it is SIGKILLed the other takes them over and reconciles the
executions it left running."""

from __future__ import annotations

import asyncio
import secrets
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.timestamps import utcnow
from server.db.embedded import EmbeddedPostgres
from server.db.engine import make_engine, make_session_factory
from server.db.models import Project, ProjectMember
from server.db.sandbox_models import SandboxHostRow, SandboxRow
from server.sandbox import store
from server.sandbox.backend import LABEL_POOL, LABEL_SANDBOX_ID
from tests.sandbox.support import managed_containers, namespace
from tests.support.accounts import Account, register
from tests.support.process import ServerProcess
from tests.support.waiting import eventually


async def _project_of(sessions: async_sessionmaker[AsyncSession], editor: Account) -> str:
    async with sessions() as db:
        project = Project(name="two processes")
        db.add(project)
        await db.flush()
        db.add(
            ProjectMember(project_id=project.id, user_id=uuid.UUID(editor.user_id), role="editor")
        )
        await db.commit()
        return str(project.id)


async def _duty_holder(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    """The pid of the process holding the host's duties (owner is host:pid:random)."""
    async with sessions() as db:
        row = (await db.execute(select(SandboxHostRow))).scalar_one_or_none()
    if row is None or row.owner is None:
        return None
    return row.owner.split(":")[1]


def _pool_containers(ns: str, claimed: set[str]) -> set[str]:
    """Warm containers nobody claimed (claimed ones keep their pool label)."""
    found = set()
    for container in managed_containers(ns):
        labels = container.get("Labels")
        pooled = isinstance(labels, dict) and LABEL_POOL in labels
        if pooled and isinstance(labels, dict) and labels.get(LABEL_SANDBOX_ID) not in claimed:
            found.add(str(container["Id"]))
    return found


async def _exec(
    stub: sandbox_pb2_grpc.SandboxServiceAsyncStub, editor: Account, sandbox_id: str, shell: str
) -> tuple[int, bytes]:
    request = sandbox_pb2.ExecRequest(sandbox_id=sandbox_id)
    request.shell = shell
    events = [e async for e in stub.Exec(request, metadata=editor.metadata, timeout=30)]
    return events[-1].exit.exit_code, b"".join(e.stdout for e in events)


async def test_second_process_serves_and_takes_over_after_sigkill(
    docker_engine: None, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = await postgres.ensure_database("forge_sandbox_two_processes")
    ns = namespace("two")
    env = {
        "FORGE_DATABASE_URL": url,
        "FORGE_DATA_DIR": str(tmp_path),
        "FORGE_JWT_SECRET": secrets.token_hex(32),
        "FORGE_BCRYPT_ROUNDS": "4",
        "FORGE_LOG_FORMAT": "text",
        "FORGE_LOG_LEVEL": "WARNING",
        "FORGE_SANDBOX_NAMESPACE": ns,
        "FORGE_SANDBOX_POOL_SIZE": "1",
        "FORGE_SANDBOX_POOL_SIZES": '{"node": 0}',
        "FORGE_SANDBOX_HOST_LEASE_SECONDS": "2",
        "FORGE_SANDBOX_REAPER_INTERVAL_SECONDS": "0.5",
    }
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    first, second = ServerProcess(env), ServerProcess(env)
    try:
        port_a = await first.start()  # starts first, so it takes the host's duties
        port_b = await second.start()
        assert first.proc is not None
        assert second.proc is not None
        pid_a, pid_b = str(first.proc.pid), str(second.proc.pid)
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port_a}") as channel_a,
            grpc.aio.insecure_channel(f"127.0.0.1:{port_b}") as channel_b,
        ):
            await register(channel_a)  # the first account is an admin: take it
            editor = await register(channel_a)
            project_id = await _project_of(sessions, editor)
            stub_a = sandbox_pb2_grpc.SandboxServiceStub(channel_a)
            stub_b = sandbox_pb2_grpc.SandboxServiceStub(channel_b)
            assert await _duty_holder(sessions) == pid_a

            async def python_pool(stub: sandbox_pb2_grpc.SandboxServiceAsyncStub) -> int:
                answer = await stub.ListRuntimes(
                    sandbox_pb2.ListRuntimesRequest(), metadata=editor.metadata
                )
                return next(r.warm_pool_ready for r in answer.runtimes if r.name == "python")

            async def pool_full_on_a() -> bool:
                return await python_pool(stub_a) == 1

            await eventually(pool_full_on_a, timeout=60)
            # Only the duty holder fills the pool, but every process claims from it.
            assert await python_pool(stub_b) == 1

            # Sandboxes made through A are served through B, and the other way round.
            made = [
                await stub.CreateSandbox(
                    sandbox_pb2.CreateSandboxRequest(
                        project_id=project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
                    ),
                    metadata=editor.metadata,
                    timeout=60,
                )
                for stub in (stub_a, stub_a, stub_b)
            ]
            busy, idle, from_b = (s.id for s in made)
            assert await _exec(stub_b, editor, busy, "echo through B") == (0, b"through B\n")
            assert await _exec(stub_a, editor, from_b, "echo through A") == (0, b"through A\n")
            await _exec(stub_b, editor, busy, "echo kept > /workspace/note")
            assert await _exec(stub_a, editor, busy, "cat /workspace/note") == (0, b"kept\n")

            # An execution relayed by A when A dies.
            request = sandbox_pb2.ExecRequest(sandbox_id=busy)
            request.shell = "echo started; sleep 600"
            running = stub_a.Exec(request, metadata=editor.metadata, timeout=60)
            started = await running.read()
            assert isinstance(started, sandbox_pb2.ExecEvent)
            execution_id = uuid.UUID(started.started.execution_id)

            async def group_recorded() -> bool:
                async with sessions() as db:
                    row = await store.get_execution(db, execution_id)
                return row is not None and row.process_group is not None

            await eventually(group_recorded, timeout=10)
            # B knows the sandbox is busy with A's execution: it refuses to pause it.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub_b.PauseSandbox(
                    sandbox_pb2.PauseSandboxRequest(sandbox_id=busy), metadata=editor.metadata
                )
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            claimed = {s.id for s in made}

            async def refilled() -> set[str] | None:
                ready = await asyncio.to_thread(_pool_containers, ns, claimed)
                return ready if len(ready) == 1 and await python_pool(stub_a) == 1 else None

            old_pool = await eventually(refilled, timeout=60)
            first.send_signal(signal.SIGKILL)
            assert await first.wait(timeout=10) == -signal.SIGKILL
            running.cancel()

            # B takes the duties over and reconciles what A left running.
            async def b_holds() -> bool:
                return await _duty_holder(sessions) == pid_b

            await eventually(b_holds, timeout=30)

            async def execution_lost() -> bool:
                async with sessions() as db:
                    row = await store.get_execution(db, execution_id)
                return row is not None and row.state == "lost"

            await eventually(execution_lost, timeout=30)

            async def leftovers_killed() -> bool:
                code, out = await _exec(stub_b, editor, busy, "ps -eo args=")
                return code == 0 and b"sleep 600" not in out

            await eventually(leftovers_killed, timeout=10)

            # B keeps A's warm container (the pool is the host's), hands it out, and refills.
            assert await python_pool(stub_b) == 1
            async with sessions() as db:
                claimed |= {str(i) for i in (await db.execute(select(SandboxRow.id))).scalars()}
            assert await asyncio.to_thread(_pool_containers, ns, claimed) == old_pool
            from_old_pool = await stub_b.CreateSandbox(
                sandbox_pb2.CreateSandboxRequest(
                    project_id=project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
                ),
                metadata=editor.metadata,
                timeout=60,
            )
            assert from_old_pool.warm
            claimed.add(from_old_pool.id)

            async def refilled_by_b() -> bool:
                left = await asyncio.to_thread(_pool_containers, ns, claimed)
                ready = len(left) == 1 and not left & old_pool
                return ready and await python_pool(stub_b) == 1

            await eventually(refilled_by_b, timeout=60)

            # B's reaper ends a sandbox idle past its timeout.
            async with sessions() as db:
                await db.execute(
                    update(SandboxRow)
                    .where(SandboxRow.id == uuid.UUID(idle))
                    .values(last_active_time=utcnow() - timedelta(days=1))
                )
                await db.commit()

            async def reaped() -> bool:
                found = await stub_b.GetSandbox(
                    sandbox_pb2.GetSandboxRequest(sandbox_id=idle), metadata=editor.metadata
                )
                return found.state == sandbox_pb2.SANDBOX_STATE_DELETED

            await eventually(reaped, timeout=30)
            # The busy sandbox lives on, served by B.
            assert await _exec(stub_b, editor, busy, "cat /workspace/note") == (0, b"kept\n")
    finally:
        await first.kill()
        if second.proc is not None:
            second.send_signal(signal.SIGTERM)
            await second.wait(timeout=30)
        await engine.dispose()
