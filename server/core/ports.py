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
from collections.abc import AsyncGenerator, Mapping
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


IS_A_DIRECTORY = "IS_A_DIRECTORY"
"""The reason of the INVALID_ARGUMENT a file operation gets for a directory."""


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
        else INVALID_ARGUMENT); NOT_FOUND (reason FILE_NOT_FOUND, as ReadFile) if absent;
        INVALID_ARGUMENT with reason IS_A_DIRECTORY for a directory (see read_tree)."""
        ...

    async def write_file(
        self, caller: Caller, sandbox_id: uuid.UUID, path: str, content: bytes
    ) -> None:
        """Creates or replaces a file (parents created), confined to /workspace."""
        ...

    async def read_tree(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        sandbox_id: uuid.UUID,
        path: str,
        *,
        max_files: int,
        max_bytes: int,
    ) -> dict[str, bytes]:
        """The regular files under a directory (`path` as for read_file; "" is /workspace),
        by their paths relative to it ("src/App.tsx"); symbolic links are not followed
        and neither they nor other special files are included. The caller may read the
        project's sandbox (NOT_FOUND otherwise), which is running (FAILED_PRECONDITION
        SANDBOX_PAUSED or SANDBOX_NOT_RUNNING otherwise, as for its other calls). More than
        `max_files` files or `max_bytes` bytes: FAILED_PRECONDITION DIRECTORY_TOO_LARGE;
        a file, not a directory: INVALID_ARGUMENT (reason NOT_A_DIRECTORY)."""
        ...


class ScratchSandboxPort(SandboxPort, Protocol):
    """SandboxPort plus sandboxes made for one job (a build) and removed after it. Offered by
    SandboxService: its `Offers.sandbox` is one."""

    async def create_sandbox(
        self, caller: Caller, project_id: uuid.UUID, runtime: str
    ) -> uuid.UUID:
        """A new running sandbox of `runtime` ("python", "node") for the project, as
        CreateSandbox with the runtime's default limits: editors only, from the warm pool when
        one is ready, the project's quota applies; INVALID_ARGUMENT for an unknown runtime."""
        ...

    async def delete_sandbox(self, caller: Caller, sandbox_id: uuid.UUID) -> None:
        """As DeleteSandbox: the sandbox ends and its container is removed with whatever runs
        in it; one that has ended already is left as it is."""
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


@dataclass(frozen=True, slots=True)
class SiteSource:
    """What to publish: a build (`build_id`), or an artifact's version (0: the latest)."""

    artifact_id: uuid.UUID | None = None
    version: int = 0
    build_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class SiteFiles:
    artifact_id: uuid.UUID
    version: int
    """The version read (the latest when 0 was asked for), or the build's."""
    build_id: uuid.UUID | None
    files: Mapping[str, tuple[bytes, str]]
    """Relative path -> (content, content type)."""


@dataclass(frozen=True, slots=True)
class ArtifactSource:
    """A code artifact's version, to run."""

    version: int
    language: str
    code: str


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

    async def save_tree_from_run(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        run_id: uuid.UUID,
        name: str,
        files: Mapping[str, bytes],
        title: str = "",
    ) -> SavedArtifact:
        """Saves `files` (relative path -> content) as the project's tree artifact named
        `name` (origin RUN, linked to the run): a new tree, or the next version of the
        project's tree of that name when one exists (none when its files are the same)."""
        ...

    async def site_files(
        self, caller: Caller, project_id: uuid.UUID, source: SiteSource
    ) -> SiteFiles:
        """The files of a static site: a succeeded build's outputs with the page that loads
        them (`index.html`), a tree's files, or an HTML artifact as `index.html`.
        NOT_FOUND (ARTIFACT_NOT_FOUND, BUILD_NOT_FOUND) unless the caller may read it in
        `project_id`; FAILED_PRECONDITION for a failed build (BUILD_FAILED) or another kind of
        artifact (NOT_A_SITE)."""
        ...

    async def source_code(
        self, caller: Caller, project_id: uuid.UUID, artifact_id: uuid.UUID, version: int
    ) -> ArtifactSource:
        """A single-file artifact's version as source code (0: the latest). NOT_FOUND
        (ARTIFACT_NOT_FOUND) unless the caller may read it in `project_id`;
        FAILED_PRECONDITION (NOT_RUNNABLE) for a tree or content that is not UTF-8 text."""
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
