"""What the agents domain hands back to the servicer (besides the ORM rows of conversations
and messages, which are plain data once their session has closed)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from server.agents.providers import FinishReason, TextDelta, Usage
from server.core.errors import ForgeError


@dataclass(frozen=True, slots=True)
class AgentView:
    id: str
    project_id: uuid.UUID | None
    name: str
    description: str
    model: str
    system_prompt: str
    tools: list[str]
    temperature: float | None
    max_output_tokens: int
    builtin: bool = False
    creator_id: uuid.UUID | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_key: list[str] | None
    """Sort key of the last item when another page follows."""


@dataclass(frozen=True, slots=True)
class Export:
    content_type: str
    data: bytes
    filename: str


@dataclass(frozen=True, slots=True)
class UsageRecord:
    day: date
    model: str
    input_tokens: int
    output_tokens: int
    request_count: int
    image_count: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    start_day: date
    end_day: date
    records: list[UsageRecord]
    daily_token_quota: int
    tokens_used_today: int
    quota_reset_time: datetime

    @property
    def input_tokens(self) -> int:
        return sum(record.input_tokens for record in self.records)

    @property
    def output_tokens(self) -> int:
        return sum(record.output_tokens for record in self.records)

    @property
    def quota_remaining_tokens(self) -> int:
        return max(self.daily_token_quota - self.tokens_used_today, 0)


# --- chat events (besides the provider's TextDelta, relayed as is) ----------------------


@dataclass(frozen=True, slots=True)
class ChatStarted:
    user_message_id: uuid.UUID
    assistant_message_id: uuid.UUID
    model: str


@dataclass(frozen=True, slots=True)
class ChatUsage:
    usage: Usage


@dataclass(frozen=True, slots=True)
class ChatArtifact:
    artifact: Any
    """A `forge.artifacts.v1.Artifact` from an answer listener (passed through untouched)."""


@dataclass(frozen=True, slots=True)
class ChatCompleted:
    finish_reason: FinishReason


@dataclass(frozen=True, slots=True)
class ChatFailed:
    error: ForgeError


ChatEventView = TextDelta | ChatUsage | ChatArtifact | ChatCompleted | ChatFailed
