"""What the agents domain takes from and hands back to the servicer: frozen dataclasses, never
ORM rows or protos (convert.py turns them into protos and back)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from google.protobuf.message import Message

from server.llm import FinishReason, TextDelta, Usage
from server.llm.base import NANOS_PER_USD

# --- agent profiles -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentView:
    id: str
    project_id: uuid.UUID | None
    name: str
    description: str
    model: str
    system_prompt: str
    tools: tuple[str, ...]
    temperature: float | None
    max_output_tokens: int
    top_p: float | None = None
    stop_sequences: tuple[str, ...] = ()
    builtin: bool = False
    creator_id: uuid.UUID | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class AgentDraft:
    """The client's fields of a profile (CreateAgent, or UpdateAgent with its mask)."""

    name: str = ""
    description: str = ""
    model: str = ""
    system_prompt: str = ""
    tools: tuple[str, ...] = ()
    temperature: float | None = None
    max_output_tokens: int = 0
    top_p: float | None = None
    stop_sequences: tuple[str, ...] = ()


# --- conversations and messages ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationDraft:
    """The client's fields of a conversation (CreateConversation, UpdateConversation)."""

    agent_id: str = ""
    title: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class ConversationView:
    id: uuid.UUID
    project_id: uuid.UUID
    agent_id: str | None
    title: str
    model: str
    message_count: int
    creator_id: uuid.UUID | None
    create_time: datetime
    update_time: datetime
    last_message_time: datetime | None


@dataclass(frozen=True, slots=True)
class ToolCallView:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class StoredError:
    """How a failed answer failed, as stored with it."""

    code: int
    reason: str
    message: str
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class MessageView:
    id: uuid.UUID
    conversation_id: uuid.UUID
    role: str
    content: str
    model: str
    status: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[ToolCallView, ...]
    tool_call_id: str | None
    artifact_ids: tuple[str, ...]
    error: StoredError | None
    author_id: uuid.UUID | None
    create_time: datetime
    update_time: datetime
    summarized_through_id: uuid.UUID | None = None
    """A summary's (role `summary`) newest covered message."""
    summarized_message_count: int = 0


@dataclass(frozen=True, slots=True)
class Export:
    content_type: str
    data: bytes
    filename: str


# --- usage -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageRecord:
    day: date
    model: str
    input_tokens: int
    output_tokens: int
    request_count: int
    image_count: int
    cost_nanos: int = 0
    """Billionths of a US dollar, at the model's prices when it was used."""

    @property
    def cost_usd(self) -> float:
        return self.cost_nanos / NANOS_PER_USD


@dataclass(frozen=True, slots=True)
class UsageReport:
    start_day: date
    end_day: date
    records: tuple[UsageRecord, ...]
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

    @property
    def cost_usd(self) -> float:
        return sum(record.cost_nanos for record in self.records) / NANOS_PER_USD


# --- chat events (besides the provider's TextDelta, relayed as is) ----------------------
# A failed answer raises its ForgeError after its last event; the servicer's stream turns
# it into the in-band `error` event (server/core/streaming.py).


@dataclass(frozen=True, slots=True)
class ChatStarted:
    user_message_id: uuid.UUID
    assistant_message_id: uuid.UUID
    model: str


@dataclass(frozen=True, slots=True)
class ChatSummary:
    """The summary that now stands for the conversation's older messages (before
    `ChatStarted`)."""

    message: MessageView


@dataclass(frozen=True, slots=True)
class ChatUsage:
    usage: Usage


@dataclass(frozen=True, slots=True)
class ChatArtifact:
    artifact: Message
    """A contract message from an answer listener (e.g. `forge.artifacts.v1.Artifact`),
    passed through untouched."""


@dataclass(frozen=True, slots=True)
class ChatCompleted:
    finish_reason: FinishReason


ChatEvent = ChatSummary | ChatStarted | TextDelta | ChatUsage | ChatArtifact | ChatCompleted
