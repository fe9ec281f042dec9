"""What the sandbox domain needs from a container engine, independent of which one.

The Docker implementation lives in docker_backend.py; a Kubernetes or multi-host one would
implement the same protocol. Paths given to a backend are absolute container paths that the
caller has already confined (see paths.py); a backend does no access control of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol

from server.sandbox.limits import Limits

# Container labels. Every container a server creates carries MANAGED and NAMESPACE;
# sandboxes also carry SANDBOX_ID and PROJECT_ID (empty for warm pool containers, which
# are not yet anybody's), pool containers carry POOL with their runtime.
LABEL_MANAGED = "forge.managed"
LABEL_NAMESPACE = "forge.namespace"
LABEL_SANDBOX_ID = "forge.sandbox_id"
LABEL_PROJECT_ID = "forge.project_id"
LABEL_RUNTIME = "forge.runtime"
LABEL_POOL = "forge.pool"

WORKSPACE = "/workspace"
SANDBOX_USER = "1000:1000"
SANDBOX_UID = 1000
SANDBOX_GID = 1000


class BackendError(Exception):
    """A container engine call failed. Subclasses say why; the message is safe to log."""


class BackendUnavailable(BackendError):
    """The engine cannot be reached."""


class ContainerGone(BackendError):
    """The container does not exist (any more)."""


class ContainerPaused(BackendError):
    """The container is paused, and the operation needs it running."""


class ContainerNotRunning(BackendError):
    """The container has stopped."""


class NoSpace(BackendError):
    """A write did not fit into the container's filesystem."""


class ResourceLimit(BackendError):
    """The container hit a resource limit (e.g. no process slot left to start a command)."""


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    labels: Mapping[str, str]
    limits: Limits
    env: Mapping[str, str] = field(default_factory=dict)


class ContainerStatus(Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"

    @classmethod
    def parse(cls, value: str) -> ContainerStatus:
        try:
            return cls(value)
        except ValueError:
            return cls.DEAD


DEFAULT_ROOT_DIR = "/var/lib/docker"


@dataclass(frozen=True)
class EngineDescription:
    """An engine's own id (Docker's `docker info` ID: stable across its restarts) and what
    it has for sandboxes."""

    engine_id: str
    memory_bytes: int
    cpu_millis: int
    root_dir: str = DEFAULT_ROOT_DIR

    def host_id(self, namespace: str) -> str:
        """The engine's name in the database: '<namespace>@<engine id>', plus its data root
        when that is not the default, as engines on one machine share their id (it comes
        from /etc/docker/key.json)."""
        host = f"{namespace}@{self.engine_id}"
        return host if self.root_dir == DEFAULT_ROOT_DIR else f"{host}{self.root_dir}"


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    labels: Mapping[str, str]
    status: ContainerStatus
    created: datetime | None = None


class Stream(Enum):
    STDOUT = 1
    STDERR = 2


@dataclass(frozen=True)
class OutputBatch:
    """Output read at once from an execution, in the order it was produced.

    `segments` holds what is kept (at most the output limit per stream per execution);
    `stdout_seen` / `stderr_seen` count every byte the process wrote in this batch,
    including dropped ones.
    """

    segments: Sequence[tuple[Stream, bytes]]
    stdout_seen: int
    stderr_seen: int


@dataclass(frozen=True)
class ExecSpec:
    argv: Sequence[str]
    env: Mapping[str, str]
    working_dir: str
    stdin: bytes | None
    output_limit_bytes: int


class ExecProcess(Protocol):
    """A command running in a container.

    It runs as the leader of its own process group; `process_group` resolves to that
    group's id as seen inside the container (None if the command never started).
    """

    process_group: asyncio.Future[int | None]

    async def next_batch(self) -> OutputBatch | None:
        """The next output, or None once every stream reached its end."""
        ...

    async def exit_code(self) -> int | None:
        """After the streams ended: the exit code (None if the engine lost track of it)."""
        ...

    async def close(self) -> None:
        """Stops reading; the command itself is not affected (see kill_process_group)."""
        ...


@dataclass(frozen=True)
class PathStat:
    """A path in a container; for a symlink, `link_target` is its full resolution."""

    path: str
    size: int
    mode: int
    modify_time: datetime | None
    is_dir: bool
    is_symlink: bool
    link_target: str


@dataclass(frozen=True)
class HelperResult:
    """A helper command's end: exit code (None if unknown or its output was cut off)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool


@dataclass(frozen=True)
class NewFile:
    content: bytes
    mode: int


class SandboxBackend(Protocol):
    async def ping(self) -> None:
        """Raises BackendUnavailable unless the engine answers."""
        ...

    async def describe(self) -> EngineDescription:
        """The engine's id and capacity."""
        ...

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Creates and starts a container; it is ready for exec when this returns."""
        ...

    async def destroy(self, container_id: str) -> None:
        """Removes the container and its volumes; a missing container is not an error."""
        ...

    async def pause(self, container_id: str) -> None: ...

    async def resume(self, container_id: str) -> None: ...

    async def list_managed(self, namespace: str) -> list[ContainerInfo]:
        """Every container (any status) labelled as managed in `namespace`."""
        ...

    def container_ends(self, namespace: str) -> AsyncGenerator[str, None]:
        """The id of every managed container of `namespace` that stops or is removed, as
        it happens; ends (or raises BackendError) when the engine's stream does."""
        ...

    async def is_alive(self, container_id: str) -> bool:
        """Whether the container exists and is running or paused."""
        ...

    async def exec(self, container_id: str, spec: ExecSpec) -> ExecProcess: ...

    async def run(self, container_id: str, argv: Sequence[str]) -> tuple[int, bytes]:
        """Runs a short helper command to completion: (exit code, combined output)."""
        ...

    async def run_helper(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
        max_output: int,
        timeout: float,
    ) -> HelperResult:
        """Runs a helper command as the sandbox user to its end, with separate streams."""
        ...

    def holding_pause(self, container_id: str) -> AbstractAsyncContextManager[bool]:
        """Whether the container is paused; if so it stays paused (resume waits) until the
        context ends, so the archive API can work on it with nothing running inside."""
        ...

    async def kill_process_group(self, container_id: str, process_group: int) -> None:
        """SIGKILLs every process of the group inside the container."""
        ...

    async def oom_kill_count(self, container_id: str) -> int | None:
        """How many processes the kernel has OOM-killed in the container (None: unknown)."""
        ...

    async def stat(self, container_id: str, path: str) -> PathStat | None:
        """The path (not following a final symlink), or None if it does not exist."""
        ...

    async def write_file(
        self, container_id: str, directory: str, relative_path: str, file: NewFile
    ) -> None:
        """Creates or replaces `directory/relative_path`, creating missing parents."""
        ...

    async def read_file(self, container_id: str, path: str, max_bytes: int) -> bytes: ...

    async def list_tree(self, container_id: str, directory: str) -> list[PathStat]:
        """Every entry below `directory` (recursively), with absolute paths."""
        ...

    async def close(self) -> None: ...
