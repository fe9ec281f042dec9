"""What deleting a project also removes, registered by the services that own it.

ProjectService does not import the other services: each registers a hook at start-up.
A hook runs inside the transaction that deletes the project (to delete or mark its own
rows) and may return a callback to run once that transaction has committed (to remove
things outside the database: containers, blobs).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
ProjectDeletionHook = Callable[[AsyncSession, uuid.UUID], Awaitable[AfterCommit | None]]


class ProjectDeletionHooks:
    def __init__(self) -> None:
        self._hooks: list[ProjectDeletionHook] = []

    def register(self, hook: ProjectDeletionHook) -> None:
        self._hooks.append(hook)

    async def run_in_transaction(
        self, db: AsyncSession, project_id: uuid.UUID
    ) -> list[AfterCommit]:
        after: list[AfterCommit] = []
        for hook in self._hooks:
            callback = await hook(db, project_id)
            if callback is not None:
                after.append(callback)
        return after

    @staticmethod
    async def run_after_commit(callbacks: list[AfterCommit]) -> None:
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                # The project is gone; leftovers are collected by the owning service's reaper.
                log.exception("project clean-up step failed")
