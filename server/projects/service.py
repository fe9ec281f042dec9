"""ProjectService servicer: protos in, domain calls, protos out; page tokens are handled
here.

Roles (admins act as owners; see server/core/access.py): viewers read the project, its
members and its tasks; editors also write tasks and update the project's settings; owners
also manage members and delete the project. Any member may leave.
"""

from __future__ import annotations

from typing import Any

import grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf import empty_pb2

from server.core.context import current_call
from server.core.errors import FieldViolation, InvalidArgument
from server.core.fieldmask import update_paths
from server.core.ids import parse_id
from server.core.pagination import PageTokens
from server.projects import convert
from server.projects.members import Members
from server.projects.model import TaskStatus
from server.projects.projects import PROJECT_FIELDS, Projects
from server.projects.tasks import TASK_FIELDS, Board

Context = grpc.aio.ServicerContext[Any, Any]

# Task fields changed only by MoveTask.
_MOVED_FIELDS = ("status", "position")


def _status(value: int, field: str) -> TaskStatus | None:
    """The column `value` names; None when unspecified. Unknown values are INVALID_ARGUMENT."""
    status = convert.status_from_proto(value)
    if value and status is None:
        raise InvalidArgument.of(
            [FieldViolation(field, "must be todo, in_progress, review or done")]
        )
    return status


def _id_filter(value: str) -> object:
    """An id as a page token's filter: the same id however it is spelled."""
    return parse_id(value) or value


class ProjectService(projects_pb2_grpc.ProjectServiceServicer):
    def __init__(
        self, projects: Projects, members: Members, board: Board, page_tokens: PageTokens
    ) -> None:
        self._projects = projects
        self._members = members
        self._board = board
        self._pages = page_tokens

    # --- projects ---------------------------------------------------------------------

    async def CreateProject(
        self, request: projects_pb2.CreateProjectRequest, context: Context
    ) -> projects_pb2.Project:
        view = await self._projects.create(
            current_call().require_caller(), convert.project_fields(request.project)
        )
        return convert.project_to_proto(view)

    async def GetProject(
        self, request: projects_pb2.GetProjectRequest, context: Context
    ) -> projects_pb2.Project:
        view = await self._projects.get(current_call(), request.project_id)
        return convert.project_to_proto(view)

    async def ListProjects(
        self, request: projects_pb2.ListProjectsRequest, context: Context
    ) -> projects_pb2.ListProjectsResponse:
        caller = current_call().require_caller()
        filters = {"user": str(caller.user_id), "all": request.all}
        page = self._pages.page("projects", request.page_size, request.page_token, filters)
        result = await self._projects.list_projects(caller, page, request.all)
        return projects_pb2.ListProjectsResponse(
            projects=[convert.project_to_proto(v) for v in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def UpdateProject(
        self, request: projects_pb2.UpdateProjectRequest, context: Context
    ) -> projects_pb2.Project:
        paths = update_paths(request.update_mask.paths, PROJECT_FIELDS, request.project)
        view = await self._projects.update(
            current_call().require_caller(),
            request.project.id,
            convert.project_fields(request.project),
            paths,
        )
        return convert.project_to_proto(view)

    async def DeleteProject(
        self, request: projects_pb2.DeleteProjectRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._projects.delete(current_call().require_caller(), request.project_id)
        return empty_pb2.Empty()

    # --- members ----------------------------------------------------------------------

    async def AddMember(
        self, request: projects_pb2.AddMemberRequest, context: Context
    ) -> projects_pb2.Member:
        view = await self._members.add(
            current_call().require_caller(),
            request.project_id,
            request.email,
            convert.role_from_proto(request.role),
        )
        return convert.member_to_proto(view)

    async def ListMembers(
        self, request: projects_pb2.ListMembersRequest, context: Context
    ) -> projects_pb2.ListMembersResponse:
        filters = {"project": _id_filter(request.project_id)}
        page = self._pages.page("project_members", request.page_size, request.page_token, filters)
        result = await self._members.list_members(
            current_call().require_caller(), request.project_id, page
        )
        return projects_pb2.ListMembersResponse(
            members=[convert.member_to_proto(v) for v in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def RemoveMember(
        self, request: projects_pb2.RemoveMemberRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._members.remove(
            current_call().require_caller(), request.project_id, request.user_id
        )
        return empty_pb2.Empty()

    # --- tasks ------------------------------------------------------------------------

    async def CreateTask(
        self, request: projects_pb2.CreateTaskRequest, context: Context
    ) -> projects_pb2.Task:
        task = await self._board.create(
            current_call().require_caller(),
            request.project_id,
            convert.task_fields(request.task),
            _status(request.task.status, "task.status"),
            request.task.position,
        )
        return convert.task_to_proto(task)

    async def GetTask(
        self, request: projects_pb2.GetTaskRequest, context: Context
    ) -> projects_pb2.Task:
        task = await self._board.get(
            current_call().require_caller(), request.project_id, request.task_id
        )
        return convert.task_to_proto(task)

    async def ListTasks(
        self, request: projects_pb2.ListTasksRequest, context: Context
    ) -> projects_pb2.ListTasksResponse:
        status = _status(request.status, "status")
        filters = {
            "project": _id_filter(request.project_id),
            "status": status,
            "assignee": _id_filter(request.assignee_user_id) if request.assignee_user_id else None,
        }
        page = self._pages.page("tasks", request.page_size, request.page_token, filters)
        result = await self._board.list_tasks(
            current_call().require_caller(),
            request.project_id,
            page,
            status,
            request.assignee_user_id,
        )
        return projects_pb2.ListTasksResponse(
            tasks=[convert.task_to_proto(t) for t in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def UpdateTask(
        self, request: projects_pb2.UpdateTaskRequest, context: Context
    ) -> projects_pb2.Task:
        moved = [p for p in request.update_mask.paths if p.strip() in _MOVED_FIELDS]
        if moved:
            raise InvalidArgument.of(
                [FieldViolation("update_mask", f"'{p}' is changed with MoveTask") for p in moved]
            )
        paths = update_paths(request.update_mask.paths, TASK_FIELDS, request.task)
        task = await self._board.update(
            current_call().require_caller(),
            request.project_id,
            request.task.id,
            convert.task_fields(request.task),
            paths,
        )
        return convert.task_to_proto(task)

    async def MoveTask(
        self, request: projects_pb2.MoveTaskRequest, context: Context
    ) -> projects_pb2.Task:
        task = await self._board.move(
            current_call().require_caller(),
            request.project_id,
            request.task_id,
            convert.status_from_proto(request.status),
            request.position,
        )
        return convert.task_to_proto(task)

    async def DeleteTask(
        self, request: projects_pb2.DeleteTaskRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._board.delete(
            current_call().require_caller(), request.project_id, request.task_id
        )
        return empty_pb2.Empty()
