"""The per-user and per-project shares of execution slots (exec_shares.py), counted across
server processes (core/holds.py): here two processes' places on one database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.errors import ResourceExhausted
from server.core.holds import Holds
from server.core.limits import DefaultLimits
from server.sandbox.exec_shares import ExecShares
from tests.support.holds import two_processes_places
from tests.support.waiting import eventually

LEASE_SECONDS = 1.5


@pytest.fixture
async def two_processes(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[Holds, Holds]]:
    async with two_processes_places(sessions, LEASE_SECONDS) as places:
        yield places


def shares(holds: Holds, per_user: int, per_project: int) -> ExecShares:
    limits = DefaultLimits(Settings(user_max_concurrent_execs=per_user))
    return ExecShares(limits, per_project, holds)


async def test_a_user_past_their_share_is_refused_on_every_process(
    two_processes: tuple[Holds, Holds],
) -> None:
    a, b = (shares(holds, per_user=2, per_project=10) for holds in two_processes)
    alice, bob, project = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    held = [await a.take(alice, project), await b.take(alice, project)]
    for gate in (a, b):
        with pytest.raises(ResourceExhausted) as refused:
            await gate.take(alice, uuid.uuid4())
        assert refused.value.reason == "USER_EXEC_LIMIT_REACHED"
        assert refused.value.metadata["quota"] == "max_concurrent_execs"
        [violation] = refused.value.quota_violations
        assert violation.subject == f"user:{alice}"
        assert violation.description.startswith("max_concurrent_execs: 2 of 2")
    await b.take(bob, project)  # Bob still runs

    held[0].release()
    held[0].release()  # a second release changes nothing
    # The place given back counts no more, at once, on the process that held it...
    again = await a.take(alice, project)
    with pytest.raises(ResourceExhausted):
        await a.take(alice, project)
    again.release()

    # ... and on the others once its row is gone.
    async def free_on_b() -> bool:
        try:
            (await b.take(alice, project)).release()
        except ResourceExhausted:
            return False
        return True

    await eventually(free_on_b, timeout=10)


async def test_a_project_past_its_share_is_refused(two_processes: tuple[Holds, Holds]) -> None:
    a, b = (shares(holds, per_user=10, per_project=2) for holds in two_processes)
    project, other = uuid.uuid4(), uuid.uuid4()
    user = uuid.uuid4()
    first = await a.take(user, project)
    await b.take(uuid.uuid4(), project)
    with pytest.raises(ResourceExhausted) as refused:
        await a.take(user, project)
    assert refused.value.reason == "PROJECT_EXEC_LIMIT_REACHED"
    assert refused.value.quota_violations[0].subject == f"projects/{project}"
    # The user's place taken before the project refused was given back.
    assert len([await a.take(user, uuid.uuid4()) for _ in range(9)]) == 9
    await b.take(uuid.uuid4(), other)
    first.release()
    await a.take(uuid.uuid4(), project)


async def test_the_places_of_a_process_that_died_stop_counting(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    dead, alive = Holds(sessions, LEASE_SECONDS), Holds(sessions, LEASE_SECONDS)
    await dead.start()
    await alive.start()
    try:
        a, b = shares(dead, per_user=1, per_project=10), shares(alive, per_user=1, per_project=10)
        user = uuid.uuid4()
        await a.take(user, uuid.uuid4())
        with pytest.raises(ResourceExhausted):
            await b.take(user, uuid.uuid4())
        # The process dies: no heartbeat, no goodbye. Its lease runs out.
        await dead._tasks.stop()

        async def freed() -> bool:
            try:
                await b.take(user, uuid.uuid4())
            except ResourceExhausted:
                return False
            return True

        await eventually(freed, timeout=10)
    finally:
        await alive.stop()
