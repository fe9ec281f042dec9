"""The sandbox a build runs in: made for it, locked down while it runs, gone after it however
it ends, and only for editors of the project."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import aclosing

import pytest
from sqlalchemy import select

from server.builds.bundler import bundle
from server.builds.events import BuildLog, BuildResult, BuildStatus
from server.core.errors import InvalidArgument, NotFound, PermissionDenied
from server.core.ports import ExecChunk
from server.db.sandbox_models import SandboxExecution, SandboxRow
from tests.builds.conftest import SLOW_FILES, BuildWorld, containers_of, result_of
from tests.sandbox.support import Team
from tests.support.waiting import eventually

APP = b"export default function App() { return <p>built in a sandbox</p>; }\n"


async def _output(world: BuildWorld, team: Team, sandbox_id: uuid.UUID, command: str) -> str:
    async with aclosing(
        world.port.exec(team.editor, sandbox_id, command, world.limits.timeout)
    ) as events:
        chunks = [e.data for e in [e async for e in events] if isinstance(e, ExecChunk)]
    return b"".join(chunks).decode()


async def test_each_build_gets_a_node_sandbox_that_is_removed_after_it(
    world: BuildWorld, team: Team
) -> None:
    passed = result_of(await world.build(team.editor, team.project_id, {"App.jsx": APP}))
    failed = result_of(await world.build(team.editor, team.project_id, {"App.jsx": b"<"}))
    assert (passed.status, failed.status) == (BuildStatus.SUCCEEDED, BuildStatus.FAILED)
    rows = await world.sandboxes_of(team.project_id)
    assert len(rows) == 2
    assert {(row.runtime, row.state) for row in rows} == {("node", "deleted")}
    for row in rows:
        assert await containers_of(row.id) == []


async def test_the_sandbox_stays_locked_down_during_a_build(world: BuildWorld, team: Team) -> None:
    events = bundle(
        world.port,
        team.editor,
        uuid.UUID(team.project_id),
        {"App.jsx": APP},
        entry=None,
        limits=world.limits,
    )
    async with aclosing(events) as stream:
        # Once the sources are in, the build's sandbox is there: look inside it.
        async for event in stream:
            if isinstance(event, BuildLog) and event.message.startswith("bundling"):
                break
        (row,) = await world.live_sandboxes(team.project_id)
        assert row.runtime == "node"
        probe = (
            "node -e \"require('net').connect(80, '1.1.1.1')"
            ".on('error', e => console.log(e.code))\"; "
            "ls /sys/class/net; id -u; touch /opt/forge-build/x 2>&1 || echo read-only"
        )
        lines = (await _output(world, team, row.id, probe)).split()
        assert lines[0] == "ENETUNREACH"
        assert lines[1:3] == ["lo", "1000"]
        assert lines[-1] == "read-only"
        rest = [event async for event in stream]
    result = rest[-1]
    assert isinstance(result, BuildResult)
    assert result.status is BuildStatus.SUCCEEDED, result.diagnostics
    assert await world.live_sandboxes(team.project_id) == []


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_leaving_mid_build_kills_it_and_removes_its_sandbox(
    world: BuildWorld, team: Team, how: str
) -> None:
    events = bundle(
        world.port,
        team.editor,
        uuid.UUID(team.project_id),
        SLOW_FILES,
        entry=None,
        limits=world.limits,
    )
    at_work = asyncio.Event()

    async def consume() -> None:
        async for event in events:
            # The build script's first line: esbuild is at work.
            if isinstance(event, BuildLog) and event.message.startswith("esbuild"):
                at_work.set()

    if how == "close":
        async for event in events:
            if isinstance(event, BuildLog) and event.message.startswith("esbuild"):
                break
        (row,) = await world.live_sandboxes(team.project_id)
        await events.aclose()
    else:
        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(at_work.wait(), 30)
        (row,) = await world.live_sandboxes(team.project_id)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer

    async def removed() -> SandboxRow | None:
        (now,) = await world.sandboxes_of(team.project_id)
        gone = now.state == "deleted" and not await containers_of(row.id)
        return now if gone else None

    await eventually(removed, timeout=30)

    async def ended_as() -> str | None:
        async with world.sessions() as db:
            reason = await db.scalar(
                select(SandboxExecution.reason).where(SandboxExecution.sandbox_id == row.id)
            )
        return reason

    # Killed while it ran, not left to finish.
    assert await eventually(ended_as) == "cancelled"


async def test_viewers_and_strangers_cannot_build(world: BuildWorld, team: Team) -> None:
    with pytest.raises(PermissionDenied):
        await world.build(team.viewer, team.project_id, {"App.jsx": APP})
    with pytest.raises(NotFound):
        await world.build(team.stranger, team.project_id, {"App.jsx": APP})
    assert await world.sandboxes_of(team.project_id) == []


@pytest.mark.parametrize(
    ("files", "entry", "field"),
    [
        ({}, None, "files"),
        ({"../escape.js": b"x"}, None, "files[../escape.js]"),
        ({"/abs.js": b"x"}, None, "files[/abs.js]"),
        ({"a\\b.js": b"x"}, None, "files[a\\b.js]"),
        ({"a/./b.js": b"x"}, None, "files[a/./b.js]"),
        ({"lib": b"x", "lib/a.js": b"y"}, None, "files[lib]"),
        ({"App.jsx": APP}, "index.js", "entry"),
        ({f"f{n}.js": b"" for n in range(501)}, None, "files"),
        ({"big.js": b"x" * (4 * 1024 * 1024 + 1)}, None, "files"),
    ],
)
async def test_bad_sources_are_refused_before_any_sandbox(
    world: BuildWorld, team: Team, files: dict[str, bytes], entry: str | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        await world.build(team.editor, team.project_id, files, entry=entry)
    assert [violation.field for violation in error.value.violations] == [field]
    assert await world.sandboxes_of(team.project_id) == []
