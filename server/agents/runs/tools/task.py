"""`update_task`: moves the run's kanban task and/or adds a note to it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from server.agents.runs.tools.base import Tool, ToolContext, ToolInputError, ToolOutcome
from server.core.ports import TaskColumn

COLUMNS = ("todo", "in_progress", "review", "done")


class UpdateTaskTool(Tool):
    name = "update_task"
    description = (
        "Updates the kanban task this run works on: moves it to another column (`status`: "
        "todo, in_progress, review or done) and/or appends a `note` to its description."
    )
    may_write = True

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": list(COLUMNS)},
                "note": {"type": "string", "minLength": 1, "description": "a short note"},
            },
            "additionalProperties": False,
        }

    def check(self, arguments: Mapping[str, Any]) -> None:
        if "status" not in arguments and "note" not in arguments:
            raise ToolInputError("give a status, a note or both")

    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolOutcome:
        if ctx.task_id is None:
            return ToolOutcome(
                "this run has no task to update (it was started without one)", is_error=True
            )
        status = cast(TaskColumn | None, arguments.get("status"))
        task = await ctx.ports.task_board.get().move_task(
            ctx.caller, ctx.project_id, ctx.task_id, status, arguments.get("note", "")
        )
        noted = " with the note added" if arguments.get("note") else ""
        return ToolOutcome(f"The task {task.title!r} is in {task.status}{noted}.")
