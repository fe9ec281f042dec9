"""Agent domain objects ↔ forge.agents.v1 protos."""

from __future__ import annotations

from typing import Any

from forge.agents.v1 import agents_pb2
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from server.agents.conversations import ConversationDraft
from server.agents.profiles import AgentDraft
from server.agents.providers import ModelInfo
from server.agents.views import (
    AgentView,
    ChatArtifact,
    ChatCompleted,
    ChatEventView,
    ChatFailed,
    ChatStarted,
    ChatUsage,
    UsageReport,
)
from server.core.status import ERROR_DOMAIN, to_status_proto
from server.core.timestamps import to_timestamp
from server.db.agent_models import Conversation, MessageRow

ROLES = {
    "user": agents_pb2.MESSAGE_ROLE_USER,
    "assistant": agents_pb2.MESSAGE_ROLE_ASSISTANT,
    "system": agents_pb2.MESSAGE_ROLE_SYSTEM,
    "tool": agents_pb2.MESSAGE_ROLE_TOOL,
}
STATUSES = {
    "in_progress": agents_pb2.MESSAGE_STATUS_IN_PROGRESS,
    "complete": agents_pb2.MESSAGE_STATUS_COMPLETE,
    "cancelled": agents_pb2.MESSAGE_STATUS_CANCELLED,
    "failed": agents_pb2.MESSAGE_STATUS_FAILED,
}
FINISH_REASONS = {
    "stop": agents_pb2.FINISH_REASON_STOP,
    "max_tokens": agents_pb2.FINISH_REASON_MAX_TOKENS,
    "tool_use": agents_pb2.FINISH_REASON_TOOL_USE,
    "content_filter": agents_pb2.FINISH_REASON_CONTENT_FILTER,
}

# Context windows by provider (prompt + answer tokens); the listed models of each share one.
CONTEXT_WINDOWS = {"anthropic": 200_000, "gemini": 1_048_576, "echo": 1_000_000}


def _id(value: object | None) -> str:
    return str(value) if value is not None else ""


# --- models and agents -------------------------------------------------------------------


def model_to_proto(model: ModelInfo, max_output_tokens: int) -> agents_pb2.Model:
    return agents_pb2.Model(
        id=model.id,
        provider=model.provider,
        display_name=model.display_name,
        context_window_tokens=CONTEXT_WINDOWS.get(model.provider, 0),
        max_output_tokens=max_output_tokens,
        supports_tools=model.supports_tools,
    )


def agent_to_proto(agent: AgentView) -> agents_pb2.Agent:
    proto = agents_pb2.Agent(
        id=agent.id,
        project_id=_id(agent.project_id),
        name=agent.name,
        description=agent.description,
        model=agent.model,
        system_prompt=agent.system_prompt,
        tools=agent.tools,
        max_output_tokens=agent.max_output_tokens,
        builtin=agent.builtin,
        creator_user_id=_id(agent.creator_id),
        create_time=to_timestamp(agent.create_time),
        update_time=to_timestamp(agent.update_time),
    )
    if agent.temperature is not None:
        proto.temperature = agent.temperature
    return proto


def agent_draft(agent: agents_pb2.Agent) -> AgentDraft:
    return AgentDraft(
        name=agent.name,
        description=agent.description,
        model=agent.model,
        system_prompt=agent.system_prompt,
        tools=list(agent.tools),
        temperature=agent.temperature if agent.HasField("temperature") else None,
        max_output_tokens=agent.max_output_tokens,
    )


# --- conversations and messages ----------------------------------------------------------


def conversation_to_proto(row: Conversation) -> agents_pb2.Conversation:
    return agents_pb2.Conversation(
        id=str(row.id),
        project_id=str(row.project_id),
        agent_id=row.agent_id or "",
        title=row.title,
        model=row.model,
        message_count=row.message_count,
        creator_user_id=_id(row.creator_id),
        create_time=to_timestamp(row.create_time),
        update_time=to_timestamp(row.update_time),
        last_message_time=to_timestamp(row.last_message_time),
    )


def conversation_draft(conversation: agents_pb2.Conversation) -> ConversationDraft:
    return ConversationDraft(
        agent_id=conversation.agent_id, title=conversation.title, model=conversation.model
    )


