"""What every run tool shares: the context a call runs in, its outcome, and the shape of a
tool (a name, a JSON schema for its input, whether a call changes something, and `run`)."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from server.agents.runs.events import RunEvent
from server.config import Settings
from server.core.context import Caller
from server.core.hooks import Hooks


class ToolInputError(Exception):
    """The model's input for a tool is unusable; `message` tells the model what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ToolContext:
    """Where a tool call runs: the run's identity and the ports it acts through."""

    caller: Caller
    """The user who started the run: every port call acts as them."""
    project_id: uuid.UUID
    run_id: uuid.UUID
    task_id: uuid.UUID | None
    sandbox: Callable[[], Awaitable[uuid.UUID]]
    """The run's sandbox, created on first use."""
    ports: Hooks
    """`.sandbox` / `.artifacts` / `.task_board` (`.get()` at call time)."""
    emit: Callable[[RunEvent], Awaitable[None]]
    """Records an event while the tool runs (ExecReported, ArtifactSaved)."""
    settings: Settings


@dataclass(frozen=True)
class ToolOutcome:
    content: str
    """What the model reads as the tool's result."""
    is_error: bool = False
    final_answer: str | None = None
    """Set by `finish`: the run's result."""


@dataclass(frozen=True)
class ToolDescription:
    """A tool as ListRunTools shows it."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    writes: bool


class Tool(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    may_write: ClassVar[bool]
    """Whether some call of this tool changes something (ListRunTools' `writes`)."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the input object."""

    def check(self, arguments: Mapping[str, Any]) -> None:
        """Checks what the schema cannot say (fields needed together); raises
        ToolInputError. Called after the schema accepted `arguments`."""
        return None

    def writes(self, arguments: Mapping[str, Any]) -> bool:
        """Whether this call changes something (asked before in ask-before-writes mode)."""
        return self.may_write

    @abstractmethod
    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolOutcome:
        """Runs a call whose arguments passed `parse`. A port's ForgeError may escape (the
        registry makes it an error outcome); anything else escaping is a bug."""
