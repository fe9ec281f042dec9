"""Agent domain objects ↔ forge.agents.v1 protos."""

from __future__ import annotations

from typing import cast

from forge.agents.v1 import agents_pb2
from forge.artifacts.v1 import artifacts_pb2
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from server.agents.providers import ProviderKind, ProviderView
from server.agents.views import (
    AgentDraft,
    AgentView,
    ChatArtifact,
    ChatCompleted,
    ChatEvent,
    ChatStarted,
    ChatSummary,
    ChatUsage,
    ConversationDraft,
    ConversationView,
    MessageView,
    StoredError,
    UsageReport,
)
from server.core.errors import ForgeError
from server.core.status import ERROR_DOMAIN, to_status_proto
from server.core.timestamps import to_timestamp
from server.llm import TextDelta
from server.llm.own_keys import KeySource
from server.llm.registry import UsableModel

ROLES = {
    "user": agents_pb2.MESSAGE_ROLE_USER,
    "assistant": agents_pb2.MESSAGE_ROLE_ASSISTANT,
    "system": agents_pb2.MESSAGE_ROLE_SYSTEM,
    "tool": agents_pb2.MESSAGE_ROLE_TOOL,
    "summary": agents_pb2.MESSAGE_ROLE_SUMMARY,
}
STATUSES = {
    "in_progress": agents_pb2.MESSAGE_STATUS_IN_PROGRESS,
    "complete": agents_pb2.MESSAGE_STATUS_COMPLETE,
    "cancelled": agents_pb2.MESSAGE_STATUS_CANCELLED,
    "failed": agents_pb2.MESSAGE_STATUS_FAILED,
    "interrupted": agents_pb2.MESSAGE_STATUS_INTERRUPTED,
}
FINISH_REASONS = {
    "stop": agents_pb2.FINISH_REASON_STOP,
    "max_tokens": agents_pb2.FINISH_REASON_MAX_TOKENS,
    "tool_use": agents_pb2.FINISH_REASON_TOOL_USE,
    "content_filter": agents_pb2.FINISH_REASON_CONTENT_FILTER,
}


def _id(value: object | None) -> str:
    return str(value) if value is not None else ""


# --- models and agents -------------------------------------------------------------------


KEY_SOURCES = {
    KeySource.SERVER: agents_pb2.KEY_SOURCE_SERVER,
    KeySource.USER: agents_pb2.KEY_SOURCE_USER,
    KeySource.PROJECT: agents_pb2.KEY_SOURCE_PROJECT,
}
PROVIDER_KINDS = {
    ProviderKind.ANTHROPIC: agents_pb2.PROVIDER_KIND_ANTHROPIC,
    ProviderKind.GEMINI: agents_pb2.PROVIDER_KIND_GEMINI,
    ProviderKind.OPENAI_COMPATIBLE: agents_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE,
    ProviderKind.ECHO: agents_pb2.PROVIDER_KIND_ECHO,
}


def model_to_proto(usable: UsableModel, max_output_tokens: int) -> agents_pb2.Model:
    model = usable.info
    return agents_pb2.Model(
        id=model.id,
        provider=model.provider,
        display_name=model.display_name,
        context_window_tokens=model.context_window_tokens,
        max_output_tokens=model.max_output_tokens or max_output_tokens,
        supports_tools=model.supports_tools,
        supports_image_input=model.supports_image_input,
        input_usd_per_million_tokens=model.prices.input_usd_per_million_tokens,
        output_usd_per_million_tokens=model.prices.output_usd_per_million_tokens,
        key_source=KEY_SOURCES[usable.key_source],
        discovered=model.discovered,
    )


def provider_to_proto(provider: ProviderView) -> agents_pb2.Provider:
    return agents_pb2.Provider(
        name=provider.name,
        kind=PROVIDER_KINDS[provider.kind],
        configured=provider.configured,
        enabled=provider.enabled,
        discoverable=provider.discoverable,
        update_user_id=_id(provider.update_user_id),
        update_time=to_timestamp(provider.update_time),
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
        stop_sequences=agent.stop_sequences,
        builtin=agent.builtin,
        creator_user_id=_id(agent.creator_id),
        create_time=to_timestamp(agent.create_time),
        update_time=to_timestamp(agent.update_time),
    )
    if agent.temperature is not None:
        proto.temperature = agent.temperature
    if agent.top_p is not None:
        proto.top_p = agent.top_p
    return proto


def agent_draft(agent: agents_pb2.Agent) -> AgentDraft:
    return AgentDraft(
        name=agent.name,
        description=agent.description,
        model=agent.model,
        system_prompt=agent.system_prompt,
        tools=tuple(agent.tools),
        temperature=agent.temperature if agent.HasField("temperature") else None,
        max_output_tokens=agent.max_output_tokens,
        top_p=agent.top_p if agent.HasField("top_p") else None,
        stop_sequences=tuple(agent.stop_sequences),
    )


