"""Sandbox lifecycle against real containers: warm and cold starts, pause and resume, delete,
RunCode's throwaway sandboxes, the access rule, and rows that mirror containers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from server.sandbox import store
from server.sandbox.backend import LABEL_SANDBOX_ID
from server.sandbox.failures import BACKEND_UNAVAILABLE
from server.sandbox.launcher import RunCodeParams
from server.sandbox.limits import LimitRequest
from server.sandbox.parts import SandboxParts, assemble
from server.sandbox.views import ExitReason, SandboxState
from tests.conftest import make_settings
from tests.sandbox.support import (
    Team,
    collect,
    container_ids,
    managed_containers,
    page_of,
    params,
    shell,
)
from tests.support.waiting import eventually

MiB = 1024 * 1024


async def test_warm_create_is_faster_than_cold(sandboxes: SandboxParts, team: Team) -> None:
    await sandboxes.engine.answering()[0].pool.wait_ready(timeout=60)
    warm = await sandboxes.lifecycle.create(team.editor, team.project_id, "python", LimitRequest())
    # Limits other than the defaults cannot come from the pool: a cold start.
    cold = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest(memory_bytes=300 * MiB)
    )
    assert warm.warm
    assert not cold.warm
    assert warm.state is SandboxState.RUNNING
    assert cold.state is SandboxState.RUNNING
    assert cold.limits.memory_bytes == 300 * MiB
    assert warm.start_duration is not None
    assert cold.start_duration is not None
    ratio = cold.start_duration / warm.start_duration
    print(f"\nstart: warm {warm.start_duration}, cold {cold.start_duration}, ratio {ratio:.1f}")
    assert ratio > 2
    # Both work.
    for sandbox in (warm, cold):
        ran = await shell(sandboxes, team.editor, sandbox.id, "echo ok")
        assert ran.stdout == b"ok\n"
    # The pool refills in the background.
    await sandboxes.engine.answering()[0].pool.wait_ready(timeout=60)


async def test_pause_refuses_exec_and_resume_restores_it(
    sandboxes: SandboxParts, team: Team
) -> None:
    sandbox = await sandboxes.lifecycle.create(team.editor, team.project_id, "node", LimitRequest())
    await sandboxes.files.write(team.editor, sandbox.id, "notes/keep.txt", b"survives", 0)
    await shell(sandboxes, team.editor, sandbox.id, "echo in-memory > /workspace/made-by-exec")

    paused = await sandboxes.lifecycle.pause(team.editor, sandbox.id)
    assert paused.state is SandboxState.PAUSED
    with pytest.raises(FailedPrecondition) as refused:
        await sandboxes.executions.start_exec(team.editor, sandbox.id, params(script="true"), None)
    assert refused.value.reason == "SANDBOX_PAUSED"
    # Reading files works while paused.
    _, content = await sandboxes.files.read(team.viewer, sandbox.id, "notes/keep.txt")
    assert content == b"survives"
    assert (await sandboxes.lifecycle.pause(team.editor, sandbox.id)).state is SandboxState.PAUSED

    resumed = await sandboxes.lifecycle.resume(team.editor, sandbox.id)
    assert resumed.state is SandboxState.RUNNING
    ran = await shell(sandboxes, team.editor, sandbox.id, "cat notes/keep.txt made-by-exec")
    assert ran.stdout == b"survivesin-memory\n"


async def test_delete_removes_the_container_and_keeps_the_row(
    sandboxes: SandboxParts, team: Team
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    before = await container_ids(sandboxes.settings.sandbox_namespace)
    await sandboxes.lifecycle.delete(team.editor, sandbox.id)
    gone = await sandboxes.lifecycle.get(team.viewer, sandbox.id)
    assert gone.state is SandboxState.DELETED
    assert gone.state_message == "deleted"
    after = await container_ids(sandboxes.settings.sandbox_namespace)
    assert len(before - after) == 1
    with pytest.raises(FailedPrecondition) as refused:
        await sandboxes.executions.start_exec(team.editor, sandbox.id, params(script="true"), None)
    assert refused.value.reason == "SANDBOX_NOT_RUNNING"
    await sandboxes.lifecycle.delete(team.editor, sandbox.id)  # deleting again is fine
    listed = await sandboxes.lifecycle.list(team.viewer, team.project_id, None, page_of(100))
    assert sandbox.id not in [s.id for s in listed.items]
    deleted = await sandboxes.lifecycle.list(
        team.viewer, team.project_id, SandboxState.DELETED, page_of(100)
    )
    assert [s.id for s in deleted.items] == [sandbox.id]


async def test_list_pages_newest_first(sandboxes: SandboxParts, team: Team) -> None:
    await sandboxes.engine.answering()[0].pool.wait_ready(timeout=60)
    # Warm, cold, warm: the warm ones' ids were made with their containers, before the
    # cold one's, yet the list follows creation.
    made = [
        await sandboxes.lifecycle.create(team.editor, team.project_id, "python", LimitRequest()),
        await sandboxes.lifecycle.create(
            team.editor, team.project_id, "python", LimitRequest(pids=60)
        ),
        await sandboxes.lifecycle.create(team.editor, team.project_id, "python", LimitRequest()),
    ]
    assert [s.warm for s in made] == [True, False, True]
    first = await sandboxes.lifecycle.list(team.viewer, team.project_id, None, page_of(2))
    assert [s.id for s in first.items] == [made[2].id, made[1].id]
    assert first.next_key is not None
    second = await sandboxes.lifecycle.list(
        team.viewer, team.project_id, None, page_of(2, first.next_key)
    )
    assert [s.id for s in second.items] == [made[0].id]
    assert second.next_key is None


async def test_access_follows_project_roles(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    await sandboxes.files.write(team.editor, sandbox.id, "readme.md", b"hello", 0)

    hidden_attempts: list[Coroutine[Any, Any, object]] = [
        sandboxes.lifecycle.get(team.stranger, sandbox.id),
        sandboxes.executions.start_exec(team.stranger, sandbox.id, params(script="true"), None),
        sandboxes.files.read(team.stranger, sandbox.id, "readme.md"),
        sandboxes.lifecycle.delete(team.stranger, sandbox.id),
        sandboxes.lifecycle.get(team.editor, str(uuid.uuid4())),
    ]
    for attempt in hidden_attempts:
        with pytest.raises(NotFound) as hidden:
            await attempt
        assert hidden.value.reason == "SANDBOX_NOT_FOUND"
    with pytest.raises(NotFound):
        await sandboxes.lifecycle.create(team.stranger, team.project_id, "python", LimitRequest())

    # Viewers read and list, and nothing more.
    assert (await sandboxes.lifecycle.get(team.viewer, sandbox.id)).id == sandbox.id
    _, content = await sandboxes.files.read(team.viewer, sandbox.id, "readme.md")
    assert content == b"hello"
    listing = await sandboxes.files.list(team.viewer, sandbox.id, "", False, page_of(100))
    assert [f.path for f in listing.items] == ["/workspace/readme.md"]
    denied_attempts: list[Coroutine[Any, Any, object]] = [
        sandboxes.executions.start_exec(team.viewer, sandbox.id, params(script="true"), None),
        sandboxes.files.write(team.viewer, sandbox.id, "x", b"", 0),
        sandboxes.lifecycle.pause(team.viewer, sandbox.id),
        sandboxes.lifecycle.delete(team.viewer, sandbox.id),
        sandboxes.lifecycle.create(team.viewer, team.project_id, "python", LimitRequest()),
    ]
    for attempt in denied_attempts:
        with pytest.raises(PermissionDenied) as denied:
            await attempt
        assert denied.value.reason == "PROJECT_ROLE_TOO_LOW"
    # Owners can do what editors can.
    ran = await shell(sandboxes, team.owner, sandbox.id, "echo owner")
    assert ran.stdout == b"owner\n"


async def test_create_validates_its_input(sandboxes: SandboxParts, team: Team) -> None:
    with pytest.raises(InvalidArgument) as failure:
        await sandboxes.lifecycle.create(team.editor, team.project_id, "cobol", LimitRequest())
    assert [v.field for v in failure.value.violations] == ["sandbox.runtime"]
    with pytest.raises(InvalidArgument) as failure:
        await sandboxes.lifecycle.create(
            team.editor,
            team.project_id,
            "python",
            LimitRequest(memory_bytes=64 * 1024 * MiB, pids=1, exec_timeout=timedelta(days=2)),
        )
    assert {v.field for v in failure.value.violations} == {
        "sandbox.limits.memory_bytes",
        "sandbox.limits.pids",
        "sandbox.limits.exec_timeout",
    }


@pytest.mark.parametrize(
    ("language", "code", "expected"),
    [
        ("python", "import sys\nprint('hello from python', sys.argv[0])", b"hello from python"),
        ("javascript", "console.log('hello from ' + 'node')", b"hello from node"),
        # Too large to travel in the command: written through the archive API instead.
        ("python", "#" + "x" * 70_000 + "\nprint('hello from a big file')", b"from a big file"),
    ],
)
async def test_run_code_in_a_throwaway_sandbox(
    sandboxes: SandboxParts,
    team: Team,
    sessions: async_sessionmaker[AsyncSession],
    language: str,
    code: str,
    expected: bytes,
) -> None:
    execution = await sandboxes.executions.start_run_code(
        team.editor,
        team.project_id,
        RunCodeParams(language=language, code=code, stdin=b"", env={}, timeout=None),
        None,
    )
    ran = await collect(execution)
    assert ran.exit.exit_code == 0
    assert ran.exit.reason is ExitReason.EXITED
    assert expected in ran.stdout
    sandbox_id = ran.started.sandbox_id

    async def destroyed() -> bool:
        async with sessions() as db:
            row = await store.get(db, uuid.UUID(sandbox_id))
        if row is None or row.state != "deleted":
            return False
        containers = await asyncio.to_thread(
            managed_containers, sandboxes.settings.sandbox_namespace
        )
        return sandbox_id not in [_sandbox_label(c) for c in containers]

    await eventually(destroyed, timeout=10)


def _sandbox_label(container: dict[str, object]) -> str:
    labels = container.get("Labels")
    return str(labels.get(LABEL_SANDBOX_ID, "")) if isinstance(labels, dict) else ""


async def test_run_code_validates(sandboxes: SandboxParts, team: Team) -> None:
    with pytest.raises(InvalidArgument) as failure:
        await sandboxes.executions.start_run_code(
            team.editor,
            team.project_id,
            RunCodeParams(language="brainfuck", code="", stdin=b"", env={}, timeout=None),
            None,
        )
    assert {v.field for v in failure.value.violations} == {"language", "code"}


async def test_quota_of_live_sandboxes_per_project(
    sandboxes: SandboxParts, team: Team, sessions: async_sessionmaker[AsyncSession]
) -> None:
    limit = sandboxes.settings.sandbox_max_per_project
    # Fill the project up with rows only (the containers are not what is counted).
    async with sessions() as db:
        from server.db.sandbox_models import SandboxRow

        for _ in range(limit):
            db.add(
                SandboxRow(
                    project_id=uuid.UUID(team.project_id),
                    runtime="python",
                    image="none",
                    state="running",
                    limits={},
                )
            )
        await db.commit()
    with pytest.raises(ResourceExhausted) as refused:
        await sandboxes.lifecycle.create(team.editor, team.project_id, "python", LimitRequest())
    assert refused.value.reason == "SANDBOX_QUOTA_EXCEEDED"


async def test_reaper_destroys_idle_and_old_sandboxes(
    sandboxes: SandboxParts, team: Team, sessions: async_sessionmaker[AsyncSession]
) -> None:
    idle = await sandboxes.lifecycle.create(team.editor, team.project_id, "python", LimitRequest())
    busy = await sandboxes.lifecycle.create(team.editor, team.project_id, "python", LimitRequest())
    assert idle.expire_time is not None
    assert sandboxes.connection.reaper is not None
    # An hour and a bit from now, only `busy` has been used in the meantime.
    later = idle.last_active_time + sandboxes.lifecycle.lifetimes.idle_ttl + timedelta(minutes=1)
    async with sessions() as db:
        await store.touch(db, uuid.UUID(busy.id), later)
        await db.commit()
    await sandboxes.connection.reaper.tick(now=later)
    reaped = await sandboxes.lifecycle.get(team.viewer, idle.id)
    assert reaped.state is SandboxState.DELETED
    assert reaped.state_message == "idle for 1h"
    assert (await sandboxes.lifecycle.get(team.viewer, busy.id)).state is SandboxState.RUNNING
    with pytest.raises(FailedPrecondition):
        await sandboxes.executions.start_exec(team.editor, idle.id, params(script="true"), None)

    much_later = (
        busy.create_time + sandboxes.lifecycle.lifetimes.max_lifetime + timedelta(minutes=1)
    )
    async with sessions() as db:
        await store.touch(db, uuid.UUID(busy.id), much_later)
        await db.commit()
    await sandboxes.connection.reaper.tick(now=much_later)
    old = await sandboxes.lifecycle.get(team.viewer, busy.id)
    assert old.state is SandboxState.DELETED
    assert old.state_message == "reached the maximum lifetime of 24h"


async def test_container_removed_behind_our_back_is_marked_lost(
    sandboxes: SandboxParts, team: Team
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    ran = await shell(sandboxes, team.editor, sandbox.id, "hostname")
    assert ran.stdout == b"sandbox\n"
    rows = await asyncio.to_thread(managed_containers, sandboxes.settings.sandbox_namespace)
    mine = [r for r in rows if _sandbox_label(r) == sandbox.id]
    import docker

    client = docker.from_env()
    try:
        await asyncio.to_thread(client.api.remove_container, str(mine[0]["Id"]), force=True, v=True)
    finally:
        client.close()
    with pytest.raises(FailedPrecondition) as failure:
        await shell(sandboxes, team.editor, sandbox.id, "true")
    assert failure.value.reason == "SANDBOX_LOST"
    lost = await sandboxes.lifecycle.get(team.viewer, sandbox.id)
    assert lost.state is SandboxState.LOST


async def test_deleting_the_project_ends_its_sandboxes(
    sandboxes: SandboxParts, team: Team, sessions: async_sessionmaker[AsyncSession]
) -> None:
    from server.core.hooks import ProjectDeletionHooks
    from server.db.models import Project

    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    hooks = ProjectDeletionHooks()
    hooks.register(sandboxes.lifecycle.project_deletion_hook)
    pid = uuid.UUID(team.project_id)
    async with sessions() as db:
        after = await hooks.run_in_transaction(db, pid)
        project = await db.get(Project, pid)
        await db.delete(project)
        await db.commit()
    await hooks.run_after_commit(after)
    remaining = await asyncio.to_thread(managed_containers, sandboxes.settings.sandbox_namespace)
    assert sandbox.id not in [_sandbox_label(r) for r in remaining]


async def test_without_docker_everything_is_unavailable(
    sessions: async_sessionmaker[AsyncSession], team: Team, tmp_path: Path
) -> None:
    settings = make_settings(
        "postgresql://unused/unused",
        tmp_path,
        docker_host="unix:///nonexistent/docker.sock",
        sandbox_backend_retry_seconds=3600,
    )
    offline = assemble(settings, sessions)
    changes: list[bool] = []

    async def record(available: bool) -> None:
        changes.append(available)

    await offline.connection.start()
    try:
        offline.connection.follow(record)
        assert not offline.connection.available
        for attempt in (
            offline.lifecycle.create(team.editor, team.project_id, "python", LimitRequest()),
            offline.lifecycle.get(team.editor, str(uuid.uuid4())),
            offline.executions.start_exec(
                team.editor, str(uuid.uuid4()), params(script="true"), None
            ),
            offline.files.read(team.editor, str(uuid.uuid4()), "README"),
        ):
            with pytest.raises(Unavailable) as failure:
                await attempt
            assert failure.value.reason == BACKEND_UNAVAILABLE
        with pytest.raises(Unavailable):
            await offline.lifecycle.list_runtimes(page_of(10))
        await eventually(lambda: _value(changes == [False]), timeout=5)
    finally:
        await offline.connection.stop()


async def _value(value: bool) -> bool:
    return value
