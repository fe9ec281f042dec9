"""Ports that agent runs use to act in other services: run a command or touch files in a
sandbox, save an artifact, move a kanban task. Offered by sandbox, artifacts and projects
(`Offers`), used by agents' run loop through `Hooks` (see hooks.py). Every call acts as
`caller` (a run acts as the user who started it) and is checked by the project access
rule like the matching RPC; errors are the same typed `ForgeError`s the RPCs raise.

The types here are neutral: no service's internals and no generated code cross a port,
except contract messages handed through opaquely (`Artifact`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeAlias

from google.protobuf.message import Message

from server.core.context import Caller

# --- sandbox -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecBegan:
    execution_id: str
    sandbox_id: str
    start_time: datetime


@dataclass(frozen=True, slots=True)
class ExecChunk:
    stream: Literal["stdout", "stderr"]
    data: bytes


ExitReasonName: TypeAlias = Literal[
    "exited", "timeout", "idle_timeout", "cancelled", "oom_killed", "killed", "sandbox_lost"
]


@dataclass(frozen=True, slots=True)
class ExecEnded:
    exit_code: int
    signal: int
    duration: timedelta
    timed_out: bool
    oom_killed: bool
    output_truncated: bool
    reason: ExitReasonName
    stdout_bytes: int
    stderr_bytes: int


ExecPortEvent: TypeAlias = ExecBegan | ExecChunk | ExecEnded


class SandboxPort(Protocol):
    """Offered by SandboxService."""

    async def ensure_sandbox(
        self, caller: Caller, project_id: uuid.UUID, sandbox_id: uuid.UUID | None
    ) -> uuid.UUID:
        """`sandbox_id` if it is a running sandbox of the project the caller may edit in
        (NOT_FOUND / FAILED_PRECONDITION otherwise; a paused one is resumed); None: a new
        python sandbox for the project, taken from the warm pool when one is ready."""
        ...

    def exec(
        self, caller: Caller, sandbox_id: uuid.UUID, command: str, timeout: timedelta
    ) -> AsyncGenerator[ExecPortEvent, None]:
        """Runs `command` with `bash -lc` in /workspace: ExecBegan, ExecChunk*, ExecEnded
        (always last when it ran). Closing the generator early (or cancelling its consumer)
        kills the whole process group at once and records the execution as cancelled.
        Output caps and limits are those of Exec."""
        ...

    async def read_file(self, caller: Caller, sandbox_id: uuid.UUID, path: str) -> bytes:
        """A file's content; `path` relative to /workspace or absolute under it (anything
        else INVALID_ARGUMENT); NOT_FOUND (reason FILE_NOT_FOUND, as ReadFile) if absent."""
        ...

    async def write_file(
        self, caller: Caller, sandbox_id: uuid.UUID, path: str, content: bytes
    ) -> None:
        """Creates or replaces a file (parents created), confined to /workspace."""
        ...


# --- artifacts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedArtifact:
    artifact_id: uuid.UUID
    version: int
    created: bool
    """False: an existing artifact of that filename got a new version."""
    message: Message
    """The `forge.artifacts.v1.Artifact` as the API shows it (streamed as a run event)."""


class ArtifactPort(Protocol):
    """Offered by ArtifactService."""

    async def save_from_run(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        run_id: uuid.UUID,
        filename: str,
        content: bytes,
        title: str = "",
    ) -> SavedArtifact:
        """Saves `content` as the project's artifact named `filename` (origin RUN, linked to
        the run): a new artifact, or a new version of the project's artifact with that
        filename when one exists. Kind, language and content type follow the filename."""
        ...


# --- kanban tasks --------------------------------------------------------------------------

TaskColumn: TypeAlias = Literal["todo", "in_progress", "review", "done"]


@dataclass(frozen=True, slots=True)
class TaskState:
    task_id: uuid.UUID
    title: str
    status: TaskColumn


class TaskBoardPort(Protocol):
    """Offered by ProjectService."""

    async def get_task(
        self, caller: Caller, project_id: uuid.UUID, task_id: uuid.UUID
    ) -> TaskState:
        """NOT_FOUND (TASK_NOT_FOUND) unless the task is in the project and the caller may
        read it."""
        ...

    async def attach_run(
        self, caller: Caller, project_id: uuid.UUID, task_id: uuid.UUID, run_id: uuid.UUID
    ) -> TaskState:
        """Records the run on the task (`Task.run_id`) and moves it to in_progress (to the
        end of that column) unless it is there already."""
        ...

    async def move_task(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        task_id: uuid.UUID,
        status: TaskColumn | None,
        note: str = "",
    ) -> TaskState:
        """Moves the task to the end of `status` (None: stays) and appends `note`, if any,
        as a new paragraph of its description."""
        ...


# --- agents' records ------------------------------------------------------------------------


class AgentRecordsPort(Protocol):
    """Offered by AgentService: whether conversations, messages and runs named by another
    service's request (e.g. an artifact's sources) are the project's."""

    async def foreign_sources(
        self,
        project_id: uuid.UUID,
        conversation_id: uuid.UUID | None,
        message_id: uuid.UUID | None,
        run_id: uuid.UUID | None,
    ) -> list[str]:
        """The names ("conversation_id", "message_id", "run_id") of those given that are not
        in the project (a message also not in the conversation, when one is given)."""
        ...
