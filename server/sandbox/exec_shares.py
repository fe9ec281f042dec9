"""Fair shares of this server's execution slots: the Exec and RunCode calls running at once
per user (their `max_concurrent_execs`, core/limits.py) and per project
(`project_max_concurrent_execs`), so no user or project takes every slot of the server
(`sandbox_max_concurrent_execs`).

Counted per server process, in memory, like the slots themselves.
"""

from __future__ import annotations

import uuid

from server.core.errors import QuotaViolation, ResourceExhausted
from server.core.limits import LimitsPort, quota_exceeded

USER_EXEC_LIMIT_REACHED = "USER_EXEC_LIMIT_REACHED"
PROJECT_EXEC_LIMIT_REACHED = "PROJECT_EXEC_LIMIT_REACHED"


class ExecShare:
    """One running execution's place in its user's and project's shares."""

    __slots__ = ("_owner", "_project_id", "_user_id")

    def __init__(self, owner: ExecShares, user_id: uuid.UUID, project_id: uuid.UUID) -> None:
        self._owner: ExecShares | None = owner
        self._user_id = user_id
        self._project_id = project_id

    def release(self) -> None:
        """Gives the place back (once; later calls do nothing)."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._leave(self._user_id, self._project_id)


class ExecShares:
    def __init__(self, limits: LimitsPort, per_project: int) -> None:
        self._limits = limits
        self._per_project = per_project
        self._by_user: dict[uuid.UUID, int] = {}
        self._by_project: dict[uuid.UUID, int] = {}

    def running(self, user_id: uuid.UUID) -> int:
        return self._by_user.get(user_id, 0)

    async def take(self, user_id: uuid.UUID, project_id: uuid.UUID) -> ExecShare:
        """A place for one more execution by the user in the project; RESOURCE_EXHAUSTED
        with a QuotaFailure naming the limit when either share is full."""
        allowed = (await self._limits.limits_of(user_id)).max_concurrent_execs
        mine = self._by_user.get(user_id, 0)
        if mine >= allowed:
            raise quota_exceeded(
                limit="max_concurrent_execs",
                user_id=user_id,
                allowed=allowed,
                used=mine,
                reason=USER_EXEC_LIMIT_REACHED,
                message=f"you already have {mine} executions running on this server (at "
                f"most {allowed}); wait for one to end",
                what="executions running on this server",
            )
        in_project = self._by_project.get(project_id, 0)
        if in_project >= self._per_project:
            raise ResourceExhausted(
                message=f"the project already has {in_project} executions running on this "
                f"server (at most {self._per_project}); wait for one to end",
                reason=PROJECT_EXEC_LIMIT_REACHED,
                metadata={
                    "quota": "project_max_concurrent_execs",
                    "limit": str(self._per_project),
                    "used": str(in_project),
                },
                quota_violations=[
                    QuotaViolation(
                        subject=f"projects/{project_id}",
                        description=f"project_max_concurrent_execs: {in_project} of "
                        f"{self._per_project} executions running on this server",
                    )
                ],
            )
        self._by_user[user_id] = mine + 1
        self._by_project[project_id] = in_project + 1
        return ExecShare(self, user_id, project_id)

    def _leave(self, user_id: uuid.UUID, project_id: uuid.UUID) -> None:
        for counts, key in ((self._by_user, user_id), (self._by_project, project_id)):
            left = counts.get(key, 0) - 1
            if left > 0:
                counts[key] = left
            else:
                counts.pop(key, None)
