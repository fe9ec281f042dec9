"""Plain domain inputs of ProjectService (no proto): task columns and settable fields."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TaskStatus(StrEnum):
    """Kanban columns, declared in board order (ListTasks returns them in this order)."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    REVIEW = "review"
    DONE = "done"

    @property
    def rank(self) -> int:
        return list(TaskStatus).index(self) + 1


@dataclass(frozen=True)
class ProjectFields:
    """Settable project fields, as the client sent them."""

    name: str = ""
    description: str = ""
    repository_url: str = ""
    default_runtime: str = ""


@dataclass(frozen=True)
class TaskFields:
    """Settable task fields, as the client sent them (ids still unparsed)."""

    title: str = ""
    description: str = ""
    assignee_user_id: str = ""
    agent_id: str = ""
    run_id: str = ""
