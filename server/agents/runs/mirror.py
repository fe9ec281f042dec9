"""A run's transcript as messages of its conversation, derived from the events they mirror.

Every batch of events the run's owner appends carries the messages it adds to the
transcript, and the event log stores both in one transaction (log.py), so a crash or a
takeover never loses or duplicates a message: the goal (a user message, with the run's
first batch), each completed model turn (one assistant message with its full text, its
tool calls and its usage, with the turn's TurnUsage), each tool result (a tool message:
what the model was given) and each steering message (a user message).

The messages of a batch are a pure function of the transcript before it and the batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.agents.runs.events import (
    Delta,
    RunEvent,
    RunStatus,
    StatusChanged,
    ToolAnswered,
    ToolCalled,
    TurnUsage,
    UserSteered,
)
from server.agents.runs.transcript import Transcript
from server.core.ids import parse_id

TOOL_CALL_ID_CHARS = 200
"""`messages.tool_call_id`'s width."""


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    """One message of a run's transcript, as stored in `messages` (status complete)."""

    role: str
    """user | assistant | tool"""
    content: str
    tool_calls: tuple[dict[str, Any], ...] = ()
    """An assistant's calls, [{id, name, arguments}] as `Message.tool_calls` stores them."""
    tool_call_id: str | None = None
    """A tool message's call."""
    author_id: uuid.UUID | None = None
    """A user message's author."""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    """An assistant message's: `tool_use` (it asked for tools) or `stop`."""
    status: str = "complete"

    def columns(self) -> dict[str, Any]:
        """The message's columns of a `messages` row (without its id and conversation)."""
        return {
            "role": self.role,
            "content": _text(self.content),
            "model": self.model,
            "status": self.status,
            "finish_reason": self.finish_reason,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tool_calls": [
                {key: _text(str(value)) for key, value in call.items()} for call in self.tool_calls
            ],
            "tool_call_id": _text(self.tool_call_id) if self.tool_call_id is not None else None,
            "artifact_ids": [],
            "author_id": self.author_id,
        }


@dataclass(frozen=True, slots=True)
class TranscriptMirror:
    """Turns a batch of a run's events into the transcript messages it adds."""

    author_id: uuid.UUID | None
    """Who started the run (the goal's author)."""
    model: str
    """The run's model (its assistant messages')."""

    def messages(
        self, transcript: Transcript, batch: Sequence[RunEvent]
    ) -> list[TranscriptMessage]:
        """The messages `batch` adds to the transcript, `transcript` being the run's state
        before it."""
        messages: list[TranscriptMessage] = []
        if transcript.last_seq == 0 and batch:
            messages.append(TranscriptMessage("user", transcript.goal, author_id=self.author_id))
        streaming, text, calls = transcript.open_turn()
        for event in batch:
            match event:
                case StatusChanged(status=RunStatus.RUNNING, step=step) if step > 0:
                    streaming, text, calls = True, "", []
                case Delta(text=more) if streaming:
                    text += more
                case ToolCalled() if streaming:
                    calls.append(event)
                case TurnUsage() if streaming:
                    messages.append(self._assistant(text, calls, event))
                    streaming, text, calls = False, "", []
                case ToolAnswered(tool_call_id=call_id, content=content):
                    tool_call_id = call_id[:TOOL_CALL_ID_CHARS]
                    messages.append(TranscriptMessage("tool", content, tool_call_id=tool_call_id))
                case UserSteered(content=content, author_user_id=author):
                    messages.append(TranscriptMessage("user", content, author_id=parse_id(author)))
                case _:
                    pass
        return messages

    def _assistant(
        self, text: str, calls: Sequence[ToolCalled], usage: TurnUsage
    ) -> TranscriptMessage:
        return TranscriptMessage(
            "assistant",
            text,
            tool_calls=tuple(
                {"id": call.id, "name": call.name, "arguments": call.arguments} for call in calls
            ),
            model=self.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            finish_reason="tool_use" if calls else "stop",
        )


def _text(value: str) -> str:
    """PostgreSQL text and JSONB hold no NUL character (a tool's output may)."""
    return value.replace("\x00", "")
