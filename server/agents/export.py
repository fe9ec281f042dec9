"""A conversation with every message as one document: JSON (the default) or Markdown."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from server.agents.views import ConversationView, Export, MessageView
from server.core.errors import FieldViolation, InvalidArgument
from server.core.timestamps import utcnow

Renderer = Callable[[ConversationView, Sequence[MessageView]], Export]

_ROLE_TITLES = {
    "user": "User",
    "assistant": "Assistant",
    "system": "System",
    "tool": "Tool",
    "summary": "Summary of the earlier messages",
}
_STATUS_NOTES = {
    "in_progress": "still being written when exported",
    "cancelled": "cancelled: the answer was stopped before it was complete",
    "failed": "failed: the model stopped with an error",
    "interrupted": "interrupted: the server answering it stopped; the text saved until then",
}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _message_json(message: MessageView) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "create_time": _iso(message.create_time),
    }
    if message.model:
        document["model"] = message.model
    if message.finish_reason:
        document["finish_reason"] = message.finish_reason
    if message.role == "summary":
        document["summarized_through_id"] = str(message.summarized_through_id or "")
        document["summarized_message_count"] = message.summarized_message_count
    if message.role in ("assistant", "summary"):
        document["usage"] = {
            "input_tokens": message.input_tokens,
            "output_tokens": message.output_tokens,
        }
    if message.tool_calls:
        document["tool_calls"] = [
            {"id": call.id, "name": call.name, "arguments": call.arguments}
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        document["tool_call_id"] = message.tool_call_id
    if message.author_id is not None:
        document["author_user_id"] = str(message.author_id)
    if message.error is not None:
        document["error"] = {
            "code": message.error.code,
            "reason": message.error.reason,
            "message": message.error.message,
        }
    return document


def to_json(conversation: ConversationView, messages: Sequence[MessageView]) -> Export:
    document = {
        "conversation": {
            "id": str(conversation.id),
            "project_id": str(conversation.project_id),
            "title": conversation.title,
            "agent_id": conversation.agent_id or "",
            "model": conversation.model,
            "message_count": len(messages),
            "create_time": _iso(conversation.create_time),
            "update_time": _iso(conversation.update_time),
        },
        "messages": [_message_json(message) for message in messages],
        "export_time": _iso(utcnow()),
    }
    data = json.dumps(document, ensure_ascii=False, indent=2).encode()
    return Export("application/json", data, f"conversation-{conversation.id}.json")


def _stamp(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def to_markdown(conversation: ConversationView, messages: Sequence[MessageView]) -> Export:
    lines = [f"# {conversation.title or 'Conversation'}", ""]
    lines.append(f"- Conversation: `{conversation.id}`")
    lines.append(f"- Project: `{conversation.project_id}`")
    if conversation.agent_id:
        lines.append(f"- Agent: `{conversation.agent_id}`")
    if conversation.model:
        lines.append(f"- Model: `{conversation.model}`")
    lines.append(f"- Messages: {len(messages)}")
    lines.append(f"- Exported: {_stamp(utcnow())}")
    for message in messages:
        heading = _ROLE_TITLES.get(message.role, message.role.title())
        if message.role == "assistant" and message.model:
            heading += f" ({message.model})"
        elif message.role == "summary":
            heading += f" ({message.summarized_message_count} messages)"
        lines.extend(["", "---", "", f"## {heading} · {_stamp(message.create_time)}", ""])
        lines.append(message.content if message.content else "_(no text)_")
        note = _STATUS_NOTES.get(message.status)
        if note:
            lines.extend(["", f"_({note})_"])
    lines.append("")
    data = "\n".join(lines).encode()
    return Export("text/markdown; charset=utf-8", data, f"conversation-{conversation.id}.md")


_RENDERERS: dict[str, Renderer] = {"json": to_json, "markdown": to_markdown, "md": to_markdown}


def renderer(format_name: str) -> Renderer:
    chosen = _RENDERERS.get((format_name or "json").lower())
    if chosen is None:
        raise InvalidArgument.of([FieldViolation("format", "must be 'json' or 'markdown'")])
    return chosen
