"""ProjectService domain values ↔ protos: the only place the projects domain meets
generated code."""

from __future__ import annotations

from forge.projects.v1 import projects_pb2

from server.core.access import ProjectRole
from server.core.timestamps import to_timestamp
from server.projects.model import ProjectFields, TaskFields, TaskStatus
from server.projects.views import MemberView, ProjectView, TaskView

# Proto enum values are the domain values (ProjectRole 1..3, TaskStatus in board order 1..4).
_STATUSES = list(TaskStatus)


def role_to_proto(role: ProjectRole | None) -> projects_pb2.ProjectRole.ValueType:
    return projects_pb2.ProjectRole.ValueType(int(role) if role is not None else 0)


def role_from_proto(value: int) -> ProjectRole | None:
    try:
        return ProjectRole(value)
    except ValueError:
        return None


def status_to_proto(status: TaskStatus) -> projects_pb2.TaskStatus.ValueType:
    return projects_pb2.TaskStatus.ValueType(status.rank)


def status_from_proto(value: int) -> TaskStatus | None:
    return _STATUSES[value - 1] if 1 <= value <= len(_STATUSES) else None


def project_fields(project: projects_pb2.Project) -> ProjectFields:
    return ProjectFields(
        name=project.name,
        description=project.description,
        repository_url=project.repository_url,
        default_runtime=project.default_runtime,
    )


def task_fields(task: projects_pb2.Task) -> TaskFields:
    return TaskFields(
        title=task.title,
        description=task.description,
        assignee_user_id=task.assignee_user_id,
        agent_id=task.agent_id,
        run_id=task.run_id,
    )


def project_to_proto(view: ProjectView) -> projects_pb2.Project:
    return projects_pb2.Project(
        id=str(view.id),
        name=view.name,
        description=view.description,
        repository_url=view.repository_url,
        default_runtime=view.default_runtime,
        caller_role=role_to_proto(view.caller_role),
        creator_user_id=str(view.creator_id) if view.creator_id else "",
        create_time=to_timestamp(view.create_time),
        update_time=to_timestamp(view.update_time),
    )


def member_to_proto(view: MemberView) -> projects_pb2.Member:
    return projects_pb2.Member(
        project_id=str(view.project_id),
        user_id=str(view.user_id),
        email=view.email,
        display_name=view.display_name,
        role=role_to_proto(view.role),
        create_time=to_timestamp(view.create_time),
        update_time=to_timestamp(view.update_time),
    )


def task_to_proto(task: TaskView) -> projects_pb2.Task:
    return projects_pb2.Task(
        id=str(task.id),
        project_id=str(task.project_id),
        title=task.title,
        description=task.description,
        status=status_to_proto(task.status),
        position=task.position,
        assignee_user_id=str(task.assignee_id) if task.assignee_id else "",
        agent_id=task.agent_id or "",
        run_id=str(task.run_id) if task.run_id else "",
        creator_user_id=str(task.creator_id) if task.creator_id else "",
        create_time=to_timestamp(task.create_time),
        update_time=to_timestamp(task.update_time),
    )