# --- conversations and messages ----------------------------------------------------------


def conversation_to_proto(conversation: ConversationView) -> agents_pb2.Conversation:
    return agents_pb2.Conversation(
        id=str(conversation.id),
        project_id=str(conversation.project_id),
        agent_id=conversation.agent_id or "",
        title=conversation.title,
        model=conversation.model,
        message_count=conversation.message_count,
        creator_user_id=_id(conversation.creator_id),
        create_time=to_timestamp(conversation.create_time),
        update_time=to_timestamp(conversation.update_time),
        last_message_time=to_timestamp(conversation.last_message_time),
    )


def conversation_draft(conversation: agents_pb2.Conversation) -> ConversationDraft:
    return ConversationDraft(
        agent_id=conversation.agent_id, title=conversation.title, model=conversation.model
    )


def stored_error(error: StoredError) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=dict(error.metadata)
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    return status_pb2.Status(code=error.code, message=error.message, details=[packed])


def message_to_proto(message: MessageView) -> agents_pb2.Message:
    proto = agents_pb2.Message(
        id=str(message.id),
        conversation_id=str(message.conversation_id),
        role=ROLES.get(message.role, agents_pb2.MESSAGE_ROLE_UNSPECIFIED),
        content=message.content,
        model=message.model,
        status=STATUSES.get(message.status, agents_pb2.MESSAGE_STATUS_UNSPECIFIED),
        finish_reason=FINISH_REASONS.get(
            message.finish_reason or "", agents_pb2.FINISH_REASON_UNSPECIFIED
        ),
        tool_call_id=message.tool_call_id or "",
        artifact_ids=message.artifact_ids,
        author_user_id=_id(message.author_id),
        create_time=to_timestamp(message.create_time),
        update_time=to_timestamp(message.update_time),
        summarized_through_id=_id(message.summarized_through_id),
        summarized_message_count=message.summarized_message_count,
    )
    if message.role in ("assistant", "summary"):
        proto.usage.input_tokens = message.input_tokens
        proto.usage.output_tokens = message.output_tokens
    for call in message.tool_calls:
        proto.tool_calls.add(id=call.id, name=call.name, arguments=call.arguments)
    if message.error is not None:
        proto.error.CopyFrom(stored_error(message.error))
    return proto


# --- chat events -------------------------------------------------------------------------

_ChatEvent = agents_pb2.ChatEvent


def chat_event(event: ChatEvent, seq: int) -> agents_pb2.ChatEvent:
    # The hot path first: one small message per delta. (Setting the delta's text in place
    # costs half what building a TextDelta message and nesting it does.)
    if type(event) is TextDelta:
        message = _ChatEvent(seq=seq)
        message.delta.text = event.text
        return message
    if isinstance(event, ChatStarted):
        return _ChatEvent(
            seq=seq,
            started=agents_pb2.ChatStarted(
                user_message_id=str(event.user_message_id),
                assistant_message_id=str(event.assistant_message_id),
                model=event.model,
            ),
        )
    if isinstance(event, ChatSummary):
        return _ChatEvent(seq=seq, summary=message_to_proto(event.message))
    if isinstance(event, ChatUsage):
        return _ChatEvent(
            seq=seq,
            usage=agents_pb2.TokenUsage(
                input_tokens=event.usage.input_tokens, output_tokens=event.usage.output_tokens
            ),
        )
    if isinstance(event, ChatArtifact):
        proto = _ChatEvent(seq=seq)
        # Answer listeners offer contract messages; this field holds the artifacts' own.
        proto.artifact.CopyFrom(cast(artifacts_pb2.Artifact, event.artifact))
        return proto
    if isinstance(event, ChatCompleted):
        return _ChatEvent(
            seq=seq,
            completed=agents_pb2.ChatCompleted(
                finish_reason=FINISH_REASONS.get(
                    event.finish_reason, agents_pb2.FINISH_REASON_UNSPECIFIED
                )
            ),
        )
    return _ChatEvent(seq=seq, delta=agents_pb2.TextDelta(text=event.text))


def chat_error_event(error: ForgeError, seq: int) -> agents_pb2.ChatEvent:
    """The last event of a failed answer (the call then ends with the same status)."""
    return _ChatEvent(seq=seq, error=to_status_proto(error))


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
                cost_usd=record.cost_usd,
            )
            for record in report.records
        ],
        cost_usd=report.cost_usd,
        input_tokens=report.input_tokens,
        output_tokens=report.output_tokens,
        daily_token_quota=report.daily_token_quota,
        tokens_used_today=report.tokens_used_today,
        quota_remaining_tokens=report.quota_remaining_tokens,
        quota_reset_time=to_timestamp(report.quota_reset_time),
    )
