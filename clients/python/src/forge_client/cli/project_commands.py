"""`forge projects …` and `forge tasks …` (the kanban board, shown as columns)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.columns import Columns
from rich.panel import Panel
from rich.table import Table

from forge_client._proto.forge.projects import v1 as projects_v1

from .session import JsonOption, client, console, handles_errors, print_json, to_data

projects = typer.Typer(help="Projects: list and create.", no_args_is_help=True)
tasks = typer.Typer(help="Tasks of a project: the board, create, move.", no_args_is_help=True)

COLUMNS = {
    projects_v1.TaskStatus.TODO: "To do",
    projects_v1.TaskStatus.IN_PROGRESS: "In progress",
    projects_v1.TaskStatus.REVIEW: "Review",
    projects_v1.TaskStatus.DONE: "Done",
}
STATUS_NAMES = {"todo": 1, "in-progress": 2, "review": 3, "done": 4}


@projects.command("list")
@handles_errors
def list_projects(ctx: typer.Context, json: JsonOption = False) -> None:
    """The projects you are a member of."""
    found: list[projects_v1.Project] = []
    with client(ctx) as forge:
        token = ""
        while True:
            page = forge.projects.list_projects(
                projects_v1.ListProjectsRequest(page_size=100, page_token=token)
            )
            found.extend(page.projects)
            token = page.next_page_token
            if not token:
                break
    if json:
        print_json([to_data(project) for project in found])
        return
    table = Table("id", "name", "description", title="Projects")
    for project in found:
        table.add_row(project.id, project.name, project.description)
    console().print(table)


@projects.command("create")
@handles_errors
def create_project(
    ctx: typer.Context,
    name: str,
    description: Annotated[str, typer.Option(help="What the project is about.")] = "",
    json: JsonOption = False,
) -> None:
    """Create a project (you become its owner)."""
    with client(ctx) as forge:
        project = forge.projects.create_project(
            projects_v1.CreateProjectRequest(
                project=projects_v1.Project(name=name, description=description)
            )
        )
    if json:
        print_json(to_data(project))
    else:
        console().print(f"Created project {project.name} ({project.id})")


@tasks.command("board")
@handles_errors
def board(ctx: typer.Context, project_id: str, json: JsonOption = False) -> None:
    """The project's tasks as a board, one column per status."""
    found: list[projects_v1.Task] = []
    with client(ctx) as forge:
        token = ""
        while True:
            page = forge.projects.list_tasks(
                projects_v1.ListTasksRequest(project_id=project_id, page_size=100, page_token=token)
            )
            found.extend(page.tasks)
            token = page.next_page_token
            if not token:
                break
    if json:
        print_json([to_data(task) for task in found])
        return
    out = console()
    width = max(18, out.width // len(COLUMNS) - 1)
    panels = []
    for status, title in COLUMNS.items():
        cards = sorted((t for t in found if t.status == status), key=lambda t: t.position)
        body = (
            "\n".join(f"• {task.title}\n  [dim]{task.id}[/dim]" for task in cards) or "[dim]—[/dim]"
        )
        panels.append(Panel(body, title=f"{title} ({len(cards)})", width=width))
    out.print(Columns(panels))


@tasks.command("create")
@handles_errors
def create_task(
    ctx: typer.Context,
    project_id: str,
    title: str,
    description: Annotated[str, typer.Option(help="Details.")] = "",
    json: JsonOption = False,
) -> None:
    """Add a task to the board (To do)."""
    with client(ctx) as forge:
        task = forge.projects.create_task(
            projects_v1.CreateTaskRequest(
                project_id=project_id,
                task=projects_v1.Task(title=title, description=description),
            )
        )
    if json:
        print_json(to_data(task))
    else:
        console().print(f"Created task {task.title} ({task.id})")


@tasks.command("move")
@handles_errors
def move_task(
    ctx: typer.Context,
    project_id: str,
    task_id: str,
    status: Annotated[str, typer.Argument(help="todo, in-progress, review or done.")],
    json: JsonOption = False,
) -> None:
    """Move a task to another column."""
    if status not in STATUS_NAMES:
        raise typer.BadParameter(f"one of {', '.join(STATUS_NAMES)}", param_hint="STATUS")
    with client(ctx) as forge:
        task = forge.projects.move_task(
            projects_v1.MoveTaskRequest(
                project_id=project_id,
                task_id=task_id,
                status=projects_v1.TaskStatus(STATUS_NAMES[status]),
            )
        )
    if json:
        print_json(to_data(task))
    else:
        console().print(f"Moved {task.title} to {COLUMNS[task.status]}")
