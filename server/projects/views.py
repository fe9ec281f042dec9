"""What the projects domain hands to the servicer: plain values, no ORM rows, no protos."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.core.access import ProjectRole
from server.db.models import Project, ProjectMember, Task
from server.projects.model import TaskStatus


@dataclass(frozen=True)
class ProjectView:
    id: uuid.UUID
    name: str
    description: str
    repository_url: str
    default_runtime: str
    creator_id: uuid.UUID | None
    create_time: datetime
    update_time: datetime
    caller_role: ProjectRole | None
    """None when an admin sees a project they are not a member of."""

    @classmethod
    def of(cls, row: Project, caller_role: ProjectRole | None) -> ProjectView:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            repository_url=row.repository_url,
            default_runtime=row.default_runtime,
            creator_id=row.creator_id,
            create_time=row.create_time,
            update_time=row.update_time,
            caller_role=caller_role,
        )


@dataclass(frozen=True)
class MemberView:
    project_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    display_name: str
    role: ProjectRole
    create_time: datetime
    update_time: datetime

    @classmethod
    def of(cls, row: ProjectMember, email: str, display_name: str) -> MemberView:
        return cls(
            project_id=row.project_id,
            user_id=row.user_id,
            email=email,
            display_name=display_name,
            role=ProjectRole.parse(row.role),
            create_time=row.create_time,
            update_time=row.update_time,
        )


@dataclass(frozen=True)
class TaskView:
    id: uuid.UUID
    project_id: uuid.UUID
    title: str
    description: str
    status: TaskStatus
    position: int
    assignee_id: uuid.UUID | None
    agent_id: str | None
    run_id: uuid.UUID | None
    creator_id: uuid.UUID | None
    create_time: datetime
    update_time: datetime

    @classmethod
    def of(cls, row: Task) -> TaskView:
        return cls(
            id=row.id,
            project_id=row.project_id,
            title=row.title,
            description=row.description,
            status=TaskStatus(row.status),
            position=row.position,
            assignee_id=row.assignee_id,
            agent_id=row.agent_id,
            run_id=row.run_id,
            creator_id=row.creator_id,
            create_time=row.create_time,
            update_time=row.update_time,
        )

    @classmethod
    def from_columns(cls, row: Any) -> TaskView:
        """From a row holding Task's columns by name (an asyncpg Record)."""
        return cls(
            id=row["id"],
            project_id=row["project_id"],
            title=row["title"],
            description=row["description"],
            status=TaskStatus(row["status"]),
            position=row["position"],
            assignee_id=row["assignee_id"],
            agent_id=row["agent_id"],
            run_id=row["run_id"],
            creator_id=row["creator_id"],
            create_time=row["create_time"],
            update_time=row["update_time"],
        )
