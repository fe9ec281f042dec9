"""The read side of runs: GetRun, ListRuns and WatchRun's domain.

A run is reached through its project (the project access rule): a caller who is not a
member gets the same NOT_FOUND (RUN_NOT_FOUND) as for a run that does not exist.

Watching replays the stored events after `after_seq` page by page, then waits for a
notification (any process's append) and reads again from the last seq sent. Reading after
every wake-up closes the race between "caught up" and "a new event arrived"; nothing is
ever sent that is not stored, so a replay never differs from what a live watcher saw.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.runs import store
from server.agents.runs.events import TERMINAL_EVENTS, RunStatus, StoredEvent
from server.agents.runs.log import READ_LIMIT, EventLog
from server.agents.runs.notify import RunNotifications
from server.agents.runs.views import RunView
from server.core.access import ProjectRole, judge_role, project_not_found, require_project_role
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, NotFound
from server.core.ids import parse_id
from server.core.pagination import Listed, Page, listed
from server.db.engine import reading
from server.db.models import ProjectMember
from server.db.reads import DirectRead
from server.db.run_models import RunRow

RUN_NOT_FOUND = "RUN_NOT_FOUND"
RECHECK_SECONDS = 15.0
"""A watcher with no notification this long re-reads anyway (belt and braces)."""


def run_not_found() -> NotFound:
    return NotFound("run not found", RUN_NOT_FOUND)


def parse_run_id(value: str, field: str = "run_id") -> uuid.UUID:
    """The id in `value`; INVALID_ARGUMENT naming `field` when it is missing or not an id."""
    if not value:
        raise InvalidArgument.of([FieldViolation(field, "is required")])
    parsed = parse_id(value)
    if parsed is None:
        raise InvalidArgument.of([FieldViolation(field, "is not a valid run id")])
    return parsed


def judge_run(caller: Caller, member_role: str | None, needed: ProjectRole) -> ProjectRole:
    """The project access rule for an existing run; a stranger gets RUN_NOT_FOUND."""
    try:
        # The run exists, so its project does (runs go with their project).
        return judge_role(caller, True, member_role, needed)
    except NotFound:
        raise run_not_found() from None


_WATCH_TARGET = DirectRead(
    select(
        RunRow.id,
        select(ProjectMember.role)
        .where(
            ProjectMember.project_id == RunRow.project_id,
            ProjectMember.user_id == bindparam("user_id"),
        )
        .scalar_subquery()
        .label("member_role"),
    ).where(RunRow.id == bindparam("run_id"))
)


class RunReader:
    """GetRun and ListRuns."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, caller: Caller, run_id: str) -> RunView:
        rid = parse_run_id(run_id)
        async with reading(self._sessions) as db:
            found = await store.run_with_role(db, rid, caller.user_id)
        if found is None:
            raise run_not_found()
        row, role = found
        judge_run(caller, role, ProjectRole.VIEWER)
        return RunView.of(row)

    async def list(
        self,
        caller: Caller,
        project_id: str,
        page: Page,
        status: RunStatus | None = None,
        task_id: str = "",
    ) -> Listed[RunView]:
        """Newest first."""
        if not project_id:
            raise InvalidArgument.of([FieldViolation("project_id", "is required")])
        task: uuid.UUID | None = None
        if task_id:
            task = parse_id(task_id)
            if task is None:
                raise InvalidArgument.of([FieldViolation("task_id", "is not a valid task id")])
        pid = parse_id(project_id)
        if pid is None:
            raise project_not_found()
        async with reading(self._sessions) as db:
            await require_project_role(db, caller, pid, ProjectRole.VIEWER)
            rows = await store.list_runs(db, pid, page, status, task)
            views = [RunView.of(row) for row in rows]
        return listed(views, page, lambda view: (view.id,))


class RunWatcher:
    """WatchRun: a run's events after a seq, stored then live, from any process."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        log: EventLog,
        notifications: RunNotifications,
        *,
        page_size: int = READ_LIMIT,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._log = log
        self._notifications = notifications
        self._page_size = page_size
        self._recheck_seconds = recheck_seconds

    async def watch(
        self, caller: Caller, run_id: str, after_seq: int
    ) -> AsyncGenerator[StoredEvent, None]:
        """The run's events with seq > `after_seq`, ending after the terminal event
        (completed or error), or at once when the run has ended and nothing newer exists."""
        events = await self.open(caller, run_id, after_seq)
        async with aclosing(events):
            async for event in events:
                yield event

    async def open(
        self, caller: Caller, run_id: str, after_seq: int
    ) -> AsyncGenerator[StoredEvent, None]:
        """`watch`, with access and input checked before it returns (so a servicer answers
        a bad request with a plain status rather than an in-band error event)."""
        rid = parse_run_id(run_id)
        if after_seq < 0:
            raise InvalidArgument.of([FieldViolation("after_seq", "must not be negative")])
        target = await _WATCH_TARGET.first(self._sessions, run_id=rid, user_id=caller.user_id)
        if target is None:
            raise run_not_found()
        judge_run(caller, target["member_role"], ProjectRole.VIEWER)
        return self.follow(rid, after_seq)

    async def follow(self, run_id: uuid.UUID, after_seq: int) -> AsyncGenerator[StoredEvent, None]:
        """`watch` without the access checks."""
        last = after_seq
        while True:
            events = await self._log.read(run_id, last, self._page_size)
            for stored in events:
                yield stored
                last = stored.seq
                if isinstance(stored.event, TERMINAL_EVENTS):
                    return
            if len(events) == self._page_size:
                continue  # more are stored
            if not events:
                async with reading(self._sessions) as db:
                    state = await store.run_state(db, run_id)
                if state is None:
                    raise run_not_found()  # deleted with its project meanwhile
                status, last_seq = state
                if last_seq > last:
                    continue
                if RunStatus(status).ended:
                    return
            await self._notifications.wait(run_id, last, self._recheck_seconds)
