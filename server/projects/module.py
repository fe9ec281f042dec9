"""Builds ProjectService: projects, members and the kanban board.

Offers its system counters and the task board port agent runs move their tasks through;
consumes the project-deletion hooks of the other services."""

from __future__ import annotations

from forge.projects.v1 import projects_pb2, projects_pb2_grpc

from server.core.binding import ServiceBinding
from server.core.hooks import Offers
from server.core.module import BuildContext, ServiceModule
from server.projects import store
from server.projects.members import Members
from server.projects.port import TaskBoardForRuns
from server.projects.projects import Projects
from server.projects.service import ProjectService
from server.projects.tasks import Board


def build(ctx: BuildContext) -> ServiceModule:
    board = Board(ctx.sessions)
    servicer = ProjectService(
        Projects(ctx.sessions, ctx.hooks.project_deletion),
        Members(ctx.sessions),
        board,
        ctx.page_tokens,
    )
    return ServiceModule(
        name="projects",
        bindings=[
            ServiceBinding.of(
                projects_pb2,
                projects_pb2_grpc,
                "ProjectService",
                servicer,
                # Its one read also reads the caller's account state: one round trip.
                state_read_by_handler=("GetProject",),
            )
        ],
        offers=Offers(system_counters=store.system_counters(), task_board=TaskBoardForRuns(board)),
    )
