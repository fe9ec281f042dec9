"""The one project access rule every service uses.

A caller who is not a member of a project gets NOT_FOUND, the same answer as for a project
that does not exist, so project ids cannot be probed. A member without enough rights gets
PERMISSION_DENIED. Admins act as owners everywhere.
"""

from __future__ import annotations

import uuid
from enum import IntEnum

from sqlalchemy import select
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


async def require_project_role(
    db: AsyncSession, caller: Caller, project_id: str | uuid.UUID, needed: ProjectRole
) -> ProjectRole:
    """The caller's role in the project, if at least `needed`; raises otherwise."""
    pid = project_id if isinstance(project_id, uuid.UUID) else parse_id(project_id)
    if pid is None:
        raise project_not_found()
    if caller.is_admin:
        exists = await db.scalar(select(Project.id).where(Project.id == pid))
        if exists is None:
            raise project_not_found()
        return ProjectRole.OWNER
    role_name = await db.scalar(
        select(ProjectMember.role).where(
            ProjectMember.project_id == pid, ProjectMember.user_id == uuid.UUID(caller.user_id)
        )
    )
    if role_name is None:
        raise project_not_found()
    role = ProjectRole.parse(role_name)
    if role < needed:
        raise PermissionDenied(
            f"this needs the {needed.label} role in the project; you are {role.label}",
            "PROJECT_ROLE_TOO_LOW",
            metadata={"needed": needed.label, "actual": role.label},
        )
    return role
