"""The agent tables' rows as the domain's views (views.py): rows stay inside the domain."""

from __future__ import annotations

from typing import Any

from server.agents.views import (
    AgentView,
    ConversationView,
    MessageView,
    StoredError,
    ToolCallView,
)
from server.db.agent_models import AgentProfile, Conversation, MessageRow


def agent_view(row: AgentProfile) -> AgentView:
    return AgentView(
        id=str(row.id),
        project_id=row.project_id,
        name=row.name,
        description=row.description,
        model=row.model,
        system_prompt=row.system_prompt,
        tools=tuple(row.tools),
        temperature=row.temperature,
        max_output_tokens=row.max_output_tokens,
        top_p=row.top_p,
        stop_sequences=tuple(row.stop_sequences or ()),
        creator_id=row.creator_id,
        create_time=row.create_time,
        update_time=row.update_time,
    )


def conversation_view(row: Conversation) -> ConversationView:
    return ConversationView(
        id=row.id,
        project_id=row.project_id,
        agent_id=row.agent_id,
        title=row.title,
        model=row.model,
        message_count=row.message_count,
        creator_id=row.creator_id,
        create_time=row.create_time,
        update_time=row.update_time,
        last_message_time=row.last_message_time,
    )


def stored_error(document: dict[str, Any]) -> StoredError:
    """The error document of a failed answer (chat.py writes it)."""
    return StoredError(
        code=int(document.get("code", 0)),
        reason=str(document.get("reason", "")),
        message=str(document.get("message", "")),
        metadata={str(k): str(v) for k, v in dict(document.get("metadata") or {}).items()},
    )


def message_view(row: MessageRow) -> MessageView:
    return MessageView(
        id=row.id,
        conversation_id=row.conversation_id,
        role=row.role,
        content=row.content,
        model=row.model,
        status=row.status,
        finish_reason=row.finish_reason,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        tool_calls=tuple(
            ToolCallView(
                id=str(call.get("id", "")),
                name=str(call.get("name", "")),
                arguments=str(call.get("arguments", "")),
            )
            for call in row.tool_calls
        ),
        tool_call_id=row.tool_call_id,
        artifact_ids=tuple(row.artifact_ids),
        error=stored_error(row.error) if row.error else None,
        author_id=row.author_id,
        create_time=row.create_time,
        update_time=row.update_time,
        summarized_through_id=row.summarized_through_id,
        summarized_message_count=row.summarized_message_count,
    )
