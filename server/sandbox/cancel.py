"""CancelExecution: stops a running execution, from any server process.

The call records the request on the execution (`cancel_requested_at`, only while it runs)
and notifies every process in the same transaction (server/core/cancels.py). The process
relaying it (executions.Execution, which watches its id while streaming) kills its process
group, and its stream ends with `exit` reason CANCELLED. An execution that already ended is
left as it is. An execution whose relaying process died is not killed here: its lease
expires and the host's duty holder kills what it left (leases.py, duties.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.access import ProjectRole
from server.core.cancels import Cancels
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, NotFound
from server.core.ids import parse_id
from server.db.engine import reading
from server.db.sandbox_models import SandboxExecution
from server.sandbox.access import sandbox_for

EXECUTION = "execution"
"""The kind of cancel (server/core/cancels.py) that stops an execution."""


def execution_not_found() -> NotFound:
    return NotFound("execution not found", "EXECUTION_NOT_FOUND")


class ExecutionCancels:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cancels: Cancels) -> None:
        self._sessions = sessions
        cancels.add_check(EXECUTION, self.requested)

    async def cancel(self, caller: Caller, sandbox_id: str, execution_id: str) -> None:
        async with self._sessions() as db, db.begin():
            row = await sandbox_for(db, caller, sandbox_id, ProjectRole.EDITOR)
            if not execution_id:
                raise InvalidArgument.of([FieldViolation("execution_id", "is required")])
            eid = parse_id(execution_id)
            if eid is None:
                raise execution_not_found()
            state = await db.scalar(
                select(SandboxExecution.state).where(
                    SandboxExecution.id == eid, SandboxExecution.sandbox_id == row.id
                )
            )
            if state is None:
                raise execution_not_found()
            if state != "running":
                return
            await db.execute(
                update(SandboxExecution)
                .where(SandboxExecution.id == eid, SandboxExecution.state == "running")
                .values(cancel_requested_at=func.now())
                .execution_options(synchronize_session=False)
            )
            await Cancels.request(db, EXECUTION, eid)

    async def requested(self, execution_ids: list[uuid.UUID]) -> Iterable[uuid.UUID]:
        """Which of these executions were asked to stop (a missed notification's check)."""
        async with reading(self._sessions) as db:
            found = await db.scalars(
                select(SandboxExecution.id).where(
                    SandboxExecution.id.in_(execution_ids),
                    SandboxExecution.cancel_requested_at.is_not(None),
                )
            )
            return list(found)