def stored_error(document: dict[str, Any]) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(
        reason=str(document.get("reason", "")),
        domain=ERROR_DOMAIN,
        metadata={str(k): str(v) for k, v in dict(document.get("metadata") or {}).items()},
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    return status_pb2.Status(
        code=int(document.get("code", 0)),
        message=str(document.get("message", "")),
        details=[packed],
    )


def message_to_proto(row: MessageRow) -> agents_pb2.Message:
    proto = agents_pb2.Message(
        id=str(row.id),
        conversation_id=str(row.conversation_id),
        role=ROLES.get(row.role, agents_pb2.MESSAGE_ROLE_UNSPECIFIED),
        content=row.content,
        model=row.model,
        status=STATUSES.get(row.status, agents_pb2.MESSAGE_STATUS_UNSPECIFIED),
        finish_reason=FINISH_REASONS.get(
            row.finish_reason or "", agents_pb2.FINISH_REASON_UNSPECIFIED
        ),
        tool_call_id=row.tool_call_id or "",
        artifact_ids=list(row.artifact_ids),
        author_user_id=_id(row.author_id),
        create_time=to_timestamp(row.create_time),
        update_time=to_timestamp(row.update_time),
    )
    if row.role == "assistant":
        proto.usage.input_tokens = row.input_tokens
        proto.usage.output_tokens = row.output_tokens
    for call in row.tool_calls:
        proto.tool_calls.add(
            id=str(call.get("id", "")),
            name=str(call.get("name", "")),
            arguments=str(call.get("arguments", "")),
        )
    if row.error:
        proto.error.CopyFrom(stored_error(row.error))
    return proto


# --- chat events -------------------------------------------------------------------------


def started_event(started: ChatStarted, seq: int) -> agents_pb2.ChatEvent:
    return agents_pb2.ChatEvent(
        seq=seq,
        started=agents_pb2.ChatStarted(
            user_message_id=str(started.user_message_id),
            assistant_message_id=str(started.assistant_message_id),
            model=started.model,
        ),
    )


def chat_event(event: ChatStarted | ChatEventView, seq: int) -> agents_pb2.ChatEvent:
    """Any chat event but a delta (the servicer builds those inline: it is the hot path)."""
    if isinstance(event, ChatStarted):
        return started_event(event, seq)
    if isinstance(event, ChatUsage):
        return agents_pb2.ChatEvent(
            seq=seq,
            usage=agents_pb2.TokenUsage(
                input_tokens=event.usage.input_tokens, output_tokens=event.usage.output_tokens
            ),
        )
    if isinstance(event, ChatArtifact):
        proto = agents_pb2.ChatEvent(seq=seq)
        proto.artifact.CopyFrom(event.artifact)
        return proto
    if isinstance(event, ChatCompleted):
        return agents_pb2.ChatEvent(
            seq=seq,
            completed=agents_pb2.ChatCompleted(
                finish_reason=FINISH_REASONS.get(
                    event.finish_reason, agents_pb2.FINISH_REASON_UNSPECIFIED
                )
            ),
        )
    if isinstance(event, ChatFailed):
        return agents_pb2.ChatEvent(seq=seq, error=to_status_proto(event.error))
    return agents_pb2.ChatEvent(seq=seq, delta=agents_pb2.TextDelta(text=event.text))


# --- usage -------------------------------------------------------------------------------


def usage_to_proto(report: UsageReport) -> agents_pb2.Usage:
    return agents_pb2.Usage(
        start_day=report.start_day.isoformat(),
        end_day=report.end_day.isoformat(),
        records=[
            agents_pb2.UsageRecord(
                day=record.day.isoformat(),
                model=record.model,
                input_tokens=record.input_tokens,
                output_tokens=record.output_tokens,
                request_count=record.request_count,
                image_count=record.image_count,
            )
            for record in report.records
        ],
        input_tokens=report.input_tokens,
        output_tokens=report.output_tokens,
        daily_token_quota=report.daily_token_quota,
        tokens_used_today=report.tokens_used_today,
        quota_remaining_tokens=report.quota_remaining_tokens,
        quota_reset_time=to_timestamp(report.quota_reset_time),
    )
