"""The sandbox domain twice on one database and one engine, in one namespace: one holds the
Docker host's duties, the other serves sandboxes all the same; a process's executions stay
its own while it renews their lease; stopping the holder hands the duties over at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.sandbox_models import SandboxExecution, SandboxHostRow, SandboxRow
from server.sandbox.limits import LimitRequest
from server.sandbox.parts import SandboxParts, assemble
from server.sandbox.views import ExecExited, ExitReason
from tests.sandbox.conftest import sandbox_settings
from tests.sandbox.support import Team, namespace, params, shell, stdout_until
from tests.support.waiting import eventually

LEASE_SECONDS = 1.0


@pytest.fixture
async def pair(
    docker_engine: None,
    sandbox_database: str,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> AsyncIterator[tuple[SandboxParts, SandboxParts]]:
    settings = sandbox_settings(
        sandbox_database,
        tmp_path,
        sandbox_namespace=namespace("duties"),  # (so the run's clean-up removes its containers)
        sandbox_pool_size=0,
        sandbox_host_lease_seconds=LEASE_SECONDS,
    )
    first, second = assemble(settings, sessions), assemble(settings, sessions)
    await first.connection.start()
    await second.connection.start()
    try:
        yield first, second
    finally:
        await second.connection.stop()
        await first.connection.stop()


async def test_one_holder_both_serve_and_stop_hands_over(
    pair: tuple[SandboxParts, SandboxParts],
    sessions: async_sessionmaker[AsyncSession],
    team: Team,
) -> None:
    first, second = pair
    assert first.connection.duties is not None
    assert second.connection.duties is not None
    assert first.connection.duties.held
    assert not second.connection.duties.held

    # A sandbox made by the non-holder records the host, and either side runs commands in it.
    sandbox = await second.lifecycle.create(team.editor, team.project_id, "python", LimitRequest())
    host_id = first.engine.answering()[0].host_id
    assert host_id == second.engine.answering()[0].host_id
    async with sessions() as db:
        row = await db.get(SandboxRow, uuid.UUID(sandbox.id))
        assert row is not None
        assert row.host_id == host_id
    assert (await shell(first, team.editor, sandbox.id, "echo one")).stdout == b"one\n"

    # A long execution relayed by the non-holder outlives several leases: renewed, never
    # taken for a dead process's by the holder's reconciliation.
    execution = await second.executions.start_exec(
        team.editor, sandbox.id, params(script="echo go; sleep 6", timeout=60), None
    )
    events, _ = await stdout_until(execution, b"go")

    async def lease_of_execution() -> SandboxExecution | None:
        async with sessions() as db:
            query = select(SandboxExecution).where(SandboxExecution.id == execution.execution_id)
            found = (await db.execute(query.execution_options(populate_existing=True))).scalar()
        renewed = timedelta(seconds=3 * LEASE_SECONDS)
        if found and found.lease_expires_at and found.lease_expires_at > found.start_time + renewed:
            return found
        return None

    renewed = await eventually(lease_of_execution, timeout=20)
    assert renewed.state == "running"

    # Stopping the holder gives the lease up: the other takes the duties at its next beat.
    await first.connection.stop()

    async def second_holds() -> bool:
        assert second.connection.duties is not None
        return second.connection.duties.held

    await eventually(second_holds, timeout=10 * LEASE_SECONDS)
    async with sessions() as db:
        host = await db.get(SandboxHostRow, host_id, populate_existing=True)
    assert host is not None
    assert host.lease_token >= 2

    # The execution relayed by the new holder was never taken for lost, and ends as it should.
    rest = [event async for event in events]
    exited = rest[-1]
    assert isinstance(exited, ExecExited)
    assert exited.reason is ExitReason.EXITED
    assert exited.exit_code == 0

    async def recorded() -> str | None:
        async with sessions() as db:
            row = await db.get(SandboxExecution, execution.execution_id, populate_existing=True)
        return row.state if row is not None and row.state != "running" else None

    # Recorded a moment after its last event.
    assert await eventually(recorded, timeout=10) == "finished"
