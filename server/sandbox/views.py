"""What the sandbox domain hands to the servicer: plain values, no ORM rows, no protos."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from server.db.sandbox_models import SandboxRow
from server.sandbox.backend import Stream
from server.sandbox.limits import Limits
from server.sandbox.runtimes import Runtime


class SandboxState(Enum):
    CREATING = "creating"
    RUNNING = "running"
    PAUSED = "paused"
    DELETED = "deleted"
    LOST = "lost"
    FAILED = "failed"

    @property
    def live(self) -> bool:
        return self in (SandboxState.CREATING, SandboxState.RUNNING, SandboxState.PAUSED)


@dataclass(frozen=True)
class Lifetimes:
    idle_ttl: timedelta
    max_lifetime: timedelta


@dataclass(frozen=True)
class SandboxView:
    id: str
    project_id: str
    runtime: str
    image: str
    state: SandboxState
    state_message: str
    limits: Limits
    warm: bool
    start_duration: timedelta | None
    creator_user_id: str
    create_time: datetime
    update_time: datetime
    last_active_time: datetime
    expire_time: datetime | None

    @classmethod
    def of(cls, row: SandboxRow, fallback_limits: Limits, lifetimes: Lifetimes) -> SandboxView:
        state = SandboxState(row.state)
        expire = None
        if state.live:
            expire = min(
                row.last_active_time + lifetimes.idle_ttl, row.create_time + lifetimes.max_lifetime
            )
        return cls(
            id=str(row.id),
            project_id=str(row.project_id),
            runtime=row.runtime,
            image=row.image,
            state=state,
            state_message=row.state_message,
            limits=Limits.from_json(row.limits, fallback_limits),
            warm=row.warm,
            start_duration=row.start_duration,
            creator_user_id=str(row.creator_id) if row.creator_id else "",
            create_time=row.create_time,
            update_time=row.update_time,
            last_active_time=row.last_active_time,
            expire_time=expire,
        )


@dataclass(frozen=True)
class RuntimeView:
    runtime: Runtime
    pool_ready: int


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    is_dir: bool
    mode: int
    modify_time: datetime | None
    is_symlink: bool


class ExitReason(Enum):
    EXITED = "exited"
    TIMEOUT = "timeout"
    IDLE_TIMEOUT = "idle_timeout"
    CANCELLED = "cancelled"
    OOM_KILLED = "oom_killed"
    KILLED = "killed"
    SANDBOX_LOST = "sandbox_lost"


@dataclass(frozen=True)
class ExecStarted:
    execution_id: str
    sandbox_id: str
    start_time: datetime


@dataclass(frozen=True)
class ExecOutput:
    stream: Stream
    data: bytes


@dataclass(frozen=True)
class ExecExited:
    exit_code: int
    signal: int
    duration: timedelta
    timed_out: bool
    oom_killed: bool
    output_truncated: bool
    reason: ExitReason
    stdout_bytes: int
    stderr_bytes: int


ExecEvent = ExecStarted | ExecOutput | ExecExited
