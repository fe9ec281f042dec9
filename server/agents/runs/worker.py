"""The runs this process owns: claiming, heartbeats, cancelling and handing over.

One asyncio task per owned run (its `RunLoop`). Runs are claimed on a timer and at once
when a `claimable` notification arrives (an approved run, or one handed over by a process
shutting down); leases are renewed every third of their length in one statement, and a
run whose renewal fails is stopped at once (another process owns it now). A `cancel`
notification cancels the run's task, which records the cancellation itself.

`stop()` (SIGTERM) hands the runs over rather than failing them: no more claims, every
loop stopped (the text it holds is flushed), the leases released (expired now) and
`claimable` notified, so another process resumes them without waiting for expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.runs import leases
from server.agents.runs.leases import Lease
from server.agents.runs.loop import RunLoop, StopReason
from server.agents.runs.notify import RunNotifications
from server.config import Settings
from server.core.ids import process_owner_id
from server.core.metrics import runs_driven
from server.core.tasks import TaskSupervisor, Ticker

log = logging.getLogger(__name__)

CLAIM_BATCH = 20
"""Runs claimed per claim."""
MAX_OWNED_RUNS = 500
"""Runs one process runs at once (more wait, queued, for another claim)."""
HANDOVER_SECONDS = 5.0
"""At stop, how long loops may take to flush what they hold."""

LoopFactory = Callable[[uuid.UUID, int], RunLoop]


@dataclass
class _Owned:
    lease: Lease
    loop: RunLoop
    task: asyncio.Task[None]


class RunWorker:
    """A Background component (start/stop); start it after RunNotifications and stop it
    before them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        notifications: RunNotifications,
        make_loop: LoopFactory,
    ) -> None:
        self._sessions = sessions
        self._notifications = notifications
        self._make_loop = make_loop
        self._lease_seconds = settings.run_lease_seconds
        self._claim_interval = settings.run_claim_interval_seconds
        self.owner = process_owner_id()
        self._owned: dict[uuid.UUID, _Owned] = {}
        self._timers = TaskSupervisor("run-leases")
        self._loops = TaskSupervisor("run")
        self._claimer: Ticker | None = None
        self._stopping = False
        self._renewed_at = time.monotonic()

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._notifications.add_control_listener(self._on_control)
        self._notifications.add_reconnect_listener(self._on_reconnect)
        self._claimer = self._timers.every("claim", self._claim_interval, self.claim)
        self._timers.every("renew", self._lease_seconds / 3, self.renew)
        self._claimer.poke()  # runs a dead process left behind
        runs_driven(lambda: len(self._owned))

    async def stop(self) -> None:
        self._stopping = True
        await self._timers.stop()
        owned = list(self._owned.values())
        for run in owned:
            self._stop_run(run, StopReason.HANDOVER)
        if owned:
            await asyncio.wait([run.task for run in owned], timeout=HANDOVER_SECONDS)
        await self._loops.stop()
        await self._release([run.lease for run in owned])

    @property
    def running(self) -> list[uuid.UUID]:
        return list(self._owned)

    def loop_of(self, run_id: uuid.UUID) -> RunLoop | None:
        owned = self._owned.get(run_id)
        return owned.loop if owned is not None else None

    # --- owning runs ---------------------------------------------------------------------------

    def adopt(self, lease: Lease) -> None:
        """Starts the loop of a run this process has just leased (StartRun, or a claim)."""
        if self._stopping:
            return  # the lease expires; another process claims the run
        previous = self._owned.get(lease.run_id)
        if previous is not None:
            # Our own lease had expired and we claimed the run again: the old loop is
            # fenced already; let it stop before the new one starts.
            self._stop_run(previous, StopReason.LEASE_LOST)
        loop = self._make_loop(lease.run_id, lease.token)
        task = self._loops.spawn(
            self._drive(loop, previous.task if previous else None), name=str(lease.run_id)
        )
        owned = _Owned(lease, loop, task)
        self._owned[lease.run_id] = owned
        task.add_done_callback(lambda _: self._forget(owned))

    async def _drive(self, loop: RunLoop, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await loop.run()

    def _forget(self, owned: _Owned) -> None:
        if self._owned.get(owned.lease.run_id) is owned:
            del self._owned[owned.lease.run_id]

    def _stop_run(self, owned: _Owned, reason: StopReason) -> None:
        if owned.loop.stop_reason is None:
            owned.loop.stop_reason = reason
        owned.task.cancel()

    # --- claims and heartbeats -----------------------------------------------------------------

    async def claim(self) -> None:
        room = min(CLAIM_BATCH, MAX_OWNED_RUNS - len(self._owned))
        if self._stopping or room <= 0:
            return
        async with self._sessions() as db, db.begin():
            claimed = await leases.claim_runs(db, self.owner, self._lease_seconds, room)
        for lease in claimed:
            log.info("claimed a run", extra={"run_id": str(lease.run_id), "lease": lease.token})
            self.adopt(lease)
        if len(claimed) == room and self._claimer is not None:
            self._claimer.poke()  # there may be more

    async def renew(self) -> None:
        owned = list(self._owned.values())
        if not owned:
            self._renewed_at = time.monotonic()
            return
        try:
            async with self._sessions() as db, db.begin():
                renewed = await leases.renew(
                    db, self.owner, self._lease_seconds, [run.lease for run in owned]
                )
        except Exception:
            # Without a database our leases will expire and others take the runs over: stop
            # ours before they do, so no tool runs twice.
            if time.monotonic() - self._renewed_at > self._lease_seconds * 0.9:
                for run in owned:
                    self._stop_run(run, StopReason.LEASE_LOST)
            raise
        self._renewed_at = time.monotonic()
        for run in owned:
            if run.lease.run_id not in renewed and not run.task.done():
                # Ended or waiting (its loop is finishing anyway), or taken over.
                self._stop_run(run, StopReason.LEASE_LOST)

    async def _release(self, held: list[Lease]) -> None:
        if not held:
            return
        try:
            async with self._sessions() as db, db.begin():
                released = await leases.release(db, held)
                for run_id in released:
                    await RunNotifications.send_control(db, "claimable", run_id)
        except Exception:
            log.exception("could not hand runs over; they resume when their leases expire")
            return
        if released:
            log.info("handed runs over", extra={"runs": len(released)})

    # --- notifications -------------------------------------------------------------------------

    def _on_control(self, kind: str, run_id: uuid.UUID) -> None:
        if kind == "cancel":
            owned = self._owned.get(run_id)
            if owned is not None and not owned.task.done():
                self._stop_run(owned, StopReason.CANCEL)
        elif kind == "claimable" and self._claimer is not None and not self._stopping:
            self._claimer.poke()

    def _on_reconnect(self) -> None:
        """Notifications sent while the listener was down are lost: look for runs to claim
        now; owned runs see a missed cancel at their next step (the cancel flag)."""
        if self._claimer is not None and not self._stopping:
            self._claimer.poke()
