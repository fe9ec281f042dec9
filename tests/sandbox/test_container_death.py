"""A sandbox whose container dies behind the server's back: the engine's event stream marks
it lost at once (no reaper pass: the test server's reaper runs hourly), and an execution
running in it ends with EXIT_REASON_SANDBOX_LOST."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from forge.sandbox.v1 import sandbox_pb2

import docker
from server.db.sandbox_models import SandboxRow
from tests.sandbox.conftest import RpcTeam, RpcWorld
from tests.support.waiting import eventually


async def _create(rpc: RpcWorld, team: RpcTeam) -> sandbox_pb2.Sandbox:
    return await rpc.stub.CreateSandbox(
        sandbox_pb2.CreateSandboxRequest(
            project_id=team.project_id, sandbox=sandbox_pb2.Sandbox(runtime="python")
        ),
        metadata=team.editor.metadata,
        timeout=30,
    )


async def _container_id(rpc: RpcWorld, sandbox_id: str) -> str:
    async with rpc.sessions() as db:
        row = await db.get(SandboxRow, uuid.UUID(sandbox_id))
    assert row is not None
    assert row.container_id
    return row.container_id


def _kill(container_id: str) -> None:
    client = docker.from_env()
    try:
        client.api.kill(container_id)
    finally:
        client.close()


def _remove(container_id: str) -> None:
    client = docker.from_env()
    try:
        client.api.remove_container(container_id, v=True, force=True)
    finally:
        client.close()


async def _exec_until_death(
    rpc: RpcWorld, team: RpcTeam, kill: Callable[[str], None]
) -> tuple[sandbox_pb2.Sandbox, list[sandbox_pb2.ExecEvent]]:
    sandbox = await _create(rpc, team)
    container_id = await _container_id(rpc, sandbox.id)
    request = sandbox_pb2.ExecRequest(sandbox_id=sandbox.id)
    request.shell = "echo begun; sleep 600"
    call = rpc.stub.Exec(request, metadata=team.editor.metadata, timeout=60)
    events: list[sandbox_pb2.ExecEvent] = []
    async for event in call:
        events.append(event)
        if event.WhichOneof("event") == "stdout":
            break
    await asyncio.to_thread(kill, container_id)
    events.extend([event async for event in call])
    return sandbox, events


async def _lost(rpc: RpcWorld, team: RpcTeam, sandbox_id: str) -> sandbox_pb2.Sandbox:
    async def probe() -> sandbox_pb2.Sandbox | None:
        sandbox = await rpc.stub.GetSandbox(
            sandbox_pb2.GetSandboxRequest(sandbox_id=sandbox_id), metadata=team.viewer.metadata
        )
        return None if sandbox.state == sandbox_pb2.SANDBOX_STATE_RUNNING else sandbox

    return await eventually(probe, timeout=15, interval=0.05)


async def test_docker_kill_during_exec(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    sandbox, events = await _exec_until_death(rpc, rpc_team, _kill)
    assert events[-1].WhichOneof("event") == "exit"
    assert events[-1].exit.reason == sandbox_pb2.EXIT_REASON_SANDBOX_LOST
    assert events[-1].exit.exit_code == 137
    lost = await _lost(rpc, rpc_team, sandbox.id)
    assert lost.state == sandbox_pb2.SANDBOX_STATE_LOST


async def test_container_removed_during_exec(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    sandbox, events = await _exec_until_death(rpc, rpc_team, _remove)
    assert events[-1].WhichOneof("event") == "exit"
    assert events[-1].exit.reason == sandbox_pb2.EXIT_REASON_SANDBOX_LOST
    lost = await _lost(rpc, rpc_team, sandbox.id)
    assert lost.state == sandbox_pb2.SANDBOX_STATE_LOST


async def test_idle_sandbox_is_lost_when_its_container_dies(
    rpc: RpcWorld, rpc_team: RpcTeam
) -> None:
    sandbox = await _create(rpc, rpc_team)
    await asyncio.to_thread(_kill, await _container_id(rpc, sandbox.id))
    lost = await _lost(rpc, rpc_team, sandbox.id)
    assert lost.state == sandbox_pb2.SANDBOX_STATE_LOST
