"""Places counted across every server process: each open stream of a user, each running
execution of a user and of a project holds one, so a share (`max_concurrent_streams`, …) is
the user's across the deployment, however many processes serve them.

A place is a `concurrency_holds` row owned by the process holding it; taking one is one
round trip (`forge_take_hold`, migrations 0017 and 0021: under a lock on the kind and
subject, sum the places of live processes and add one below the limit). A trigger keeps
each process's number of places per kind and subject (`concurrency_counts`) as rows come
and go, so a take costs the same with 2,000 places held as with none.

A process is live while its `server_processes` lease runs: it renews it every third of
`process_lease_seconds`, so the places of a process that died stop counting within one
lease, and the next heartbeat of any process deletes them. Giving a place back deletes its
row in the background; a delete that failed (the database was away) is caught up by a later
heartbeat, which deletes the rows of this process it no longer holds.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.ids import new_id, process_owner_id
from server.core.tasks import TaskSupervisor
from server.db.limit_models import ConcurrencyHoldRow
from server.db.reads import DirectRead, DirectWrite

log = logging.getLogger(__name__)

_TAKE = DirectRead(
    select(
        func.forge_take_hold(
            bindparam("id"),
            bindparam("kind"),
            bindparam("subject"),
            bindparam("owner"),
            bindparam("limit"),
            bindparam("given_back"),
        ).label("used")
    )
)
_GIVE_BACK = DirectWrite(delete(ConcurrencyHoldRow).where(ConcurrencyHoldRow.id == bindparam("id")))
_RENEW = text(
    """
    INSERT INTO server_processes (owner, lease_expires_at)
    VALUES (:owner, now() + make_interval(secs => :lease_seconds))
    ON CONFLICT (owner) DO UPDATE SET lease_expires_at = EXCLUDED.lease_expires_at
    """
)
# Only rows older than a take can last: a place taken while the heartbeat runs is not in
# its list of those held, yet must stay.
_FORGET_GIVEN_BACK = text(
    """
    DELETE FROM concurrency_holds
    WHERE owner = :owner AND NOT (id = ANY(:held)) AND create_time < now() - interval '1 minute'
    """
)
_DELETE = text("DELETE FROM concurrency_holds WHERE id = ANY(:ids)")
_FORGET_THE_DEAD = text(
    """
    DELETE FROM concurrency_holds AS h WHERE NOT EXISTS (
        SELECT 1 FROM server_processes AS p
        WHERE p.owner = h.owner AND p.lease_expires_at > now()
    )
    """
)
_FORGET_OLD_PROCESSES = text(
    "DELETE FROM server_processes WHERE lease_expires_at < now() - interval '1 day'"
)
# The counts of processes that hold nothing and are gone (a live process keeps its rows).
_FORGET_EMPTY_COUNTS = text(
    """
    DELETE FROM concurrency_counts AS c WHERE c.used <= 0 AND NOT EXISTS (
        SELECT 1 FROM server_processes AS p
        WHERE p.owner = c.owner AND p.lease_expires_at > now()
    )
    """
)
_LEAVE = text("DELETE FROM server_processes WHERE owner = :owner")
_LEAVE_HOLDS = text("DELETE FROM concurrency_holds WHERE owner = :owner")


@dataclass(frozen=True)
class Refused:
    """The place was not taken: `used` places are held already."""

    used: int


class Hold:
    """A place held; `release` gives it back (once; later calls do nothing)."""

    __slots__ = ("_holds", "id")

    def __init__(self, holds: Holds, hold_id: uuid.UUID) -> None:
        self._holds: Holds | None = holds
        self.id = hold_id

    def release(self) -> None:
        holds, self._holds = self._holds, None
        if holds is not None:
            holds._give_back(self.id)


class Holds:
    """This process's places and its lease; a Background (start, stop)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], lease_seconds: float) -> None:
        self._sessions = sessions
        self._lease_seconds = lease_seconds
        self.owner = process_owner_id()
        self._held: set[uuid.UUID] = set()
        # Given back, their rows being deleted: they count no more.
        self._given_back: set[uuid.UUID] = set()
        self._tasks = TaskSupervisor("holds")

    async def take(self, kind: str, subject: uuid.UUID, limit: int) -> Hold | Refused:
        """A place of `kind` for `subject` (a user or project) if fewer than `limit` are
        held across every process; else how many are."""
        hold_id = new_id()
        self._held.add(hold_id)  # before the row exists: a heartbeat must not delete it
        try:
            row = await _TAKE.first(
                self._sessions,
                id=hold_id,
                kind=kind,
                subject=subject,
                owner=self.owner,
                limit=limit,
                given_back=list(self._given_back),
            )
        except BaseException:
            # Perhaps taken: the heartbeat deletes the row, should it exist.
            self._held.discard(hold_id)
            raise
        used = int(row["used"])
        if used >= 0:
            self._held.discard(hold_id)
            return Refused(used)
        return Hold(self, hold_id)

    async def start(self) -> None:
        await self._heartbeat()
        self._tasks.every("heartbeat", self._lease_seconds / 3, self._heartbeat_logged)

    async def stop(self) -> None:
        """Stops the heartbeat and gives every place and the lease back."""
        await self._tasks.stop()
        with contextlib.suppress(Exception):  # they expire with the lease
            async with self._sessions() as db:
                await db.execute(_LEAVE_HOLDS, {"owner": self.owner})
                await db.execute(_LEAVE, {"owner": self.owner})
                await db.commit()

    def _give_back(self, hold_id: uuid.UUID) -> None:
        self._held.discard(hold_id)
        self._given_back.add(hold_id)
        self._tasks.spawn(self._delete(hold_id), name="give-back")

    async def _delete(self, hold_id: uuid.UUID) -> None:
        try:
            await _GIVE_BACK.execute(self._sessions, id=hold_id)
        except Exception as error:  # a later heartbeat deletes it
            log.warning("could not give a concurrency place back", extra={"error": str(error)})
        else:
            self._given_back.discard(hold_id)

    async def _heartbeat_logged(self) -> None:
        try:
            await self._heartbeat()
        except Exception as error:
            log.warning("concurrency heartbeat failed", extra={"error": str(error)})

    async def _heartbeat(self) -> None:
        held = list(self._held)
        given_back = list(self._given_back)
        async with self._sessions() as db:
            await db.execute(_RENEW, {"owner": self.owner, "lease_seconds": self._lease_seconds})
            await db.execute(_FORGET_GIVEN_BACK, {"owner": self.owner, "held": held})
            await db.execute(_DELETE, {"ids": given_back})
            await db.execute(_FORGET_THE_DEAD)
            await db.execute(_FORGET_OLD_PROCESSES)
            await db.execute(_FORGET_EMPTY_COUNTS)
            await db.commit()
        self._given_back.difference_update(given_back)
