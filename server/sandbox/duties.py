"""A Docker host's duties, run by one process at a time, and every process's heartbeat.

Every server process sharing a Docker engine (and a namespace on it) serves any of its
sandboxes; but reconciliation, the warm pool's refill, following container ends and the
reaper are done for the host by the one process holding its lease (leases.py). The heartbeat,
every third of the lease, renews the leases of the executions this process relays and then
the host's lease, or claims it when nobody holds it. Taking over reconciles first (what the
previous holder or a dead process left), then starts the warm pool and follows container
ends; should the engine not answer then, the lease is kept and reconciliation tried again on
each heartbeat (meanwhile the holder may find the host down: `host_down`). The reaper ticks
(host_connection.py) only while the duties are held. A process that loses the lease (taken
over after the database did not answer for a whole lease) stops them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.tasks import TaskSupervisor
from server.sandbox import leases, pool_store, store
from server.sandbox.backend import BackendError, SandboxBackend
from server.sandbox.pool import WarmPool
from server.sandbox.reconcile import container_ended, orphaned_executions, reconcile_on_start

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostIdentity:
    """Which host, which namespace on it, and which process this is."""

    host_id: str
    namespace: str
    owner: str
    lease_seconds: float


class HostDuties:
    def __init__(
        self,
        identity: HostIdentity,
        sessions: async_sessionmaker[AsyncSession],
        backend: SandboxBackend,
        pool: WarmPool,
    ) -> None:
        self._identity = identity
        self._sessions = sessions
        self._backend = backend
        self._pool = pool
        self._token: int | None = None
        self._reconciled = False
        self._valid_until = 0.0
        self._heartbeat = TaskSupervisor("sandbox-heartbeat")
        self._held = TaskSupervisor("sandbox-duties")

    @property
    def held(self) -> bool:
        """Whether this process runs the host's duties now."""
        return self._token is not None

    async def start(self) -> None:
        """Claims the duties if they are free (reconciling before this returns, so a single
        process serves a reconciled host), then keeps the heartbeat going."""
        with contextlib.suppress(Exception):  # logged; the heartbeat tries again
            await self._beat_logged()
        interval = self._identity.lease_seconds / 3
        self._heartbeat.every("heartbeat", interval, self._beat)

    async def stop(self) -> None:
        """Stops the heartbeat and the duties, and gives the lease up so another process
        takes over at once."""
        await self._heartbeat.stop()
        token = self._token
        await self._give_up()
        if token is None:
            return
        try:
            async with self._sessions() as db:
                await leases.release_host(db, self._identity.host_id, self._identity.owner, token)
                await db.commit()
        except Exception as error:  # it expires on its own
            log.warning("could not release the sandbox host lease", extra={"error": str(error)})

    async def _beat_logged(self) -> None:
        try:
            await self._beat()
        except Exception:
            log.exception("sandbox heartbeat failed")
            raise

    async def _beat(self) -> None:
        me = self._identity
        held_before = self._token
        try:
            async with self._sessions() as db:
                await leases.renew_executions(db, me.owner, me.lease_seconds)
                if held_before is not None:
                    kept = await leases.renew_host(
                        db, me.host_id, me.owner, held_before, me.lease_seconds
                    )
                    token = held_before if kept else None
                else:
                    token = await leases.claim_host(db, me.host_id, me.owner, me.lease_seconds)
                await db.commit()
        except Exception:
            if self.held and time.monotonic() > self._valid_until:
                # The lease has expired meanwhile: another process may hold the duties.
                log.warning("sandbox host duties given up: the lease could not be renewed")
                await self._give_up()
            raise
        if token is not None:
            self._valid_until = time.monotonic() + me.lease_seconds
        if held_before is not None and token is None:
            log.warning("sandbox host duties taken over by another process")
            await self._give_up()
        elif held_before is None and token is not None:
            self._token = token
            log.info("sandbox host duties taken", extra={"host_id": me.host_id})
            await self._reconcile()
        elif token is not None and not self._reconciled:
            await self._reconcile()
        elif token is not None:
            await orphaned_executions(self._backend, self._sessions, me.host_id)

    async def _reconcile(self) -> None:
        """Makes the database and the engine agree, then serves the host's pool and follows
        its containers; if the engine does not answer, the next heartbeat tries again."""
        me = self._identity
        try:
            await reconcile_on_start(
                self._backend, self._sessions, me.namespace, me.host_id, self._pool.accepts
            )
        except BackendError as error:
            log.warning("sandbox reconciliation failed", extra={"error": str(error)})
            return
        self._reconciled = True
        self._pool.start()
        self._held.forever("container-ends", self._follow_container_ends)

    async def host_down(self, message: str) -> list[str]:
        """The engine has not answered for long: while holding the duties, every live sandbox
        on it is marked lost and its warm pool forgotten (ids of the sandboxes lost).
        Reconciliation runs again once it answers (removing what is left of them)."""
        if not self.held:
            return []
        async with self._sessions() as db:
            lost = await store.mark_host_down(db, self._identity.host_id, message)
            await pool_store.empty_host(db, self._identity.host_id)
            await db.commit()
        if self._reconciled:
            self._reconciled = False
            await self._held.stop()
            await self._pool.stop()
        return [str(sandbox_id) for sandbox_id in lost]

    async def _give_up(self) -> None:
        if self._token is None:
            return
        self._token = None
        self._reconciled = False
        await self._held.stop()
        await self._pool.stop()

    async def _follow_container_ends(self) -> None:
        """Marks sandboxes lost as their containers die; restarted (by `forever`) when the
        stream ends, and the reaper's sweep covers whatever happened in between."""
        ends = self._backend.container_ends(self._identity.namespace)
        async with contextlib.aclosing(ends):
            async for container_id in ends:
                try:
                    await container_ended(self._backend, self._sessions, container_id)
                except Exception:
                    log.exception("could not mark a sandbox lost")
