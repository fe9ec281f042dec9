"""The sandbox port (core/ports.py SandboxPort) as a running server offers it to agent runs:
real Docker containers, the project access rule, Exec's limits and kill-on-close."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import timedelta

import pytest
from forge.sandbox.v1 import sandbox_pb2
from sqlalchemy import select

from server.core.context import Caller
from server.core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from server.core.ports import ExecBegan, ExecChunk, ExecEnded, ExecPortEvent, SandboxPort
from server.db.sandbox_models import SandboxExecution, SandboxRow
from tests.sandbox.conftest import RpcTeam, RpcWorld
from tests.sandbox.support import Team, new_team
from tests.support.waiting import eventually

LONG = timedelta(seconds=30)


def _port(rpc: RpcWorld) -> SandboxPort:
    module = next(module for module in rpc.app.modules if module.name == "sandbox")
    assert module.offers.sandbox is not None
    return module.offers.sandbox


def _caller(user_id: str) -> Caller:
    return Caller(user_id=uuid.UUID(user_id), roles=frozenset({"user"}))


@pytest.fixture
async def team(rpc: RpcWorld) -> Team:
    return await new_team(rpc.sessions)


@pytest.fixture
async def sandbox_id(rpc: RpcWorld, team: Team) -> uuid.UUID:
    return await _port(rpc).ensure_sandbox(team.editor, uuid.UUID(team.project_id), None)


async def _run(
    port: SandboxPort,
    caller: Caller,
    sandbox_id: uuid.UUID,
    command: str,
    timeout: timedelta = LONG,
) -> list[ExecPortEvent]:
    async with aclosing(port.exec(caller, sandbox_id, command, timeout)) as events:
        return [event async for event in events]


def _output(events: list[ExecPortEvent], stream: str) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ExecChunk) and e.stream == stream)


async def _processes(port: SandboxPort, caller: Caller, sandbox_id: uuid.UUID) -> str:
    return _output(await _run(port, caller, sandbox_id, "ps -eo args="), "stdout").decode()


# --- ensure_sandbox --------------------------------------------------------------------


async def test_ensure_without_a_sandbox_provisions_a_python_one(
    rpc: RpcWorld, team: Team, sandbox_id: uuid.UUID
) -> None:
    async with rpc.sessions() as db:
        row = await db.get(SandboxRow, sandbox_id)
    assert row is not None
    assert str(row.project_id) == team.project_id
    assert row.creator_id == team.editor.user_id
    assert (row.runtime, row.state) == ("python", "running")
    port = _port(rpc)
    # The given sandbox is kept as it is.
    assert await port.ensure_sandbox(team.owner, uuid.UUID(team.project_id), sandbox_id) == (
        sandbox_id
    )


async def test_ensure_refuses_another_projects_sandbox_and_viewers(
    rpc: RpcWorld, team: Team, sandbox_id: uuid.UUID
) -> None:
    port = _port(rpc)
    other = await new_team(rpc.sessions)
    with pytest.raises(NotFound) as error:
        await port.ensure_sandbox(team.editor, uuid.UUID(other.project_id), sandbox_id)
    assert error.value.reason == "SANDBOX_NOT_FOUND"
    with pytest.raises(NotFound):  # a stranger to the sandbox's project
        await port.ensure_sandbox(other.editor, uuid.UUID(other.project_id), sandbox_id)
    with pytest.raises(NotFound):
        await port.ensure_sandbox(team.editor, uuid.UUID(team.project_id), uuid.uuid4())
    with pytest.raises(PermissionDenied):
        await port.ensure_sandbox(team.viewer, uuid.UUID(team.project_id), sandbox_id)
    with pytest.raises(PermissionDenied):
        await port.ensure_sandbox(team.viewer, uuid.UUID(team.project_id), None)


async def test_ensure_resumes_a_paused_sandbox(rpc: RpcWorld, rpc_team: RpcTeam) -> None:
    port = _port(rpc)
    editor = _caller(rpc_team.editor.user_id)
    project_id = uuid.UUID(rpc_team.project_id)
    sandbox_id = await port.ensure_sandbox(editor, project_id, None)
    paused = await rpc.stub.PauseSandbox(
        sandbox_pb2.PauseSandboxRequest(sandbox_id=str(sandbox_id)),
        metadata=rpc_team.editor.metadata,
        timeout=30,
    )
    assert paused.state == sandbox_pb2.SANDBOX_STATE_PAUSED
    with pytest.raises(FailedPrecondition) as error:
        await _run(port, editor, sandbox_id, "true")
    assert error.value.reason == "SANDBOX_PAUSED"

    assert await port.ensure_sandbox(editor, project_id, sandbox_id) == sandbox_id
    events = await _run(port, editor, sandbox_id, "echo back")
    assert _output(events, "stdout") == b"back\n"

    await rpc.stub.DeleteSandbox(
        sandbox_pb2.DeleteSandboxRequest(sandbox_id=str(sandbox_id)),
        metadata=rpc_team.editor.metadata,
        timeout=30,
    )
    with pytest.raises(FailedPrecondition) as error:
        await port.ensure_sandbox(editor, project_id, sandbox_id)
    assert error.value.reason == "SANDBOX_NOT_RUNNING"


# --- exec ------------------------------------------------------------------------------


async def test_exec_streams_output_and_reports_the_exit(
    rpc: RpcWorld, team: Team, sandbox_id: uuid.UUID
) -> None:
    command = "echo out; echo err >&2; pwd; [[ -n $BASH_VERSION ]] && echo bash; exit 3"
    events = await _run(_port(rpc), team.editor, sandbox_id, command)
    began, ended = events[0], events[-1]
    assert isinstance(began, ExecBegan)
    assert began.sandbox_id == str(sandbox_id)
    assert all(isinstance(event, ExecChunk) for event in events[1:-1])
    assert _output(events, "stdout") == b"out\n/workspace\nbash\n"
    assert _output(events, "stderr") == b"err\n"
    assert isinstance(ended, ExecEnded)
    assert (ended.exit_code, ended.reason, ended.timed_out) == (3, "exited", False)
    assert (ended.stdout_bytes, ended.stderr_bytes) == (20, 4)
    async with rpc.sessions() as db:
        row = await db.get(SandboxExecution, uuid.UUID(began.execution_id))
    assert row is not None
    assert row.command == {"argv": ["bash", "-lc", command]}


async def test_exec_timeout_kills_the_command(
    rpc: RpcWorld, team: Team, sandbox_id: uuid.UUID
) -> None:
    events = await _run(
        _port(rpc), team.editor, sandbox_id, "echo start; sleep 30", timeout=timedelta(seconds=1)
    )
    ended = events[-1]
    assert isinstance(ended, ExecEnded)
    assert (ended.reason, ended.timed_out) == ("timeout", True)
    assert ended.duration < timedelta(seconds=10)
    assert _output(events, "stdout") == b"start\n"


async def test_exec_limits_and_access_are_execs(
    rpc: RpcWorld, team: Team, sandbox_id: uuid.UUID
) -> None:
    port = _port(rpc)
    with pytest.raises(InvalidArgument) as error:
        await _run(port, team.editor, sandbox_id, "true", timeout=timedelta(days=2))
    assert [v.field for v in error.value.violations] == ["timeout", "idle_timeout"]
    with pytest.raises(PermissionDenied):
        await _run(port, team.viewer, sandbox_id, "true")
    with pytest.raises(NotFound):
        await _run(port, team.stranger, sandbox_id, "true")


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_leaving_early_kills_the_process_group(
    rpc: RpcWorld, team: Team, sandbox_id: uuid.UUID, how: str
) -> None:
    port = _port(rpc)
    script = "sleep 300 & sleep 301 & (sleep 302; echo never) & echo started; wait"
    events: AsyncGenerator[ExecPortEvent, None] = port.exec(team.editor, sandbox_id, script, LONG)
    began = await anext(events)
    assert isinstance(began, ExecBegan)
    started = asyncio.Event()

    async def consume() -> None:
        async for event in events:
            if isinstance(event, ExecChunk) and b"started" in event.data:
                started.set()

    if how == "close":
        while not started.is_set():
            event = await anext(events)
            if isinstance(event, ExecChunk) and b"started" in event.data:
                started.set()
        await _until_running(port, team, sandbox_id)
        await events.aclose()
    else:
        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 10)
        await _until_running(port, team, sandbox_id)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await events.aclose()

    # Gone at once, not after a timeout.
    assert "sleep 30" not in await _processes(port, team.editor, sandbox_id)

    async def recorded() -> str | None:
        async with rpc.sessions() as db:
            reason = await db.scalar(
                select(SandboxExecution.reason).where(
                    SandboxExecution.id == uuid.UUID(began.execution_id)
                )
            )
        return reason

    assert await eventually(recorded) == "cancelled"


async def _until_running(port: SandboxPort, team: Team, sandbox_id: uuid.UUID) -> None:
    async def three() -> bool:
        listing = await _processes(port, team.editor, sandbox_id)
        return listing.count("sleep 30") >= 3

    await eventually(three)


# --- files -----------------------------------------------------------------------------


async def test_write_then_read_and_run(rpc: RpcWorld, team: Team, sandbox_id: uuid.UUID) -> None:
    port = _port(rpc)
    await port.write_file(team.editor, sandbox_id, "pkg/hello.py", b"print('hi from a file')\n")
    assert await port.read_file(team.viewer, sandbox_id, "/workspace/pkg/hello.py") == (
        b"print('hi from a file')\n"
    )
    events = await _run(port, team.editor, sandbox_id, "python3 pkg/hello.py")
    assert _output(events, "stdout") == b"hi from a file\n"
    await port.write_file(team.editor, sandbox_id, "/workspace/pkg/hello.py", b"replaced")
    assert await port.read_file(team.editor, sandbox_id, "pkg/hello.py") == b"replaced"


async def test_files_stay_in_the_workspace(
    rpc: RpcWorld, team: Team, sandbox_id: uuid.UUID
) -> None:
    port = _port(rpc)
    for path in ("../etc/passwd", "/etc/passwd", "a/../../x", ""):
        with pytest.raises(InvalidArgument):
            await port.read_file(team.editor, sandbox_id, path)
        with pytest.raises(InvalidArgument):
            await port.write_file(team.editor, sandbox_id, path, b"x")
    # A symlink that leads out is refused too.
    await _run(port, team.editor, sandbox_id, "ln -s /etc out")
    with pytest.raises(InvalidArgument):
        await port.read_file(team.editor, sandbox_id, "out/passwd")
    with pytest.raises(NotFound) as error:
        await port.read_file(team.editor, sandbox_id, "missing.txt")
    assert error.value.reason == "FILE_NOT_FOUND"
    with pytest.raises(PermissionDenied):
        await port.write_file(team.viewer, sandbox_id, "x.txt", b"x")
    with pytest.raises(NotFound):
        await port.read_file(team.stranger, sandbox_id, "x.txt")
