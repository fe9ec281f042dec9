"""Fair shares of execution slots: the Exec and RunCode calls running at once per user
(their `max_concurrent_execs`, core/limits.py) and per project
(`project_max_concurrent_execs`), counted across every server process (core/holds.py), so
no user or project takes every slot (`sandbox_max_concurrent_execs` per process).
"""

from __future__ import annotations

import uuid

from server.core.errors import QuotaViolation, ResourceExhausted
from server.core.holds import Hold, Holds, Refused
from server.core.limits import LimitsPort, quota_exceeded

USER_EXEC_LIMIT_REACHED = "USER_EXEC_LIMIT_REACHED"
PROJECT_EXEC_LIMIT_REACHED = "PROJECT_EXEC_LIMIT_REACHED"


USER_KIND = "exec_user"
PROJECT_KIND = "exec_project"


class ExecShare:
    """One running execution's places in its user's and project's shares."""

    __slots__ = ("_places",)

    def __init__(self, places: list[Hold]) -> None:
        self._places = places

    def release(self) -> None:
        """Gives the places back (once; later calls do nothing)."""
        places, self._places = self._places, []
        for place in places:
            place.release()


class ExecShares:
    def __init__(self, limits: LimitsPort, per_project: int, holds: Holds) -> None:
        self._limits = limits
        self._per_project = per_project
        self._holds = holds

    async def take(self, user_id: uuid.UUID, project_id: uuid.UUID) -> ExecShare:
        """A place for one more execution by the user in the project; RESOURCE_EXHAUSTED
        with a QuotaFailure naming the limit when either share is full."""
        allowed = (await self._limits.limits_of(user_id)).max_concurrent_execs
        mine = await self._holds.take(USER_KIND, user_id, allowed)
        if isinstance(mine, Refused):
            raise quota_exceeded(
                limit="max_concurrent_execs",
                user_id=user_id,
                allowed=allowed,
                used=mine.used,
                reason=USER_EXEC_LIMIT_REACHED,
                message=f"you already have {mine.used} executions running (at most "
                f"{allowed}); wait for one to end",
                what="executions running",
            )
        try:
            in_project = await self._holds.take(PROJECT_KIND, project_id, self._per_project)
        except BaseException:
            mine.release()
            raise
        if isinstance(in_project, Refused):
            mine.release()
            raise ResourceExhausted(
                message=f"the project already has {in_project.used} executions running (at "
                f"most {self._per_project}); wait for one to end",
                reason=PROJECT_EXEC_LIMIT_REACHED,
                metadata={
                    "quota": "project_max_concurrent_execs",
                    "limit": str(self._per_project),
                    "used": str(in_project.used),
                },
                quota_violations=[
                    QuotaViolation(
                        subject=f"projects/{project_id}",
                        description=f"project_max_concurrent_execs: {in_project.used} of "
                        f"{self._per_project} executions running",
                    )
                ],
            )
        return ExecShare([mine, in_project])
