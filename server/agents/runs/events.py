"""A run's events, as the domain sees them. The log (`run_events`) stores each one encoded
by `server/agents/runs/convert.py` (a serialised `forge.agents.v1.RunEvent` without its
seq), so a replay is byte-identical to what live watchers got; the run's state (transcript,
steps, budgets, pending approval) is rebuilt from these events alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeAlias

from google.protobuf.message import Message

from server.core.ports import ExecPortEvent


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_FOR_APPROVAL)


class ApprovalMode(StrEnum):
    AUTO = "auto"
    ASK_BEFORE_BASH = "ask_before_bash"
    ASK_BEFORE_WRITES = "ask_before_writes"


@dataclass(frozen=True, slots=True)
class StatusChanged:
    status: RunStatus
    message: str = ""
    tool_call_id: str = ""
    """With WAITING_FOR_APPROVAL: the call waiting."""
    step: int = 0
    """With RUNNING at the start of a model turn: the turn's number (1, 2, …)."""


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCalled:
    id: str
    name: str
    arguments: str
    """The JSON object the model produced, as text."""
    signature: str = ""
    """Opaque provider data (Gemini's thought signature) kept for the transcript; not
    shown to clients."""


@dataclass(frozen=True, slots=True)
class ToolAnswered:
    tool_call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ExecReported:
    """Output of the sandbox execution of the latest tool call."""

    event: ExecPortEvent


@dataclass(frozen=True, slots=True)
class ArtifactSaved:
    artifact: Message
    """The contract `forge.artifacts.v1.Artifact`, passed through opaquely."""


@dataclass(frozen=True, slots=True)
class TurnUsage:
    """Tokens of one model turn; also marks the turn as complete."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class UserSteered:
    content: str
    author_user_id: str


@dataclass(frozen=True, slots=True)
class ApprovalGiven:
    tool_call_id: str
    approved: bool
    reason: str
    user_id: str


@dataclass(frozen=True, slots=True)
class TranscriptSummarized:
    """The transcript outgrew the history budget: from here on the model sees `text` in
    place of the events up to `through_seq` (runs/compaction.py)."""

    text: str
    through_seq: int
    input_tokens: int
    """Tokens of the summarising call (counted in the run's usage and budget)."""
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Completed:
    """The last event of a run that succeeded or was cancelled."""

    status: RunStatus
    result: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The last event of a failed run."""

    code: int
    """A `google.rpc.Code` value."""
    reason: str
    message: str
    metadata: dict[str, str]


RunEvent: TypeAlias = (
    StatusChanged
    | Delta
    | ToolCalled
    | ToolAnswered
    | ExecReported
    | ArtifactSaved
    | TurnUsage
    | UserSteered
    | ApprovalGiven
    | TranscriptSummarized
    | Completed
    | Failed
)

TERMINAL_EVENTS = (Completed, Failed)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read from the log."""

    seq: int
    event: RunEvent
    payload: bytes
    """The stored encoding (what WatchRun sends, with `seq` and `create_time` set)."""
    create_time: datetime
