"""The one project access rule every service uses.

A caller who is not a member of a project gets NOT_FOUND, the same answer as for a project
that does not exist, so project ids cannot be probed. A member without enough rights gets
PERMISSION_DENIED. Admins act as owners everywhere.
"""

from __future__ import annotations

import uuid
from enum import IntEnum

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.context import Caller
from server.core.errors import NotFound, PermissionDenied
from server.core.ids import parse_id
from server.db.models import Project, ProjectMember


class ProjectRole(IntEnum):
    """Ordered: a higher role can do everything a lower one can."""

    VIEWER = 1
    EDITOR = 2
    OWNER = 3

    @classmethod
    def parse(cls, name: str) -> ProjectRole:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


def project_not_found() -> NotFound:
    return NotFound("project not found", "PROJECT_NOT_FOUND")


# Built once: constructing a statement costs more than running it.
_PROJECT_EXISTS = select(Project.id).where(Project.id == bindparam("project_id"))
_MEMBER_ROLE = select(ProjectMember.role).where(
    ProjectMember.project_id == bindparam("project_id"),
    ProjectMember.user_id == bindparam("user_id"),
)


def judge_role(
    caller: Caller, exists: bool, member_role: str | None, needed: ProjectRole
) -> ProjectRole:
    """The rule itself, given whether the project exists and the caller's membership role
    in it (None: not a member); for reads that fetch both in one query."""
    if caller.is_admin:
        if not exists:
            raise project_not_found()
        return ProjectRole.OWNER
    if member_role is None:
        raise project_not_found()
    role = ProjectRole.parse(member_role)
    if role < needed:
        raise PermissionDenied(
            f"this needs the {needed.label} role in the project; you are {role.label}",
            "PROJECT_ROLE_TOO_LOW",
            metadata={"needed": needed.label, "actual": role.label},
        )
    return role


async def require_project_role(
    db: AsyncSession, caller: Caller, project_id: str | uuid.UUID, needed: ProjectRole
) -> ProjectRole:
    """The caller's role in the project, if at least `needed`; raises otherwise."""
    pid = project_id if isinstance(project_id, uuid.UUID) else parse_id(project_id)
    if pid is None:
        raise project_not_found()
    if caller.is_admin:
        exists = await db.scalar(_PROJECT_EXISTS, {"project_id": pid})
        return judge_role(caller, exists is not None, None, needed)
    role_name = await db.scalar(_MEMBER_ROLE, {"project_id": pid, "user_id": caller.user_id})
    return judge_role(caller, True, role_name, needed)
