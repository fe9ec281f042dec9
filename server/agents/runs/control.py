"""What editors do to a run from any process: cancel it, approve or deny the tool call it
waits on, send it a message.

Each is a write to the run's row plus, where the owner must act, a NOTIFY on
`forge_run_control` in the same transaction: `cancel` (the owner cancels its task at once)
or `claimable` (an approved run is taken up by any process). A run no live process owns
(queued, or waiting for approval) is cancelled by the caller's process itself: it takes
the lease and writes the terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.runs import leases, store
from server.agents.runs.events import ApprovalGiven, Completed, RunStatus
from server.agents.runs.log import EventLog, LeaseLost
from server.agents.runs.notify import RunNotifications
from server.agents.runs.views import RunView
from server.agents.runs.watch import judge_run, parse_run_id, run_not_found
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Violations,
)
from server.db.run_models import RunRow

RUN_ENDED = "RUN_ENDED"
RUN_NOT_WAITING = "RUN_NOT_WAITING_FOR_APPROVAL"
MAX_MESSAGE_CHARS = 20_000
MAX_REASON_CHARS = 2_000
CANCEL_WAIT_SECONDS = 5.0
"""How long CancelRun waits for the owner to record the cancellation before answering."""


async def run_for(db: AsyncSession, caller: Caller, run_id: str, needed: ProjectRole) -> RunRow:
    """The run, once the caller holds `needed` in its project (strangers: NOT_FOUND)."""
    found = await store.run_with_role(db, parse_run_id(run_id), caller.user_id)
    if found is None:
        raise run_not_found()
    row, role = found
    judge_run(caller, role, needed)
    return row


class RunControl:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        log: EventLog,
        notifications: RunNotifications,
        owner: str,
        lease_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._log = log
        self._notifications = notifications
        self._owner = owner
        self._lease_seconds = lease_seconds

    async def cancel(self, caller: Caller, run_id: str) -> RunView:
        async with self._sessions() as db, db.begin():
            row = await run_for(db, caller, run_id, ProjectRole.EDITOR)
            if RunStatus(row.status).ended:
                return RunView.of(row)
            rid = row.id
            flagged = await store.request_cancel(db, rid)
            if flagged is None:
                return RunView.of(row)
            await RunNotifications.send_control(db, "cancel", rid)
        # Nobody runs it (queued without an owner, waiting, or its owner died): end it here.
        async with self._sessions() as db, db.begin():
            lease = await leases.claim_run(db, self._owner, self._lease_seconds, rid)
        if lease is not None:
            with contextlib.suppress(LeaseLost):
                await self._log.append(
                    rid,
                    lease.token,
                    [
                        Completed(
                            RunStatus.CANCELLED, "", flagged.input_tokens, flagged.output_tokens
                        )
                    ],
                )
        return await self._settled(rid, CANCEL_WAIT_SECONDS)

    async def _settled(self, run_id: uuid.UUID, timeout: float) -> RunView:
        """The run once it has ended, or as it is after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            async with self._sessions() as db:
                row = await store.get_run(db, run_id)
            if row is None:
                raise run_not_found()
            view = RunView.of(row)
            left = deadline - loop.time()
            if view.status.ended or left <= 0:
                return view
            await self._notifications.wait(run_id, view.last_seq, min(left, 1.0))

    async def approve(
        self, caller: Caller, run_id: str, tool_call_id: str, approved: bool, reason: str
    ) -> RunView:
        violations = Violations()
        violations.check(bool(tool_call_id), "tool_call_id", "is required")
        violations.check(
            len(reason) <= MAX_REASON_CHARS,
            "reason",
            f"must be at most {MAX_REASON_CHARS} characters",
        )
        violations.check("\x00" not in reason, "reason", "must not contain NUL characters")
        violations.raise_if_any()
        async with self._sessions() as db, db.begin():
            row = await run_for(db, caller, run_id, ProjectRole.EDITOR)
            pending = row.pending_tool_call or {}
            if row.status != RunStatus.WAITING_FOR_APPROVAL.value or not pending:
                raise FailedPrecondition(
                    f"the run is {row.status.replace('_', ' ')}, not waiting for approval",
                    RUN_NOT_WAITING,
                    metadata={"status": row.status},
                )
            if pending.get("id") != tool_call_id:
                raise InvalidArgument.of(
                    [
                        FieldViolation(
                            "tool_call_id",
                            f"the run waits for approval of call {pending.get('id')!r}",
                        )
                    ]
                )
            decision = ApprovalGiven(tool_call_id, approved, reason.strip(), str(caller.user_id))
            updated = await store.record_approval(db, row.id, tool_call_id, decision)
            if updated is None:
                raise FailedPrecondition(
                    "the run is no longer waiting for approval of this call", RUN_NOT_WAITING
                )
            await RunNotifications.send_control(db, "claimable", row.id)
            return RunView.of(updated)

    async def send_message(self, caller: Caller, run_id: str, content: str) -> RunView:
        violations = Violations()
        if not content.strip():
            violations.add("content", "is required")
        elif len(content) > MAX_MESSAGE_CHARS:
            violations.add("content", f"must be at most {MAX_MESSAGE_CHARS} characters")
        elif "\x00" in content:
            violations.add("content", "must not contain NUL characters")
        violations.raise_if_any()
        async with self._sessions() as db, db.begin():
            row = await run_for(db, caller, run_id, ProjectRole.EDITOR)
            message = {"content": content, "author_user_id": str(caller.user_id)}
            updated = await store.push_inbox(db, row.id, message)
            if updated is None:
                raise FailedPrecondition(
                    f"the run has ended ({row.status})", RUN_ENDED, metadata={"status": row.status}
                )
            return RunView.of(updated)
