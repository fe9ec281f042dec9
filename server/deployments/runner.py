"""Publishing deployments in the background, in the process that accepted them.

A deployment is QUEUED until one of this process's places is free (`deploy_concurrency`),
UPLOADING while its target publishes it (the uploaded-file count follows, written at most
a few times a second), then LIVE (the target's previous LIVE deployment becomes SUPERSEDED,
under a lock on the target so two switches never interleave) or FAILED with the target's
reason. While a process holds deployments in progress it says so every
`deploy_heartbeat_seconds`; a deployment whose process stopped saying so (killed, lost) is
marked FAILED (DEPLOYMENT_INTERRUPTED) by whichever process sweeps first. A server that
stops gracefully marks its own at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.errors import ForgeError
from server.core.tasks import TaskSupervisor
from server.deployments import store
from server.deployments.site import Site
from server.deployments.targets.base import DeployTarget, Handle, Phase, Progress, Published

log = logging.getLogger(__name__)

INTERRUPTED = "DEPLOYMENT_INTERRUPTED"
FAILED = "DEPLOYMENT_FAILED"
PROGRESS_WRITE_SECONDS = 0.5


class DeploymentRunner:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._tasks = TaskSupervisor("deployments")
        self._slots = asyncio.Semaphore(settings.deploy_concurrency)
        self._held: set[uuid.UUID] = set()

    async def start(self) -> None:
        self._tasks.every("heartbeat", self._settings.deploy_heartbeat_seconds, self._beat)

    async def stop(self) -> None:
        await self._tasks.stop()

    def submit(
        self, deployment_id: uuid.UUID, target_id: uuid.UUID, target: DeployTarget, site: Site
    ) -> None:
        self._held.add(deployment_id)
        self._tasks.spawn(
            self._run(deployment_id, target_id, target, site), name=f"deploy {deployment_id}"
        )

    def remove_in_background(self, published: list[tuple[DeployTarget, Handle]]) -> None:
        """Removes what deployments published (their rows are gone already), one after the
        other; a failure is logged and the rest go on."""

        async def remove_all() -> None:
            for target, handle in published:
                try:
                    await target.remove(handle)
                except Exception:
                    log.exception("could not remove a deleted project's deployment")

        self._tasks.spawn(remove_all(), name="remove deleted project's deployments")

    async def _beat(self) -> None:
        async with self._sessions() as db, db.begin():
            if self._held:
                await store.beat(db, list(self._held))
            older_than = timedelta(seconds=self._settings.deploy_interrupted_after_seconds)
            swept = await store.fail_stale(
                db,
                older_than,
                INTERRUPTED,
                "the server publishing it stopped before it was live; deploy again",
            )
        if swept:
            log.warning("deployments interrupted", extra={"count": swept})

    async def _run(
        self, deployment_id: uuid.UUID, target_id: uuid.UUID, target: DeployTarget, site: Site
    ) -> None:
        try:
            async with self._slots:
                await self._write(deployment_id, status="uploading")
                reporter = _ProgressWriter(functools.partial(self._write, deployment_id), len(site))
                published = await target.publish(str(deployment_id), site, reporter.report)
                await self._went_live(deployment_id, target_id, published, len(site))
        except ForgeError as error:
            await self._failed(deployment_id, error.reason, error.message)
        except asyncio.CancelledError:
            message = "the server stopped while publishing it; deploy again"
            await asyncio.shield(self._failed(deployment_id, INTERRUPTED, message))
            raise
        except Exception:
            log.exception("publishing a deployment failed", extra={"deployment": deployment_id})
            await self._failed(deployment_id, FAILED, "publishing failed unexpectedly")
        finally:
            self._held.discard(deployment_id)

    async def _write(self, deployment_id: uuid.UUID, **values: object) -> None:
        async with self._sessions() as db, db.begin():
            await store.set_progress(db, deployment_id, **values)

    async def _went_live(
        self, deployment_id: uuid.UUID, target_id: uuid.UUID, published: Published, files: int
    ) -> None:
        async with self._sessions() as db, db.begin():
            await store.lock_target(db, target_id)
            await store.supersede_live(db, target_id, keep=deployment_id)
            await store.set_progress(
                db,
                deployment_id,
                status="live",
                url=published.url,
                handle=dict(published.handle),
                uploaded_file_count=files,
                live_time=func.now(),
            )

    async def _failed(self, deployment_id: uuid.UUID, reason: str, message: str) -> None:
        try:
            await self._write(
                deployment_id,
                status="failed",
                error_reason=reason[:64],
                error_message=message[:1024],
            )
        except Exception:  # the sweeper settles it later
            log.exception("could not record a failed deployment")


class _ProgressWriter:
    """Turns a target's progress into the deployment's uploaded-file count: written on each
    phase change, at the end of the uploads, and otherwise at most every half second."""

    def __init__(self, write: Callable[..., Awaitable[None]], files: int) -> None:
        self._write = write
        self._files = files
        self._phase: Phase | None = None
        self._written = 0.0

    async def report(self, progress: Progress) -> None:
        now = time.monotonic()
        done = progress.phase is Phase.UPLOADING and progress.files_done == progress.files_total
        if (
            progress.phase is self._phase
            and not done
            and now - self._written < PROGRESS_WRITE_SECONDS
        ):
            return
        self._phase, self._written = progress.phase, now
        if progress.phase is Phase.UPLOADING:
            # Files the target already had (same digest) count as uploaded.
            uploaded = self._files - progress.files_total + progress.files_done
        elif progress.phase is Phase.PREPARING:
            uploaded = 0
        else:
            uploaded = self._files
        await self._write(uploaded_file_count=max(0, uploaded))
