"""Places counted across processes (server/core/holds.py) are summed from per-process counts
that a trigger keeps (migration 0021): whichever way places come and go — taken, given
back, given back all at once when a process stops, deleted by another process once their
owner's lease ran out — the counts stay equal to the places held, and a take refuses at
the limit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from server.core.holds import Hold, Holds, Refused
from server.db.embedded import EmbeddedPostgres
from server.db.engine import dispose, make_engine
from server.db.migrate import upgrade_database
from tests.support.holds import two_processes_places
from tests.support.waiting import eventually

KIND = "stream"
LEASE_SECONDS = 30.0


@pytest.fixture
async def engine(postgres: EmbeddedPostgres) -> AsyncIterator[AsyncEngine]:
    url = await postgres.ensure_database(f"forge_holds_{uuid.uuid4().hex[:8]}")
    await upgrade_database(url)
    engine = make_engine(url, read_lane=2)
    yield engine
    await dispose(engine)


@pytest.fixture
async def two_processes(engine: AsyncEngine) -> AsyncIterator[tuple[Holds, Holds]]:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with two_processes_places(sessions, LEASE_SECONDS) as places:
        yield places


async def take(holds: Holds, subject: uuid.UUID, limit: int) -> Hold:
    taken = await holds.take(KIND, subject, limit)
    assert isinstance(taken, Hold), f"refused with {taken}"
    return taken


async def counts_and_rows(engine: AsyncEngine, subject: uuid.UUID) -> tuple[int, int]:
    """Places of `subject` as the counts have them, and as rows."""
    async with engine.connect() as db:
        counted = await db.scalar(
            text("SELECT coalesce(sum(used), 0) FROM concurrency_counts WHERE subject = :s"),
            {"s": subject},
        )
        rows = await db.scalar(
            text("SELECT count(*) FROM concurrency_holds WHERE subject = :s"), {"s": subject}
        )
    return int(counted or 0), int(rows or 0)


async def test_counts_follow_the_places_and_takes_refuse_at_the_limit(
    engine: AsyncEngine, two_processes: tuple[Holds, Holds]
) -> None:
    first, second = two_processes
    subject, other = uuid.uuid4(), uuid.uuid4()
    mine = [await take(first, subject, 5) for _ in range(3)]
    theirs = [await take(second, subject, 5) for _ in range(2)]
    await take(second, other, 5)  # another subject's places are its own
    assert await counts_and_rows(engine, subject) == (5, 5)

    refused = await first.take(KIND, subject, 5)
    assert refused == Refused(5)

    # A place given back counts no more, at once (its row is deleted in the background).
    mine.pop().release()
    again = await first.take(KIND, subject, 5)
    assert isinstance(again, Hold)

    async def settled() -> bool:
        return await counts_and_rows(engine, subject) == (5, 5)

    await eventually(settled, timeout=10)

    # A process that stops gives its places back all at once.
    await second.stop()
    assert await counts_and_rows(engine, subject) == (3, 3)
    assert await counts_and_rows(engine, other) == (0, 0)
    for _ in range(2):
        theirs.append(await take(first, subject, 5))
    assert await first.take(KIND, subject, 5) == Refused(5)
    await first.stop()
    assert await counts_and_rows(engine, subject) == (0, 0)


async def test_the_places_of_a_process_whose_lease_ran_out_stop_counting(
    engine: AsyncEngine, two_processes: tuple[Holds, Holds]
) -> None:
    gone, live = two_processes
    subject = uuid.uuid4()
    for _ in range(2):
        await take(gone, subject, 2)
    assert await live.take(KIND, subject, 2) == Refused(2)

    # The process stalls past its lease (it never renews it again).
    await gone._tasks.stop()
    async with engine.begin() as db:
        await db.execute(
            text(
                "UPDATE server_processes SET lease_expires_at = now() - interval '1 second' "
                "WHERE owner = :owner"
            ),
            {"owner": gone.owner},
        )
    await take(live, subject, 2)
    assert await counts_and_rows(engine, subject) == (3, 3)

    # The next heartbeat of a live process deletes the dead one's places and its counts.
    await live._heartbeat()
    assert await counts_and_rows(engine, subject) == (1, 1)
    async with engine.connect() as db:
        left = await db.scalar(
            text("SELECT count(*) FROM concurrency_counts WHERE owner = :owner"),
            {"owner": gone.owner},
        )
    assert left == 0
